"""Training: learning, exact resume, the NaN guard, the saved generator, DDP on the CPU."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from typer.testing import CliRunner

from gan.checkpoint import CheckpointError, load_generator, read_generator
from gan.dped import DpedSource, find_layout
from gan.extract import ExtractConfig, extract
from gan.losses import LossWeights
from gan.patches import PatchPairs, data_fingerprint
from gan.sample import write_sample_zip
from gan.train import Dist, RunSpec, Trainer, TrainConfig, TrainingDiverged
from stages.app import app
from tests.conftest import ROOT

TINY_G = {"depth": 1, "base_width": 8, "growth_rate": 4, "layers_per_block": 2,
          "global_residual": True}
TINY_D = {"width": 8, "layers": 2}


@pytest.fixture(scope="module")
def patches(tmp_path_factory) -> Path:
    """Aligned patch arrays of a small simulated DPED archive (48 train, 16 test pairs)."""
    root = tmp_path_factory.mktemp("data")
    archive = root / "dped.zip"
    write_sample_zip(archive, "iphone", train_pairs=48, test_pairs=16, seed=4)
    with DpedSource(archive) as source:
        layout = find_layout(source.names(), "iphone")
    extract(archive, layout, root / "patches", ExtractConfig(min_ncc=0.0), workers=1)
    return root / "patches"


def spec_for(patches: Path, **train) -> RunSpec:
    config = {"steps": 6, "batch_size": 4, "lr_g": 1e-3, "lr_d": 1e-3, "log_every": 2,
              "val_every": 3, "val_patches": 8, "checkpoint_every": 3, "device": "cpu", **train}
    return RunSpec(generator="dense_unet", generator_config=TINY_G, discriminator_config=TINY_D,
                   loss=LossWeights(perceptual=0.0, adversarial=1e-3, msssim=1.0, pixel=1.0),
                   vgg_weights="random", distance="l1", msssim_win=5,
                   train=TrainConfig(**config), data=data_fingerprint(patches))


def test_a_tiny_model_beats_the_input_on_held_out_pairs(patches, tmp_path):
    trainer = Trainer(spec_for(patches, steps=50, batch_size=8, val_every=50,
                               checkpoint_every=50), patches, tmp_path / "ck.pt", Dist())
    trainer.fit()
    test = PatchPairs(patches, "test")
    phone, dslr = test.gather(np.arange(len(test)))
    with torch.no_grad():
        output = trainer.generator.eval()(phone)
    assert (output - dslr).abs().mean() < 0.9 * (phone - dslr).abs().mean()


def state(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {**{f"g.{k}": v for k, v in trainer.generator.state_dict().items()},
            **{f"d.{k}": v for k, v in trainer.discriminator.state_dict().items()}}


def test_resume_gives_the_weights_of_an_uninterrupted_run(patches, tmp_path):
    straight = Trainer(spec_for(patches, steps=6), patches, tmp_path / "a.pt", Dist())
    straight.fit()

    first = Trainer(spec_for(patches, steps=3), patches, tmp_path / "b.pt", Dist())
    first.fit()
    second = Trainer(spec_for(patches, steps=6), patches, tmp_path / "b.pt", Dist())
    assert second.try_resume() == f"resuming from {tmp_path / 'b.pt'} at step 3"
    result = second.fit()
    assert result.resumed_from == 3 and result.step == 6

    expected, got = state(straight), state(second)
    assert expected.keys() == got.keys()
    for name in expected:
        assert torch.equal(expected[name], got[name]), name
    assert [r["step"] for r in second.losses] == [2, 3, 4, 6]  # log rows carried over


def test_a_resumed_run_reports_the_time_and_speed_of_the_whole_run(patches, tmp_path):
    first = Trainer(spec_for(patches, steps=3), patches, tmp_path / "t.pt", Dist()).fit()
    assert first.seconds > 0 and first.patches_per_s > 0
    # Resumed at its last step: nothing left to train, the run's figures are the first session's.
    again = Trainer(spec_for(patches, steps=3), patches, tmp_path / "t.pt", Dist())
    again.try_resume()
    recorded = torch.load(tmp_path / "t.pt", weights_only=True)["train_seconds"]
    assert 0 < recorded <= first.seconds  # the time up to the checkpoint's save
    finished = again.fit()
    assert finished.seconds == pytest.approx(recorded, abs=0.05)  # + an empty loop
    assert finished.patches_per_s == pytest.approx(3 * 4 / finished.seconds)  # batch 4
    # Resumed for more steps: the time adds up over both sessions.
    more = Trainer(spec_for(patches, steps=5), patches, tmp_path / "t.pt", Dist())
    more.try_resume()
    longer = more.fit()
    assert longer.seconds > first.seconds
    assert longer.patches_per_s == pytest.approx(5 * 4 / longer.seconds, rel=1e-6)  # batch 4


def test_a_checkpoint_of_other_settings_is_not_resumed(patches, tmp_path):
    Trainer(spec_for(patches, steps=3), patches, tmp_path / "c.pt", Dist()).fit()
    other = spec_for(patches, steps=3)
    other = replace(other, loss=replace(other.loss, msssim=0.5))
    trainer = Trainer(other, patches, tmp_path / "c.pt", Dist())
    assert "other settings" in trainer.try_resume()
    assert trainer.step == 0


def test_a_nan_stops_training_naming_step_and_term(patches, tmp_path):
    checkpoint = tmp_path / "d.pt"
    trainer = Trainer(spec_for(patches, steps=6, checkpoint_every=2), patches, checkpoint, Dist())
    original = trainer.criterion.forward

    def poisoned(fake, real, fake_logits=None):
        total, terms = original(fake, real, fake_logits)
        if trainer.step == 4:  # the fifth step
            terms = {**terms, "msssim": torch.tensor(float("nan"))}
        return total, terms

    trainer.criterion.forward = poisoned
    with pytest.raises(TrainingDiverged, match=r"step 5: the msssim loss is nan.*step 4"):
        trainer.fit()
    kept = torch.load(checkpoint, weights_only=True)
    assert kept["step"] == 4  # the last good checkpoint stays


def tiny_params(path: Path, **train) -> Path:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["model"].update(depth=1, base_width=8, growth_rate=4, layers_per_block=2, d_width=8,
                           d_layers=2)
    params["loss"].update(perceptual=1.0)  # the random VGG19 path, at batch 2
    params["train"].update(steps=2, batch_size=2, log_every=1, val_every=2, val_patches=4,
                           checkpoint_every=1, device="cpu", **train)
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def stage_args(tmp_path: Path, params: Path, patches: Path) -> list[str]:
    return ["train", "--params", str(params), "--data", str(patches),
            "--model", str(tmp_path / "models" / "generator.pt"),
            "--checkpoint", str(tmp_path / "models" / "checkpoints" / "last.pt"),
            "--metrics", str(tmp_path / "metrics" / "train.json"),
            "--curves", str(tmp_path / "metrics" / "train"), "--no-progress"]


def test_the_stage_writes_a_safe_generator_curves_and_metrics(patches, tmp_path):
    params = tiny_params(tmp_path / "params.yaml")
    result = CliRunner().invoke(app, stage_args(tmp_path, params, patches))
    assert result.exit_code == 0, result.output
    model = tmp_path / "models" / "generator.pt"
    payload = torch.load(model, weights_only=True)  # plain data only
    assert payload["kind"] == "dense_unet" and payload["config"]["depth"] == 1
    assert payload["provenance"]["data"] == data_fingerprint(patches)
    assert payload["provenance"]["params"]["loss"]["perceptual"] == 1.0
    assert "git_revision" in payload["provenance"]
    generator = load_generator(model)
    assert generator(torch.rand(1, 3, 21, 35)).shape == (1, 3, 21, 35)

    losses = pd.read_csv(tmp_path / "metrics" / "train" / "losses.csv")
    assert {"perceptual", "adversarial", "msssim", "pixel", "total", "d_real",
            "d_fake"} <= set(losses.columns)
    assert losses["perceptual"].gt(0).all()
    validation = pd.read_csv(tmp_path / "metrics" / "train" / "validation.csv")
    assert {"psnr", "ms_ssim"} <= set(validation.columns)
    metrics = yaml.safe_load((tmp_path / "metrics" / "train.json").read_text())
    assert metrics["step"] == 2 and "psnr_gain_db" in metrics


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("echo owned",))


def test_unsafe_or_foreign_checkpoints_are_refused(tmp_path):
    evil = tmp_path / "evil.pt"
    evil.write_bytes(pickle.dumps({"format": "ppe-gan generator", "x": _RunsCode()}))
    with pytest.raises(CheckpointError, match="safe"):
        read_generator(evil)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(2)}, foreign)
    with pytest.raises(CheckpointError, match="not a ppe-gan generator"):
        read_generator(foreign)
    with pytest.raises(CheckpointError, match="no such model file"):
        read_generator(tmp_path / "absent.pt")


def test_ddp_on_the_cpu_with_two_gloo_processes(patches, tmp_path):
    params = tiny_params(tmp_path / "params.yaml", gpus=2)
    env = {**os.environ, "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"]}
    done = subprocess.run([sys.executable, "-m", "stages", *stage_args(tmp_path, params, patches)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "starting 2 processes" in done.stdout
    payload = torch.load(tmp_path / "models" / "generator.pt", weights_only=True)
    assert payload["provenance"]["steps"] == 2
