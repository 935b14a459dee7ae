"""The configuration model: original defaults, merging, and precise errors.

Pure functions of the file's text, so these run in-process; the CLI and daemon tests
cover the same errors as a user meets them.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest

from aiwgd.config import ValidationError, defaults, load_file, load_or_create, parse_config, to_json
from aiwgd.config.model import RETIRED_KEYS
from aiwgd.config.schema import dump, json_schema

# The file the original AIWG daemon writes on first start (tools/daemon/config.mjs,
# DEFAULT_CONFIG serialised with JSON.stringify(..., null, 2)). Its users have it on
# disk: it must load unchanged and mean the same thing.
ORIGINAL_DEFAULT_FILE = """{
  "daemon": {
    "heartbeat_interval_seconds": 30,
    "max_parallel_actions": 3,
    "action_timeout_minutes": 120,
    "log": {
      "max_size_mb": 50,
      "max_files": 5,
      "level": "info"
    }
  },
  "watch": {
    "enabled": true,
    "paths": [
      {
        "path": ".aiwg/",
        "events": [
          "create",
          "modify",
          "delete"
        ],
        "ignore": [
          "*.tmp",
          "working/**",
          "daemon/**"
        ]
      },
      {
        "path": "src/",
        "events": [
          "modify"
        ],
        "extensions": [
          ".ts",
          ".js",
          ".mjs"
        ]
      },
      {
        "path": "test/",
        "events": [
          "modify"
        ],
        "extensions": [
          ".test.ts",
          ".test.js"
        ]
      }
    ],
    "debounce_ms": 2000
  },
  "webhook": {
    "enabled": false,
    "port": 9471,
    "host": "127.0.0.1",
    "secret_env": "AIWG_WEBHOOK_SECRET",
    "endpoints": [
      {
        "path": "/ci",
        "method": "POST"
      },
      {
        "path": "/health",
        "method": "GET"
      }
    ]
  },
  "schedule": {
    "enabled": true,
    "jobs": [
      {
        "id": "health-check",
        "cron": "0 */6 * * *",
        "action": "doctor"
      },
      {
        "id": "artifact-audit",
        "cron": "0 9 * * 1",
        "action": "validate-metadata"
      }
    ]
  },
  "rules": []
}"""


def errors_of(data: Any) -> list[str]:
    with pytest.raises(ValidationError) as exc:
        parse_config(data)
    return [str(i) for i in exc.value.issues]


def contains(big: Any, small: Any) -> bool:
    """Every key/value of `small` is in `big` (lists element-wise, same length)."""
    if isinstance(small, dict):
        return isinstance(big, dict) and all(
            k in big and contains(big[k], v) for k, v in small.items()
        )
    if isinstance(small, list):
        return (
            isinstance(big, list)
            and len(big) == len(small)
            and all(contains(b, s) for b, s in zip(big, small, strict=True))
        )
    return bool(big == small)


# ---- defaults ---------------------------------------------------------------------------


def test_defaults_are_the_original_daemons() -> None:
    d = defaults()
    assert d.daemon.heartbeat_interval_seconds == 30
    assert d.daemon.max_parallel_actions == 3
    assert d.daemon.action_timeout_minutes == 120
    assert (d.daemon.log.max_size_mb, d.daemon.log.max_files, d.daemon.log.level) == (50, 5, "info")
    assert d.watch.enabled is True and d.watch.debounce_ms == 2000
    assert d.schedule.enabled is True
    assert d.rules == []
    original = json.loads(ORIGINAL_DEFAULT_FILE)
    # Except (issue 8): no watch on src/ and test/, no cron jobs that do nothing visible
    # (tests/config/test_defaults.py).
    original["watch"]["paths"] = original["watch"]["paths"][:1]
    original["schedule"]["jobs"] = []
    assert contains(dump(d), {k: v for k, v in original.items() if k not in RETIRED_KEYS})


def test_retired_webhook_section_is_dropped_unread() -> None:
    # Every first start wrote it (the inbound webhook server was never built): files
    # that hold it, whatever it says, load as if it were not there; it is not written.
    assert "webhook" in json.loads(ORIGINAL_DEFAULT_FILE)
    cfg = parse_config({"webhook": {"port": 70000, "secret": "hunter2"}})
    assert dump(cfg) == dump(defaults())
    assert "webhook" not in json.loads(to_json(defaults()))


def test_original_default_file_loads_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "daemon.json"
    path.write_text(ORIGINAL_DEFAULT_FILE)
    original = json.loads(ORIGINAL_DEFAULT_FILE)
    # It means what it says, the watches and jobs our defaults dropped included.
    assert contains(dump(load_file(path)), {k: v for k, v in original.items() if k != "webhook"})


def test_missing_file_is_created_with_defaults_owner_only(tmp_path: Path) -> None:
    path = tmp_path / ".aiwg" / "daemon.json"
    cfg = load_or_create(path)
    assert dump(cfg) == dump(defaults())
    assert path.read_text() == to_json(defaults())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert dump(load_or_create(path)) == dump(defaults())  # and read back as written


def test_defaults_round_trip_through_json() -> None:
    assert dump(parse_config(json.loads(to_json(defaults())))) == dump(defaults())


def test_json_schema_covers_every_section() -> None:
    schema = json_schema(type(defaults()))
    assert schema["additionalProperties"] is False
    assert {"daemon", "watch", "schedule", "rules"} <= set(schema["properties"])
    debounce = schema["properties"]["watch"]["properties"]["debounce_ms"]
    assert debounce == {"type": "integer", "minimum": 0, "maximum": 3600000, "default": 2000}


# ---- merging ----------------------------------------------------------------------------


def test_partial_file_merges_over_defaults() -> None:
    cfg = parse_config({"daemon": {"log": {"level": "debug"}}, "watch": {"debounce_ms": 8000}})
    expected = dump(defaults())
    expected["daemon"]["log"]["level"] = "debug"
    expected["watch"]["debounce_ms"] = 8000
    assert dump(cfg) == expected


def test_zero_and_false_are_values_not_unset() -> None:
    cfg = parse_config(
        {
            "watch": {"enabled": False, "debounce_ms": 0, "paths": []},
            "schedule": {"enabled": False, "jobs": []},
            "daemon": {"stop_grace_seconds": 0},
        }
    )
    assert cfg.watch.enabled is False and cfg.watch.debounce_ms == 0 and cfg.watch.paths == []
    assert cfg.schedule.enabled is False and cfg.schedule.jobs == []
    assert cfg.daemon.stop_grace_seconds == 0


def test_empty_object_is_all_defaults() -> None:
    assert dump(parse_config({})) == dump(defaults())


# ---- errors -----------------------------------------------------------------------------


def test_json_syntax_error_has_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "daemon.json"
    path.write_text('{\n  "daemon": {\n    "heartbeat_interval_seconds": 30\n    "x": 1\n  }\n}\n')
    with pytest.raises(ValidationError) as exc:
        load_file(path)
    assert [str(i) for i in exc.value.issues] == [
        f"{path}: invalid JSON at line 4 column 5: Expecting ',' delimiter"
    ]


def test_unreadable_and_missing_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_bytes(b'{"daemon": "\xff"}')
    with pytest.raises(ValidationError, match="cannot read"):
        load_file(bad)
    with pytest.raises(ValidationError, match="no such file"):
        load_file(tmp_path / "missing.json")


@pytest.mark.parametrize("top", [[], "x", 1, None])
def test_file_must_hold_an_object(top: Any) -> None:
    assert errors_of(top) == ["the config file must hold a JSON object"]


def test_unknown_keys_with_did_you_mean() -> None:
    errs = errors_of({"deamon": {}, "watch": {"debounce": 5}, "zzz": 1})
    assert 'deamon: unknown key; did you mean "daemon"?' in errs
    assert 'watch.debounce: unknown key; did you mean "debounce_ms"?' in errs
    zzz = next(e for e in errs if e.startswith("zzz:"))
    assert zzz.startswith("zzz: unknown key (known: daemon, watch, schedule, rules")


def test_every_error_is_listed_with_path_value_and_rule() -> None:
    errs = errors_of(
        {
            "daemon": {
                "heartbeat_interval_seconds": 0,
                "max_parallel_actions": 1.5,
                "log": {"max_files": True, "level": "verbose", "max_size_mb": -1},
            },
            "watch": {"debounce_ms": 3_600_001, "enabled": "yes"},
        }
    )
    assert sorted(errs) == sorted(
        [
            "daemon.heartbeat_interval_seconds: 0.0 is out of range (must be > 0)",
            "daemon.max_parallel_actions: 1.5 is not an integer",
            "daemon.log.max_files: true is not an integer",
            'daemon.log.level: "verbose" is not allowed (must be one of "debug", "info", '
            '"warning", "error")',
            "daemon.log.max_size_mb: -1.0 is out of range (must be > 0)",
            "watch.debounce_ms: 3600001 is out of range (must be <= 3600000)",
            'watch.enabled: "yes" is not true or false',
        ]
    )


@pytest.mark.parametrize(
    ("cron", "why"),
    [
        ("61 * * * *", "(minute must be 0-59)"),
        ("0 24 * * *", "(hour must be 0-23)"),
        ("0 0 0 * *", "(day of month must be 1-31)"),
        ("0 0 * 13 *", "(month must be 1-12)"),
        ("0 0 * * 8", "(day of week must be 0-7)"),
        ("* * * *", "got 4)"),
        ("@reboot", "got 1)"),
        ("*/0 * * * *", ""),
        ("abc * * * *", ""),
    ],
)
def test_cron_errors_name_the_job(cron: str, why: str) -> None:
    jobs = [
        {"id": "ok", "cron": "@daily", "action": "a"},
        {"id": "bad", "cron": cron, "action": "b"},
    ]
    errs = errors_of({"schedule": {"jobs": jobs}})
    assert len(errs) == 1
    assert errs[0].startswith(f'schedule.jobs[1].cron: "{cron}" is not a valid cron expression')
    assert errs[0].endswith(why)


@pytest.mark.parametrize(
    "cron",
    [
        "0 */6 * * *",
        "0 9 * * 1-5",
        "0 9 * * mon-fri",
        "@hourly",
        "*/15 8-18 * * *",
        "0 0 1 jan *",
        "0 0 * * 7",
    ],
)
def test_valid_crons(cron: str) -> None:
    cfg = parse_config({"schedule": {"jobs": [{"id": "j", "cron": cron, "action": "a"}]}})
    assert [(j.id, j.cron) for j in cfg.schedule.jobs] == [("j", cron)]  # accepted as written


def test_duplicate_job_ids() -> None:
    jobs = [{"id": "a", "cron": "@daily", "action": "x"}] * 2
    assert errors_of({"schedule": {"jobs": jobs}}) == [
        'schedule.jobs[1].id: "a" is used twice; ids must be unique'
    ]


@pytest.mark.parametrize("name", ["my secret!", "sk-live-abc123", "1ABC", ""])
def test_secrets_only_as_env_var_names(name: str) -> None:
    errs = errors_of(webhook_rule(secret_env=name))
    assert errs == [
        f"rules[0].action.secret_env: {json.dumps(name)} is not an environment variable "
        "name (secrets never live in the config: put the secret in the environment and "
        "name the variable here)"
    ]


def test_secret_values_have_no_key_to_live_in() -> None:
    errs = errors_of(webhook_rule(secret="hunter2"))
    assert errs == ['rules[0].action.secret: unknown key; did you mean "secret_env"?']


def webhook_rule(**action: Any) -> dict[str, Any]:
    """A config with one rule whose webhook action carries `action`'s extra fields."""
    act = {"type": "webhook", "url": "http://127.0.0.1:9/hook", **action}
    return {"rules": [{"id": "r", "trigger": {"type": "file.*"}, "action": act}]}


def test_watch_path_errors() -> None:
    errs = errors_of(
        {
            "watch": {
                "paths": [{"path": "src/", "events": ["create", "rename"]}, {"events": ["modify"]}]
            }
        }
    )
    assert errs == [
        'watch.paths[0].events[1]: "rename" is not a file event (must be one of create, '
        "modify, delete)",
        "watch.paths[1].path: is required",
    ]
