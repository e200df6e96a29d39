"""Shared plumbing of the stage commands: params.yaml, atomic file writes, progress bars."""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from gan.fsio import write_bytes, write_text

__all__ = ["PARAMS", "ParamsError", "fail", "load_params", "pick", "reports_write_errors",
           "section", "write_bytes", "write_json", "write_text"]

PARAMS = Path("params.yaml")


class ParamsError(ValueError):
    """params.yaml is missing, unreadable, lacks a key a stage needs, or holds a value the
    schema (stages.params) refuses. The message is one line naming the file and the key."""


def load_params(path: Path = PARAMS) -> dict[str, Any]:
    """The whole params file as a dict, validated against stages.params.SCHEMA (every section,
    not only the caller's) and with its values normalised ('1e-4' -> 0.0001), so that a bad
    value stops any stage before it works. Errors are one line naming the file and the key.

    The result is a plain dict built by the validation: whatever wraps it afterwards (the
    params-tracking test in tests/test_dvc_workflow.py) sees only what the stage reads."""
    from stages.params import validate

    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ParamsError(f"{path}: cannot read the params file ({exc.strerror}); run the stage "
                          "from the project root or pass --params") from None
    except UnicodeDecodeError as exc:
        raise ParamsError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    try:
        params = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML: {_yaml_problem(exc)}") from None
    if not isinstance(params, dict):
        raise ParamsError(f"{path}: expected a mapping of sections, found {type(params).__name__}")
    return validate(params, path)


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """PyYAML's multi-line message as one line: the problem and where it is."""
    problem = getattr(exc, "problem", None)
    mark = getattr(exc, "problem_mark", None)
    if problem and mark is not None:
        text = f"{problem} at line {mark.line + 1}, column {mark.column + 1}"
    else:
        text = str(exc)
    return " ".join(text.split())


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
    """Write JSON atomically (gan.fsio): a reader sees the old file or the new one. A value
    that is not a finite number (NaN, infinity) is written as null: bare NaN is not JSON, and
    strict readers (dvc metrics, browsers) refuse the whole file for it."""
    write_text(path, json.dumps(_finite_or_null(data), indent=2, sort_keys=False,
                                allow_nan=False) + "\n")


def _finite_or_null(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite_or_null(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_null(v) for v in value]
    return value


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
        from gan.fsio import WriteError, as_write_error

        try:
            return command(*args, **kwargs)
        except OSError as error:
            translated = as_write_error(error.filename or "an output file", error)
            if not isinstance(translated, WriteError):
                raise
            fail(str(translated))
    return command_reporting_write_errors
