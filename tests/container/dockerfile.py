"""A small Dockerfile reader for the tests (no dependency): instructions with their
line continuations joined and comment lines dropped, as the Docker builder reads them."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Instruction:
    line: int  # where it starts, 1-based
    name: str  # upper case: FROM, RUN, ...
    args: str  # the rest, continuations joined with a space
    stage: str  # the FROM stage it belongs to (its AS name, or its index)

    def exec_form(self) -> list[str] | None:
        """The JSON array of an exec-form instruction (None for the shell form)."""
        return _json_array(self.args)

    def flags_and_rest(self) -> tuple[dict[str, str], str]:
        """`--name=value` flags first (HEALTHCHECK, COPY), then the rest."""
        flags: dict[str, str] = {}
        rest = self.args
        while rest.startswith("--"):
            flag, _, rest = rest.partition(" ")
            name, _, value = flag[2:].partition("=")
            flags[name] = value
            rest = rest.lstrip()
        return flags, rest


def _json_array(text: str) -> list[str] | None:
    if not text.startswith("["):
        return None
    try:
        got = json.loads(text)
    except ValueError:
        return None
    return got if isinstance(got, list) and all(isinstance(a, str) for a in got) else None


def parse(path: Path) -> list[Instruction]:
    out: list[Instruction] = []
    stage, start = "", 0
    parts: list[str] = []
    for n, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not parts and (not line or line.startswith("#")):
            continue
        if parts and line.startswith("#"):
            continue  # a comment inside a continued instruction is dropped
        if not parts:
            start = n
        more = line.endswith("\\")
        parts.append(line[:-1].strip() if more else line)
        if more:
            continue
        name, _, args = " ".join(p for p in parts if p).partition(" ")
        parts = []
        name = name.upper()
        if name == "FROM":
            words = args.split()
            as_at = [i for i, w in enumerate(words) if w.upper() == "AS"]
            stage = words[as_at[0] + 1] if as_at else str(sum(i.name == "FROM" for i in out))
        out.append(Instruction(start, name, args.strip(), stage))
    if parts:
        raise ValueError(f"{path}: line {start}: continuation never ends")
    return out


def env_of(instructions: list[Instruction]) -> dict[str, str]:
    """What ENV sets (the `K=V K2=V2` form and the old `K V` form)."""
    env: dict[str, str] = {}
    for i in instructions:
        if i.name != "ENV":
            continue
        words = shlex.split(i.args)
        if words and "=" not in words[0]:
            env[words[0]] = " ".join(words[1:])
            continue
        for w in words:
            key, _, value = w.partition("=")
            env[key] = value
    return env
