"""What a task may run, where, and with which environment: checked at submit and again
right before it starts (aiwgd.tasks.spec uses these at both moments).

- The program: a bare name is looked up on the daemon's PATH (`agent.env.PATH` when the
  config sets one), never on the task's own `env.PATH`, which only its child sees; a
  name with a `/` is a path, relative to the task's cwd. Either way the result is an
  absolute path with its directories resolved, and that path is what runs.
- `agent.allowed_commands` (empty: any program): a pattern without `/` (a name, or a
  glob of names) allows a program only if it is what that name finds on the daemon's
  PATH; a pattern with `/` is a glob over the program's resolved absolute path (the
  path with its directories resolved, or the file a symlink finally leads to). A
  relative one is taken from the project root.
- The cwd: resolved (symlinks followed) and inside the project root or
  `agent.allowed_roots`, at submit and again at start, since it may change between.
- The environment: the daemon's own, minus every variable a `*_env` config key names
  (those hold secrets such as webhook keys), then `agent.env`, then the task's `env`.

Problems raise `Refused` (a ValueError) with the message a user reads; `forbidden` says
whether it is a policy refusal (-32005 at submit) or a bad value (-32602).
"""

from __future__ import annotations

import fnmatch
import functools
import os
import shutil
import time
from pathlib import Path
from typing import Any

from aiwgd.config import Config
from aiwgd.config.schema import show
from aiwgd.config.secret_env import secret_env_names

__all__ = [
    "Refused",
    "check_allowed",
    "child_env",
    "exec_size",
    "find_program",
    "resolve_cwd",
    "spawn_cwd",
]

_MAGIC = frozenset("*?[")


class Refused(ValueError):
    """A task that may not run (as submitted, or any more when it would start)."""

    def __init__(self, message: str, forbidden: bool = False, **data: Any) -> None:
        super().__init__(message)
        self.forbidden = forbidden
        self.data = data


@functools.cache
def _daemon_env() -> dict[str, str]:
    # Copied once: the daemon never changes its own environment, and decoding all of
    # os.environ per task is a measurable share of a short task's cost.
    return dict(os.environ)


class _Inherited:
    """The daemon's environment without the secrets the config names, per Config.

    Worked out once per loaded config (a reload builds a new Config object), not per
    task: the names come from a walk of the whole config.
    """

    config: object = None
    env: dict[str, str] = {}

    @classmethod
    def get(cls, config: Config) -> dict[str, str]:
        if cls.config is not config:
            hidden = secret_env_names(config)
            cls.env = {k: v for k, v in _daemon_env().items() if k not in hidden}
            cls.config = config
        return cls.env


def child_env(config: Config, task_env: dict[str, str]) -> dict[str, str]:
    """The environment a task runs with: the daemon's (no `*_env` secrets), agent.env,
    then the task's own."""
    env = dict(_Inherited.get(config))
    env.update(config.agent.env)
    env.update(task_env)
    return env


def search_path(config: Config) -> str:
    """Where bare program names are looked up: never a task's own PATH."""
    return config.agent.env.get("PATH") or _daemon_env().get("PATH") or os.defpath


def real_path(path: str) -> str:
    """os.path.realpath(path, strict=True), resolved by the kernel on Linux: one open
    (O_PATH: no permission needed) and one readlink of its /proc/self/fd entry, instead
    of an lstat per component in Python. This runs before every spawn (issue 9)."""
    o_path = getattr(os, "O_PATH", None)
    if o_path is None:
        return os.path.realpath(path, strict=True)
    fd = os.open(path, o_path | os.O_CLOEXEC)
    try:
        resolved = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:  # no /proc mounted
        return os.path.realpath(path, strict=True)
    finally:
        os.close(fd)
    if not resolved.startswith("/"):  # "(unreachable)/...": outside our root
        return os.path.realpath(path, strict=True)
    return resolved


def located(path: str) -> str:
    """`path` made absolute with its directories resolved, its own name kept (a symlink
    named `ls` to a multi-call binary must still run as `ls`)."""
    path = os.path.abspath(path)
    head, name = os.path.split(path)
    try:
        head = real_path(head)
    except OSError:
        head = os.path.realpath(head)
    return os.path.join(head, name)


# Where a program was found, kept for a moment: a task's program is looked up at its
# submit and again right before its spawn, and a stream of tasks runs the same few
# programs (issue 9). A program gone within that moment still fails its spawn, with the
# OS error. Only found programs are kept: one installed just now is found at once.
FOUND_FOR_S = 1.0
_FOUND_MAX = 256
_found: dict[tuple[str, str], tuple[float, str]] = {}


def find_program(name: str, cwd: str, config: Config) -> str | None:
    """The absolute path `name` runs as, or None: a path relative to `cwd`, or a bare
    name on the daemon's PATH."""
    key = (name, os.path.join(cwd, name) if "/" in name else search_path(config))
    now = time.monotonic()
    hit = _found.get(key)
    if hit is not None and now - hit[0] < FOUND_FOR_S:
        return hit[1]
    exe = _look_up(name, cwd, config)
    if exe is not None:
        if len(_found) >= _FOUND_MAX:
            _found.clear()
        _found[key] = (now, exe)
    return exe


