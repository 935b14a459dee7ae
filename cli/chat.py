"""`aiwg chat`: talk to the agent, one message at a time or as a conversation.

`aiwg chat MESSAGE` sends one message (`chat.send`) and prints the answer as it comes;
the exit code says how the task ended (0 completed, 1 otherwise).

`aiwg chat` alone reads lines at a prompt. Each line becomes a prompt task (source
"chat") that resumes the agent session of the one before (`chat.send` with
`resume`), so a conversation is a chain of tasks, each task's `resume` naming the
previous one: `aiwg task list --source chat` lists them later, and `--continue` picks
up the newest. Arrow keys recall earlier lines (readline; kept in .aiwg/chat_history,
owner-only). Ctrl-C stops the reply being written (`task.cancel`) and gives the prompt
back; Ctrl-D leaves.

A session to continue needs an agent that reports one: agent.output "stream-json"
(Claude Code's --output-format stream-json). Such output is shown as the agent's text
(its assistant text blocks, else the final `result`), not as JSON. A plain text
agent's output is shown as it is, and each message of it starts afresh.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TextIO

import typer

from aiwgd.cli.options import (
    EXIT_ERROR,
    Json,
    Root,
    UsageError,
    client,
    paths_for,
    want_json,
)

if TYPE_CHECKING:
    from aiwgd.client import Client

TERMINAL = ("completed", "failed", "timed_out", "cancelled", "dependency_failed")
# stream-json line types (Claude Code); any other JSON line is shown as it is
STREAM_TYPES = frozenset(("system", "assistant", "user", "result", "stream_event"))
HISTORY_LINES = 1000
HISTORY_FILE = "chat_history"
PROMPT = "> "


def _stream_event(line: str) -> dict[str, Any] | None:
    """The stream-json event a line of output is, or None (a line of plain text)."""
    if not line.lstrip().startswith("{"):
        return None
    try:
        event = json.loads(line)
    except ValueError:
        return None
    if isinstance(event, dict) and event.get("type") in STREAM_TYPES:
        return event
    return None


def _texts(event: dict[str, Any]) -> list[str]:
    """The text blocks of an assistant message (tool calls and thinking are not shown)."""
    if event.get("type") != "assistant":
        return []
    message = event.get("message")
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(content, list):
        return []
    return [
        b["text"]
        for b in content
        if isinstance(b, dict) and b.get("type") == "text" and isinstance(b.get("text"), str)
    ]


class Reply:
    """What the user reads of a task's output, fed the chunks as they arrive.

    The first line decides: a stream-json event (an agent with agent.output
    "stream-json" starts with its init line) makes every line an event whose assistant
    text is shown; anything else is a text agent, passed through untouched as it comes.
    """

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.mode = "?"  # "?" until the first line tells, then "text" or "json"
        self.pending = ""  # a json line not complete yet
        self.shown: list[str] = []  # assistant text blocks shown
        self.at_line_start = True

    def feed(self, data: str) -> None:
        if self.mode == "text":
            self._write(data)
            return
        self.pending += data
        if self.mode == "?":
            head = self.pending.lstrip()
            if head and not head.startswith("{"):
                self._text_mode()
                return
            if "\n" not in self.pending:
                return  # the first line decides; it is not all here yet
            if _stream_event(self.pending.split("\n", 1)[0]) is None:
                self._text_mode()
                return
            self.mode = "json"
        *lines, self.pending = self.pending.split("\n")
        for line in lines:
            self._line(line)

    def finish(self, task: dict[str, Any]) -> None:
        """The task has ended: the rest of its output, and its `result` unless shown."""
        rest, self.pending = self.pending, ""
        if rest and self.mode == "json":
            self._line(rest)
        elif rest:
            self._write(rest)
        result = task.get("result")
        fresh = not self.shown or str(result).strip() != self.shown[-1].strip()
        if isinstance(result, str) and result.strip() and fresh:
            self._show(result)

    def end_line(self) -> None:
        """Make sure the next prompt starts on a line of its own."""
        if not self.at_line_start:
            self._write("\n")

    def _text_mode(self) -> None:
        self.mode = "text"
        text, self.pending = self.pending, ""
        self._write(text)

    def _line(self, line: str) -> None:
        event = _stream_event(line)
        if event is None:
            # Stray prints of the agent are shown; an object line is its protocol (one
            # cut short by a crash, or of a kind not known here), never shown raw.
            if line.strip() and not line.lstrip().startswith("{"):
                self._write(line + "\n")
            return
        for text in _texts(event):
            self._show(text)

    def _show(self, text: str) -> None:
        self.shown.append(text)
        self._write(text if text.endswith("\n") else text + "\n")

    def _write(self, text: str) -> None:
        if text:
            self.out.write(text)
            self.out.flush()
            self.at_line_start = text.endswith("\n")


def follow(c: Client, task_id: str, reply: Reply) -> dict[str, Any]:
    """Show the task's output until it ends; its final record."""

    def show(note: dict[str, Any]) -> None:
        reply.feed((note.get("params") or {}).get("data", ""))

    c.stream("task.logs", show, id=task_id, follow=True)
    task: dict[str, Any] = c.call("task.get", id=task_id)
    reply.finish(task)
    return task


