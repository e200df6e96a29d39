"""A module of this project as it was at a git revision, for benches that time or score the
old code beside the new in one run (``--against REV``)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def module_at(revision: str, paths: tuple[str, ...], folder: Path):
    """The first of ``paths`` (e.g. a module's path before and after a move) that exists at
    ``revision``, written into ``folder`` and imported under a name of its own."""
    for path in paths:
        shown = subprocess.run(["git", "show", f"{revision}:{path}"], cwd=ROOT,
                               capture_output=True, text=True)
        if shown.returncode == 0:
            name = f"{Path(path).stem}_at_revision"
            file = folder / f"{name}.py"
            file.write_text(shown.stdout)
            spec = importlib.util.spec_from_file_location(name, file)
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module  # dataclasses look their module up
            spec.loader.exec_module(module)
            return module
    raise SystemExit(f"{revision}: none of {', '.join(paths)} ({shown.stderr.strip()})")
