"""What rules and scheduled jobs do: submit a task, emit an event, call a webhook, log.

`ActionRunner.plan()` renders an action's templates against an event without side
effects (the dry run of `automation.test`); `run()` renders and executes it and raises
ActionError when it fails; `attempt()` runs it as one delivery of an event-router
subscription with retries on (a rule's or a job's executor) and returns an Outcome
whose verdict says whether the router retries it (aiwgd.actions.outcome).

Safety: a task's `command` is an argv list rendered element by element and handed to
the supervisor, which runs it without a shell; webhooks use stdlib http.client in a
worker thread, with an optional HMAC-SHA256 signature of the exact body sent.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import http.client
import json
import logging
import os
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from aiwgd import __version__, errors
from aiwgd.actions.outcome import Outcome, Verdict
from aiwgd.actions.templates import TemplateError, render, render_argv, render_data
from aiwgd.config.model import Action

if TYPE_CHECKING:
    from aiwgd.events.router import EventRouter

log = logging.getLogger("aiwgd.actions")

__all__ = [
    "ActionError",
    "ActionRunner",
    "ActionTemplateError",
    "CancelTask",
    "SubmitTask",
    "sign",
]

# `await submit(spec, source) -> task dict`: the supervisor's public method.
SubmitTask = Callable[[dict[str, Any], str], Awaitable[dict[str, Any]]]
# `await cancel(task_id)`: the supervisor's; returns once the task has ended.
CancelTask = Callable[[str], Awaitable[Any]]

SIGNATURE_HEADER = "X-Aiwg-Signature"
WEBHOOK_TIMEOUT_S = 10.0
_EVENT_TYPE = re.compile(r"^[a-z0-9_]+(\.[a-z0-9_*-]+)*$")
_USER_AGENT = f"aiwgd/{__version__}"


class ActionError(Exception):
    """The action could not be carried out; the message says what and why."""


class ActionTemplateError(ActionError):
    """A template could not be resolved: retrying the same event cannot help."""


def sign(secret: str, body: bytes) -> str:
    """The signature header value for `body`: `sha256=<hex HMAC-SHA256>`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class ActionRunner:
    def __init__(
        self,
        router: EventRouter,
        submit_task: SubmitTask | None = None,
        cancel_task: CancelTask | None = None,
    ) -> None:
        self.router = router
        self.submit_task = submit_task
        self._cancel_task = cancel_task

    # ---- dry run -----------------------------------------------------------------------
    def plan(self, action: Action, event: dict[str, Any]) -> dict[str, Any]:
        """The action with every template resolved; TemplateError if a field is missing."""
        out: dict[str, Any] = {"type": action.type}
        if action.type == "task":
            if action.command is not None:
                out["command"] = render_argv(action.command, event)
            else:
                out["prompt"] = render(action.prompt or "", event)
            for key in ("agent", "priority", "timeout_s"):
                value = getattr(action, key)
                if value is not None:
                    out[key] = render(value, event) if isinstance(value, str) else value
        elif action.type == "emit":
            out["event_type"] = render(action.event_type or "", event)
            if not _EVENT_TYPE.match(out["event_type"]):
                raise TemplateError(
                    f"event_type {out['event_type']!r} is not a dotted lowercase event type"
                )
            data = render_data(action.data or {}, event)
            if not isinstance(data, dict):
                raise TemplateError("data must render to an object")
            out["data"] = data
        elif action.type == "webhook":
            out["url"] = render(action.url or "", event)
            if urlsplit(out["url"]).scheme not in ("http", "https"):
                raise TemplateError(f"url {out['url']!r} is not an http:// or https:// URL")
            out["signed"] = action.secret_env is not None
            out["timeout_s"] = action.timeout_s or WEBHOOK_TIMEOUT_S
        elif action.type == "log":
            out["message"] = render(action.message or "", event)
        return out

    # ---- execution ---------------------------------------------------------------------
    async def run(
        self, action: Action, event: dict[str, Any], metadata: dict[str, Any], source: str
    ) -> dict[str, Any]:
        """Execute the action for `event`; returns what happened, raises ActionError."""
        try:
            plan = self.plan(action, event)
        except TemplateError as exc:
            raise ActionTemplateError(f"template: {exc}") from None
        if action.type == "task":
            return await self._task(plan, metadata, source)
        if action.type == "emit":
            ev = self.router.publish(plan["event_type"], plan["data"], source)
            return {"event_id": ev.id, "event_type": ev.type}
        if action.type == "webhook":
            return await self._webhook(plan, event, action.secret_env)
        log.info(plan["message"], extra={**metadata, "action": "log"})
        return {"message": plan["message"]}

    async def attempt(
        self,
        action: Action,
        event: dict[str, Any],
        metadata: dict[str, Any],
        source: str,
        attempt: int,
    ) -> Outcome:
        """Run the action as delivery number `attempt` (from 1) and judge the result.

        A template error is hopeless; any other ActionError is retried while `attempt`
        is within events.max_retries (the router's own limit), and final after that.
        """
        try:
            result = await self.run(action, event, metadata, source)
        except ActionTemplateError as exc:
            return Outcome(Verdict.HOPELESS, error=exc)
        except ActionError as exc:
            last = attempt > self.router.settings.max_retries
            return Outcome(Verdict.FAILED if last else Verdict.RETRY, error=exc)
        return Outcome(Verdict.SUCCEEDED, result)

    async def cancel_task(self, task_id: str) -> bool:
        """Cancel a task an action started and wait until it is gone.

        False (logged, not raised) if it had ended already or no supervisor runs here.
        """
        if self._cancel_task is None:
            log.warning("no task supervisor here to cancel a task", extra={"task_id": task_id})
            return False
        try:
            await self._cancel_task(task_id)
        except errors.RpcError as exc:
            log.info("task not cancelled", extra={"task_id": task_id, "reason": exc.message})
            return False
        return True

    async def _task(
        self, plan: dict[str, Any], metadata: dict[str, Any], source: str
    ) -> dict[str, Any]:
        if self.submit_task is None:
            raise ActionError("no task supervisor is running, so a task action cannot start")
        spec = {k: v for k, v in plan.items() if k != "type"}
        spec["metadata"] = dict(metadata)
        try:
            task = await self.submit_task(spec, source)
        except errors.RpcError as exc:
            raise ActionError(f"task not submitted: {exc.message}") from None
        return {"task_id": task.get("id"), "state": task.get("state")}

    async def _webhook(
        self, plan: dict[str, Any], event: dict[str, Any], secret_env: str | None
    ) -> dict[str, Any]:
        body = json.dumps(event, separators=(",", ":"), default=str).encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": _USER_AGENT,
            "X-Aiwg-Event": str(event.get("type", "")),
            "X-Aiwg-Delivery": str(event.get("id", "")),
        }
        if secret_env is not None:
            secret = os.environ.get(secret_env)
            if not secret:
                raise ActionError(
                    f"webhook secret: environment variable {secret_env} is not set in the "
                    "daemon's environment"
                )
            headers[SIGNATURE_HEADER] = sign(secret, body)
        url, timeout = plan["url"], plan["timeout_s"]
        status = await asyncio.to_thread(_post, url, body, headers, timeout)
        if not 200 <= status < 300:
            raise ActionError(f"webhook {url} answered HTTP {status}")
        return {"url": url, "status": status}


def _post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
    """POST `body` and return the HTTP status; ActionError on any transport failure."""
    parts = urlsplit(url)
    conn_cls = (
        http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    )
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    try:
        conn = conn_cls(parts.hostname or "", parts.port, timeout=timeout)
    except (ValueError, http.client.HTTPException) as exc:
        raise ActionError(f"webhook {url}: {exc}") from None
    try:
        conn.request("POST", path, body=body, headers=headers)
        resp = conn.getresponse()
        resp.read(65536)  # drain a little so the server sees a clean exchange
        return int(resp.status)
    except (OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise ActionError(f"webhook {url}: {reason}") from None
    finally:
        conn.close()
