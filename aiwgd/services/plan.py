"""What one instance of a service runs: argv, cwd and environment, worked out right
before each spawn (an env_file or a cwd may change between restarts)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from aiwgd.config import Config
from aiwgd.config.services import Service
from aiwgd.tasks.policy import Refused, child_env, resolve_cwd

SERVICE_MARK = "AIWG_SERVICE"
ROOT_MARK = "AIWG_ROOT"  # the same root mark tasks carry (tasks.executors.local)


@dataclass(frozen=True)
class Plan:
    argv: list[str]
    cwd: str
    env: dict[str, str]


def parse_env_file(text: str) -> dict[str, str]:
    """dotenv lines: `KEY=VALUE`, `export KEY=VALUE`, `# comments`, optional quotes."""
    out: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
            if raw.strip().partition("=")[2].strip()[0] == '"':
                value = value.replace("\\n", "\n").replace('\\"', '"')
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        out[key] = value
    return out


def expand(text: str, index: int) -> str:
    return text.replace("{instance}", str(index))


def plan(config: Config, root: Path, name: str, svc: Service, index: int) -> Plan:
    """argv, cwd and env of instance `index`; ValueError says what is wrong."""
    try:
        cwd = resolve_cwd(svc.cwd or ".", root, config)
    except Refused as exc:
        raise ValueError(str(exc)) from None
    env = child_env(config, {})
    if svc.env_file:
        path = os.path.join(root, svc.env_file)
        try:
            with open(path, encoding="utf-8") as fh:
                env.update(parse_env_file(fh.read()))
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"env_file {svc.env_file!r}: {exc}") from None
    env.update({k: expand(v, index) for k, v in svc.env.items()})
    env["AIWG_INSTANCE"] = str(index)
    return Plan([expand(a, index) for a in svc.command], cwd, env)


def mark(root: Path, name: str) -> dict[str, str]:
    """What every process of a service carries: found by it after an escape or a crash."""
    return {SERVICE_MARK: name, ROOT_MARK: str(root)}
