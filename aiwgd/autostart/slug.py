"""One name per project root for its unit or agent: readable, and unique per path."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

MAX_NAME = 32


def project_slug(root: Path) -> str:
    """`myapp-1a2b3c4d`: the root's basename for people, a hash of the absolute path so
    two checkouts called `myapp` get two units. Only [a-z0-9-]: valid in a systemd unit
    name and a launchd label alike."""
    name = re.sub(r"[^a-z0-9]+", "-", root.name.lower()).strip("-")[:MAX_NAME].strip("-")
    digest = hashlib.sha256(str(root.absolute()).encode()).hexdigest()[:8]
    return f"{name or 'project'}-{digest}"
