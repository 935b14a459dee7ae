"""What a task's end means for its next attempt, as pure functions of the task and the
config: the backoff before a retry of a failed attempt, and whether an interrupted
attempt runs again (its on_interrupt policy, its retries, env values a restart lost).
The supervisor and the store apply the answers; nothing here touches either."""

from __future__ import annotations

from typing import Any

from aiwgd.config.agent import AgentSection
from aiwgd.config.tasks import TasksSection
from aiwgd.tasks.model import Task, TaskState


def retry_delay(task: Task, agent: AgentSection) -> float:
    """Exponential backoff before the next attempt of a failed or timed-out one."""
    return float(
        min(agent.retry_backoff_seconds * 2 ** (task.attempt - 1), agent.retry_backoff_max_seconds)
    )


def after_interrupt(task: Task, cfg: TasksSection) -> dict[str, Any]:
    """The store update for an interrupted task: requeued (a retry, attempt + 1) or
    failed with the reason it does not run again."""
    policy = task.on_interrupt or cfg.interrupt_policy(prompt=task.prompt is not None)
    lost = task.lost_env()  # read back from disk: its env values are gone
    if policy == "requeue" and task.retries_left > 0 and not lost:
        return {
            "state": TaskState.QUEUED,
            "attempt": task.attempt + 1,
            "runner": None,
            "started_at": None,
            "retry_at": None,
        }
    if policy != "requeue":
        why = (
            "not run again: its on_interrupt is fail (resubmit it, or submit it with "
            "on_interrupt requeue and max_retries >= 1 to allow a re-run)"
        )
    elif lost:
        why = (
            f"not run again: the value of env {', '.join(lost)} was not kept across "
            "the restart (task env values are never written to disk); resubmit it"
        )
    else:
        why = (
            f"not run again: no retry left (max_retries {task.max_retries}, attempt "
            f"{task.attempt}); a re-run after an interruption uses up a retry"
        )
    error = f"{task.error or 'interrupted'}; {why}"
    return {"state": TaskState.FAILED, "runner": None, "error": error}
