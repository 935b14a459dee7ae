"""`aiwg config validate|show|init`: the project's .aiwg/daemon.json."""

from __future__ import annotations

from typing import Annotated

import typer

from aiwgd.cli.options import EXIT_ERROR, Json, Root, emit, paths_for, want_json

config_app = typer.Typer(no_args_is_help=True, help="Validate, show or create the config.")


@config_app.command("validate")
def config_validate(
    file: Annotated[str | None, typer.Argument(help="default: .aiwg/daemon.json")] = None,
    root: Root = None,
    json_out: Json = False,
) -> None:
    """Check a config file; lists every error (exit 1 if any)."""
    from pathlib import Path

    from aiwgd.config import ValidationError, load_file

    path = Path(file) if file else paths_for(root).config_file
    try:
        load_file(path)
    except ValidationError as exc:
        issues = [str(i) for i in exc.issues]
        if want_json(json_out):
            emit({"valid": False, "file": str(path), "errors": issues}, True)
        else:
            for issue in issues:
                typer.echo(
                    f"{path}: {issue}" if not issue.startswith(str(path)) else issue, err=True
                )
        raise typer.Exit(EXIT_ERROR) from None
    emit({"valid": True, "file": str(path)}, want_json(json_out), f"{path}: valid")


@config_app.command("show")
def config_show(root: Root = None, json_out: Json = False) -> None:
    """Print the effective config (file merged over defaults) as JSON."""
    from aiwgd.cli.fastpath import config_show as show

    show(str(paths_for(root).root))  # `aiwg config show` itself runs it without typer


@config_app.command("init")
def config_init(
    force: Annotated[bool, typer.Option("--force", help="overwrite an existing file")] = False,
    root: Root = None,
    json_out: Json = False,
) -> None:
    """Write the default config to .aiwg/daemon.json."""
    from aiwgd.config import defaults, to_json
    from aiwgd.infra.durable import write_atomic

    path = paths_for(root).config_file
    if path.exists() and not force:
        from aiwgd.cli.daemonctl import CtlError

        raise CtlError(f"{path} already exists; use --force to overwrite it")
    write_atomic(path, to_json(defaults()))
    emit({"written": str(path)}, want_json(json_out), f"wrote {path}")


def register(app: typer.Typer) -> None:
    app.add_typer(config_app, name="config")