def _look_up(name: str, cwd: str, config: Config) -> str | None:
    if "/" in name:
        path = os.path.join(cwd, name)
        ok = os.path.isfile(path) and os.access(path, os.X_OK)
        return located(path) if ok else None
    found = shutil.which(name, path=search_path(config))
    return located(found) if found else None


def _pattern(pattern: str, root: Path) -> str:
    """A glob with `/` as an absolute pattern, its literal directory part resolved (so
    `/bin/e*` works where /bin links to /usr/bin)."""
    pat = os.path.join(root, os.path.expanduser(pattern))
    head, tail = os.path.split(pat)
    if _MAGIC.isdisjoint(head):
        head = os.path.realpath(head)
    return os.path.join(head, tail)


def check_allowed(name: str, exe: str, config: Config, root: Path) -> None:
    """Raise Refused (forbidden) unless agent.allowed_commands lets `exe` run."""
    patterns = config.agent.allowed_commands
    if not patterns:
        return
    base = os.path.basename(exe)
    on_path: dict[str, str | None] = {}
    for pat in patterns:
        if "/" in pat:
            glob = _pattern(pat, root)
            if fnmatch.fnmatchcase(exe, glob) or fnmatch.fnmatchcase(os.path.realpath(exe), glob):
                return
        elif fnmatch.fnmatchcase(base, pat):
            if base not in on_path:
                on_path[base] = find_program(base, "/", config)
            if on_path[base] == exe:
                return
    names = [p for p in patterns if "/" not in p and _MAGIC.isdisjoint(p)]
    finds = [f"{p} = {find_program(p, '/', config) or 'not found'}" for p in names]
    where = f" ({'; '.join(finds)} on the daemon's PATH)" if finds else ""
    raise Refused(
        f"command[0]: {show(name)} is not allowed (agent.allowed_commands: "
        f"{', '.join(patterns)}): it would run {exe}{where}. A name in the list allows "
        "only the program it finds on the daemon's PATH; a pattern with / matches the "
        "program's resolved path",
        forbidden=True,
        command=name,
        resolved=exe,
        allowed_commands=patterns,
    )


def resolve_cwd(raw: str, root: Path, config: Config) -> str:
    """`raw` (absolute, `~...`, or relative to the root) resolved, checked to be a
    directory inside the root or agent.allowed_roots; Refused otherwise."""
    base = raw
    if raw.startswith("~"):
        try:
            base = str(Path(raw).expanduser())
        except RuntimeError:
            user = raw[1:].split("/", 1)[0]
            raise Refused(
                f"cwd: {show(raw)}: there is no user {show(user)} whose home it could be; "
                "give an absolute path or one relative to the project root"
            ) from None
    # os.path, not pathlib: this runs again before every spawn, at a third of the cost.
    try:
        cwd = real_path(os.path.join(root, base))
    except (OSError, RuntimeError, ValueError):
        raise Refused(f"cwd: {show(raw)} does not exist") from None
    if not os.path.isdir(cwd):
        raise Refused(f"cwd: {show(raw)} is not a directory")
    roots = [str(root)] + [str(Path(r).expanduser().resolve()) for r in config.agent.allowed_roots]
    if not any(_within(cwd, r) for r in roots):
        allowed = ", ".join(roots)
        raise Refused(
            f"cwd: {show(raw)} (resolved {cwd}) is outside the project root and "
            f"agent.allowed_roots (allowed: {allowed})",
            forbidden=True,
            cwd=cwd,
            allowed_roots=roots,
        )
    return cwd


def _within(path: str, root: str) -> bool:
    """Whether normalized absolute `path` is `root` or under it."""
    return path == root or path.startswith(root if root.endswith(os.sep) else root + os.sep)


# What execve() copies for each string: its bytes, a NUL, and a pointer to it.
_PER_STRING = 1 + 8


def exec_size(argv: list[str], env: dict[str, str]) -> int:
    """Bytes of the argument and environment space execve() needs for these."""
    size = sum(len(a.encode()) + _PER_STRING for a in argv)
    return size + sum(len(k.encode()) + len(v.encode()) + 1 + _PER_STRING for k, v in env.items())


def arg_max() -> int:
    """The kernel's limit on argv + environment for a new program (ARG_MAX)."""
    try:
        return int(os.sysconf("SC_ARG_MAX"))
    except (ValueError, OSError):
        return 2 * 1024 * 1024  # Linux's usual value with an 8 MiB stack


def spawn_cwd(raw: str | None, root: Path, config: Config) -> str:
    """A task's cwd checked again right before its spawn (resolve_cwd). The root needs
    no look while it is still the daemon's own directory (aiwgd.daemon chdirs there):
    getcwd is the kernel's path of that directory, so a root moved away or replaced (by
    a symlink out of it) is checked like any other cwd."""
    if raw in (None, str(root)):
        try:
            if os.getcwd() == str(root):
                return str(root)
        except OSError:  # our own directory was removed
            pass
    return resolve_cwd(raw or str(root), root, config)
