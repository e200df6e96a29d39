"""Training: learning, exact resume, the NaN guard, the saved generator, DDP on the CPU."""

from __future__ import annotations

import copy
import json
import os
import pickle
import shutil
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
from gan.data.dped import DpedSource, find_layout
from gan.data.extract import extract
from gan.data.patches import PatchPairs, add_noise, data_fingerprint
from gan.data.sample import write_sample_zip
from gan.config import LossWeights, TrainConfig
from gan.runtime import cpu_has_native_bf16, describe_cpu, resolve_precision
from gan.train import Dist, RunSpec, Trainer, TrainingDiverged
from stages.app import app
from stages.params import load_params, params_from_dict
from tests.conftest import ROOT, extract_config

TINY_G = {"depth": 1, "base_width": 8, "growth_rate": 4, "layers_per_block": 2,
          "global_residual": True}
TINY_D = {"width": 8, "layers": 2}
# The rest of a run's settings: params.yaml's, the one source of the values.
TRAIN_PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())["train"]


@pytest.fixture(scope="module")
def patches(tmp_path_factory) -> Path:
    """Aligned patch arrays of a small simulated DPED archive (48 train, 16 test pairs)."""
    root = tmp_path_factory.mktemp("data")
    archive = root / "dped.zip"
    write_sample_zip(archive, "iphone", train_pairs=48, test_pairs=16, seed=4)
    with DpedSource(archive) as source:
        layout = find_layout(source.names(), "iphone")
    extract(archive, layout, root / "patches", extract_config(min_ncc=0.0), workers=1)
    return root / "patches"


def spec_for(patches: Path, **train) -> RunSpec:
    config = {**TRAIN_PARAMS, "steps": 6, "batch_size": 4, "lr_g": 1e-3, "lr_d": 1e-3,
              "log_every": 2, "val_every": 3, "val_patches": 8, "checkpoint_every": 3,
              "device": "cpu", **train}
    return RunSpec(generator="dense_unet", generator_config=TINY_G, discriminator_config=TINY_D,
                   loss=LossWeights(perceptual=0.0, adversarial=1e-3, msssim=1.0, pixel=1.0),
                   vgg_weights="random", distance="l1", msssim_win=5,
                   train=TrainConfig(**config), data=data_fingerprint(patches))


@pytest.mark.slow
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


@pytest.mark.slow
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


def test_batches_loaded_ahead_change_nothing_and_resume_exactly(patches, tmp_path):
    """The next batch loads in a thread while a step computes (gan.train): the run must be the
    one a sequential sampler gives, and a checkpoint made with a batch drawn ahead must resume
    to the same weights."""
    copies = tmp_path / "mid.pt"

    def keep_step_3(step, row):  # the checkpoint of step 3 exists once step 4 is done
        if step == 4:
            shutil.copy(tmp_path / "ahead.pt", copies)

    ahead = Trainer(spec_for(patches, input_noise=0.05), patches, tmp_path / "ahead.pt", Dist())
    ahead.fit(on_step=keep_step_3)
    assert ahead._loader is not None, "no batch was loaded ahead"
    inline = Trainer(spec_for(patches, input_noise=0.05), patches, tmp_path / "inline.pt", Dist())
    inline._prefetch = lambda: None  # every batch drawn and loaded in the step, as before
    inline.fit()
    resumed = Trainer(spec_for(patches, input_noise=0.05), patches, copies, Dist())
    assert resumed.try_resume().endswith("at step 3")
    resumed.fit()
    for other in (inline, resumed):
        for name, value in state(ahead).items():
            assert torch.equal(value, state(other)[name]), name


