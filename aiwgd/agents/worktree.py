"""Git worktrees for tasks that run isolated (`isolate: "worktree"`).

A task gets `.aiwg/worktrees/<task-id>/` on a new branch `<prefix><task-id>` created
from its base (default HEAD). The path and branch follow from the task id alone, so a
retry, a daemon restart or a kill -9 find the same worktree again and `create` reuses
it. The commit it was created from is kept in the branch's git config
(`branch.<branch>.aiwgbase`), which `git branch -D` removes with the branch.

When the task ends the worktree stays for review: `status`, `diff`, then `merge` into
the project's current branch or `discard`. "Unmerged work" is what deleting would lose:
uncommitted changes in the worktree, or commits of the branch that neither the main
tree's HEAD nor another local branch (outside the prefix) contains. It is never deleted
without `force=True`.

Every git call goes through aiwgd.agents.gitcmd (argv lists, no prompts, a deadline);
its GitError leaves the public methods as WorktreeError. Mutations hold one lock: git's
own config and ref locks fail rather than wait.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from aiwgd.agents.gitcmd import DEFAULT_TIMEOUT, GitError, Repo
from aiwgd.infra.durable import ensure_private_dir

log = logging.getLogger(__name__)

_TASK_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_INITIALIZING = "initializing"  # git's lock on a worktree it is still checking out
_P = ParamSpec("_P")
_R = TypeVar("_R")


class WorktreeError(Exception):
    """A worktree operation failed or was refused; the message is one line."""


class NotARepository(WorktreeError):
    """The project root is not inside a git work tree."""


def _as_worktree_error(fn: Callable[_P, Awaitable[_R]]) -> Callable[_P, Coroutine[Any, Any, _R]]:
    @functools.wraps(fn)
    async def call(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return await fn(*args, **kwargs)
        except GitError as exc:
            raise WorktreeError(exc.line) from None

    return call


def _base_key(branch: str) -> str:
    return f"branch.{branch}.aiwgbase"


def _real(path: Path | str) -> str:
    return os.path.realpath(path)


def _check_base(base: str | None) -> str | None:
    if base is not None and (not base or base.startswith("-")):
        # Never an option to git, whatever the task's spec says.
        raise WorktreeError(f"bad base {base!r}: not a git revision")
    return base


@dataclass
class Worktree:
    task_id: str
    path: str
    branch: str
    base: str  # the commit sha it was created from

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Worktree:
        return cls(str(data["task_id"]), str(data["path"]), str(data["branch"]), str(data["base"]))


class Worktrees:
    def __init__(
        self, root: Path, branch_prefix: str = "aiwg/", timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        self.root = Path(root).resolve()
        self.dir = self.root / ".aiwg" / "worktrees"
        self.branch_prefix = branch_prefix
        self.git = Repo(self.root, timeout)
        self._lock = asyncio.Lock()

    def path_for(self, task_id: str) -> Path:
        if not _TASK_ID.fullmatch(task_id) or ".." in task_id or task_id.endswith(".lock"):
            raise WorktreeError(f"task id {task_id!r} cannot name a worktree")
        return self.dir / task_id

    def branch_for(self, task_id: str) -> str:
        return f"{self.branch_prefix}{task_id}"

    # -- create ------------------------------------------------------------------------

    @_as_worktree_error
    async def validate(self, base: str | None = None) -> str:
        """What a submit checks before accepting a task: the project is a repository and
        `base` names a commit; returns its sha. NotARepository or WorktreeError."""
        await self._require_repo()
        rev = _check_base(base) or "HEAD"
        got = await self.git.run("rev-parse", "--verify", f"{rev}^{{commit}}", check=False)
        if not got.ok:
            raise WorktreeError(f"bad base {rev!r}: {got.message()}")
        return got.stdout.strip()

    @_as_worktree_error
    async def create(self, task_id: str, base: str | None = None) -> Worktree:
        """A new worktree on a new branch from `base`; the existing one if already made."""
        path, branch = self.path_for(task_id), self.branch_for(task_id)
        base = _check_base(base)
        async with self._lock:
            await self._require_repo()
            await self.git.run("check-ref-format", "--branch", branch)
            await self.git.run("worktree", "prune")  # forget directories deleted by hand
            listed = (await self.git.worktrees()).get(_real(path))
            if listed is not None and listed.locked == _INITIALIZING:
                # git was killed while checking out (it locks until done): start over,
                # keeping the branch only if it moved since (then it is someone's work).
                await self._rollback(path, branch, len(await self.git.reflog(branch)) != 1)
            elif listed is not None:
                if listed.branch == f"refs/heads/{branch}":
                    return Worktree(task_id, str(path), branch, await self._base_of(branch))
                raise WorktreeError(f"{path} is a worktree of another branch, not {branch}")
            self._clear_leftover(path)
            had_branch = await self.git.tip(branch) is not None
            # Its worktree was deleted by hand but the branch is the task's own (it has
            # the base recorded): check the branch out again instead of refusing.
            known = await self.git.run("config", "--get", _base_key(branch), check=False)
            ours = had_branch and known.ok
            try:
                ensure_private_dir(self.dir)
            except OSError as exc:
                raise WorktreeError(f"cannot create {self.dir}: {exc.strerror or exc}") from None
            try:
                new = ("-b", branch, "--", str(path), base or "HEAD")
                added = await self.git.run(
                    *("worktree", "add", *(("--", str(path), branch) if ours else new)),
                    check=False,
                    env={"LC_ALL": "C"},  # its lock reason, "initializing", not translated
                )
                if not added.ok:
                    raise WorktreeError(
                        f"cannot create the worktree of task {task_id}: {added.message()}"
                    )
                if ours:
                    return Worktree(task_id, str(path), branch, known.stdout.strip())
                sha = await self.git.out("rev-parse", f"refs/heads/{branch}")
                await self.git.run("config", _base_key(branch), sha)
            except BaseException:
                await self._rollback(path, branch, had_branch)
                raise
            return Worktree(task_id, str(path), branch, sha)

    @_as_worktree_error
    async def find(self, task_id: str) -> Worktree | None:
        """The task's worktree if it exists (after a restart the caller may only know ids)."""
        path, branch = self.path_for(task_id), self.branch_for(task_id)
        await self._require_repo()
        listed = (await self.git.worktrees()).get(_real(path))
        if listed is None or listed.branch != f"refs/heads/{branch}":
            return None
        return Worktree(task_id, str(path), branch, await self._base_of(branch))

    @_as_worktree_error
    async def workdir(self, wt: Worktree) -> str:
        """Where the task runs: the project root's place inside the worktree (the root may
        be a subdirectory of the repository, e.g. one project of a monorepo)."""
        return os.path.normpath(
            os.path.join(wt.path, await self.git.out("rev-parse", "--show-prefix"))
        )

    # -- review ------------------------------------------------------------------------

    @_as_worktree_error
    async def status(self, wt: Worktree) -> dict[str, Any]:
        """{task_id, path, branch, base, exists, commits, dirty, merged, head}: `merged`
        when deleting it loses no commit, `head` the branch's tip (None once deleted)."""
        await self._require_repo()
        path = Path(wt.path)
        exists = path.is_dir() and (path / ".git").exists()
        head = await self.git.tip(wt.branch)
        commits = 0
        if head is not None:
            commits = int(await self.git.out("rev-list", "--count", f"{wt.base}..{head}") or 0)
        dirty = False
        if exists:
            changes = await self.git.run(
                "status", "--porcelain", cwd=path, env={"GIT_OPTIONAL_LOCKS": "0"}
            )
            dirty = bool(changes.stdout.strip())
        merged = head is not None and (commits == 0 or await self._contained(head))
        found = {"exists": exists, "commits": commits, "dirty": dirty, "merged": merged}
        return {**wt.to_dict(), **found, "head": head}

    @_as_worktree_error
    async def diff(self, wt: Worktree) -> str:
        """The change against the base: commits and uncommitted edits, new files too."""
        await self._require_repo()
        path = Path(wt.path)
        args = ("diff", "--no-color", "--no-ext-diff")
        if not (path / ".git").exists():
            if await self.git.tip(wt.branch) is None:
                raise WorktreeError(f"the worktree of task {wt.task_id} is gone")
            return (await self.git.run(*args, wt.base, f"refs/heads/{wt.branch}")).stdout
        # A scratch index holding the whole working tree (untracked files included), so
        # the diff shows new files without staging anything in the task's own index.
        index = path / await self.git.out("rev-parse", "--git-path", "index", cwd=path)
        with tempfile.TemporaryDirectory(prefix="aiwg-diff-") as scratch:
            temp_index = os.path.join(scratch, "index")
            if index.exists():  # its stat cache spares hashing every unchanged file
                shutil.copyfile(index, temp_index)
            env = {"GIT_INDEX_FILE": temp_index, "GIT_OPTIONAL_LOCKS": "0"}
            await self.git.run("add", "-A", cwd=path, env=env)
            return (await self.git.run(*args, "--cached", wt.base, cwd=path, env=env)).stdout

    # -- merge, discard, prune ---------------------------------------------------------

    @_as_worktree_error
    async def merge(self, wt: Worktree) -> dict[str, Any]:
        """Merge the branch into the project's current branch, or refuse with the reason."""
        async with self._lock:
            st = await self.status(wt)
            if st["head"] is None:
                raise WorktreeError(f"cannot merge: branch {wt.branch} does not exist")
            if st["dirty"]:
                raise WorktreeError(
                    f"cannot merge {wt.branch}: its worktree {wt.path} has uncommitted changes"
                )
            into = await self.git.current_branch()
            if into is None:
                raise WorktreeError("cannot merge: the project's main tree is on a detached HEAD")
            await self._require_clean_main(f"cannot merge {wt.branch} into {into}")
            before = await self.git.out("rev-parse", "HEAD")
            if await self.git.is_ancestor(st["head"], before):
                return {"merged": True, "into": into, "commit": before, "up_to_date": True}
            message = f"Merge branch '{wt.branch}' (aiwg task {wt.task_id})"
            try:
                result = await self.git.run(
                    "merge", "--no-ff", "--no-edit", "-m", message, wt.branch, check=False
                )
            except BaseException:
                await self._undo_merge(before)
                raise
            if not result.ok:
                conflicts = [ln for ln in result.stdout.splitlines() if ln.startswith("CONFLICT")]
                reason = "; ".join(conflicts) or result.message()
                await self._undo_merge(before)
                raise WorktreeError(
                    f"cannot merge {wt.branch} into {into}: {reason} (merge aborted, "
                    "main tree unchanged)"
                )
            commit = await self.git.out("rev-parse", "HEAD")
            return {"merged": True, "into": into, "commit": commit, "up_to_date": False}

    @_as_worktree_error
    async def discard(self, wt: Worktree, force: bool = False) -> None:
        """Remove worktree and branch; refuses unmerged work unless `force`."""
        async with self._lock:
            await self._require_repo()
            if not force:
                reason = await self._unmerged_reason(wt)
                if reason:
                    raise WorktreeError(f"not discarding task {wt.task_id}: {reason}")
            await self._remove(wt)

    async def prune(self, worktrees: list[Worktree], force: bool = False) -> list[str]:
        """Remove those whose work is merged (or all with `force`); the ids removed."""
        removed: list[str] = []
        for wt in worktrees:
            async with self._lock:
                try:
                    await self._require_repo()
                    present = Path(wt.path).exists() or await self.git.tip(wt.branch) is not None
                    if not present or (not force and await self._unmerged_reason(wt)):
                        continue
                    await self._remove(wt)
                except (WorktreeError, GitError) as exc:
                    log.warning("worktree of task %s not pruned: %s", wt.task_id, exc)
                    continue
            removed.append(wt.task_id)
        return removed

    # -- helpers -----------------------------------------------------------------------

    async def _require_repo(self) -> None:
        inside = await self.git.run("rev-parse", "--is-inside-work-tree", check=False)
        if not inside.ok or inside.stdout.strip() != "true":
            why = inside.message() if not inside.ok else "a bare repository has no work tree"
            raise NotARepository(f"{self.root} is not a git repository ({why})")

    async def _base_of(self, branch: str) -> str:
        key = _base_key(branch)
        got = await self.git.run("config", "--get", key, check=False)
        if got.ok and got.stdout.strip():
            return got.stdout.strip()
        # Killed between `worktree add` and recording the base: the branch's reflog
        # still starts at the commit it was created from.
        shas = await self.git.reflog(branch)
        if not shas:
            raise WorktreeError(f"cannot tell which commit branch {branch} was created from")
        await self.git.run("config", key, shas[-1], check=False)
        return shas[-1]

    def _clear_leftover(self, path: Path) -> None:
        """An empty directory is what a creation killed part way leaves; anything else
        at the task's path is not ours to remove."""
        if not path.exists() and not path.is_symlink():
            return
        if path.is_dir() and not path.is_symlink() and not any(path.iterdir()):
            path.rmdir()
            return
        raise WorktreeError(f"{path} already exists and is not the worktree of its task")

    async def _rollback(self, path: Path, branch: str, had_branch: bool) -> None:
        """Undo a failed creation: no worktree, and no branch unless it was there before."""
        try:
            if _real(path) in await self.git.worktrees():
                await self.git.run("worktree", "remove", "--force", "--force", str(path))
            if path.exists() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            if not had_branch and await self.git.tip(branch) is not None:
                await self.git.run("branch", "-D", branch)
            await self.git.run("worktree", "prune")
        except (GitError, OSError) as exc:
            log.warning("rolling back the worktree %s left something behind: %s", path, exc)

    async def _remove(self, wt: Worktree) -> None:
        path = self.path_for(wt.task_id)
        if _real(wt.path) != _real(path) or wt.branch != self.branch_for(wt.task_id):
            raise WorktreeError(f"{wt.path} on {wt.branch} is not where task {wt.task_id} runs")
        if _real(path) in await self.git.worktrees():
            await self.git.run("worktree", "remove", "--force", "--force", str(path))
        if path.exists():
            shutil.rmtree(path)
        if await self.git.tip(wt.branch) is not None:
            await self.git.run("branch", "-D", wt.branch)
        await self.git.run("worktree", "prune")

    async def _unmerged_reason(self, wt: Worktree) -> str:
        st = await self.status(wt)
        if st["dirty"]:
            return f"its worktree {wt.path} has uncommitted changes (use force to drop them)"
        if st["head"] is not None and not st["merged"]:
            return (
                f"branch {wt.branch} has {st['commits']} commit(s) not merged anywhere "
                "(merge it, or use force to drop them)"
            )
        return ""

    async def _contained(self, head: str) -> bool:
        """Whether deleting the branch loses no commit: HEAD or another branch has them."""
        if await self.git.is_ancestor(head, "HEAD"):
            return True
        refs = await self.git.out(
            "for-each-ref", "--format=%(refname)", "--contains", head, "refs/heads/"
        )
        mine = f"refs/heads/{self.branch_prefix}"
        return any(not ref.startswith(mine) for ref in refs.split())

    async def _require_clean_main(self, what: str) -> None:
        busy = await self.git.in_progress()
        if busy:
            raise WorktreeError(f"{what}: the main tree has an operation in progress ({busy})")
        files = await self.git.tracked_changes()
        if files:
            shown = ", ".join(files[:5]) + (", ..." if len(files) > 5 else "")
            raise WorktreeError(f"{what}: the main tree has uncommitted changes ({shown})")

    async def _undo_merge(self, before: str) -> None:
        """Leave nothing half-merged: abort, then check the tree is back where it was."""
        if await self.git.in_progress() == "MERGE_HEAD":
            await self.git.run("merge", "--abort", check=False)
        if await self.git.out("rev-parse", "HEAD") != before:
            raise WorktreeError(f"the merge moved HEAD off {before[:12]}; check the main tree")
        # Killed after updating index and files but before MERGE_HEAD or the commit (a
        # hook that hung): no merge to abort, its result is staged. The tree was clean
        # before, so what differs from HEAD is the merge's own doing.
        await self.git.run("reset", "--merge", "HEAD", check=False)
        await self._require_clean_main("after aborting the merge")
