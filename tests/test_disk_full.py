"""A full disk: each stage names the file it could not write and says "no space left", exits
non-zero without a traceback, and leaves no temporary or half-written file behind.

Two ways to fill the disk: a fault-injecting writer (gan.fsio's ``open`` replaced by one whose
writes fail with ENOSPC once a small budget is spent), which runs everywhere; and a real tiny
tmpfs in a private mount namespace (``unshare -rm``), where the machine allows one.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

import gan.fsio
from stages.app import app
from tests.conftest import temporaries
from tests.test_evaluate_report import evaluate_args, report_args, workspace  # noqa: F401

NO_SPACE = "cannot write: no space left on the device"


def train_args(root: Path, out: Path) -> list[str]:
    """A two-step run of a tiny network, its outputs under ``out``."""
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["model"].update(depth=1, base_width=8, growth_rate=4, layers_per_block=2, d_width=8,
                           d_layers=2)
    params["train"].update(steps=2, batch_size=2, val_patches=4, log_every=1, val_every=2,
                           checkpoint_every=1, device="cpu")
    (root / "tiny-train.yaml").write_text(yaml.safe_dump(params))
    return ["train", "--params", str(root / "tiny-train.yaml"), "--data",
            str(root / "data" / "patches"), "--model", str(out / "generator.pt"),
            "--checkpoint", str(out / "checkpoints" / "last.pt"), "--metrics",
            str(out / "train.json"), "--curves", str(out / "curves"), "--no-progress"]


def with_outputs_in(args: list[str], options: dict[str, Path]) -> list[str]:
    args = list(args)
    for option, path in options.items():
        args[args.index(option) + 1] = str(path)
    return args


def commands(root: Path, out: Path) -> dict[str, list[str]]:
    return {
        "export": ["export", "--model", str(root / "models" / "generator.pt"), "--out",
                   str(out / "generator.ts"), "--no-check"],
        "train": train_args(root, out),
        "evaluate": with_outputs_in(evaluate_args(root), {
            "--out": out / "eval", "--metrics": out / "eval.json",
            "--per-patch": out / "eval_per_patch.csv"}),
        "report": with_outputs_in(report_args(root), {
            "--figures": out / "figures", "--html-out": out / "report.html"}),
    }


@pytest.fixture
def evaluated(workspace):  # noqa: F811 (the fixture imported above)
    """The workspace with evaluate's outputs, which report reads."""
    if not (workspace / "metrics" / "eval.json").exists():
        assert CliRunner().invoke(app, evaluate_args(workspace)).exit_code == 0
    return workspace


class _FillingFile:
    """A binary file whose writes fail with ENOSPC once ``budget`` bytes have been written."""

    def __init__(self, handle, budget: list[int]):
        self._handle, self._budget = handle, budget

    def write(self, data) -> int:
        size = len(memoryview(data).cast("B")) if not isinstance(data, str) else len(data)
        if size > self._budget[0]:
            raise OSError(errno.ENOSPC, "No space left on device")
        self._budget[0] -= size
        return self._handle.write(data)

    def __getattr__(self, name):
        return getattr(self._handle, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._handle.close()


@pytest.mark.parametrize("stage", ["export", "train", "evaluate", "report"])
def test_a_full_disk_is_one_line_naming_the_file_and_nothing_is_left(evaluated, tmp_path,
                                                                       monkeypatch, stage):
    out = tmp_path / "out"
    budget = [2_000]  # bytes the "disk" still takes, over all files

    def filling_open(path, mode="r", *args, **kwargs):
        return _FillingFile(open(path, mode, *args, **kwargs), budget)

    monkeypatch.setattr(gan.fsio, "open", filling_open, raising=False)
    result = CliRunner().invoke(app, commands(evaluated, out)[stage])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and NO_SPACE in result.output
    error = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and str(out) in error[0], result.output
    assert not temporaries(tmp_path)
    assert not [p for p in out.rglob("*") if p.is_file() and p.stat().st_size == 0]


def _tmpfs_available() -> bool:
    if shutil.which("unshare") is None or not sys.platform.startswith("linux"):
        return False
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"],
                           capture_output=True)
    return probe.returncode == 0


