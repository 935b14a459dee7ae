"""Tasks: model, submission spec, run queue, supervisor, executors and store."""
