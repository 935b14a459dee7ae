"""One health probe: a command, an HTTP GET or a TCP connect, bounded by its timeout.

`probe()` never raises (a cancel still propagates: that is how a monitor stops one in
flight) and answers `(ok, detail)`, the detail one short line a user can read in
`service.get`: `exit code 1`, `HTTP 500 (expected 200)`, `timed out after 2s`.

Everything runs on the event loop without blocking it. The command is a real process
started through aiwgd.procs.child (its own session, output drained and dropped, exit
seen through a pidfd); at the timeout, or when the probe is cancelled, its whole
process group is killed before the probe returns or the cancel completes. HTTP is a
minimal HTTP/1.0 GET over asyncio streams (only the status line is read), TCP an
`asyncio.open_connection` that is closed at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import ssl
from collections.abc import Mapping
from urllib.parse import urlsplit

from aiwgd.config.health import Probe
from aiwgd.procs.child import Child

__all__ = ["probe"]

MAX_DETAIL = 200
# The status line is all we read; a server that sends a longer one is not healthy.
STATUS_LINE_LIMIT = 8 * 1024


def _one_line(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= MAX_DETAIL else line[: MAX_DETAIL - 3] + "..."


def _seconds(value: float) -> str:
    return f"{value:g}s"


def _os_error(exc: OSError, where: str) -> str:
    # asyncio's connect errors carry "Connect call failed (addr)" as their text; the
    # errno's own name says what a user needs ("Connection refused").
    if exc.errno:
        return f"{where}: {os.strerror(exc.errno)}"
    return f"{where}: {exc}"


async def probe(
    p: Probe, *, cwd: str, env: dict[str, str], mark: Mapping[str, str] | None = None
) -> tuple[bool, str]:
    """Run `p` once. `mark` (optional) goes into a command probe's environment, so a
    process it left outside its group is still found and stopped with it."""
    try:
        if p.command is not None:
            return await _command(p.command, p.timeout_s, cwd, env, mark)
        async with asyncio.timeout(p.timeout_s):
            if p.http is not None:
                return await _http(p.http, p.status)
            if p.tcp is not None:
                return await _tcp(p.tcp)
        return False, "no probe configured (command, http or tcp)"
    except TimeoutError:
        return False, f"timed out after {_seconds(p.timeout_s)}"
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # a probe reports; it never takes its monitor down
        return False, _one_line(f"{type(exc).__name__}: {exc}")


# ---- command ---------------------------------------------------------------------------


async def _command(
    argv: list[str],
    timeout: float,
    cwd: str,
    env: dict[str, str],
    mark: Mapping[str, str] | None,
) -> tuple[bool, str]:
    try:
        # No log file and no tail: a probe's output goes nowhere, only its exit code counts.
        child = await Child.spawn(argv, cwd=cwd, env=env, log_path=None, tail_bytes=0, mark=mark)
    except OSError as exc:
        return False, _one_line(f"cannot run {argv[0]}: {exc.strerror or exc}")
    ended = False
    try:
        # asyncio.wait, not wait_for: the exit future is the child's own and must not
        # be cancelled by our timeout.
        done, _ = await asyncio.wait({child.exited()}, timeout=timeout)
        ended = bool(done)
    finally:
        if not ended:
            # Timed out or cancelled: no grace for a probe, the whole group goes now.
            await child.kill()
        await child.finish(grace=0)
    if not ended:
        return False, f"timed out after {_seconds(timeout)}"
    code = child.returncode
    if code is not None and code < 0:
        return False, f"killed by {signal.Signals(-code).name}"
    return code == 0, f"exit code {code}"


# ---- http ------------------------------------------------------------------------------


def _http_target(url: str) -> tuple[str, int, bool, str, str]:
    """(host, port, tls, request target, Host header) of `url`."""
    parts = urlsplit(url)
    tls = parts.scheme == "https"
    host = parts.hostname or ""
    port = parts.port or (443 if tls else 80)
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    shown = f"[{host}]" if ":" in host else host
    default = port == (443 if tls else 80)
    return host, port, tls, target, shown if default else f"{shown}:{port}"


async def _http(url: str, expected: int) -> tuple[bool, str]:
    host, port, tls, target, host_header = _http_target(url)
    where = f"GET {url}"
    try:
        reader, writer = await asyncio.open_connection(
            host,
            port,
            ssl=ssl.create_default_context() if tls else None,
            limit=STATUS_LINE_LIMIT,
        )
    except OSError as exc:
        return False, _one_line(_os_error(exc, where))
    try:
        request = (
            f"GET {target} HTTP/1.0\r\nHost: {host_header}\r\n"
            "User-Agent: aiwgd-health\r\nAccept: */*\r\nConnection: close\r\n\r\n"
        )
        writer.write(request.encode("latin-1"))
        await writer.drain()
        line = await reader.readline()
    except (OSError, ValueError) as exc:  # ValueError: a status line over the limit
        return False, _one_line(f"{where}: {exc}")
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
    fields = line.decode("latin-1").split(None, 2)
    if len(fields) < 2 or not fields[0].startswith("HTTP/") or not fields[1].isdigit():
        if not line:
            return False, f"{where}: the connection closed without an answer"
        return False, _one_line(f"{where}: not an HTTP answer: {line[:60]!r}")
    code = int(fields[1])
    if code != expected:
        return False, f"HTTP {code} (expected {expected})"
    return True, f"HTTP {code}"


# ---- tcp -------------------------------------------------------------------------------


async def _tcp(addr: str) -> tuple[bool, str]:
    host, _, port = addr.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    try:
        _, writer = await asyncio.open_connection(host, int(port))
    except OSError as exc:
        return False, _one_line(_os_error(exc, f"connect {addr}"))
    writer.close()
    with contextlib.suppress(Exception):
        await writer.wait_closed()
    return True, f"connected to {addr}"