@pytest.mark.slow
@pytest.mark.skipif(not _tmpfs_available(), reason="no unprivileged tmpfs mount on this machine")
@pytest.mark.parametrize("stage", ["export", "train", "evaluate", "report"])
def test_a_real_full_tmpfs(evaluated, tmp_path, stage):
    out = tmp_path / "mnt"
    out.mkdir()
    args = " ".join(f"'{a}'" for a in commands(evaluated, out)[stage])
    script = (f"mount -t tmpfs -o size=32k tmpfs '{out}' && {sys.executable} -m stages {args}; "
              f"code=$?; echo LEFT; find '{out}' -type f -printf '%s %f\\n'; exit $code")
    proc = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True,
                          cwd=evaluated)
    output, left = (proc.stdout + proc.stderr), proc.stdout.split("LEFT", 1)[-1].split()
    assert proc.returncode == 1, output
    assert "Traceback" not in output and NO_SPACE in output, output
    sizes, names = left[0::2], left[1::2]
    assert not [n for n in names if n.endswith(".tmp")], left
    assert "0" not in sizes, left  # no 0-byte outputs


@pytest.mark.parametrize("module, error, says", [
    ("stages.train", MemoryError("Unable to allocate 257. GiB for an array with shape "
                                 "(10000000, 3, 96, 96)"), "lower train.batch_size"),
    ("stages.report", MemoryError("std::bad_alloc"), "lower report.dpi or report.crop"),
    ("stages.evaluate", type("OutOfMemoryError", (RuntimeError,), {})("CUDA out of memory.\n"
                                                                       "Tried 2 GiB"),
     "lower evaluate.batch_size"),
])
def test_running_out_of_memory_is_one_line_naming_the_settings(module, error, says, capsys):
    import typer

    from stages.common import reports_write_errors

    def command():
        raise error

    command.__module__ = module
    with pytest.raises(typer.Exit) as stopped:
        reports_write_errors(command)()
    assert stopped.value.exit_code == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("error: out of memory (") and says in err, err
    assert " ".join(str(error).split())[:40] in err


def test_other_runtime_errors_still_raise():
    from stages.common import reports_write_errors

    def command():
        raise RuntimeError("a bug")

    with pytest.raises(RuntimeError, match="a bug"):
        reports_write_errors(command)()


def test_a_stage_removes_what_a_killed_writer_left_and_keeps_a_live_ones(tmp_path, capsys):
    # kill -9 during a checkpoint or model write leaves gan.fsio's hidden temporary inside a
    # DVC output for ever; every stage now clears its folders' dead writers' temporaries first.
    from stages.common import reports_write_errors

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    dead = int(gone.stdout)
    checkpoints = tmp_path / "models" / "checkpoints"
    samples = tmp_path / "data" / "eval" / "full_size" / "ours"
    checkpoints.mkdir(parents=True)
    samples.mkdir(parents=True)
    left = [checkpoints / f".last.pt.{dead}-0123456789ab.tmp",
            tmp_path / "models" / f".generator.pt.{dead}-0123456789ab.tmp",
            samples / f".0.png.{dead}-0123456789ab.tmp"]
    live = checkpoints / f".last.pt.{os.getpid()}-0123456789ab.tmp"
    for path in (*left, live):
        path.write_bytes(b"half")
    seen = []

    def command(model: Path, checkpoint: Path, out: Path):
        seen.extend(p.exists() for p in left)

    reports_write_errors(command)(model=tmp_path / "models" / "generator.pt",
                                  checkpoint=checkpoints / "last.pt",
                                  out=tmp_path / "data" / "eval")
    assert seen == [False, False, False] and live.exists()
    err = capsys.readouterr().err
    assert f"{checkpoints}: removed 1 temporary file(s) that a killed run left behind" in err


def test_a_writer_killed_with_sigkill_leaves_nothing_after_the_next_stage(tmp_path):
    # A real kill -9 in the middle of a model write (gan.fsio's temporary on disk, its rename
    # never reached), then any stage over that folder: no temporary survives.
    import signal

    from stages.common import reports_write_errors

    model = tmp_path / "models" / "generator.pt"
    writer = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time\nfrom pathlib import Path\nfrom gan.fsio import atomic_path\n"
         "with atomic_path(Path(sys.argv[1])) as staging:\n"
         "    staging.write_bytes(b'half a model')\n    print('writing', flush=True)\n"
         "    time.sleep(60)\n", str(model)],
        stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[1])
    assert writer.stdout.readline().strip() == "writing"
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    assert [p.name.startswith(".generator.pt.") for p in model.parent.iterdir()] == [True]
    reports_write_errors(lambda model: None)(model=model)
    assert list(model.parent.iterdir()) == []
