"""The daemon's lifecycle: startup, main loop, shutdown, reload.

`Daemon.serve()` runs the three phases in order; `run()` is the sync wrapper. Signal
handlers only set flags or schedule coroutines; the loop acts on them.

Signals are the loop's from the first line of `serve()` (before `main()` starts the
loop, aiwgd.infra.signals remembers them and they are replayed here). A SIGTERM or
SIGINT during start-up aborts it between steps: what started is stopped in reverse,
the socket, PID file and lock are released, and the exit is clean (0). A SIGHUP
during start-up is a reload once start-up is done. When `serve()` returns, the
handlers that were there before it are put back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from typing import Any

from aiwgd import errors
from aiwgd.config import Config, Paths, ValidationError, load_file, load_or_create
from aiwgd.infra import daemonlog
from aiwgd.infra.durable import ensure_private_dir, write_json_atomic
from aiwgd.infra.exitcodes import EXIT_CLEAN, EXIT_UNCLEAN
from aiwgd.infra.pidlock import PidLock
from aiwgd.infra.sdnotify import Notifier, status_line
from aiwgd.infra.signals import HANDLED, PendingSignals
from aiwgd.lifecycle import Lifecycle, Subsystem
from aiwgd.procs import reaper
from aiwgd.services.health import daemon_health
from aiwgd.subsystems import Subsystems, build

log = logging.getLogger("aiwgd.daemon")


class StartupError(RuntimeError):
    """The daemon refuses to start; the message says why and what to do."""


def _log_size(cfg: Config) -> tuple[int, int]:
    return int(cfg.daemon.log.max_size_mb * 1024 * 1024), cfg.daemon.log.max_files


class Daemon:
    def __init__(
        self, paths: Paths, log_to_stderr: bool = True, pending: PendingSignals | None = None
    ) -> None:
        self.paths = paths
        self.log_to_stderr = log_to_stderr
        self.pending = pending  # signals that arrived before the loop ran
        self._previous_handlers: dict[int, Any] = {}
        self._holding_lock = False
        self._ready = False
        self._reload_asked = False  # a SIGHUP during start-up
        self.pid = os.getpid()
        self.notifier = Notifier.from_env()  # systemd Type=notify; a no-op elsewhere
        self.config: Config = Config()
        self.lock = PidLock(paths.lock_file, paths.pid_file)
        self.lifecycle = Lifecycle()
        self.parts: Subsystems | None = None
        self.subsystems: list[Subsystem] = []  # in start order
        self._started: list[Subsystem] = []  # what shutdown() must stop
        self.started_at = time.time()
        self._started_mono = time.monotonic()
        self.stop_reason = ""
        self.stopped_clean = True  # shutdown() needed no SIGKILL and logged no error
        self.reload_state: dict[str, Any] = {"status": "ok", "errors": [], "at": None}
        self.heartbeat_at: float | None = None
        self._heartbeat_changed = asyncio.Event()
        self._background: set[asyncio.Task[Any]] = set()

    # ---- startup -------------------------------------------------------------------
    def _prepare_dirs(self) -> None:
        os.umask(0o077)  # every file the daemon writes is the owner's only
        try:
            # The root is every task's default cwd: a child started in the daemon's own
            # directory needs no chdir, and so takes posix_spawn (aiwgd.procs.spawn).
            os.chdir(self.paths.root)
        except OSError as exc:
            raise StartupError(f"cannot enter {self.paths.root}: {exc.strerror}") from None
        try:
            ensure_private_dir(self.paths.aiwg_dir)  # `aiwg config init` may have made it 0755
            ensure_private_dir(self.paths.daemon_dir)
        except OSError as exc:
            raise StartupError(f"cannot create {self.paths.daemon_dir}: {exc.strerror}") from None

    def _load_config(self) -> Config:
        try:
            return load_or_create(self.paths.config_file)
        except ValidationError as exc:
            lines = "\n  ".join(str(i) for i in exc.issues)
            raise StartupError(f"invalid config {self.paths.config_file}:\n  {lines}") from None

    def _build(self) -> None:
        """Create the subsystems in start order (aiwgd.subsystems) with their RPC methods."""
        self.parts = build(self.config, self.paths, self.lifecycle, self)
        self.subsystems = self.parts.in_start_order()

    def _publish(self, type: str, data: dict[str, Any]) -> None:
        if self.parts is not None:
            self.parts.router.publish(type, data, "daemon")

    def _aborted(self, where: str) -> bool:
        """A stop was asked for during start-up: go no further (shutdown() cleans up)."""
        if self.lifecycle.stopping.is_set():
            log.info("start-up aborted: stop requested", extra={"at": where})
            return True
        return False

    async def startup(self) -> bool:
        """Start everything; False if a stop request cut it short (then call shutdown).

        Raises StartupError / AlreadyRunning when the daemon refuses to start."""
        if self.lifecycle.stopping.is_set():
            return False
        self._prepare_dirs()
        self.lock.acquire()  # raises AlreadyRunning
        self._holding_lock = True
        self.notifier.start_watchdog()
        self.config = self._load_config()
        max_bytes, backups = _log_size(self.config)
        daemonlog.setup(
            self.paths.log_file,
            self.config.daemon.log.level,
            max_bytes,
            backups,
            self.log_to_stderr,
            self.config.daemon.log.format,
        )
        log.info("starting", extra={"pid": self.pid, "root": str(self.paths.root)})
        self._adopt_orphans()
        self._build()
        try:
            for sub in self.subsystems:
                if self._aborted(f"before {sub.name}"):
                    return False
                await sub.start()
                self._started.append(sub)
        except Exception as exc:
            for sub in reversed(self._started):
                with contextlib.suppress(Exception):
                    await sub.stop(fast=True)
            self._started.clear()
            if isinstance(exc, (StartupError, OSError)):
                raise StartupError(str(exc)) from None
            raise
        if self._aborted("before ready"):
            return False
        self.lock.write_pid()
        self._spawn(self._heartbeat())
        self._ready = True
        self._publish("daemon.started", {"pid": self.pid})
        self.notifier.ready(self._status_line)
        if self.parts is not None:
            self.notifier.watch(self.parts.router)
        log.info("ready", extra={"socket": str(self.paths.socket)})
        if self._reload_asked:
            self._spawn(self._reload_quietly())
        return True

    def _adopt_orphans(self) -> None:
        """Become a child subreaper before any child starts: what a task double-forks
        is re-parented to us (found by its mark, stopped with the task), and reaped
        here once it exits (aiwgd.procs.reaper)."""
        if reaper.become_subreaper():
            asyncio.get_running_loop().add_signal_handler(signal.SIGCHLD, reaper.reap)
            # As a container's PID 1, orphans of `docker exec` sessions may have ended
            # before the handler was there: their SIGCHLD is gone, not their zombies.
            reaper.reap()

    def _install_signals(self) -> None:
        """The loop handles stop and reload signals from now on; those that arrived
        before (main() remembered them) are acted on now, in order."""
        loop = asyncio.get_running_loop()
        for sig in HANDLED:
            self._previous_handlers[sig] = signal.getsignal(sig)
            loop.add_signal_handler(sig, self._on_signal, sig)
        for sig in self.pending.take() if self.pending is not None else []:
            self._on_signal(sig)

    def _on_signal(self, sig: signal.Signals) -> None:
        if sig == signal.SIGHUP:
            if self._ready:
                self._spawn(self._reload_quietly())
            else:
                self._reload_asked = True  # the file may have changed: read it once up
        else:
            self.request_stop(False, sig.name)

    def _restore_signals(self) -> None:
        """Give the signals back to what handled them before serve() (main()'s
        recorder), so one arriving while the process exits never kills it."""
        loop = asyncio.get_running_loop()
        for sig, previous in self._previous_handlers.items():
            loop.remove_signal_handler(sig)
            with contextlib.suppress(TypeError, ValueError):
                signal.signal(sig, previous)
        self._previous_handlers.clear()
        loop.remove_signal_handler(signal.SIGCHLD)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # ---- main loop -------------------------------------------------------------------
    def request_stop(self, fast: bool = False, reason: str = "") -> None:
        """First call: graceful stop. A second call (or fast=True): skip the grace."""
        life = self.lifecycle
        if life.stopping.is_set() or fast:
            life.fast_stop.set()
        if not life.stopping.is_set():
            self.stop_reason = reason
            log.info("stop requested", extra={"reason": reason, "fast": life.fast_stop.is_set()})
        life.stopping.set()

    async def main_loop(self) -> None:
        await self.lifecycle.stopping.wait()

    async def _heartbeat(self) -> None:
        while True:
            self.heartbeat_at = time.time()
            self.write_state()
            self.notifier.status_changed()
            # A reload sets the event, so a new interval applies now, not after the old one.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._heartbeat_changed.wait(), self.config.daemon.heartbeat_interval_seconds
                )
            self._heartbeat_changed.clear()

    def _status_line(self) -> str:
        """systemd's STATUS= line (aiwgd.infra.sdnotify)."""
        if self.parts is None:
            return "starting"
        return status_line(self.parts.supervisor.status(), self.parts.services.status())

    def write_state(self) -> None:
        try:
            # A snapshot rewritten every heartbeat: no fsyncs (they were most of an idle
            # daemon's wakeups); the rename alone keeps readers from half a file.
            write_json_atomic(self.paths.state_file, self.status(), durable=False)
        except OSError as exc:
            # A full disk must not kill the daemon: the status stays available over RPC.
            log.error("cannot write state.json", extra={"error": str(exc)})

    def status(self) -> dict[str, Any]:
        subsystems = {}
        for sub in self.subsystems:
            try:
                subsystems[sub.name] = sub.status()
            except Exception as exc:  # one broken status must not hide the others
                subsystems[sub.name] = {"state": "error", "error": str(exc)}
        return {
            "pid": self.pid,
            "root": str(self.paths.root),
            "started_at": self.started_at,
            "uptime_s": round(time.monotonic() - self._started_mono, 3),
            "heartbeat_at": self.heartbeat_at,
            "state": "stopping" if self.lifecycle.stopping.is_set() else "running",
            "config": {"path": str(self.paths.config_file), **self.reload_state},
            "subsystems": subsystems,
            "children": len(self.parts.children) if self.parts is not None else 0,
            "health": daemon_health(subsystems),
        }

    # ---- reload ----------------------------------------------------------------------
    async def reload(self) -> dict[str, Any]:
        """Validate the config file completely, then apply it section by section."""
        self.notifier.reloading()
        self._publish("daemon.reloading", {})
        try:
            new = load_file(self.paths.config_file)
        except ValidationError as exc:
            issues = [str(i) for i in exc.issues]
            self.reload_state = {"status": "reload_failed", "errors": issues, "at": time.time()}
            for issue in issues:
                log.error(
                    "reload rejected; still running on the previous config", extra={"error": issue}
                )
            self.write_state()
            self.notifier.ready_again()
            raise errors.ConfigInvalid(
                f"config not reloaded ({len(issues)} error(s)): " + "; ".join(issues),
                {"errors": issues},
            ) from None
        self.config = new
        max_bytes, backups = _log_size(new)
        daemonlog.reconfigure(new.daemon.log.level, max_bytes, backups, new.daemon.log.format)
        for sub in self.subsystems:
            try:
                await sub.apply_config(new)
            except Exception:
                # One subsystem's failure must not leave the others on the old config.
                log.exception(
                    "subsystem failed to apply the new config", extra={"subsystem": sub.name}
                )
        self._heartbeat_changed.set()
        self.reload_state = {"status": "ok", "errors": [], "at": time.time()}
        self.write_state()
        self._publish("daemon.reloaded", {})
        self.notifier.ready_again()
        log.info("config reloaded")
        return {"reloaded": True, "config": str(self.paths.config_file)}

    async def _reload_quietly(self) -> None:
        with contextlib.suppress(errors.ConfigInvalid):
            await self.reload()

    # ---- shutdown --------------------------------------------------------------------
    async def shutdown(self) -> None:
        """Stop what started (all of it, or what start-up got to), release the files."""
        self.notifier.stopping()
        log.info("stopping", extra={"reason": self.stop_reason})
        if self._ready:
            self._publish("daemon.stopping", {"reason": self.stop_reason})
        with daemonlog.Problems() as problems:
            for sub in reversed(self._started):
                try:
                    await sub.stop(fast=self.lifecycle.fast_stop.is_set())
                except Exception:
                    log.exception("subsystem failed to stop cleanly", extra={"subsystem": sub.name})
        self._started.clear()
        if problems.messages:
            self.stopped_clean = False
        for task in list(self._background):
            task.cancel()
        self.notifier.close()
        if self._holding_lock:  # else these files are another daemon's
            self.paths.state_file.unlink(missing_ok=True)
            self.lock.release()
            self._holding_lock = False
        log.info("stopped", extra={"clean": self.stopped_clean, "problems": problems.messages[:5]})

    async def serve(self) -> None:
        self._install_signals()  # before anything else: see the module docstring
        try:
            try:
                ready = await self.startup()
            except BaseException:
                self._release_lock_on_error()
                raise
            try:
                if ready:
                    await self.main_loop()
            finally:
                await self.shutdown()
        finally:
            self._restore_signals()

    def _release_lock_on_error(self) -> None:
        # A refused start-up (bad config, a subsystem that could not start) leaves no
        # socket or PID file behind; the lock goes with it.
        if self._holding_lock:
            self.lock.release()
            self._holding_lock = False

    def run(self) -> int:
        """Run until stopped; EXIT_CLEAN, or EXIT_UNCLEAN when the stop needed SIGKILL or
        logged an error (aiwgd.infra.exitcodes). Raises StartupError/AlreadyRunning."""
        asyncio.run(self.serve())
        return EXIT_CLEAN if self.stopped_clean else EXIT_UNCLEAN
