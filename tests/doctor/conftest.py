"""Fixtures of the doctor tests."""

from __future__ import annotations

# PIDs a test's tasks started, SIGKILLed at the end if still there: the CLI's leftover
# tests have the fixture; a kill -9 test here needs the same.
from tests.cli.test_leftovers import pids

__all__ = ["pids"]