def test_the_sampler_flips_and_turns_both_sides_alike_and_reads_rows_exactly(patches):
    data = PatchPairs(patches, "train")
    plan = data.draw(np.random.default_rng(5), 16)
    phone, dslr = data.load(plan)
    rows = data.rows[plan.positions]
    for side, got in ((data.phone, phone), (data.dslr, dslr)):
        for k, row in enumerate(rows):
            image = torch.from_numpy(np.array(side[row])).permute(2, 0, 1).float() / 255
            if plan.flips[k]:
                image = image.flip(-1)
            assert torch.equal(got[k], torch.rot90(image, int(plan.turns[k]), dims=(-2, -1)))
    plain = data.draw(np.random.default_rng(5), 4, augment=False)
    assert plain.turns is None
    assert torch.equal(data.load(plain)[0], data.gather(plain.positions)[0])
    # Shards are disjoint and cover every row.
    halves = [PatchPairs(patches, "train", (rank, 2)).rows for rank in range(2)]
    assert not set(halves[0]) & set(halves[1])
    assert sorted([*halves[0], *halves[1]]) == list(range(len(data)))


def test_a_truncated_patch_array_is_named_when_a_batch_reaches_past_its_end(patches, tmp_path):
    shutil.copytree(patches, tmp_path / "p")
    data = PatchPairs(tmp_path / "p", "train")
    path = tmp_path / "p" / "train_dslr.npy"
    os.truncate(path, path.stat().st_size - 96 * 96 * 3 * 2)  # the last two rows gone
    with pytest.raises(ValueError, match=r"train_dslr\.npy: row \d+ lies past the end"):
        data.gather(np.arange(len(data)))


@pytest.mark.slow
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