def _ended(task: dict[str, Any]) -> str:
    line = f"task {task['id']} {task['state']}"
    return f"{line}: {task['error']}" if task.get("error") else line


@contextlib.contextmanager
def _sigint_held() -> Iterator[None]:
    """SIGINT blocked inside: one that comes meanwhile is raised on leaving."""
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _send(message: str, agent: str | None, previous: str | None) -> dict[str, Any]:
    """chat.send's params: `resume` continues the previous task's agent session."""
    params: dict[str, Any] = {"message": message}
    if agent:
        params["agent"] = agent
    if previous:
        params["resume"] = previous
    return params


class Conversation:
    """A chain of chat tasks, each resuming the agent session of the one before."""

    def __init__(self, root: str | None, agent: str | None, previous: str | None) -> None:
        self.root = root
        self.agent = agent
        self.previous = previous  # the newest task of the chain with an agent session
        self.told_no_session = False

    def send(self, message: str, out: TextIO) -> dict[str, Any] | None:
        """One message and its answer; None if Ctrl-C cut it short (the task cancelled)."""
        task_id: str | None = None
        reply = Reply(out)
        try:
            # Ctrl-C waits until the daemon has answered: a task it took is then known
            # and cancelled, never left running unseen. A quick call: a stuck daemon
            # ends it with the timeout instead.
            with _sigint_held(), client(self.root) as c:
                task_id = str(
                    c.call("chat.send", **_send(message, self.agent, self.previous))["id"]
                )
            with client(self.root, timeout=None) as c:
                task = follow(c, task_id, reply)
        except KeyboardInterrupt:
            reply.end_line()
            self._cancel(task_id)
            return None
        reply.end_line()
        if task["state"] != "completed":
            typer.echo(f"aiwg: {_ended(task)}", err=True)
        if task.get("session_id"):
            self.previous = task_id
        elif not self.told_no_session:
            self.told_no_session = True
            typer.echo(
                "aiwg: the agent reported no session id, so the next message starts "
                'afresh (agent.output "stream-json" keeps a conversation going)',
                err=True,
            )
        return task

    def _cancel(self, task_id: str | None) -> None:
        if task_id is None:
            typer.echo("aiwg: interrupted", err=True)
            return
        from aiwgd.client import RpcError

        try:
            with client(self.root, timeout=None) as c:
                task = c.call("task.cancel", id=task_id)
        except RpcError as exc:  # it ended meanwhile (Conflict): nothing to stop
            typer.echo(f"aiwg: task {task_id}: {exc.describe()}", err=True)
            return
        if task.get("session_id"):
            self.previous = task_id  # the cut-short exchange stays part of the conversation
        typer.echo(f"aiwg: {_ended(task)}", err=True)


def last_chat(root: str | None) -> str | None:
    """The newest chat task with an agent session: where `--continue` picks up."""
    with client(root) as c:
        page = c.call("task.list", source="chat", limit=200)
    for task in page["tasks"]:  # newest first
        if task.get("session_id"):
            return str(task["id"])
    return None


