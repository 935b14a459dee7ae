"""Fixtures: short project dirs (AF_UNIX paths are capped near 107 bytes) and daemons."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.utils import BASE_CONFIG, DaemonProc, deep_merge, write_config

DaemonFactory = Callable[..., DaemonProc]


@pytest.fixture
def project() -> Iterator[Path]:
    """A fresh project root under /tmp with a short path."""
    root = Path(tempfile.mkdtemp(prefix="aiwg-", dir="/tmp"))
    try:
        yield root.resolve()
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def start_daemon(project: Path) -> Iterator[DaemonFactory]:
    """Start real daemons; every one still running is stopped at teardown.

    `start_daemon(config={...})` merges `config` over the quiet test defaults and
    writes it before starting; `root=` starts one in another project dir.
    """
    started: list[DaemonProc] = []

    def factory(
        config: dict[str, Any] | None = None,
        root: Path | None = None,
        wait: bool = True,
        write: bool = True,
    ) -> DaemonProc:
        where = root or project
        if write:
            write_config(where, deep_merge(BASE_CONFIG, config or {}))
        d = DaemonProc(where)
        started.append(d)
        return d.start(wait=wait)

    yield factory
    for d in started:
        with contextlib.suppress(Exception):
            d.stop()


@pytest.fixture
def daemon(start_daemon: DaemonFactory) -> DaemonProc:
    """One running daemon on the quiet test config."""
    return start_daemon()