class _Clock:
    """time for gan.train: a clock that moves only when a training step runs (1 s a step)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def perf_counter(self) -> float:
        return self.now


class _Stopped(Exception):
    pass


@pytest.mark.slow
def test_an_interrupted_and_resumed_run_counts_each_kept_step_once(patches, tmp_path,
                                                                     monkeypatch):
    """A run stopped at step 5 (last checkpoint at 4) and resumed: steps 0-4 of the first
    session and 4-6 of the second make the run; the first session's step 5, lost with it and
    redone, is not counted twice; the ledger says which session did what, where."""
    import gan.train

    clock = _Clock()
    monkeypatch.setattr(gan.train, "time", clock)
    step = Trainer.optimize

    def timed_step(self):
        clock.now += 1.0
        return step(self)

    monkeypatch.setattr(Trainer, "optimize", timed_step)

    def stop_at_5(at: int, row: dict) -> None:
        if at == 5:
            raise _Stopped

    spec = spec_for(patches, steps=6, checkpoint_every=2, val_every=100)
    with pytest.raises(_Stopped):
        Trainer(spec, patches, tmp_path / "r.pt", Dist()).fit(on_step=stop_at_5)
    clock.now += 3600.0  # the hour between the sessions is no training
    resumed = Trainer(spec, patches, tmp_path / "r.pt", Dist())
    assert resumed.try_resume().endswith("at step 4")
    result = resumed.fit()
    assert result.seconds == pytest.approx(6.0)  # 4 + 2, not 5 + 2
    assert result.sessions == [
        {"steps": [0, 4], "seconds": 4.0, "hardware": describe_cpu()},
        {"steps": [4, 6], "seconds": 2.0, "hardware": describe_cpu()}]
    saved = torch.load(tmp_path / "r.pt", weights_only=True)
    assert saved["sessions"] == result.sessions and saved["train_seconds"] == pytest.approx(6.0)
    # A checkpoint from before the ledger: one earlier session, its time the total it kept.
    del saved["sessions"]
    torch.save(saved, tmp_path / "old.pt")
    old = Trainer(spec_for(patches, steps=7, checkpoint_every=2, val_every=100), patches,
                  tmp_path / "old.pt", Dist())
    old.try_resume()  # train.steps is a run-only key: a longer run continues this one
    assert old.step == 6 and old.fit().sessions == [
        {"steps": [0, 6], "seconds": 6.0, "hardware": None},
        {"steps": [6, 7], "seconds": 1.0, "hardware": describe_cpu()}]


def test_the_machine_is_described_with_its_threads_counted_right(monkeypatch):
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    assert ", 1 thread, " in describe_cpu()
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    assert ", 2 threads, " in describe_cpu()


def test_the_revision_is_dirty_for_code_changes_only(tmp_path):
    """The card of a PIRM run said '+dirty' when only params.yaml (its split) had changed."""
    from gan.training_run import git_revision

    def git(*args: str) -> str:
        return subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", *args],
                              cwd=tmp_path, check=True, capture_output=True, text=True).stdout

    git("init", "-q")
    for name in ("params.yaml", "dvc.lock", "code.py", "exp/params.yaml", "old name.py"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text("a: 1\n")
    git("add", ".")
    git("commit", "-qm", "first")
    head = git("rev-parse", "HEAD").strip()
    assert git_revision(cwd=tmp_path) == head
    (tmp_path / "params.yaml").write_text("a: 2\n")
    (tmp_path / "dvc.lock").write_text("b: 2\n")
    (tmp_path / "untracked.py").write_text("")
    assert git_revision(cwd=tmp_path) == head  # an experiment's params and lock: not code
    (tmp_path / "exp" / "params.yaml").write_text("a: 3\n")
    assert git_revision(cwd=tmp_path) == head + "+dirty"  # someone else's params file
    assert git_revision(Path("exp/params.yaml"), cwd=tmp_path) == head  # the run's own
    assert git_revision(tmp_path / "exp" / "params.yaml", cwd=tmp_path) == head
    git("mv", "old name.py", "new name.py")
    assert git_revision(Path("exp/params.yaml"), cwd=tmp_path) == head + "+dirty"
    git("mv", "new name.py", "old name.py")
    (tmp_path / "code.py").write_text("a: 4\n")
    assert git_revision(Path("exp/params.yaml"), cwd=tmp_path) == head + "+dirty"
    assert git_revision(cwd=tmp_path / "exp") == head + "+dirty"  # from a subfolder too


def moved_aside(folder: Path, name: str = "c") -> list[Path]:
    return sorted(p for p in folder.glob(f"{name}.*.pt"))


def test_a_checkpoint_of_other_settings_is_moved_aside_naming_what_differs(patches, tmp_path):
    checkpoint = tmp_path / "c.pt"
    Trainer(spec_for(patches, steps=3), patches, checkpoint, Dist()).fit()
    saved = checkpoint.read_bytes()
    other = spec_for(patches, steps=3, lr_g=5e-4)
    other = replace(other, loss=replace(other.loss, msssim=0.5))
    trainer = Trainer(other, patches, checkpoint, Dist())
    message = trainer.try_resume()
    assert "other settings" in message
    assert "loss.msssim 1.0 there, 0.5 now" in message
    assert "train.lr_g 0.001 there, 0.0005 now" in message
    assert "loss.pixel" not in message  # only what differs
    assert trainer.step == 0 and not checkpoint.exists()
    [aside] = moved_aside(tmp_path)
    assert aside.read_bytes() == saved and str(aside) in message
    trainer.fit()  # the new run's checkpoint takes the name; the old one stays aside
    assert checkpoint.exists() and moved_aside(tmp_path) == [aside]


def test_run_only_settings_do_not_restart_a_run(patches, tmp_path):
    Trainer(spec_for(patches, steps=3), patches, tmp_path / "c.pt", Dist()).fit()
    again = spec_for(patches, steps=5, val_every=1, log_every=1, checkpoint_every=5,
                     val_patches=4, precision="fp32", device="cpu")
    trainer = Trainer(again, patches, tmp_path / "c.pt", Dist())
    assert trainer.try_resume().startswith("resuming") and trainer.step == 3


def test_fewer_steps_than_the_checkpoint_moves_it_aside(patches, tmp_path):
    checkpoint = tmp_path / "c.pt"
    Trainer(spec_for(patches, steps=4), patches, checkpoint, Dist()).fit()
    saved = checkpoint.read_bytes()
    trainer = Trainer(spec_for(patches, steps=2), patches, checkpoint, Dist())
    message = trainer.try_resume()
    assert "is at step 4, beyond train.steps 2" in message
    assert "set train.steps to 4 or more" in message
    [aside] = moved_aside(tmp_path)
    assert aside.read_bytes() == saved and trainer.step == 0


@pytest.mark.parametrize("content", [b"", b"garbage" * 100, "truncated"])
def test_an_unreadable_checkpoint_is_moved_aside_with_the_reason(patches, tmp_path, content):
    checkpoint = tmp_path / "c.pt"
    if content == "truncated":
        Trainer(spec_for(patches, steps=3), patches, checkpoint, Dist()).fit()
        content = checkpoint.read_bytes()[:1000]
    checkpoint.write_bytes(content)
    trainer = Trainer(spec_for(patches, steps=3), patches, checkpoint, Dist())
    message = trainer.try_resume()
    assert message.startswith(f"{checkpoint} cannot be read (")
    [aside] = moved_aside(tmp_path)
    assert aside.read_bytes() == content and trainer.step == 0


def test_a_code_edit_does_not_restart_a_run(patches, tmp_path):
    """The fingerprint is settings and data only: a copy of gan/ with a docstring edited in
    every module resumes the checkpoint the original code wrote."""
    checkpoint = tmp_path / "c.pt"
    Trainer(spec_for(patches, steps=3), patches, checkpoint, Dist()).fit()
    edited = tmp_path / "edited"
    shutil.copytree(ROOT / "gan", edited / "gan", ignore=shutil.ignore_patterns("__pycache__"))
    for module in (edited / "gan").glob("*.py"):
        module.write_text(module.read_text().replace('"""', '"""Edited. ', 1))
    script = (
        "import sys; sys.path.insert(0, sys.argv[1]); sys.path.append(sys.argv[2])\n"
        "import gan, tests.test_train as t\n"
        "assert gan.__file__.startswith(sys.argv[1]), gan.__file__\n"
        "from pathlib import Path\n"
        "trainer = t.Trainer(t.spec_for(Path(sys.argv[3]), steps=3), Path(sys.argv[3]), "
        "Path(sys.argv[4]), t.Dist())\n"
        "print(trainer.try_resume())\n")
    done = subprocess.run([sys.executable, "-c", script, str(edited), str(ROOT), str(patches),
                           str(checkpoint)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"resuming from {checkpoint} at step 3" in done.stdout


def frozen_copy(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.named_parameters()}


def unchanged(module: torch.nn.Module, before: dict[str, torch.Tensor]) -> bool:
    return all(torch.equal(before[k], v) for k, v in module.named_parameters())


def test_the_d_step_leaves_g_alone_and_the_g_step_leaves_d_alone(patches, tmp_path):
    trainer = Trainer(spec_for(patches), patches, tmp_path / "e.pt", Dist())
    for _ in range(2):  # Adam's moments are non-zero from here on
        trainer.optimize()
    phone, dslr = trainer.train_data.sample(trainer.rng, 4)
    fake = trainer.generator(phone)

    g_before, d_before = frozen_copy(trainer.generator), frozen_copy(trainer.discriminator)
    trainer.opt_g.zero_grad(set_to_none=True)
    trainer.opt_d.zero_grad(set_to_none=True)
    trainer.backward_d(fake, dslr)
    assert all(p.grad is None for p in trainer.generator.parameters())
    trainer.opt_d.step()
    trainer.opt_g.step()  # no gradients: G must not move
    assert unchanged(trainer.generator, g_before) and not unchanged(trainer.discriminator,
                                                                     d_before)

    d_before = frozen_copy(trainer.discriminator)
    trainer.opt_d.zero_grad(set_to_none=True)
    trainer.backward_g(trainer.generator(phone), dslr)
    # D's weight gradients were never computed, yet the adversarial term reached G.
    assert all(p.grad is None for p in trainer.discriminator.parameters())
    assert all(p.requires_grad for p in trainer.discriminator.parameters())  # restored
    trainer.opt_g.step()
    trainer.opt_d.step()
    assert unchanged(trainer.discriminator, d_before)
    assert not unchanged(trainer.generator, g_before)


def test_without_the_gan_term_d_is_never_touched(patches, tmp_path):
    run = spec_for(patches)
    run = replace(run, loss=replace(run.loss, adversarial=0.0))
    trainer = Trainer(run, patches, tmp_path / "f.pt", Dist())
    d_before = frozen_copy(trainer.discriminator)
    calls = []
    trainer.discriminator.register_forward_hook(lambda *a: calls.append(1))
    for _ in range(3):
        row = trainer.optimize()
    assert calls == [] and "d_loss" not in row
    assert unchanged(trainer.discriminator, d_before)
    assert all(p.grad is None for p in trainer.discriminator.parameters())


def test_bf16_trains_in_bf16_and_keeps_weights_output_and_metrics_in_fp32(patches, tmp_path):
    trainer = Trainer(spec_for(patches, precision="bf16"), patches, tmp_path / "g.pt", Dist())
    assert trainer.precision == "bf16"
    seen = []
    trainer.generator.head.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    trainer.optimize()
    assert seen == [torch.bfloat16]  # the convolutions ran in bf16
    assert all(p.dtype == torch.float32 for p in trainer.generator.parameters())
    with trainer._autocast():
        out = trainer.generator(torch.rand(2, 3, 32, 32))
    assert out.dtype == torch.float32  # the global residual adds up in fp32
    assert set(trainer.evaluate()) == {"psnr", "ms_ssim", "psnr_infinite"}
    fp32 = Trainer(spec_for(patches, precision="fp32"), patches, tmp_path / "h.pt", Dist())
    assert fp32.precision == "fp32" and fp32.amp_dtype is None


def test_the_weight_average_is_what_the_run_produces(patches, tmp_path):
    trainer = Trainer(spec_for(patches, ema=0.5), patches, tmp_path / "i.pt", Dist())
    # ramped up: (1 + step) / (10 + step) until it reaches train.ema
    assert [trainer.ema_decay(s) for s in (0, 5, 8, 100)] == pytest.approx([0.1, 0.4, 0.5, 0.5])
    trainer.step = 8
    initial = frozen_copy(trainer.generator)
    trainer.optimize()
    assert not unchanged(trainer.generator, initial)  # G moved: the average below is a blend
    for name, value in trainer.ema_generator.named_parameters():
        current = dict(trainer.generator.named_parameters())[name]
        assert torch.allclose(value, 0.5 * initial[name] + 0.5 * current)
    assert trainer.output_generator is trainer.ema_generator
    assert not any(p.requires_grad for p in trainer.ema_generator.parameters())


def test_resume_with_a_weight_average_is_exact(patches, tmp_path):
    straight = Trainer(spec_for(patches, steps=6, ema=0.9), patches, tmp_path / "a.pt", Dist())
    straight.fit()
    Trainer(spec_for(patches, steps=3, ema=0.9), patches, tmp_path / "b.pt", Dist()).fit()
    second = Trainer(spec_for(patches, steps=6, ema=0.9), patches, tmp_path / "b.pt", Dist())
    second.try_resume()
    second.fit()
    for (name, a), (_, b) in zip(straight.ema_generator.state_dict().items(),
                                 second.ema_generator.state_dict().items()):
        assert torch.equal(a, b), name


def test_the_cosine_schedule_sets_both_learning_rates_and_resumes_exactly(patches, tmp_path):
    trainer = Trainer(spec_for(patches, steps=4, lr_cosine_steps=4), patches, tmp_path / "s.pt",
                      Dist())
    assert [trainer.lr_factor(s) for s in (0, 2, 4, 9)] == pytest.approx([1.0, 0.5, 0.0, 0.0])
    trainer.step = 2
    trainer.optimize()
    assert trainer.opt_g.param_groups[0]["lr"] == pytest.approx(0.5 * trainer.cfg.lr_g)
    assert trainer.opt_d.param_groups[0]["lr"] == pytest.approx(0.5 * trainer.cfg.lr_d)
    constant = Trainer(spec_for(patches), patches, tmp_path / "k.pt", Dist())
    assert constant.lr_factor(10**6) == 1.0

    straight = Trainer(spec_for(patches, steps=6, lr_cosine_steps=6), patches, tmp_path / "a.pt",
                       Dist())
    straight.fit()
    Trainer(spec_for(patches, steps=3, lr_cosine_steps=6), patches, tmp_path / "b.pt",
            Dist()).fit()
    second = Trainer(spec_for(patches, steps=6, lr_cosine_steps=6), patches, tmp_path / "b.pt",
                     Dist())
    second.try_resume()
    second.fit()
    for (name, a), (_, b) in zip(state(straight).items(), state(second).items()):
        assert torch.equal(a, b), name


def test_input_noise_perturbs_the_phone_side_only_and_resumes_exactly(patches, tmp_path):
    phone = torch.full((64, 3, 8, 8), 0.5)
    noisy = add_noise(phone, np.random.default_rng(0), 0.1)
    stds = (noisy - phone).flatten(1).std(dim=1)
    assert stds.max() < 0.12 and stds.min() < 0.03 < stds.max()  # per-patch std in [0, 0.1]
    assert torch.equal(noisy, add_noise(phone, np.random.default_rng(0), 0.1))
    assert add_noise(torch.ones(2, 3, 8, 8), np.random.default_rng(0), 0.5).max() == 1.0

    trainer = Trainer(spec_for(patches, input_noise=0.05), patches, tmp_path / "n.pt", Dist())
    sampled, fed, targets = [], [], []
    draw, backward_g = trainer.train_data.sample, trainer.backward_g
    trainer.train_data.sample = lambda *args: sampled.append(draw(*args)) or sampled[-1]  # step 1
    trainer.backward_g = lambda fake, dslr: targets.append(dslr) or backward_g(fake, dslr)
    trainer.g.register_forward_pre_hook(lambda module, inputs: fed.append(inputs[0]))
    trainer.optimize()
    (phone, dslr), = sampled
    assert not torch.equal(fed[0], phone) and (fed[0] - phone).abs().max() < 0.5
    assert torch.equal(targets[0], dslr)  # the DSLR side is the clean patch
    # Resuming draws the same noise: the run equals an uninterrupted one.
    straight = Trainer(spec_for(patches, input_noise=0.05), patches, tmp_path / "a.pt", Dist())
    straight.fit()
    Trainer(spec_for(patches, steps=3, input_noise=0.05), patches, tmp_path / "b.pt",
            Dist()).fit()
    second = Trainer(spec_for(patches, input_noise=0.05), patches, tmp_path / "b.pt", Dist())
    second.try_resume()
    second.fit()
    for (name, a), (_, b) in zip(state(straight).items(), state(second).items()):
        assert torch.equal(a, b), name


# A small fixed params dict and the fingerprint the code before gan.config gave it: a resumable
# checkpoint is matched by this hash, so a refactor of the configs must leave it as it is.
PINNED = {
    "model": {"generator": "dped_resnet", "depth": 2, "base_width": 8, "growth_rate": 4,
              "layers_per_block": 2, "global_residual": False, "guided_radius": 1,
              "guided_eps": 0.01, "resnet_width": 8, "resnet_blocks": 1, "d_width": 8,
              "d_layers": 2, "d_input": "grey"},
    "loss": {"perceptual": 0, "adversarial": 0.01, "msssim": 2, "pixel": 1.0, "color": 0.5,
             "tone": 0.0, "texture": 0.25, "vgg_weights": "random", "distance": "mse",
             "msssim_win": 3},
    "train": {"steps": 10, "batch_size": 4, "lr_g": "1e-4", "lr_d": 0.0002, "beta1": 0.5,
              "beta2": 0.999, "seed": 3, "device": "cpu", "log_every": 1, "val_every": 5,
              "val_patches": 8, "checkpoint_every": 5, "compile": False, "gpus": 1,
              "precision": "fp32", "ema": 0.9, "lr_cosine_steps": 10, "input_noise": 0.05},
}


def test_the_run_fingerprint_and_settings_are_pinned():
    spec = RunSpec.from_params(params_from_dict(copy.deepcopy(PINNED)), "x")
    assert spec.fingerprint() == "fc554a6df306e882"
    settings = spec.settings()
    assert settings["model.width"] == 8 and "model.d_pool" not in settings
    assert settings["loss.perceptual"] == 0 and type(settings["loss.perceptual"]) is int
    assert settings["train.lr_g"] == 1e-4 and "train.steps" not in settings
    # The provenance a trained model records: the three sections key by key, normalised.
    sections = RunSpec.sections(params_from_dict(copy.deepcopy(PINNED)))
    assert list(sections) == ["model", "loss", "train"]
    assert sections["train"] == {**PINNED["train"], "lr_g": 1e-4}
    assert sections["model"] == PINNED["model"] and sections["loss"] == PINNED["loss"]


def test_the_committed_params_keep_their_fingerprint():
    """params.yaml's run as the code before gan.config fingerprinted it (data 'x')."""
    spec = RunSpec.from_params(load_params(ROOT / "params.yaml"), "x")
    assert spec.fingerprint() == "13d37212017f3536"


