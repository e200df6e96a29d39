"""The real dvc CLI on the data stages, in a temporary git repository holding the project."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT

PROJECT_FILES = ["dvc.yaml", "params.yaml", ".gitignore", ".dvcignore", ".dvc/config",
                 ".dvc/.gitignore", "stages", "gan"]


def run(cmd: list[str], cwd: Path) -> str:
    env = dict(os.environ)
    # The stage commands call `python`: it must be this interpreter, with the project installed.
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env.update(GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.org", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@example.org", DVC_NO_ANALYTICS="1")
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


@pytest.fixture
def project(tmp_path) -> Path:
    repo = tmp_path / "repo"
    for name in PROJECT_FILES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, repo / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, repo / name)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["data"].update(sample_train_pairs=60, sample_test_pairs=20)  # tiny, same code path
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(["git", "init", "-q"], repo)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "project"], repo)
    return repo


def dvc(*args: str) -> list[str]:
    return [sys.executable, "-m", "dvc", *args]


def test_repro_builds_the_data_stages_and_a_second_run_does_nothing(project):
    out = run(dvc("repro", "extract"), project)
    assert "Running stage 'download'" in out and "Running stage 'extract'" in out
    assert (project / "data" / "patches" / "train_phone.npy").exists()
    record = json.loads((project / "data" / "source.json").read_text())
    assert record["pairs"] == {"train": 60, "test": 20}
    metrics = run(dvc("metrics", "show", "--json"), project)
    assert '"kept"' in metrics
    lock = yaml.safe_load((project / "dvc.lock").read_text())
    assert {"download", "extract"} <= set(lock["stages"])

    again = run(dvc("repro", "extract"), project)
    assert "Running stage" not in again
    assert "up to date" in again
    assert "up to date" in run(dvc("status", "extract"), project).lower()


def test_an_extract_param_reruns_extract_only(project):
    run(dvc("repro", "extract"), project)
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["extract"]["min_ncc"] = 0.6
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = run(dvc("repro", "extract"), project)
    assert "Running stage 'extract'" in out
    assert "Running stage 'download'" not in out
