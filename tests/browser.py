"""Headless Chromium for the page tests: Debian's package (`apt-get install chromium`), never a
browser downloaded at run time. Tests that need it skip cleanly where it is not installed."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

CHROMIUM = next((shutil.which(name) for name in ("chromium", "chromium-browser")
                 if shutil.which(name)), None)

needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium installed "
                                    "(apt-get install chromium)")

# No network at all, no first-run or sync work: the page is a local file that fetches nothing.
# --no-sandbox: CI and this machine run as root, where Chromium's sandbox refuses to start.
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--force-device-scale-factor=1",
         "--virtual-time-budget=10000")  # runs the page's load handler before the snapshot


def _run(url: str, *extra: str, timeout: float = 120) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory() as profile:
        result = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *extra, url],
                                capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise AssertionError(f"chromium failed ({result.returncode}): {result.stderr[-2000:]}")
    return result


def dump_dom(page: Path, fragment: str = "") -> str:
    """The page's DOM after its load handlers ran, as HTML text."""
    return _run(page.resolve().as_uri() + fragment, "--dump-dom").stdout


def screenshot(page: Path, width: int, height: int, out: Path, fragment: str = "") -> np.ndarray:
    """The first ``width`` x ``height`` CSS pixels of the page, as (H, W, 3) uint8."""
    _run(page.resolve().as_uri() + fragment, f"--window-size={width},{height}",
         f"--screenshot={out}")
    with Image.open(out) as im:
        return np.asarray(im.convert("RGB"))