def test_precision_auto_follows_the_hardware(tmp_path):
    with_bf16 = tmp_path / "cpuinfo1"
    with_bf16.write_text("processor\t: 0\nflags\t\t: fpu sse avx512f avx512_bf16\n")
    without = tmp_path / "cpuinfo2"
    without.write_text("processor\t: 0\nflags\t\t: fpu sse avx2\n")
    assert cpu_has_native_bf16(str(with_bf16)) and not cpu_has_native_bf16(str(without))
    assert not cpu_has_native_bf16(str(tmp_path / "absent"))
    cpu = torch.device("cpu")
    assert resolve_precision("fp32", cpu) is None
    assert resolve_precision("bf16", cpu) == torch.bfloat16
    expected = torch.bfloat16 if cpu_has_native_bf16() else None
    assert resolve_precision("auto", cpu) == expected
    with pytest.raises(ValueError, match="precision must be one of auto, fp32, bf16"):
        resolve_precision("fp16", cpu)


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
    assert payload["provenance"]["hardware"] == describe_cpu()  # where it trained, for its card
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
    assert metrics["sessions"] == 1  # one session made every step
    [session] = payload["provenance"]["sessions"]
    assert session["steps"] == [0, 2] and session["hardware"] == describe_cpu()


def test_an_exploding_but_finite_loss_stops_the_run(patches, tmp_path):
    trainer = Trainer(spec_for(patches, steps=30, lr_g=1e6, lr_d=1e6), patches,
                      tmp_path / "x.pt", Dist())
    with pytest.raises(TrainingDiverged, match=r"the total loss is .* times its running level"):
        trainer.fit()
    assert trainer.step < 5 and not (tmp_path / "x.pt").exists()


