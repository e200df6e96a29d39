"""Per-stage figures of a DVC pipeline run, as a user runs it (issue 23's table at 160k pairs).

    python bench/stage_monitor.py --json /tmp/scale/stages.json -- make paper ARCHIVE=... ...

Runs the command in the current folder (a DVC workspace), passes its output through, and cuts
its wall time at each "Running stage 'NAME'" line that dvc prints. For each stage (its command
and DVC's hashing and caching of its outputs, up to the next stage's start) it records:
- wall seconds;
- peak memory of the whole process tree (dvc, the stage, its workers), as the sum of their
  proportional set sizes (PSS: shared pages split between the processes that share them, so
  forked workers are not counted twice), and the largest single process's RSS;
- bytes written to the workspace and to the DVC cache (allocated blocks; a file hardlinked into
  both counts once, in the workspace: what the cache *adds* on disk).
Then it times a no-op `dvc status` and `dvc repro` (nothing changed: both should only hash
metadata). Samples are taken every 0.5 s, so a peak shorter than that can be missed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

STAGE_LINE = re.compile(r"Running stage '([^']+)'")
SKIPPED = (".git", ".venv", "__pycache__")


def disk_bytes(root: Path) -> tuple[int, int]:
    """(workspace, cache) allocated bytes under ``root``; an inode seen in both counts once,
    in the workspace (a hardlinked or reflinked output adds nothing to the cache)."""
    seen: set[tuple[int, int]] = set()
    totals = [0, 0]
    cache = (root / ".dvc" / "cache").resolve()
    for which, top in ((0, root), (1, cache)):
        for folder, dirs, files in os.walk(top):
            if which == 0:
                dirs[:] = [d for d in dirs if d not in SKIPPED
                           and Path(folder, d).resolve() != cache]
            for name in files:
                try:
                    st = os.lstat(os.path.join(folder, name))
                except FileNotFoundError:  # removed while we walked
                    continue
                key = (st.st_dev, st.st_ino)
                if key not in seen:
                    seen.add(key)
                    totals[which] += st.st_blocks * 512
    return totals[0], totals[1]


def tree_memory(root: psutil.Process) -> tuple[int, int]:
    """(sum of PSS, largest RSS) over ``root`` and its descendants, bytes."""
    pss = largest = 0
    for proc in [root, *root.children(recursive=True)]:
        try:
            info = proc.memory_full_info()
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        pss += getattr(info, "pss", info.rss)
        largest = max(largest, info.rss)
    return pss, largest


class Monitor:
    def __init__(self, workspace: Path):
        self.workspace = workspace
        self.stages: list[dict] = []
        self.current: dict | None = None
        self.lock = threading.Lock()
        self.started = time.perf_counter()
        self.disk = disk_bytes(workspace)

    def begin(self, name: str) -> None:
        with self.lock:
            self._close()
            self.current = {"stage": name, "began": time.perf_counter(), "peak_pss": 0,
                            "peak_rss": 0}

    def _close(self) -> None:
        if self.current is None:
            return
        now = disk_bytes(self.workspace)
        self.current.update(
            seconds=round(time.perf_counter() - self.current.pop("began"), 1),
            workspace_written=now[0] - self.disk[0], cache_written=now[1] - self.disk[1])
        self.disk = now
        self.stages.append(self.current)
        self.current = None

    def sample(self, proc: psutil.Process) -> None:
        pss, rss = tree_memory(proc)
        with self.lock:
            if self.current is not None:
                self.current["peak_pss"] = max(self.current["peak_pss"], pss)
                self.current["peak_rss"] = max(self.current["peak_rss"], rss)

    def finish(self) -> None:
        with self.lock:
            self._close()


def timed(cmd: list[str]) -> float:
    began = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return round(time.perf_counter() - began, 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, required=True, help="where the figures go")
    parser.add_argument("--dvc", default="dvc", help="the dvc command for the no-op timings")
    parser.add_argument("--stage", help="measure the whole command as this one stage (a stage run "
                        "alone, e.g. python -m stages.evaluate ...: no DVC 'Running stage' "
                        "lines to cut at); the no-op dvc timings are then skipped")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to run after --")
    monitor = Monitor(Path.cwd())
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            bufsize=1)
    watched = psutil.Process(proc.pid)
    if args.stage:
        monitor.begin(args.stage)
    stop = threading.Event()

    def sampling() -> None:
        while not stop.is_set():
            monitor.sample(watched)
            stop.wait(0.5)

    sampler = threading.Thread(target=sampling, daemon=True)
    sampler.start()
    assert proc.stdout is not None
    for line in proc.stdout:
        sys.stdout.write(line)
        sys.stdout.flush()
        match = STAGE_LINE.search(line)
        if match:
            monitor.begin(match[1])
    code = proc.wait()
    stop.set()
    sampler.join()
    monitor.finish()
    figures = {"command": command, "exit_code": code,
               "total_seconds": round(time.perf_counter() - monitor.started, 1),
               "stages": monitor.stages}
    if code == 0 and not args.stage:
        figures["noop"] = {"dvc status": timed([args.dvc, "status"]),
                           "dvc repro": timed([args.dvc, "repro"]),
                           "dvc status again": timed([args.dvc, "status"])}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"\n{'stage':10} {'seconds':>8} {'peak PSS MB':>11} {'max RSS MB':>10} "
          f"{'workspace MB':>12} {'cache MB':>9}")
    for s in monitor.stages:
        print(f"{s['stage']:10} {s['seconds']:8.1f} {s['peak_pss'] / 2**20:11.0f} "
              f"{s['peak_rss'] / 2**20:10.0f} {s['workspace_written'] / 2**20:12.0f} "
              f"{s['cache_written'] / 2**20:9.0f}")
    for what, seconds in figures.get("noop", {}).items():
        print(f"no-op {what}: {seconds} s")
    return code


if __name__ == "__main__":
    sys.exit(main())
