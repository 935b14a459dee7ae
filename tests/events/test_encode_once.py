"""The router encodes an event's data once: the history weighs it and the event log
splices the same text into its line. The lines must be the bytes json_line writes for
the whole event, including the escaped form for a lone surrogate, and an event whose
data is not JSON is still counted as lost, never written half.

One event loop per test (`asyncio.run`); the router is real, its files in tmp_path.
"""

from __future__ import annotations

import asyncio
import math
from pathlib import Path
from typing import Any

import pytest

from aiwgd.config import Paths
from aiwgd.config.events import EventsSection
from aiwgd.events.router import EventRouter
from aiwgd.infra.jsonline import json_line


class Odd:
    def __str__(self) -> str:
        return "odd \u00e9"


def _cycle() -> dict[str, Any]:
    data: dict[str, Any] = {"a": 1}
    data["self"] = data
    return data


NON_STR_KEYS: dict[Any, Any] = {1: "int key", 2.5: "float key"}

PUBLISHED: list[tuple[str, dict[str, Any] | None, str]] = [
    ("ci.plain", {"x": 1, "y": [1.5, None, True], "z": {"k": "v"}}, "rpc"),
    ("ci.none", None, "rpc"),
    ("ci.empty", {}, "rpc"),
    ("ci.unicode", {"x": "caf\u00e9 \U0001f600", "\u00e9": '\n\t"\\'}, "w\u00e9"),
    ("ci.surrogate", {"path": "src/caf\udce9.txt"}, "watcher"),
    ("ci.default", {"obj": Odd(), "inf": math.inf, "nan": math.nan}, "rpc"),
    ("ci.keys", NON_STR_KEYS, "rpc"),
    ("ci.src\udce9", {"x": 1}, "rpc"),  # the surrogate outside the data
]


def test_event_log_lines_are_json_line_of_the_event(tmp_path: Path) -> None:
    async def main() -> EventRouter:
        paths = Paths(tmp_path)
        paths.events_file.parent.mkdir(parents=True)
        router = EventRouter()
        router.configure(paths, EventsSection())
        await router.start()
        for type_, data, source in PUBLISHED:
            router.publish(type_, data, source)
        router.publish("ci.cycle", _cycle(), "rpc")  # not JSON: lost, as before
        router.publish("ci.after", {"x": 2}, "rpc")
        await router.stop()
        return router

    router = asyncio.run(main())
    assert router.log is not None
    status = router.log.status()
    assert (status["written"], status["lost"], status["write_errors"]) == (
        len(PUBLISHED) + 1,
        1,
        1,
    )
    events = [e for e in router.history if e.type != "ci.cycle"]
    expected = b"".join(json_line(e.to_dict()) for e in events)
    assert router.log.path.read_bytes() == expected
    assert b"src/caf\\udce9.txt" in expected  # escaped, the event kept


@pytest.mark.parametrize("data", [{"x": "y" * 1000}, {}, None])
def test_history_weighs_the_data_once(data: dict[str, Any] | None) -> None:
    router = EventRouter()
    router.publish("ci.one", data, "rpc")
    assert router.history.bytes == 300 + (len('{"x":"' + "y" * 1000 + '"}') if data else 0)
    router.publish("ci.cycle", _cycle(), "rpc")  # not JSON: the record alone
    assert len(router.history) == 2
