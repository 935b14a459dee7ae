"""The hung-process watchdog (issue 10): scan, verdicts, the stop ladder, watchdog.*."""
