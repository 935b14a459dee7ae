"""Reading, validating and writing `.aiwg/daemon.json`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aiwgd.config.model import RETIRED_KEYS, Config
from aiwgd.config.schema import Issue, ValidationError, dump, parse
from aiwgd.infra.durable import write_atomic


def parse_config(data: Any) -> Config:
    """Validate already-decoded JSON into a Config (missing keys take defaults).

    Retired top-level keys (model.RETIRED_KEYS) are dropped unread; any other key the
    model does not know is an error.
    """
    if not isinstance(data, dict):
        raise ValidationError([Issue("", "the config file must hold a JSON object")])
    data = {k: v for k, v in data.items() if k not in RETIRED_KEYS}
    result: Config = parse(Config, data)
    return result


def decode(text: str, source: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValidationError(
            [
                Issue(
                    "", f"{source}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
                )
            ]
        ) from None


def load_file(path: Path) -> Config:
    """Load and validate one config file; ValidationError lists every problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValidationError([Issue("", f"{path}: no such file")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValidationError([Issue("", f"{path}: cannot read: {exc}")]) from None
    return parse_config(decode(text, str(path)))


def defaults() -> Config:
    return Config()


def to_json(cfg: Config) -> str:
    return json.dumps(dump(cfg), indent=2) + "\n"


def load_or_create(path: Path) -> Config:
    """Load the config file, writing the defaults first if there is none."""
    if not path.exists():
        cfg = defaults()
        write_atomic(path, to_json(cfg))
        return cfg
    return load_file(path)
