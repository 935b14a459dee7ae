"""`aiwg chat` as a person uses it: a real terminal (a pty), a real daemon, a fake agent.

The agent is a small script written into the project: it prints Claude Code's
stream-json (init with a session id, an assistant text block, a result) answering its
prompt in capitals, continues the session it is given with `--resume ID`, and records
its argv and PID. "slow ..." prompts say "thinking" and then hang until stopped;
"terse ..." prompts answer in the result only.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import DaemonFactory
from tests.taskhelp import task_config
from tests.utils import DaemonProc, alive, env_for_tests, run_cli, wait_for

AGENT = r"""
import json, os, sys, time, uuid
record, prompt, *rest = sys.argv[1:]
with open(record, "a") as fh:
    fh.write(json.dumps({"prompt": prompt, "argv": sys.argv[1:], "pid": os.getpid()}) + "\n")
session = rest[rest.index("--resume") + 1] if "--resume" in rest else "s-" + uuid.uuid4().hex
def out(obj):
    print(json.dumps(obj), flush=True)
def said(text):
    return {"type": "assistant", "session_id": session, "message": {
        "id": "msg-" + uuid.uuid4().hex, "type": "message", "role": "assistant",
        "model": "m", "content": [{"type": "text", "text": text}],
        "usage": {"input_tokens": 1, "output_tokens": 1}}}
out({"type": "system", "subtype": "init", "session_id": session, "model": "m",
     "cwd": os.getcwd(), "tools": []})
if prompt.startswith("slow"):
    out(said("thinking"))
    time.sleep(120)
answer = prompt.upper()
if not prompt.startswith("terse"):
    out(said(answer))
out({"type": "result", "subtype": "success", "is_error": False, "result": answer,
     "session_id": session, "num_turns": 1, "total_cost_usd": 0.001, "duration_ms": 5,
     "usage": {"input_tokens": 1, "output_tokens": 1}})
