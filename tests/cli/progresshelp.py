"""Running `aiwg` the way the progress tests need: its stderr read while it runs (a
pipe, or a real pseudo-terminal), with a deadline on every wait."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

from tests.utils import env_for_tests


class Running:
    """`aiwg ARGS` started in the background; `until` reads its stream as it comes."""

    def __init__(self, root: Path, *args: str, tty: bool = False, **env: str) -> None:
        full_env = env_for_tests()
        full_env.pop("NO_COLOR", None)
        full_env.update(env)
        cmd = [sys.executable, "-m", "aiwgd.cli", "--root", str(root), *args]
        self.master: int | None = None
        if tty:
            self.master, slave = pty.openpty()
            full_env.setdefault("TERM", "xterm")
            self.proc = subprocess.Popen(
                cmd, stdin=slave, stdout=slave, stderr=slave, env=full_env, close_fds=True
            )
            os.close(slave)
            self.fd = self.master
        else:
            if full_env.get("TERM") is None:
                full_env["TERM"] = "xterm"  # a terminal type, yet not a terminal
            self.proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=full_env,
            )
            assert self.proc.stderr is not None
            self.fd = self.proc.stderr.fileno()
        self.seen = ""
        self.closed = False

    def _read(self, timeout: float) -> None:
        if self.closed or not select.select([self.fd], [], [], max(timeout, 0))[0]:
            return
        try:
            chunk = os.read(self.fd, 65536)
        except OSError:  # EIO: the terminal's last user has gone
            chunk = b""
        if not chunk:
            self.closed = True
        self.seen += chunk.decode(errors="replace")

    def until(self, text: str, timeout: float = 15.0) -> str:
        """Everything read so far, once `text` is in it."""
        deadline = time.monotonic() + timeout
        while text not in self.seen:
            left = deadline - time.monotonic()
            if left <= 0 or self.closed:
                raise AssertionError(f"{text!r} never came; got {self.seen!r}")
            self._read(left)
        return self.seen

    def finish(self, timeout: float = 20.0) -> tuple[int, str, str]:
        """(exit code, stdout, what the read stream carried) once it has ended."""
        deadline = time.monotonic() + timeout
        while not self.closed and time.monotonic() < deadline:
            self._read(deadline - time.monotonic())
        code = self.proc.wait(max(deadline - time.monotonic(), 0.1))
        out = ""
        if self.proc.stdout is not None:
            out = self.proc.stdout.read().decode()
            self.proc.stdout.close()
        if self.proc.stderr is not None:
            self.proc.stderr.close()
        if self.master is not None:
            os.close(self.master)
        return code, out, self.seen

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
