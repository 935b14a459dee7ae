"""aiwgd: a local automation daemon for software projects."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    __version__: str

# What __version__ says when the distribution's metadata is missing (a source tree on
# PYTHONPATH that was never installed): a valid PEP 440 version that sorts below any release.
_UNKNOWN_VERSION = "0+unknown"


def __getattr__(name: str) -> str:
    # The version lives in pyproject.toml only and is read from the installed metadata on
    # first use: importing importlib.metadata costs ~20 ms, which `aiwg status` and a
    # script importing aiwgd.client should not pay for a number they never read.
    if name != "__version__":
        raise AttributeError(f"module 'aiwgd' has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        value = version("aiwgd")
    except PackageNotFoundError:
        value = _UNKNOWN_VERSION
    globals()["__version__"] = value  # later lookups skip this function
    return value
