"""The params file's loader: YAML -> gan.config.Params, every problem one line naming the file.

``load_params(path)`` runs when a stage starts, before any work. It checks the whole file, not
only the stage's own sections, so that a bad ``report.dpi`` stops the download stage instead of
the report after hours of training. What each key takes, and the limits between keys, are
declared once, in gan.config; here the file is read and the config's errors become ParamsError:
'{path}: {section}.{key} must be {accepts}, got {value}{detail}'.

A file may lack whole sections (tests and one-off runs pass files holding only a stage's own);
a stage that reads an absent one stops with "section 'X' is missing or not a mapping". A
section that is present must hold every key of it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from gan.config import ConfigError, Params

__all__ = ["PARAMS", "LoadedParams", "ParamsError", "load_params", "params_from_dict"]

PARAMS = Path("params.yaml")


class ParamsError(ValueError):
    """params.yaml is missing, unreadable, lacks a section a stage needs, or holds a value the
    configs (gan.config) refuse. The message is one line naming the file and the key."""


class LoadedParams(Params):
    """Params as read from a file: a section the file lacks raises ParamsError when a stage
    reads it (the file's other sections were checked when it was loaded)."""

    def __getattribute__(self, name: str) -> Any:
        value = object.__getattribute__(self, name)
        if value is None and name in Params.SECTIONS:
            path = object.__getattribute__(self, "path")
            raise ParamsError(f"{path}: section {name!r} is missing or not a mapping")
        return value


def params_from_dict(params: Any, path: Path | str = PARAMS) -> LoadedParams:
    """A parsed params file as Params, values normalised ('1e-4' -> 0.0001); ParamsError, one
    line naming ``path`` and the key, for the first problem."""
    try:
        checked = Params.from_dict(params)
    except ConfigError as exc:
        raise ParamsError(f"{path}: {exc}") from None
    loaded = object.__new__(LoadedParams)  # the checked sections as they are: no second check
    loaded.__dict__.update(vars(checked), path=path)
    return loaded


def load_params(path: Path = PARAMS) -> LoadedParams:
    """The params file, read and checked as a whole (every section, not only the caller's), so
    that a bad value stops any stage before it works. Errors are one line naming the file."""
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
    return params_from_dict(params, path)


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """PyYAML's multi-line message as one line: the problem and where it is."""
    problem = getattr(exc, "problem", None)
    mark = getattr(exc, "problem_mark", None)
    if problem and mark is not None:
        text = f"{problem} at line {mark.line + 1}, column {mark.column + 1}"
    else:
        text = str(exc)
    return " ".join(text.split())
