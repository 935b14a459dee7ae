"""What `aiwg chat` shows of a task's output (cli/chat.py's Reply), fed the exact bytes
tests/agents/fake_agent.py writes, cut into chunks anywhere (as they reach a follower)."""

from __future__ import annotations

import io

import pytest

from aiwgd.cli.chat import Reply
from tests.agents import fake_agent

FIRST = "Let me run the tests first."


def shown(chunks: list[str], result: str | None) -> str:
    out = io.StringIO()
    reply = Reply(out)
    for chunk in chunks:
        reply.feed(chunk)
    reply.finish({"result": result})
    reply.end_line()
    return out.getvalue()


def cut(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


@pytest.mark.parametrize("size", [1, 7, 64, 100_000])
def test_stream_json_shows_the_agents_text_once(size: int) -> None:
    text = b"".join(fake_agent.stream("normal")).decode()
    # the result repeats the last message's text: not shown twice
    assert shown(cut(text, size), fake_agent.ANSWER) == f"{FIRST}\n{fake_agent.ANSWER}\n"


def test_an_error_result_is_shown_after_the_text() -> None:
    text = b"".join(fake_agent.stream("error")).decode()
    got = shown(cut(text, 5), "API Error: 529 overloaded")
    assert got == f"{FIRST}\n{fake_agent.ANSWER}\nAPI Error: 529 overloaded\n"


def test_stray_prints_among_stream_json_are_shown_json_never() -> None:
    body = fake_agent.stream("garbage")
    text = b"".join(body[1:]).decode(errors="replace")  # from the init line on
    got = shown(cut(text, 3), fake_agent.ANSWER)
    assert "{" not in got and FIRST in got and fake_agent.ANSWER in got  # a cut line too
    assert "[1, 2, 3]" in got  # JSON that is no stream-json event is the agent's text


def test_a_text_agent_passes_through_untouched_even_json_looking() -> None:
    text = '{"not": "stream-json"}\nplain answer\n{"type": "result"}\nno newline at the end'
    assert shown(cut(text, 4), None) == text + "\n"
    assert shown(["what is up\n"], None) == "what is up\n"
