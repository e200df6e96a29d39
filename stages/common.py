"""Shared plumbing of the stage commands: params.yaml, atomic file writes, progress bars."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from gan.fsio import write_bytes, write_text

__all__ = ["PARAMS", "ParamsError", "fail", "load_params", "pick", "reports_write_errors",
           "section", "write_bytes", "write_json", "write_text"]

PARAMS = Path("params.yaml")


class ParamsError(ValueError):
    """params.yaml is missing, unreadable, or lacks a key a stage needs."""


def load_params(path: Path = PARAMS) -> dict[str, Any]:
    """The whole params file as a dict; errors name the file and what is wrong."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ParamsError(f"{path}: cannot read the params file ({exc.strerror}); run the stage "
                          "from the project root or pass --params") from None
    try:
        params = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(params, dict):
        raise ParamsError(f"{path}: expected a mapping of sections, found {type(params).__name__}")
    return params


def section(params: dict[str, Any], name: str, path: Path = PARAMS) -> dict[str, Any]:
    """One section of params.yaml (e.g. 'data'), which must exist and be a mapping."""
    value = params.get(name)
    if not isinstance(value, dict):
        raise ParamsError(f"{path}: section {name!r} is missing or not a mapping")
    return value


def pick(values: dict[str, Any], keys: tuple[str, ...], where: str) -> dict[str, Any]:
    """The given keys of a params section; a missing one is an error naming it."""
    missing = [k for k in keys if k not in values]
    if missing:
        raise ParamsError(f"params.yaml: {where} lacks {', '.join(missing)}")
    return {k: values[k] for k in keys}


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (gan.fsio): a reader sees the old file or the new one."""
    write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def fail(message: str) -> None:
    """Print an error for people (no traceback) and exit non-zero."""
    import typer

    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(1)


def reports_write_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a stage command so that a failed write (full disk, quota, file size limit,
    read-only file system) ends in one line naming the file and the reason, exit code 1, not a
    traceback. What was half-written is already gone: every output goes through gan.fsio."""
    @functools.wraps(command)  # Typer reads the wrapped signature and docstring
    def command_reporting_write_errors(*args: Any, **kwargs: Any) -> Any:
        from gan.fsio import WRITE_ERRNOS, WriteError

        try:
            return command(*args, **kwargs)
        except OSError as error:
            if isinstance(error, WriteError):
                fail(str(error))
            if error.errno not in WRITE_ERRNOS:
                raise
            fail(f"{error.filename or 'an output file'}: cannot write: {error.strerror}")
    return command_reporting_write_errors
