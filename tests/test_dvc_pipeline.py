"""The real dvc CLI on the data stages, in a temporary git repository holding the project."""

from __future__ import annotations

import json

import pytest
import yaml

from tests.conftest import dvc, run


@pytest.mark.slow
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


@pytest.mark.slow
def test_an_extract_param_reruns_extract_only(project):
    run(dvc("repro", "extract"), project)
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["extract"]["min_ncc"] = 0.6
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = run(dvc("repro", "extract"), project)
    assert "Running stage 'extract'" in out
    assert "Running stage 'download'" not in out