class History:
    """The prompt's line history (readline), kept owner-only in .aiwg/chat_history."""

    def __init__(self, path: Path) -> None:
        import readline  # only the interactive chat on a terminal needs it

        self.readline = readline
        self.path = path
        readline.set_auto_history(False)  # blank lines are not kept
        with contextlib.suppress(OSError):  # none yet, or unreadable: start without
            readline.read_history_file(path)
        readline.set_history_length(HISTORY_LINES)
        if readline.get_current_history_length() >= HISTORY_LINES:
            # Trimmed here, not on leaving: another chat may be appending to it then.
            self._save(lambda: readline.write_history_file(path))

    def add(self, line: str) -> None:
        self.readline.add_history(line)
        self._save(lambda: self.readline.append_history_file(1, self.path))

    def _save(self, write: Callable[[], None]) -> None:
        try:
            # made 0600 before readline opens it, so it is never readable by others
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            os.fchmod(fd, 0o600)
            os.close(fd)
            write()
        except OSError as exc:  # a full disk must not end the conversation
            typer.echo(f"aiwg: history not saved: {exc}", err=True)


def interactive(root: str | None, agent: str | None, previous: str | None) -> None:
    """The prompt loop: until Ctrl-D (or the end of a piped stdin)."""
    paths = paths_for(root)
    tty = sys.stdin.isatty() and sys.stdout.isatty()
    history = History(paths.aiwg_dir / HISTORY_FILE) if tty else None
    if tty:
        typer.echo("chat with the agent: Ctrl-C stops a reply, Ctrl-D leaves", err=True)
    talk = Conversation(root, agent, previous)
    from aiwgd.client import RpcError  # a daemon gone (not running) ends the chat

    while True:
        try:
            line = input(PROMPT if tty else "")
        except KeyboardInterrupt:  # at the prompt: a fresh line, as in a shell
            sys.stdout.write("\n")
            continue
        except EOFError:
            if tty:
                sys.stdout.write("\n")
            return
        if not line.strip():
            continue
        if history is not None:
            history.add(line)
        try:
            talk.send(line, sys.stdout)
        except RpcError as exc:  # refused: say so, and go on
            typer.echo(f"aiwg: error {exc.code}: {exc.describe()}", err=True)
            if talk.previous and "resume" in exc.message:
                # e.g. the earlier task was pruned: keeping it would refuse every line
                talk.previous = None
                typer.echo("aiwg: the next message starts a new session", err=True)


def _print_note(note: dict[str, Any]) -> None:
    typer.echo(json.dumps(note.get("params") or {}, ensure_ascii=False))


def one_message(
    root: str | None, message: str, agent: str | None, previous: str | None, as_json: bool
) -> None:
    """Send one message, print the answer; exit 1 unless its task completed."""
    with client(root, timeout=None) as c:
        task = c.call("chat.send", **_send(message, agent, previous))
        if not as_json:
            typer.echo(f"task {task['id']} {task['state']}", err=True)
            reply = Reply(sys.stdout)
            final = follow(c, task["id"], reply)
        else:
            c.stream("task.logs", _print_note, id=task["id"], follow=True)
            final = c.call("task.get", id=task["id"])
    if as_json:
        typer.echo(json.dumps(final, default=str))
    if final["state"] != "completed":
        if not as_json:
            typer.echo(f"aiwg: {_ended(final)}", err=True)
        raise typer.Exit(EXIT_ERROR)
    if not as_json:
        typer.echo(_ended(final), err=True)


def chat(
    message: Annotated[
        str | None,
        typer.Argument(metavar="MESSAGE", help="what to ask the agent (none: a conversation)"),
    ] = None,
    continue_: Annotated[
        bool, typer.Option("--continue", "-c", help="pick up the newest chat's agent session")
    ] = False,
    agent: Annotated[str | None, typer.Option("--agent", "-a", help="named agent")] = None,
    root: Root = None,
    json_out: Json = False,
) -> None:
    """Chat with the agent: one MESSAGE, or a conversation at a prompt (Ctrl-D leaves)."""
    as_json = want_json(json_out)
    if message is None and as_json:
        raise UsageError("--json needs a MESSAGE (the interactive chat is for a person)")
    previous = last_chat(root) if continue_ else None
    if continue_:
        if previous is None:
            typer.echo("aiwg: no earlier chat with an agent session: a new one", err=True)
        elif not as_json:
            typer.echo(f"continuing the chat of task {previous}", err=True)
    if message is None:
        interactive(root, agent, previous)
    else:
        one_message(root, message, agent, previous, as_json)


def register(app: typer.Typer) -> None:
    app.command("chat")(chat)