"""

# Run by the pty's child: make the pty its controlling terminal (so Ctrl-C is SIGINT
# from the line discipline, as in a real terminal), then become aiwg.
CTTY = "import fcntl, os, sys, termios; fcntl.ioctl(0, termios.TIOCSCTTY, 0); " + (
    "os.execv(sys.argv[1], sys.argv[1:])"
)
CTRL_C, CTRL_D, UP, KILL_LINE = "\x03", "\x04", "\x1b[A", "\x15"


class Terminal:
    """aiwg on a pseudo-terminal: type into it, read what it shows (with deadlines)."""

    def __init__(self, root: Path, *args: str) -> None:
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
        env = {**env_for_tests(), "TERM": "xterm", "INPUTRC": "/dev/null"}
        argv = [sys.executable, "-m", "aiwgd.cli", "--root", str(root), *args]
        self.proc = subprocess.Popen(
            [sys.executable, "-c", CTTY, *argv],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            cwd=root,
            start_new_session=True,
        )
        os.close(slave)
        self.fd = master
        self.seen = ""
        self.pos = 0  # what expect() has matched up to

    def _read(self, timeout: float) -> bool:
        ready, _, _ = select.select([self.fd], [], [], max(timeout, 0))
        if not ready:
            return False
        try:
            data = os.read(self.fd, 65536)
        except OSError:  # EIO: the program has gone and closed the terminal
            data = b""
        self.seen += data.decode(errors="replace")
        return bool(data)

    def expect(self, text: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while (at := self.seen.find(text, self.pos)) < 0:
            left = deadline - time.monotonic()
            if left <= 0 or (not self._read(min(left, 0.5)) and self.proc.poll() is not None):
                raise AssertionError(f"no {text!r} on the terminal; it shows:\n{self.seen}")
        self.pos = at + len(text)

    def type(self, text: str) -> None:
        os.write(self.fd, text.encode())

    def wait_exit(self, timeout: float = 20.0) -> int:
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"aiwg chat still running; it shows:\n{self.seen}")
            self._read(0.05)
        return self.proc.returncode

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
        os.close(self.fd)


@pytest.fixture
def d(project: Path, start_daemon: DaemonFactory) -> DaemonProc:
    (project / "agent.py").write_text(AGENT)
    cfg = task_config(cap=2, grace=0.3)
    cfg["agent"]["command"] = [
        sys.executable,
        str(project / "agent.py"),
        str(project / "agent.jsonl"),
        "{prompt}",
    ]
    cfg["agent"]["output"] = "stream-json"
    return start_daemon(cfg)


@pytest.fixture
def term(project: Path) -> Iterator[list[Terminal]]:
    """Terminals a test opens; each closed (its aiwg killed if still there) at the end."""
    opened: list[Terminal] = []
    yield opened
    for t in opened:
        t.close()


def chat_term(opened: list[Terminal], d: DaemonProc, *args: str) -> Terminal:
    t = Terminal(d.root, "chat", *args)
    opened.append(t)
    return t


def runs(project: Path) -> dict[str, dict[str, Any]]:
    """What the agent recorded, by prompt."""
    path = project / "agent.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return {r["prompt"]: r for r in map(json.loads, lines)}


def chats(d: DaemonProc) -> list[dict[str, Any]]:
    """The chat tasks, oldest first."""
    tasks: list[dict[str, Any]] = d.call("task.list", source="chat")["tasks"]
    return tasks[::-1]


def test_two_lines_are_two_tasks_the_second_resuming_the_first(
    d: DaemonProc, term: list[Terminal]
) -> None:
    t = chat_term(term, d)
    t.expect("> ")
    t.type("first question\r")
    t.expect("FIRST QUESTION")
    t.expect("> ")
    t.type("and a second\r")
    t.expect("AND A SECOND")
    t.expect("> ")
    t.type(CTRL_D)
    assert t.wait_exit() == 0
    assert '"type"' not in t.seen and "session_id" not in t.seen  # text, not raw JSON

    first, second = chats(d)
    assert (first["prompt"], second["prompt"]) == ("first question", "and a second")
    assert first["state"] == second["state"] == "completed"
    assert first["resume"] is None and second["resume"] == first["id"]
    session = d.call("task.get", id=first["id"])["session_id"]
    assert session and d.call("task.get", id=second["id"])["session_id"] == session
    seen = runs(d.root)
    assert "--resume" not in seen["first question"]["argv"]
    assert seen["and a second"]["argv"][-2:] == ["--resume", session]

    history = d.root / ".aiwg" / "chat_history"
    assert history.stat().st_mode & 0o777 == 0o600
    assert "first question" in history.read_text() and "and a second" in history.read_text()


def test_ctrl_c_cancels_the_reply_and_the_prompt_comes_back(
    d: DaemonProc, term: list[Terminal]
) -> None:
    t = chat_term(term, d)
    t.expect("> ")
    t.type("slow one\r")
    t.expect("thinking")  # the reply is being written: the agent runs
    t.type(CTRL_C)
    t.expect("cancelled")
    [slow] = chats(d)
    assert d.call("task.get", id=slow["id"])["state"] == "cancelled"
    wait_for(lambda: not alive(runs(d.root)["slow one"]["pid"]), 5, "the agent to be gone")

    t.expect("> ")  # still chatting: the next line continues the cut-short session
    t.type("still here\r")
    t.expect("STILL HERE")
    t.expect("> ")
    t.type(CTRL_D)
    assert t.wait_exit() == 0
    assert chats(d)[1]["resume"] == slow["id"]


def test_ctrl_c_at_the_prompt_only_clears_the_line(d: DaemonProc, term: list[Terminal]) -> None:
    t = chat_term(term, d)
    t.expect("> ")
    t.type("never sent")
    t.expect("never sent")  # echoed: readline has it (a Ctrl-C before would flush it)
    # CPython's readline sees a SIGINT only when it interrupts its select(): one that
    # lands while it is still drawing the last key waits for the next key. A person
    # presses Ctrl-C again; so does this test, at most three times.
    for attempt in range(3):
        t.type(CTRL_C)
        try:
            t.expect("\n> ", timeout=2)
            break
        except AssertionError:
            if attempt == 2:
                raise
    t.type(CTRL_D)
    assert t.wait_exit() == 0
    assert chats(d) == []


def test_continue_with_the_up_arrow_resends_the_last_line_in_the_same_session(
    d: DaemonProc, term: list[Terminal]
) -> None:
    t = chat_term(term, d)
    t.expect("> ")
    t.type("remember me\r")
    t.expect("REMEMBER ME")
    t.expect("> ")
    t.type(CTRL_D)
    assert t.wait_exit() == 0

    again = chat_term(term, d, "--continue")
    again.expect("continuing the chat of task")
    again.expect("> ")
    again.type(UP + "\r")  # the history kept in .aiwg/chat_history
    again.expect("REMEMBER ME")
    again.expect("> ")
    again.type(CTRL_D)
    assert again.wait_exit() == 0

    first, second = chats(d)
    assert first["prompt"] == second["prompt"] == "remember me"
    assert second["resume"] == first["id"]


def test_history_is_kept_owner_only_and_trimmed(d: DaemonProc, term: list[Terminal]) -> None:
    history = d.root / ".aiwg" / "chat_history"
    history.write_text("".join(f"old {i}\n" for i in range(1500)))
    history.chmod(0o644)
    t = chat_term(term, d)
    t.expect("> ")
    t.type(UP)
    t.expect("old 1499")
    t.type(KILL_LINE + CTRL_D)  # on a line with text, Ctrl-D deletes a character
    assert t.wait_exit() == 0
    lines = history.read_text().splitlines()
    assert len(lines) == 1000 and lines[-1] == "old 1499"
    assert history.stat().st_mode & 0o777 == 0o600


def test_one_message_shows_the_answer_and_continue_resumes(d: DaemonProc) -> None:
    out = run_cli(d.root, "chat", "alpha")
    assert out.returncode == 0, out.stderr
    assert out.stdout == "ALPHA\n"  # the assistant's text once, not the result again
    out = run_cli(d.root, "chat", "--continue", "terse beta")
    assert out.returncode == 0, out.stderr
    assert out.stdout == "TERSE BETA\n"  # no assistant text: the result
    alpha, beta = chats(d)
    assert beta["resume"] == alpha["id"]
    session = d.call("task.get", id=alpha["id"])["session_id"]
    assert runs(d.root)["terse beta"]["argv"][-2:] == ["--resume", session]


def test_piped_lines_are_a_conversation_too(d: DaemonProc) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "aiwgd.cli", "--root", str(d.root), "chat"],
        input="one\n\ntwo\n",
        capture_output=True,
        text=True,
        env=env_for_tests(),
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "ONE\nTWO\n"
    one, two = chats(d)
    assert two["resume"] == one["id"]
    assert not (d.root / ".aiwg" / "chat_history").exists()  # no terminal, no history


def test_continue_without_an_earlier_chat_starts_one(d: DaemonProc) -> None:
    out = run_cli(d.root, "chat", "--continue", "hello")
    assert out.returncode == 0 and out.stdout == "HELLO\n"
    assert "no earlier chat" in out.stderr
    [task] = chats(d)
    assert task["resume"] is None


def test_json_without_a_message_is_a_usage_error(d: DaemonProc) -> None:
    out = run_cli(d.root, "chat", "--json")
    assert out.returncode == 2
    assert out.stderr == "aiwg: --json needs a MESSAGE (the interactive chat is for a person)\n"


def test_chat_send_refuses_a_resume_of_no_task(d: DaemonProc) -> None:
    out = run_cli(d.root, "rpc", "chat.send", '{"message": "hi", "resume": "nope"}')
    assert out.returncode == 2
    assert "resume: no task with id 'nope'" in out.stderr
    assert out.stderr.endswith("\n") and out.stderr.count("\n") == 1  # one line
