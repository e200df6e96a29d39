"""Shared fixtures: tiny DPED-layout archives, the real dped-mini pairs when present."""

from __future__ import annotations

import contextlib
import http.server
import io
import os
import shutil
import subprocess
import sys
import threading
import zipfile
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def extract_config(**changes):
    """params.yaml's extract settings (the one source of their values), with ``changes``."""
    import yaml

    from gan.config import ExtractConfig

    values = yaml.safe_load((ROOT / "params.yaml").read_text())["extract"]
    return ExtractConfig(**{**values, **changes})
DPED_MINI = ROOT.parent / "shared" / "dped-mini"


def jpeg(rgb: np.ndarray, quality: int = 95) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def textured(rng: np.random.Generator, size: int) -> np.ndarray:
    """A smooth random colour texture, (size, size, 3) uint8: structure at several scales."""
    from scipy.ndimage import gaussian_filter

    noise = rng.random((size, size, 3))
    img = gaussian_filter(noise, (1.5, 1.5, 0)) + 0.5 * gaussian_filter(noise, (4, 4, 0))
    img = (img - img.min()) / (img.max() - img.min())
    return (img * 255).astype(np.uint8)


def shifted_pair(rng: np.random.Generator, dx: int, dy: int,
                 size: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """(phone, dslr) of one scene, the phone content (dx, dy) pixels right/below the DSLR's."""
    scene = textured(rng, size + 8)
    dslr = scene[4:4 + size, 4:4 + size]
    phone = scene[4 - dy:4 - dy + size, 4 - dx:4 - dx + size]
    return np.ascontiguousarray(phone), np.ascontiguousarray(dslr)


def write_dped_zip(path: Path, files: dict[str, bytes], root: str = "dped/iphone/") -> Path:
    """A zip with the given members (names relative to ``root``)."""
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(root + name, data)
    return path


@contextlib.contextmanager
def local_http_server(handler: type, **attributes) -> Iterator[str]:
    """Serve ``handler`` (a BaseHTTPRequestHandler subclass, given ``attributes`` as class
    attributes) on 127.0.0.1 at a free port from a thread; yields the base URL."""
    bound = type("BoundHandler", (handler,), attributes)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), bound)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture
def dped_mini() -> Path:
    if not (DPED_MINI / "iphone" / "training_data").is_dir():
        pytest.skip("../shared/dped-mini is not present")
    return DPED_MINI


# -- the real dvc CLI in a temporary git repository holding the project ------------------

# data/.gitignore too, as a clone has it: the outputs are files inside data/raw and data/patches,
# and without it DVC would write a .gitignore into those folders, which are other stages' deps.
PROJECT_FILES = ["dvc.yaml", "params.yaml", ".gitignore", ".dvcignore", ".dvc/config",
                 ".dvc/.gitignore", "data/.gitignore", "stages", "gan"]


def temporaries(folder: Path) -> list[Path]:
    """Temporary files of an atomic write (gan.fsio) left anywhere under ``folder``."""
    return sorted(p for p in Path(folder).rglob("*") if p.name.endswith(".tmp"))


def run(cmd: list[str], cwd: Path) -> str:
    env = dict(os.environ)
    # The stage commands call `python`: it must be this interpreter, with the project installed.
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env.update(GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.org", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@example.org", DVC_NO_ANALYTICS="1")
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


def copy_project_files(repo: Path) -> None:
    """The project's pipeline files (PROJECT_FILES) into ``repo``, without caches."""
    for name in PROJECT_FILES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, repo / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, repo / name)


def dvc(*args: str) -> list[str]:
    return [sys.executable, "-m", "dvc", *args]
