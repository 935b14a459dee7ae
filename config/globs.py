"""Gitignore-like path globs, compiled to regular expressions (stdlib only).

Used for `watch.paths[].ignore`. Paths are matched relative to the watched entry:

- a pattern without a slash (`*.tmp`, `build`) matches a name at any depth;
- a pattern with a slash is anchored to the entry (`working/**`, `docs/*.md`; a leading
  `/` only anchors);
- a trailing slash (`build/`) matches directories only, i.e. what is below them;
- `*` and `?` never cross a `/`; `**` does (`a/**/b`, `**/tmp`, `logs/**`); `[abc]`,
  `[!abc]` are character classes;
- a pattern that matches a directory also ignores everything below it.
`!` negation is not supported (rejected at load, never silently misread).
"""

from __future__ import annotations

import re


class GlobError(ValueError):
    """A pattern that cannot be compiled; the message says why."""


def _translate(body: str) -> str:
    out: list[str] = []
    i, n = 0, len(body)
    while i < n:
        c = body[i]
        if body.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif body.startswith("**", i):
            out.append(".*")
            i += 2
        elif c == "*":
            out.append("[^/]*")
            i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[":
            end = body.find("]", i + 2 if body.startswith("[!", i) else i + 1)
            if end < 0:
                raise GlobError("has an unclosed [ character class")
            inner = body[i + 1 : end]
            if inner.startswith("!"):
                inner = "^" + inner[1:]
            out.append("[" + inner.replace("\\", "\\\\") + "]")
            i = end + 1
        else:
            out.append(re.escape(c))
            i += 1
    return "".join(out)


class PathGlob:
    """One compiled pattern; `matches(rel)` tests a path relative to the entry."""

    __slots__ = ("dir_only", "pattern", "regex")

    def __init__(self, pattern: str) -> None:
        if not pattern or not pattern.strip("/"):
            raise GlobError("is empty")
        if pattern.startswith("!"):
            raise GlobError("uses ! negation, which is not supported")
        self.pattern = pattern
        self.dir_only = pattern.endswith("/")
        body = pattern.rstrip("/")
        anchored = "/" in body
        body = body.lstrip("/")
        regex = _translate(body)
        if not anchored:
            regex = "(?:.*/)?" + regex
        try:
            self.regex = re.compile(f"^{regex}$")
        except re.error as exc:
            raise GlobError(f"is not a valid pattern ({exc})") from None

    def matches(self, rel: str) -> bool:
        """True if `rel` or one of its parent directories matches."""
        parts = rel.split("/")
        # Parents first: a matching directory ignores everything below it.
        for end in range(1, len(parts)):
            if self.regex.match("/".join(parts[:end])):
                return True
        return not self.dir_only and self.regex.match(rel) is not None


def glob_error(pattern: str) -> str | None:
    """A config check: None if `pattern` compiles, else why not."""
    try:
        PathGlob(pattern)
    except GlobError as exc:
        return str(exc)
    return None
