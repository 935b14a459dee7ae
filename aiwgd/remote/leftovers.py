"""The start-up sweep of `aiwg worker`: attempts an earlier worker on this host left
running when it died.

A work horse dies with its worker (PR_SET_PDEATHSIG), but the attempt's program runs
in a session of its own and is left behind, cut off: nobody heartbeats for it, nobody
reads its `ctl`. Its processes carry the marks AIWG_EXECUTION, AIWG_QUEUE and
AIWG_ROOT, so the next worker started on the same root and queue finds them and takes
them down the stop ladder, unless a live horse on this host still runs that execution
(its `hb` names the horse, and the horse is the parent of the attempt's processes: a
horse is their subreaper). The stream then gets a note and an end (reason "lost") if
it has none yet, so a daemon still waiting for that execution hears how it ended.
"""

from __future__ import annotations

import functools
import json
import logging
from typing import Any

import redis
from redis.exceptions import RedisError

from aiwgd.procs import marks
from aiwgd.remote import keys
from aiwgd.remote.streamsink import end_fields, note
from aiwgd.tasks.executors.local import ROOT_MARK

log = logging.getLogger("aiwgd.remote")


def _find(queue: str, root: str, execution: str | None = None) -> list[marks.MarkedProcess]:
    where = {keys.QUEUE_MARK: queue, ROOT_MARK: root}
    return marks.find_marked(keys.EXECUTION_MARK, execution, where=where)


def _horse_runs_it(
    client: redis.Redis, queue: str, execution: str, host: str, procs: list[marks.MarkedProcess]
) -> bool:
    raw = client.get(keys.key(queue, "hb", execution))
    if raw is None:
        return False
    try:
        hb = json.loads(raw)
        horse = int(hb["horse"])
    except (ValueError, KeyError, TypeError):
        return False
    return hb.get("host") == host and any(p.ppid == horse for p in procs)


def sweep(client: redis.Redis, queue: str, root: str, host: str, grace: float) -> list[str]:
    """Stop what dead horses on this host left of `queue`'s attempts under `root`;
    returns one line per execution stopped. Blocking."""
    by_execution: dict[str, list[marks.MarkedProcess]] = {}
    for p in _find(queue, root):
        by_execution.setdefault(p.value, []).append(p)
    done = []
    for execution, procs in by_execution.items():
        if _horse_runs_it(client, queue, execution, host, procs):
            continue
        rescan = functools.partial(_find, queue, root, execution)
        report = marks.stop_marked(procs, grace, rescan=rescan)
        what = report.describe() or "nothing left to stop"
        line = f"stopped {execution}, left running by a worker that died: {what}"
        log.warning(line)
        done.append(line)
        try:
            _record_end(client, queue, execution, report)
        except RedisError as exc:
            log.warning("cannot record the end", extra={"execution": execution, "error": str(exc)})
    return done


def _record_end(client: redis.Redis, queue: str, execution: str, report: marks.StopReport) -> None:
    out = keys.key(queue, "out", execution)
    last = client.xrevrange(out, count=1)
    fields = last[0][1] if last else None
    if fields and fields.get(b"k") == b"end":
        return
    sig = 9 if report.killed else 15
    text = "its worker died; the next worker start on this host stopped it: "
    with client.pipeline(transaction=True) as pipe:
        pipe.xadd(out, {"k": "out", "d": note(text + report.describe())})
        end: Any = end_fields(None, sig, "lost")
        pipe.xadd(out, end, maxlen=keys.STREAM_MAXLEN, approximate=True)
        pipe.expire(out, keys.KEEP_S)
        pipe.delete(keys.key(queue, "hb", execution))
        pipe.publish(keys.ends_channel(queue), execution)
        pipe.execute()
