"""Execution states: the one transition table, and their JSON spelling."""

from __future__ import annotations

import json

import pytest

from aiwgd.automation.executions import FINISHED, Execution, ExecutionState

S = ExecutionState


def test_a_retried_execution_succeeds_and_stays_final() -> None:
    exe = Execution("r", {"id": "ev-1", "type": "x"})
    assert exe.state is S.QUEUED
    exe.set_state(S.RUNNING)
    exe.set_state(S.RETRYING, "boom")
    exe.set_state(S.RUNNING)
    assert exe.error == "boom" and exe.finished_at is None
    exe.set_state(S.SUCCEEDED)
    assert exe.error is None and exe.finished_at is not None
    with pytest.raises(ValueError, match="is succeeded; it cannot become running"):
        exe.set_state(S.RUNNING)


def test_only_a_pending_execution_can_be_rejected() -> None:
    exe = Execution("r", {"id": "ev-1", "type": "x"}, S.PENDING)
    with pytest.raises(ValueError, match="allowed: queued, rejected"):
        exe.set_state(S.RUNNING)
    exe.set_state(S.REJECTED, "no")
    assert exe.state in FINISHED


def test_states_are_plain_strings_in_json() -> None:
    exe = Execution("r", {"id": "ev-1", "type": "x"}, S.PENDING)
    out = json.dumps(exe.to_dict(), separators=(",", ":"))
    assert '"state":"pending"' in out
    assert json.loads(out)["state"] == "pending"
