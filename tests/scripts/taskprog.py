"""A program tasks run in tests: each flag is one behaviour a test needs.

    taskprog.py [--record FILE NAME] [--pidfile FILE] [--gate FILE] [--sleep S]
                [--ignore-term] [--grandchild FILE] [--print-bytes N] [--split-utf8]
                [--echo-args ...] [--exit N]

It may sleep: it is a child process, not a test.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time


def append(path: str, line: str) -> None:
    # O_APPEND: lines from concurrent children never interleave.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def main(argv: list[str]) -> int:
    record = name = None
    code = 0
    i = 0
    if "--echo-args" in argv:
        print(json.dumps(argv[argv.index("--echo-args") + 1 :]), flush=True)
        return 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--record":
            record, name = argv[i + 1], argv[i + 2]
            append(record, f"start {name} {time.time():.6f} {os.getpid()}")
            i += 3
            continue
        if arg == "--pidfile":
            append(argv[i + 1], str(os.getpid()))
            i += 1
        elif arg == "--gate":
            while not os.path.exists(argv[i + 1]):
                time.sleep(0.01)
            i += 1
        elif arg == "--sleep":
            time.sleep(float(argv[i + 1]))
            i += 1
        elif arg == "--ignore-term":
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        elif arg == "--grandchild":
            # Escapes the task's process group and session, ignores SIGTERM, lingers.
            code_ = (
                "import os, signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                "os.setsid(); "
                "fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600); "
                "os.write(fd, (str(os.getpid()) + chr(10)).encode()); os.close(fd); "
                "time.sleep(120)"
            )
            subprocess.Popen(
                [sys.executable, "-c", code_, argv[i + 1]],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            i += 1
        elif arg == "--print-bytes":
            n = int(argv[i + 1])
            block = b"x" * 65535 + b"\n"
            out = sys.stdout.buffer
            while n > 0:
                out.write(block[: min(n, len(block))])
                n -= len(block)
            out.write(b"END\n")
            out.flush()
            i += 1
        elif arg == "--split-utf8":
            out = sys.stdout.buffer
            for part in (b"caf\xc3", b"\xa9 \xe2\x82", b"\xac done\n"):
                out.write(part)
                out.flush()
                time.sleep(0.05)
        elif arg == "--say":
            print(argv[i + 1], flush=True)
            i += 1
        elif arg == "--exit":
            code = int(argv[i + 1])
            i += 1
        i += 1
    if record:
        append(record, f"end {name} {time.time():.6f} {os.getpid()}")
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
