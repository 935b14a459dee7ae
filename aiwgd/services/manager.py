"""The services subsystem: every configured service's instances, their dependencies,
start order, reload, history and what the RPC methods see.

Built in subsystems.py with its collaborators only: the config, the paths, the event
router, the ChildRegistry and the lifecycle. Instances run their own loops
(services.instance); the manager answers their questions (is a dependency met?),
wakes waiting ones when any state changes, and persists history and live processes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from pathlib import Path
from typing import Any

from aiwgd import errors
from aiwgd.config import Config, Paths
from aiwgd.config.schema import dump
from aiwgd.config.services import Service, start_order
from aiwgd.events.router import EventRouter
from aiwgd.lifecycle import Lifecycle, Subsystem
from aiwgd.procs.registry import ChildRegistry
from aiwgd.services import persist
from aiwgd.services.instance import Instance
from aiwgd.services.model import LIVE, HistoryEntry, State

log = logging.getLogger("aiwgd.services")

RECOVERY_GRACE_S = 5.0


class Services(Subsystem):
    name = "services"

    def __init__(
        self,
        config: Config,
        paths: Paths,
        router: EventRouter,
        children: ChildRegistry,
        lifecycle: Lifecycle,
    ) -> None:
        self.config = config
        self.root: Path = paths.root
        self.log_dir = paths.daemon_dir / "services"
        self.state_file = paths.daemon_dir / "services.json"
        self.router = router
        self.children = children
        self.lifecycle = lifecycle
        self.instances: dict[str, list[Instance]] = {}
        self.history: persist.Histories = {}
        self.recovered: list[dict[str, Any]] = []
        self._changed: asyncio.Future[None] | None = None
        self._save_pending = False

    # ---- Subsystem -------------------------------------------------------------------
    async def start(self) -> None:
        self.history, recorded = persist.load(self.state_file)
        self.recovered = await asyncio.to_thread(
            persist.stop_previous, self.root, recorded, RECOVERY_GRACE_S
        )
        for proc in self.recovered:
            self._append(
                HistoryEntry(
                    time.time(),
                    "recovered",
                    str(proc["instance"]),
                    f"left by a previous daemon run; stopped ({proc['how']})",
                    proc["pid"],
                )
            )
        self._save()
        for name in start_order(self.config.services):
            self._build(name, self.config.services[name])
        for name in start_order(self.config.services):
            if self.config.services[name].autostart:
                for inst in self.instances[name]:
                    inst.start(by_hand=False)

    async def stop(self, fast: bool = False) -> None:
        await self._stop_ordered(self.config.services, close=True)
        for name in list(self.instances):  # any left from a reload in progress
            await self._stop_service(name)
        self._save()

    async def apply_config(self, config: Config) -> None:
        old, new = self.config.services, config.services
        self.config = config
        changed = [n for n in old if n in new and dump(old[n]) != dump(new[n])]
        going = {n: s for n, s in old.items() if n not in new or n in changed}
        await self._stop_ordered(going, close=True)
        for name in going:
            del self.instances[name]
        for name in start_order(new):
            if name in self.instances:
                for inst in self.instances[name]:
                    inst.svc = new[name]  # equal by value: only the object is new
                continue
            self._build(name, new[name])
            if new[name].autostart:
                for inst in self.instances[name]:
                    inst.start(by_hand=False)
        self.notify(None)

    def status(self) -> dict[str, Any]:
        counts: dict[str, int] = {}
        services: dict[str, Any] = {}
        for inst in self._all():
            counts[str(inst.state)] = counts.get(str(inst.state), 0) + 1
            services[inst.name] = {
                "state": str(inst.state),
                "pid": inst.pid,
                "health": inst.health_state,
                "restarts": inst.restarts,
            }
        summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "none"
        out: dict[str, Any] = {"state": "running", "summary": summary, "services": services}
        if self.recovered:
            out["recovered"] = len(self.recovered)
        return out

    # ---- what instances ask (instance.Host) ------------------------------------------
    def publish(self, type: str, data: dict[str, Any]) -> None:
        self.router.publish(type, data, "services")

    def log_path(self, inst: Instance) -> str:
        count = self._count(inst.service)
        stem = inst.service if count == 1 else f"{inst.service}-{inst.index}"
        return str(self.log_dir / f"{stem}.log")

    def _count(self, service: str) -> int:
        svc = self.config.services.get(service)
        return svc.instances if svc is not None else 1

    def blocked_by(self, inst: Instance) -> str | None:
        for dep, cond in inst.svc.dependencies().items():
            others = self.instances.get(dep)
            if others and not all(_meets(o, cond) for o in others):
                return f"waiting for {dep} ({cond})"
        return None

    def changed(self) -> asyncio.Future[None]:
        if self._changed is None or self._changed.done():
            self._changed = asyncio.get_running_loop().create_future()
        return asyncio.shield(self._changed)

    def notify(self, inst: Instance | None) -> None:
        if self._changed is not None and not self._changed.done():
            self._changed.set_result(None)
        if inst is not None and inst.state == State.STARTING and inst.starts > 0:
            for other in self._all():
                needs = inst.service in other.svc.dependencies()
                if needs and other.svc.restart_with_dependency and other.live:
                    other.restart(f"dependency {inst.service} restarted")
        if inst is not None and inst.state in (State.STARTING, State.RUNNING, State.STOPPED):
            self._save_soon()

    def record(self, entry: HistoryEntry) -> None:
        self._append(entry)
        self._save_soon()

    # ---- operations (the RPC methods) ------------------------------------------------
    def select(self, name: str) -> list[Instance]:
        """`all`, a service (every instance) or one instance (`web:1`); NotFound else."""
        if name == "all":
            return self._all()
        if name in self.instances:
            return list(self.instances[name])
        service, _, _ = name.partition(":")
        for inst in self.instances.get(service, []):
            if inst.name == name:
                return [inst]
        known = ", ".join(self.instances) or "none configured"
        raise errors.NotFound(f"no service {name!r} (services: {known})", {"name": name})

    def start_by_hand(self, name: str) -> list[dict[str, Any]]:
        picked = self.select(name)
        for inst in picked:
            inst.start(by_hand=True)
        return [self.brief(i) for i in picked]

    async def stop_by_hand(self, name: str) -> list[dict[str, Any]]:
        picked = self.select(name)
        if name == "all":
            await self._stop_ordered(self.config.services, close=False)
        else:
            await asyncio.gather(*(i.stop() for i in picked))
        return [self.brief(i) for i in picked]

    def restart_by_hand(self, name: str) -> list[dict[str, Any]]:
        picked = self.select(name)
        for inst in picked:
            inst.pacer.reset()
            inst.restart("restart requested")
        return [self.brief(i) for i in picked]

    def send(self, name: str, sig: int) -> list[str]:
        hit = [i.name for i in self.select(name) if i.send(sig)]
        if not hit:
            raise errors.Conflict(f"{name!r} has no running process to signal", {"name": name})
        return hit

    def brief(self, inst: Instance) -> dict[str, Any]:
        usage = self.children.usage_of(f"service:{inst.name}") or {}
        return {
            "name": inst.name,
            "service": inst.service,
            "state": str(inst.state),
            "reason": inst.reason,
            "pid": inst.pid,
            "uptime_s": inst.uptime(),
            "restarts": inst.restarts,
            "health": inst.health_state,
            "cpu_percent": usage.get("cpu_percent"),  # the monitor's latest sample
            "rss_bytes": usage.get("rss_bytes"),
        }

    def describe(self, inst: Instance) -> dict[str, Any]:
        hist = self.history.get(inst.service, deque())
        return {
            **self.brief(inst),
            "starts": inst.starts,
            "last_exit": inst.last_exit,
            "health_detail": inst.health.status() if inst.health is not None else None,
            "log": inst.log.path,
            "history": [e.to_json() for e in hist if e.instance == inst.name],
        }

    def logs(self, name: str, lines: int) -> dict[str, Any]:
        picked = self.select(name)
        total = sum(i.log.total_lines for i in picked)
        if len(picked) == 1:
            return {"name": picked[0].name, "lines": picked[0].log.tail(lines), "total": total}
        out: list[str] = []
        for inst in picked:
            out += [f"[{inst.name}] {line}" for line in inst.log.tail(lines)]
        return {"name": name, "lines": out[-lines:] if lines else [], "total": total}

    def all_instances(self) -> list[Instance]:
        return self._all()

    # ---- inside ----------------------------------------------------------------------
    def _all(self) -> list[Instance]:
        return [i for insts in self.instances.values() for i in insts]

    def _build(self, name: str, svc: Service) -> None:
        self.instances[name] = [
            Instance(self, name, i, svc.instances, svc) for i in range(svc.instances)
        ]

    async def _stop_ordered(self, services: dict[str, Service], close: bool) -> None:
        """Stop `services` each as soon as its dependents (among them) are stopped:
        reverse dependency order, with independent ones in parallel (a hundred
        services must not queue behind each other's grace periods)."""
        stopping: dict[str, asyncio.Task[None]] = {}

        async def after(first: list[asyncio.Task[None]], name: str) -> None:
            await asyncio.gather(*first)
            if close:
                await self._stop_service(name)
            else:
                await asyncio.gather(*(i.stop() for i in self.instances.get(name, [])))

        for name in reversed(start_order(services)):  # dependents come first
            dependents = [t for n, t in stopping.items() if name in services[n].dependencies()]
            stopping[name] = asyncio.create_task(after(dependents, name))
        await asyncio.gather(*stopping.values())

    async def _stop_service(self, name: str) -> None:
        insts = self.instances.get(name, [])
        await asyncio.gather(*(i.stop() for i in insts))
        for inst in insts:
            inst.log.close()

    def _append(self, entry: HistoryEntry) -> None:
        service = entry.instance.partition(":")[0]
        self.history.setdefault(service, deque(maxlen=persist.HISTORY)).append(entry)

    def _save_soon(self) -> None:
        # Coalesced: a start and its state changes in one loop turn are one write.
        if not self._save_pending:
            self._save_pending = True
            asyncio.get_running_loop().call_soon(self._save)

    def _save(self) -> None:
        self._save_pending = False
        procs = []
        for inst in self._all():
            child = inst.child
            if child is not None and inst.state in LIVE:
                procs.append(
                    {
                        "instance": inst.name,
                        "pid": child.pid,
                        "pgid": child.pgid,
                        "create_time": child.create_time,
                    }
                )
        persist.save(self.state_file, self.history, procs)


def _meets(inst: Instance, cond: str) -> bool:
    state = inst.state
    if cond == "started":
        return state in (State.RUNNING, State.READY) or (state == State.EXITED and inst.starts > 0)
    if cond == "completed":
        code = (inst.last_exit or {}).get("exit_code")
        return state == State.EXITED and code in inst.svc.success_exit_codes
    if cond == "healthy" and inst.svc.health_check is not None:
        return inst.health_state == "healthy" and state in (State.RUNNING, State.READY)
    return state == State.READY