def test_a_collapsed_validation_stops_the_run(patches, tmp_path):
    trainer = Trainer(spec_for(patches, steps=3, val_every=1), patches, tmp_path / "c.pt", Dist())
    real = trainer.evaluate

    def collapsed(images=None):
        scores = real(images)
        return scores if images is not None else {**scores, "psnr": 3.0}  # the input stays

    trainer.evaluate = collapsed
    with pytest.raises(TrainingDiverged, match=r"step 1: validation PSNR fell to 3.00 dB"):
        trainer.fit()


def test_the_stage_refuses_a_generator_worse_than_the_input(patches, tmp_path, monkeypatch):
    from gan.train import TrainResult

    params = tiny_params(tmp_path / "params.yaml")
    real_fit = Trainer.fit

    def worse(self, **kwargs):
        result = real_fit(self, **kwargs)
        return TrainResult(**{**result.__dict__, "validation": {
            **result.validation, "psnr": result.baseline["psnr"] - drop[0],
            "ms_ssim": float("nan")}})

    drop = [1.5]
    monkeypatch.setattr(Trainer, "fit", worse)
    args = stage_args(tmp_path, params, patches)
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1 and "1.50 dB below the input's" in result.output
    assert "--accept-worse" in result.output
    assert not (tmp_path / "models" / "generator.pt").exists()
    assert not (tmp_path / "metrics" / "train.json").exists()
    result = CliRunner().invoke(app, [*args, "--accept-worse"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "models" / "generator.pt").exists()
    # NaN is not JSON: it is written as null, so strict readers accept the file
    metrics = json.loads((tmp_path / "metrics" / "train.json").read_text(),
                         parse_constant=lambda c: pytest.fail(f"bare {c} in train.json"))
    assert metrics["val"]["ms_ssim"] is None
    drop[0] = 0.3  # slightly worse (a short run): written, with a warning
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0 and "warning:" in result.output and "0.30 dB below" in result.output


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


@pytest.mark.slow
def test_ddp_on_the_cpu_with_two_gloo_processes(patches, tmp_path):
    params = tiny_params(tmp_path / "params.yaml", gpus=2)
    env = {**os.environ, "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"]}
    done = subprocess.run([sys.executable, "-m", "stages", *stage_args(tmp_path, params, patches)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "starting 2 processes" in done.stdout
    payload = torch.load(tmp_path / "models" / "generator.pt", weights_only=True)
    assert payload["provenance"]["steps"] == 2
    # One writer: rank 0 alone reports, writes the model, the curves and the checkpoint (which
    # carries each rank's own random state: the ranks draw different batches from their own,
    # disjoint shards, test_the_sampler_flips_and_turns_both_sides_alike_and_reads_rows_exactly).
    assert done.stdout.count("generator.pt: step 2") == 1
    checkpoint = torch.load(tmp_path / "models" / "checkpoints" / "last.pt", weights_only=True)
    states = [json.loads(state) for state in checkpoint["numpy_rng"]]
    assert len(states) == 2 and states[0] != states[1]
    written = sorted(p.name for p in (tmp_path / "models").rglob("*") if p.is_file())
    assert written == ["generator.pt", "last.pt"]  # no second writer's leftovers
    curves = pd.read_csv(tmp_path / "metrics" / "train" / "losses.csv")
    assert curves["step"].tolist() == [1, 2]  # rows written once, not once per process


def test_the_seed_is_scoped_to_the_run_and_the_callers_rng_does_not_matter(patches, tmp_path):
    torch.manual_seed(123)
    before = torch.get_rng_state()
    first = Trainer(spec_for(patches, steps=2), patches, tmp_path / "a.pt", Dist())
    assert torch.equal(torch.get_rng_state(), before), "the Trainer moved the caller's RNG"
    first.fit()
    torch.manual_seed(999)  # another caller state: the same run must come out
    second = Trainer(spec_for(patches, steps=2), patches, tmp_path / "b.pt", Dist())
    second.fit()
    for (name, a), b in zip(first.generator.state_dict().items(),
                            second.generator.state_dict().values()):
        assert torch.equal(a, b), name
