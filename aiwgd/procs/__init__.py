"""Child processes: spawn, output capture, process-tree facts, the stop ladder."""
