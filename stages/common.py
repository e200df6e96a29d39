"""Shared plumbing of the stage commands: atomic file writes, JSON, one-line failures.

params.yaml is read by stages.params."""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gan.fsio import write_bytes, write_text

__all__ = ["fail", "reports_write_errors", "write_bytes", "write_json", "write_text"]


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


# What asks a stage for memory: named when it runs out (params.yaml bounds each of these, but a
# small machine can run out well inside the bounds).
MEMORY_SETTINGS = {
    "stages.train": "train.batch_size (or the model's widths: model.base_width, "
                    "model.growth_rate, model.d_width)",
    "stages.evaluate": "evaluate.batch_size",
    "stages.extract": "extract.workers",
    "stages.report": "report.dpi or report.crop",
    "stages.enhance": "--tile (or use --method clhe / npea)",
    "stages.export": "the model's size",
}


def clear_dead_temporaries(paths: list[Path]) -> None:
    """Remove what writers killed outright (kill -9, power loss) left beside the files a stage
    reads and writes: the hidden temporaries gan.fsio writes before its rename, whose process is
    gone (a live run's are kept). A folder is cleared with its subfolders, a file's folder
    alone. Says where it removed some."""
    import os

    import typer

    from gan.fsio import remove_stale_temporaries

    folders: set[Path] = set()
    for path in paths:
        if path.is_dir():
            folders.update(Path(root) for root, _, _ in os.walk(path))
        else:
            folders.add(path.parent)
    for folder in sorted(folders):
        removed = remove_stale_temporaries(folder)
        if removed:
            typer.secho(f"{folder}: removed {len(removed)} temporary file(s) that a killed run "
                        "left behind", fg=typer.colors.YELLOW, err=True)


def reports_write_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a stage command so that a failed write (full disk, quota, file size limit,
    read-only file system) ends in one line naming the file and the reason, exit code 1, not a
    traceback, and so does running out of memory (naming the settings that ask for it). What
    was half-written is already gone: every output goes through gan.fsio, and the temporaries
    of a writer killed outright are removed before the command runs (clear_dead_temporaries)."""
    @functools.wraps(command)  # Typer reads the wrapped signature and docstring
    def command_reporting_write_errors(*args: Any, **kwargs: Any) -> Any:
        from gan.fsio import WriteError, as_write_error

        clear_dead_temporaries([v for v in (*args, *kwargs.values()) if isinstance(v, Path)])
        try:
            return command(*args, **kwargs)
        except OSError as error:
            translated = as_write_error(error.filename or "an output file", error)
            if not isinstance(translated, WriteError):
                raise
            fail(str(translated))
        except (MemoryError, RuntimeError) as error:
            # torch's CUDA / MPS out-of-memory errors are RuntimeErrors of their own class
            if not (isinstance(error, MemoryError)
                    or type(error).__name__ == "OutOfMemoryError"):
                raise
            detail = " ".join(str(error).split())[:120] or type(error).__name__
            settings = MEMORY_SETTINGS.get(command.__module__, "the sizes in params.yaml")
            fail(f"out of memory ({detail}); lower {settings}")
    return command_reporting_write_errors
