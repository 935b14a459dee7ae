"""A stream-json attempt's run read back from its task log, off the output path.

Without a budget the executor's parser runs in its cheap mode (aiwgd.agents.streamjson):
it sees the session and the result line but no assistant usage, so the running cost of
a live agent, and the cost of one killed before its result line, come from here: the
log's bytes from where the attempt began, fed to a full parser. Reads are incremental
(each goes on from where the last stopped) and blocking: call them in a thread.

The log keeps its head and each attempt's tail when it is over its cap (aiwgd.procs.output):
what is cut out was never written, so the figure is an estimate of what is there
(`cost_estimated` is true whenever no result line gave the total).
"""

from __future__ import annotations

import dataclasses
import os
import threading

from aiwgd.agents.streamjson import AgentRun, StreamJsonParser

__all__ = ["LogRun", "log_size"]

READ_CHUNK = 1024 * 1024


def log_size(path: str) -> int:
    """Where an attempt's output will start in its log (0 for a new log)."""
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0


def _copy(run: AgentRun) -> AgentRun:
    return dataclasses.replace(run, usage=dict(run.usage))


class LogRun:
    """The run of the attempt whose output starts at `offset` in the log at `path`."""

    def __init__(self, path: str, offset: int) -> None:
        self.path = path
        self._offset = offset
        self._parser = StreamJsonParser(estimate=True)
        # One read at a time: a periodic read may still run when the final one starts.
        self._lock = threading.Lock()

    def read(self) -> AgentRun:
        """The run as of what the log holds now (a copy)."""
        with self._lock:
            self._read()
            return _copy(self._parser.run)

    def close(self) -> AgentRun:
        """The run once the attempt ended and its log is complete."""
        with self._lock:
            self._read()
            return _copy(self._parser.close())

    def _read(self) -> None:
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return
        try:
            while chunk := os.pread(fd, READ_CHUNK, self._offset):
                self._parser.feed(chunk)
                self._offset += len(chunk)
        finally:
            os.close(fd)
