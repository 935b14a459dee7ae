"""The configuration model shared by the daemon and the CLI (stdlib only)."""

from config.load import defaults, load_file, load_or_create, parse_config, to_json, write_atomic
from config.model import Config
from config.paths import Paths, resolve_root
from config.schema import Issue, ValidationError

__all__ = [
    "Config",
    "Issue",
    "Paths",
    "ValidationError",
    "defaults",
    "load_file",
    "load_or_create",
    "parse_config",
    "resolve_root",
    "to_json",
    "write_atomic",
]
