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

Every git call goes through aiwgd.agents.gitcmd (argv lists, no prompts, a deadline).
Mutations hold one lock: git's own config and ref locks fail rather than wait.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from aiwgd.agents.gitcmd import (
    DEFAULT_TIMEOUT,
    GitError,
    GitResult,
    ListedWorktree,
    git,
    parse_worktree_list,
)
from aiwgd.infra.durable import ensure_private_dir

log = logging.getLogger(__name__)

_TASK_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_BASE_KEY = "aiwgbase"
_INITIALIZING = "initializing"  # git's lock on a worktree it is still checking out
# The main tree's operations that leave it half-done; a merge must not start on top.
_IN_PROGRESS = ("MERGE_HEAD", "CHERRY_PICK_HEAD", "REVERT_HEAD", "rebase-merge", "rebase-apply")


def _real(path: Path | str) -> str:
    return os.path.realpath(path)


def _check_base(base: str | None) -> str | None:
    if base is not None and (not base or base.startswith("-")):
        # Never an option to git, whatever the task's spec says.
        raise WorktreeError(f"bad base {base!r}: not a git revision")
    return base


class WorktreeError(Exception):
    """A worktree operation failed or was refused; the message is one line."""


class NotARepository(WorktreeError):
    """The project root is not inside a git work tree."""


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
        self.timeout = timeout
        self._lock = asyncio.Lock()

    # -- naming ------------------------------------------------------------------------

    def path_for(self, task_id: str) -> Path:
        if not _TASK_ID.fullmatch(task_id) or ".." in task_id or task_id.endswith(".lock"):
            raise WorktreeError(f"task id {task_id!r} cannot name a worktree")
        return self.dir / task_id

    def branch_for(self, task_id: str) -> str:
        return f"{self.branch_prefix}{task_id}"

    # -- create ------------------------------------------------------------------------

    async def create(self, task_id: str, base: str | None = None) -> Worktree:
        """A new worktree on a new branch from `base`; the existing one if already made."""
        path, branch = self.path_for(task_id), self.branch_for(task_id)
        base = _check_base(base)
        async with self._lock:
            await self._require_repo()
            await self._run(self.root, "check-ref-format", "--branch", branch)
            await self._run(self.root, "worktree", "prune")  # forget deleted directories
            listed = (await self._registered()).get(_real(path))
            if listed is not None and listed.locked == _INITIALIZING:
                # git was killed while checking out (it locks until done): start over.
                await self._rollback(path, branch, await self._moved(branch))
            elif listed is not None:
                if listed.branch == f"refs/heads/{branch}":
                    return Worktree(task_id, str(path), branch, await self._base_of(branch))
                raise WorktreeError(f"{path} is a worktree of another branch, not {branch}")
            self._clear_leftover(path)
            had_branch = await self._tip(branch) is not None
            try:
                ensure_private_dir(self.dir)
            except OSError as exc:
                raise WorktreeError(f"cannot create {self.dir}: {exc.strerror or exc}") from None
            try:
                added = await self._run(
                    self.root,
                    *("worktree", "add", "-b", branch, "--", str(path), base or "HEAD"),
                    check=False,
                    env={"LC_ALL": "C"},  # its lock reason, "initializing", not translated
                )
                if not added.ok:
                    raise WorktreeError(
                        f"cannot create the worktree of task {task_id}: {added.message()}"
                    )
                tip = await self._run(self.root, "rev-parse", f"refs/heads/{branch}")
                sha = tip.stdout.strip()
                await self._run(self.root, "config", f"branch.{branch}.{_BASE_KEY}", sha)
            except BaseException:
                await self._rollback(path, branch, had_branch)
                raise
            return Worktree(task_id, str(path), branch, sha)

    async def validate(self, base: str | None = None) -> str:
        """What a submit checks before accepting a task: the project is a repository and
        `base` names a commit; returns its sha. NotARepository or WorktreeError."""
        await self._require_repo()
        rev = _check_base(base) or "HEAD"
        got = await self._run(self.root, "rev-parse", "--verify", f"{rev}^{{commit}}", check=False)
        if not got.ok:
            raise WorktreeError(f"bad base {rev!r}: {got.message()}")
        return got.stdout.strip()

    async def find(self, task_id: str) -> Worktree | None:
        """The task's worktree if it exists (after a restart the caller may only know ids)."""
        path, branch = self.path_for(task_id), self.branch_for(task_id)
        await self._require_repo()
        listed = (await self._registered()).get(_real(path))
        if listed is None or listed.branch != f"refs/heads/{branch}":
            return None
        return Worktree(task_id, str(path), branch, await self._base_of(branch))

    async def workdir(self, wt: Worktree) -> str:
        """Where the task runs: the project root's place inside the worktree (the root may
        be a subdirectory of the repository, e.g. one project of a monorepo)."""
        prefix = await self._run(self.root, "rev-parse", "--show-prefix")
        return os.path.normpath(os.path.join(wt.path, prefix.stdout.strip()))

    # -- review ------------------------------------------------------------------------

    async def status(self, wt: Worktree) -> dict[str, Any]:
        """{path, branch, base, exists, commits, dirty, merged, head}."""
        await self._require_repo()
        path = Path(wt.path)
        exists = path.is_dir() and (path / ".git").exists()
        head = await self._tip(wt.branch)
        commits = 0
        if head is not None:
            counted = await self._run(self.root, "rev-list", "--count", f"{wt.base}..{head}")
            commits = int(counted.stdout.strip() or 0)
        dirty = False
        if exists:
            changes = await self._run(
                path, "status", "--porcelain", env={"GIT_OPTIONAL_LOCKS": "0"}
            )
            dirty = bool(changes.stdout.strip())
        merged = head is not None and (commits == 0 or await self._contained(wt.branch, head))
        return {
            "path": wt.path,
            "branch": wt.branch,
            "base": wt.base,
            "exists": exists,
            "commits": commits,
            "dirty": dirty,
            "merged": merged,
            "head": head,
        }

    async def diff(self, wt: Worktree) -> str:
        """The change against the base: commits and uncommitted edits, new files too."""
        await self._require_repo()
        path = Path(wt.path)
        args = ("diff", "--no-color", "--no-ext-diff")
        if not (path / ".git").exists():
            if await self._tip(wt.branch) is None:
                raise WorktreeError(f"the worktree of task {wt.task_id} is gone")
            return (await self._run(self.root, *args, wt.base, f"refs/heads/{wt.branch}")).stdout
        # A scratch index holding the whole working tree (untracked files included), so
        # the diff shows new files without staging anything in the task's own index.
        index = (await self._run(path, "rev-parse", "--git-path", "index")).stdout.strip()
        with tempfile.TemporaryDirectory(prefix="aiwg-diff-") as scratch:
            temp_index = os.path.join(scratch, "index")
            if os.path.exists(os.path.join(path, index)):
                shutil.copyfile(os.path.join(path, index), temp_index)
            env = {"GIT_INDEX_FILE": temp_index, "GIT_OPTIONAL_LOCKS": "0"}
            await self._run(path, "add", "-A", env=env)
            return (await self._run(path, *args, "--cached", wt.base, env=env)).stdout

    # -- merge, discard, prune ---------------------------------------------------------

    async def merge(self, wt: Worktree) -> dict[str, Any]:
        """Merge the branch into the project's current branch, or refuse with the reason."""
        async with self._lock:
            await self._require_repo()
            st = await self.status(wt)
            if st["head"] is None:
                raise WorktreeError(f"cannot merge: branch {wt.branch} does not exist")
            if st["dirty"]:
                raise WorktreeError(
                    f"cannot merge {wt.branch}: its worktree {wt.path} has uncommitted changes"
                )
            into = await self._current_branch()
            await self._require_clean_main(f"cannot merge {wt.branch} into {into}")
            before = await self._head()
            ancestor = await self._run(
                self.root, "merge-base", "--is-ancestor", st["head"], before, check=False
            )
            if ancestor.ok:
                return {"merged": True, "into": into, "commit": before, "up_to_date": True}
            message = f"Merge branch '{wt.branch}' (aiwg task {wt.task_id})"
            try:
                result = await self._run(
                    self.root, "merge", "--no-ff", "--no-edit", "-m", message, wt.branch,
                    check=False,
                )  # fmt: skip
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
            commit = await self._head()
            return {"merged": True, "into": into, "commit": commit, "up_to_date": False}

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
                    present = Path(wt.path).exists() or await self._tip(wt.branch) is not None
                    if not present or (not force and await self._unmerged_reason(wt)):
                        continue
                    await self._remove(wt)
                except WorktreeError as exc:
                    log.warning("worktree of task %s not pruned: %s", wt.task_id, exc)
                    continue
            removed.append(wt.task_id)
        return removed

    # -- helpers -----------------------------------------------------------------------

    async def _run(
        self, cwd: Path | str, *args: str, check: bool = True, env: dict[str, str] | None = None
    ) -> GitResult:
        try:
            return await git(cwd, *args, timeout=self.timeout, env=env, check=check)
        except GitError as exc:
            raise WorktreeError(exc.line) from None

    async def _require_repo(self) -> None:
        inside = await self._run(self.root, "rev-parse", "--is-inside-work-tree", check=False)
        if not inside.ok or inside.stdout.strip() != "true":
            why = inside.message() if not inside.ok else "a bare repository has no work tree"
            raise NotARepository(f"{self.root} is not a git repository ({why})")

    async def _registered(self) -> dict[str, ListedWorktree]:
        listing = await self._run(self.root, "worktree", "list", "--porcelain")
        return parse_worktree_list(listing.stdout)

    async def _moved(self, branch: str) -> bool:
        """Whether the branch has moved since it was created (then it is work to keep)."""
        reflog = await self._run(
            self.root, "reflog", "show", "--format=%H", f"refs/heads/{branch}", check=False
        )
        return len(reflog.stdout.split()) > 1 or not reflog.ok

    async def _tip(self, branch: str) -> str | None:
        got = await self._run(
            self.root, "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}", check=False
        )
        return got.stdout.strip() if got.ok else None

    async def _base_of(self, branch: str) -> str:
        key = f"branch.{branch}.{_BASE_KEY}"
        got = await self._run(self.root, "config", "--get", key, check=False)
        if got.ok and got.stdout.strip():
            return got.stdout.strip()
        # Killed between `worktree add` and recording the base: the branch's reflog
        # still starts at the commit it was created from.
        reflog = await self._run(
            self.root, "reflog", "show", "--format=%H", f"refs/heads/{branch}", check=False
        )
        shas = reflog.stdout.split()
        if reflog.ok and shas:
            await self._run(self.root, "config", key, shas[-1], check=False)
            return shas[-1]
        raise WorktreeError(f"cannot tell which commit branch {branch} was created from")

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
            if _real(path) in await self._registered():
                await self._run(self.root, "worktree", "remove", "--force", "--force", str(path))
            if path.exists() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            if not had_branch and await self._tip(branch) is not None:
                await self._run(self.root, "branch", "-D", branch)
            await self._run(self.root, "worktree", "prune")
        except (WorktreeError, OSError) as exc:
            log.warning("rolling back the worktree %s left something behind: %s", path, exc)

    async def _remove(self, wt: Worktree) -> None:
        path = self.path_for(wt.task_id)
        if _real(wt.path) != _real(path) or wt.branch != self.branch_for(wt.task_id):
            raise WorktreeError(f"{wt.path} on {wt.branch} is not where task {wt.task_id} runs")
        if _real(path) in await self._registered():
            await self._run(self.root, "worktree", "remove", "--force", "--force", str(path))
        if path.exists():
            shutil.rmtree(path)
        if await self._tip(wt.branch) is not None:
            await self._run(self.root, "branch", "-D", wt.branch)
        await self._run(self.root, "worktree", "prune")

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

    async def _contained(self, branch: str, head: str) -> bool:
        """Whether deleting `branch` loses no commit: HEAD or another branch has them."""
        if (
            await self._run(self.root, "merge-base", "--is-ancestor", head, "HEAD", check=False)
        ).ok:
            return True
        refs = await self._run(
            self.root, "for-each-ref", "--format=%(refname)", "--contains", head, "refs/heads/"
        )
        mine = f"refs/heads/{self.branch_prefix}"
        return any(not ref.startswith(mine) for ref in refs.stdout.split())

    async def _head(self) -> str:
        return (await self._run(self.root, "rev-parse", "HEAD")).stdout.strip()

    async def _current_branch(self) -> str:
        got = await self._run(self.root, "symbolic-ref", "--quiet", "--short", "HEAD", check=False)
        if not got.ok:
            raise WorktreeError("cannot merge: the project's main tree is on a detached HEAD")
        return got.stdout.strip()

    async def _in_progress(self) -> str | None:
        for name in _IN_PROGRESS:
            rel = (await self._run(self.root, "rev-parse", "--git-path", name)).stdout.strip()
            if os.path.exists(os.path.join(self.root, rel)):
                return name
        return None

    async def _require_clean_main(self, what: str) -> None:
        busy = await self._in_progress()
        if busy:
            raise WorktreeError(f"{what}: the main tree has an operation in progress ({busy})")
        changed = await self._run(
            self.root, "status", "--porcelain", "--untracked-files=no",
            env={"GIT_OPTIONAL_LOCKS": "0"},
        )  # fmt: skip
        files = [line[3:] for line in changed.stdout.splitlines() if line.strip()]
        if files:
            shown = ", ".join(files[:5]) + (", ..." if len(files) > 5 else "")
            raise WorktreeError(f"{what}: the main tree has uncommitted changes ({shown})")

    async def _undo_merge(self, before: str) -> None:
        """Leave nothing half-merged: abort, then check the tree is back where it was."""
        if await self._in_progress() == "MERGE_HEAD":
            await self._run(self.root, "merge", "--abort", check=False)
        if await self._head() != before:
            raise WorktreeError(f"the merge moved HEAD off {before[:12]}; check the main tree")
        # Killed after updating index and files but before MERGE_HEAD or the commit (a
        # hook that hung): no merge to abort, its result is staged. The tree was clean
        # before, so what differs from HEAD is the merge's own doing.
        await self._run(self.root, "reset", "--merge", "HEAD", check=False)
        await self._require_clean_main("after aborting the merge")
