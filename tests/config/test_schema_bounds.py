"""The validator bounds every number and string, where a field names no range too.

A config file is read with Python's json, which accepts NaN and Infinity and integers of
any length: each must be an error naming the key, never a value that passes every
comparison (NaN) or crashes a conversion later (float(10**400)).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from aiwgd.config import ValidationError, load_file
from aiwgd.config.schema import MAX_SAFE_INT, MAX_STR, json_schema, parse
from aiwgd.config.tasks import TasksSection


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('{"tasks": {"retention_days": NaN}}', "tasks.retention_days"),
        ('{"tasks": {"retention_days": Infinity}}', "tasks.retention_days"),
        ('{"events": {"log_max_mb": -Infinity}}', "events.log_max_mb"),
        ('{"events": {"history": ' + "9" * 400 + "}}", "events.history"),
        ('{"tasks": {"retention_days": ' + "9" * 400 + "}}", "tasks.retention_days"),
    ],
)
def test_config_numbers_must_be_finite_and_bounded(tmp_path: Path, text: str, key: str) -> None:
    path = tmp_path / "daemon.json"
    path.write_text(text)
    with pytest.raises(ValidationError) as info:
        load_file(path)
    (issue,) = info.value.issues
    assert issue.path == key
    assert "out of range" in issue.message
    assert len(str(issue)) < 300  # a 400-digit value is cut


def test_a_field_without_a_range_still_gets_the_default_bound() -> None:
    from dataclasses import dataclass

    @dataclass
    class Free:
        n: int = 0
        x: float = 0.0
        s: str = ""
        items: list[str] | None = None

    assert parse(Free, {"n": MAX_SAFE_INT, "x": -MAX_SAFE_INT}).n == MAX_SAFE_INT
    with pytest.raises(ValidationError) as info:
        parse(Free, {"n": MAX_SAFE_INT + 1, "x": 1e300, "s": "a" * (MAX_STR + 1)})
    assert [i.path for i in info.value.issues] == ["n", "x", "s"]
    with pytest.raises(ValidationError) as info:
        parse(Free, {"items": ["ok", "b" * (MAX_STR + 1)]})
    assert [i.path for i in info.value.issues] == ["items[1]"]


def test_the_schema_documents_the_default_bounds() -> None:
    props = json_schema(TasksSection)["properties"]
    assert props["max_finished"]["minimum"] == 0  # the field's own range wins
    assert props["max_finished"]["maximum"] == 10_000_000
    assert props["retention_days"]["exclusiveMinimum"] == 0

    from dataclasses import dataclass

    from aiwgd.config.schema import spec

    @dataclass
    class Free:
        n: int = 0
        s: str | None = spec(None, min_len=1)

    free = json_schema(Free)["properties"]
    assert (free["n"]["minimum"], free["n"]["maximum"]) == (-MAX_SAFE_INT, MAX_SAFE_INT)
    assert free["s"]["anyOf"][0] == {"type": "string", "minLength": 1, "maxLength": MAX_STR}
