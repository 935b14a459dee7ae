"""What the daemon and `aiwg worker` say to each other through Redis (besides RQ's own
queue): key names and the shape of every entry. Standard library only: both sides and
the tests import it.

One attempt of a task is one *execution*, named `<task id>-<attempt>`; that is also
its RQ job id. Every key below is per queue (`aiwg:<queue>:...`) and per execution:

- `run` (hash): where the attempt runs, written by the work horse once its child has
  started: worker, host, pid, pgid, create_time, started (wall time).
- `hb` (string, TTL): the horse's heartbeat while the attempt runs; JSON
  {"worker", "host", "horse"} (the horse's pid). Gone for longer than the TTL: the
  worker is dead (or cut off) and the daemon ends the attempt as lost.
- `out` (stream, bounded): the attempt's output and its end, in order. Entries are
  {"k": "out", "d": bytes}, {"k": "start", ...the run fields} and last
  {"k": "end", "code": int|"", "signal": int|"", "reason": str|""}; nothing follows
  an end. The daemon appends "out" data to the task's log as it reads it.
- `ctl` (list): stop requests from the daemon, each a reason ("cancelled", "timeout",
  "limit", "budget", "lost", "shutdown"). A list, not a pub/sub message, so a request
  made while the worker was away still waits for it: the horse checks it before its
  child starts and blocks on it while the child runs.
- `applied` (string): the id of the last `out` entry the daemon has written to the
  task's log, so a daemon that restarts goes on from there instead of writing
  output twice.

Plus one pub/sub channel per queue, `aiwg:<queue>:ends`, where a horse publishes an
execution id when it wrote that attempt's end: a late end from an attempt the daemon
no longer thinks current is logged and ignored there.
"""

from __future__ import annotations

from typing import Final

PREFIX: Final = "aiwg"
VERSION: Final = 1  # of the job payload; a worker refuses a payload it does not know

# RQ's job function, named by its import path so the daemon never imports worker code.
JOB_FUNC: Final = "aiwgd.remote.jobrun.run_attempt"
# How RQ stores a job, on both sides: JSON (RQ's "json" serializer), never its default
# pickle, which runs whatever code the bytes name when a worker loads them: anyone able
# to write to the queue could then run code in the worker itself.
SERIALIZER: Final = "json"

# The marks (environment variables) a remote attempt's processes carry, besides the
# local executor's AIWG_TASK_ID and AIWG_ROOT: a local daemon's sweep must leave a
# worker's children alone, and a worker's start-up sweep finds its queue's children.
EXECUTION_MARK: Final = "AIWG_EXECUTION"
QUEUE_MARK: Final = "AIWG_QUEUE"

STREAM_MAXLEN: Final = 10_000  # entries of `out` kept (approximate trimming)
KEEP_S: Final = 7 * 86_400  # how long per-execution keys outlive the attempt


def execution_id(task_id: str, attempt: int) -> str:
    # A dash: RQ 3.0 takes only [A-Za-z0-9_-] in a job id (task ids are [0-9a-z]).
    return f"{task_id}-{attempt}"


def split_execution(execution: str) -> tuple[str, int] | None:
    """(task id, attempt) of an execution id, or None if it is not one."""
    task_id, _, attempt = execution.rpartition("-")
    if not task_id or not attempt.isdigit():
        return None
    return task_id, int(attempt)


def key(queue: str, kind: str, execution: str) -> str:
    """`kind` is one of: run, hb, out, ctl, applied."""
    return f"{PREFIX}:{queue}:{kind}:{execution}"


def ends_channel(queue: str) -> str:
    return f"{PREFIX}:{queue}:ends"
