"""Config section `watchdog`: test runners and other programs left hanging forever.

Stdlib only: the CLI loads the config model. The daemon's side is aiwgd/watchdog/.
A process's command line is matched against the rules in order and the first match
decides its timeout, so a specific rule (vitest) goes before a general one (node).
"""

from __future__ import annotations

from dataclasses import dataclass

from aiwgd.config.schema import regex, spec

MODES = ("report", "kill")
SCOPES = ("project", "user")


@dataclass
class WatchdogRule:
    name: str = spec(min_len=1, max_len=200, doc="shown in process.hung and the kill log")
    match: str = spec(min_len=1, check=regex, doc="regular expression searched in the command line")
    timeout_s: float = spec(gt=0, le=1e9, doc="older than this (since it started) = hung")


def _default_rules() -> list[WatchdogRule]:
    # `node` last: `node .../vitest` and `node .../npm test` must get their own timeouts.
    return [
        WatchdogRule("vitest", r"\bvitest\b", 300),
        WatchdogRule("npm test", r"\bnpm(?:-cli\.js)?\s+(?:run(?:-script)?\s+)?test\b", 600),
        WatchdogRule("jest", r"\bjest\b", 600),
        WatchdogRule("node", r"^(?:\S*/)?node(?:\s|$)", 900),
    ]


@dataclass
class WatchdogSection:
    enabled: bool = True
    mode: str = spec("report", choices=MODES, doc="report: events only; kill: then the stop ladder")
    interval_s: float = spec(60, ge=0.05, le=86_400, doc="seconds between two scans")
    grace_s: float = spec(5, ge=0, le=3_600, doc="SIGTERM to SIGKILL wait (kill mode)")
    scope: str = spec(
        "project",
        choices=SCOPES,
        doc="project: only processes whose working directory is inside the project root; "
        "user: every process of the daemon's user",
    )
    rules: list[WatchdogRule] = spec(factory=_default_rules, max_len=1_000)

    def validate(self) -> list[tuple[str, str]]:
        seen: set[str] = set()
        out = []
        for i, rule in enumerate(self.rules):
            if rule.name in seen:
                out.append(
                    (f"rules[{i}].name", f'"{rule.name}" is used twice; names must be unique')
                )
            seen.add(rule.name)
        return out
