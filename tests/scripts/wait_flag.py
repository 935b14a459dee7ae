"""Child for scheduler tests: log "start <pid>", wait until a flag file exists, log "end".

Run as a task by the daemon (a child process may sleep; the tests themselves never do).
Usage: wait_flag.py LOG_FILE FLAG_FILE
"""

import os
import sys
import time

log, flag = sys.argv[1], sys.argv[2]
with open(log, "a") as fh:
    fh.write(f"start {os.getpid()}\n")
while not os.path.exists(flag):
    time.sleep(0.02)
with open(log, "a") as fh:
    fh.write(f"end {os.getpid()}\n")
