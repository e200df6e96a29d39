"""Training the GAN: the alternating D / G step, validation, checkpoints that resume, DDP.

The step follows pix2pix's shape: ``backward_d`` (the discriminator learns DSLR from generated),
``backward_g`` (the generator minimises L_G = perceptual + lambda * GAN + eta * (1 - MS-SSIM)
[+ pixel]), ``optimize`` (one of each). Everything a run needs to continue exactly where it
stopped (both networks, both optimisers, the step, the RNG states, the log rows) goes into one
checkpoint file, written atomically every ``checkpoint_every`` steps.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from gan.checkpoint import atomic_torch_save
from gan.losses import GeneratorLoss, LossWeights, adversarial_d_loss
from gan.metrics import mean_finite, ms_ssim, psnr
from gan.networks import build_discriminator, build_generator
from gan.patches import PatchPairs
from gan.runtime import keep_freed_memory, resolve_device

# Source files whose content decides what a checkpoint means: a resumed run must not continue
# from weights that another version of the code produced.
_CODE = [Path(__file__).with_name(n) for n in ("networks.py", "losses.py", "train.py", "patches.py")]


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite; the message names the step and the term."""


@dataclass
class TrainConfig:
    steps: int = 600
    batch_size: int = 16
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    beta1: float = 0.9
    beta2: float = 0.999
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    log_every: int = 10
    val_every: int = 100
    val_patches: int = 200
    checkpoint_every: int = 100
    compile: bool = False
    gpus: int = 1  # processes under torchrun (GPUs on CUDA; gloo processes on the CPU)


@dataclass
class RunSpec:
    """Everything that defines a training run (its fingerprint decides whether to resume)."""

    generator: str
    generator_config: dict[str, Any]
    discriminator_config: dict[str, Any]
    loss: LossWeights
    vgg_weights: str
    distance: str
    msssim_win: int
    train: TrainConfig
    data: str  # fingerprint of the patch set (gan.patches.data_fingerprint)

    def fingerprint(self) -> str:
        """Hash of what changes the result; ``steps`` is left out so a longer run can continue a
        shorter one, and logging, checkpoint and device choices are left out as well."""
        train = asdict(self.train)
        for key in ("steps", "device", "log_every", "checkpoint_every", "compile"):
            train.pop(key)
        spec = {**asdict(self), "train": train}
        digest = hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode())
        for path in _CODE:
            digest.update(path.read_bytes())
        return digest.hexdigest()[:16]


@dataclass
class Dist:
    """Where this process sits in a data-parallel run (rank 0 of 1 when alone)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device_kind: str) -> Dist:
    """Join the torchrun process group when launched by torchrun, else run alone."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    backend = "nccl" if device_kind == "cuda" else "gloo"
    dist.init_process_group(backend=backend)
    return Dist(rank=dist.get_rank(), world=dist.get_world_size(),
                local_rank=int(os.environ.get("LOCAL_RANK", "0")))


@dataclass
class TrainResult:
    step: int
    seconds: float
    patches_per_s: float
    final: dict[str, float]  # mean of each logged term over the last log rows
    validation: dict[str, float]  # last validation of the generator
    baseline: dict[str, float]  # the same validation of the input (identity)
    losses: list[dict[str, float]] = field(default_factory=list)
    val: list[dict[str, float]] = field(default_factory=list)
    resumed_from: int = 0


class Trainer:
    """One GAN training run on the patches in ``data_dir``; checkpoints go to ``checkpoint``."""

    def __init__(self, spec: RunSpec, data_dir: Path, checkpoint: Path, distributed: Dist):
        cfg = spec.train
        self.spec, self.cfg, self.dist = spec, cfg, distributed
        keep_freed_memory()  # each step allocates the same large activations again
        self.checkpoint = Path(checkpoint)
        self.device = resolve_device(cfg.device, distributed.local_rank)
        self.cuda = self.device.type == "cuda"
        torch.manual_seed(cfg.seed)  # identical initial weights on every rank
        self.generator = build_generator(spec.generator, spec.generator_config).to(self.device)
        self.discriminator = build_discriminator(spec.discriminator_config).to(self.device)
        self.criterion = GeneratorLoss(spec.loss, vgg_weights=spec.vgg_weights,
                                       distance=spec.distance, msssim_win=spec.msssim_win)
        self.criterion.to(self.device)
        # NHWC: what tensor cores want on CUDA, and 15% faster convolutions on this CPU too
        # (oneDNN): measured on the VGG and DenseUNet passes of a 16 x 96 x 96 batch.
        self.generator.to(memory_format=torch.channels_last)
        self.discriminator.to(memory_format=torch.channels_last)
        self.criterion.to(memory_format=torch.channels_last)
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=cfg.lr_g,
                                      betas=(cfg.beta1, cfg.beta2))
        self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=cfg.lr_d,
                                      betas=(cfg.beta1, cfg.beta2))
        self.g, self.d = self.generator, self.discriminator  # what the step calls
        if distributed.world > 1:
            ids = [self.device.index] if self.cuda else None
            self.g = nn.parallel.DistributedDataParallel(self.generator, device_ids=ids)
            self.d = nn.parallel.DistributedDataParallel(self.discriminator, device_ids=ids)
        if cfg.compile:
            self.g, self.d = torch.compile(self.g), torch.compile(self.d)
        self.adversarial = spec.loss.adversarial > 0  # without the GAN term D is not trained
        self.train_data = PatchPairs(data_dir, "train", (distributed.rank, distributed.world))
        self.val_phone, self.val_dslr = self._validation_set(PatchPairs(data_dir, "test"))
        self.rng = np.random.default_rng([cfg.seed, distributed.rank])
        self.losses: list[dict[str, float]] = []
        self.val: list[dict[str, float]] = []
        self.step = 0
        # Wall-clock seconds of training (validation included) up to the current step, summed
        # over every session of this run, so a resumed run reports the speed of the whole run.
        self._seconds_before = 0.0  # sessions before this one, from the checkpoint
        self._session_started: float | None = None

    def seconds_so_far(self) -> float:
        if self._session_started is None:
            return self._seconds_before
        return self._seconds_before + time.perf_counter() - self._session_started

    # -- the GAN step ---------------------------------------------------------------------
    def _autocast(self):
        return torch.autocast("cuda", dtype=torch.bfloat16) if self.cuda else nullcontext()

    def _to_device(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(self.device, non_blocking=True).contiguous(memory_format=torch.channels_last)

    def backward_d(self, fake: torch.Tensor, real: torch.Tensor) -> dict[str, float]:
        """Teach D to tell DSLR patches (label 1) from generated ones (label 0)."""
        with self._autocast():
            real_logits = self.d(real).float()
            fake_logits = self.d(fake.detach()).float()
            loss = adversarial_d_loss(real_logits, fake_logits)
        self._check_finite({"discriminator": loss})
        loss.backward()
        return {"d_loss": loss.item(), "d_real": torch.sigmoid(real_logits).mean().item(),
                "d_fake": torch.sigmoid(fake_logits).mean().item()}

    def backward_g(self, fake: torch.Tensor, real: torch.Tensor) -> dict[str, float]:
        """L_G on the generated patches, with D's opinion of them when the GAN term is on."""
        with self._autocast():
            fake_logits = self.d(fake).float() if self.adversarial else None
            total, terms = self.criterion(fake.float(), real, fake_logits)
        self._check_finite(terms)
        total.backward()
        return {name: value.item() for name, value in terms.items()}

    def optimize(self) -> dict[str, float]:
        """One training step: a D update, then a G update, on a fresh batch."""
        phone, dslr = self.train_data.sample(self.rng, self.cfg.batch_size)
        phone, dslr = self._to_device(phone), self._to_device(dslr)
        # 1. generate
        with self._autocast():
            fake = self.g(phone)
        row: dict[str, float] = {}
        # 2. discriminator step (D sees the generated patches without gradients into G)
        if self.adversarial:
            self.opt_d.zero_grad(set_to_none=True)
            row.update(self.backward_d(fake, dslr))
            self.opt_d.step()
        # 3. generator step (D frozen: its gradients are cleared before its next update)
        self.opt_g.zero_grad(set_to_none=True)
        row.update(self.backward_g(fake, dslr))
        self.opt_g.step()
        return row

    def _check_finite(self, terms: dict[str, torch.Tensor]) -> None:
        for name, value in terms.items():
            if not torch.isfinite(value).all():
                raise TrainingDiverged(
                    f"step {self.step + 1}: the {name} loss is {value.item()}; training stopped. "
                    f"The last good checkpoint ({self.checkpoint}, step "
                    f"{self._checkpoint_step()}) is kept: lower train.lr_g / train.lr_d or the "
                    "loss weights and run again to resume from it")

    def _checkpoint_step(self) -> int | str:
        if not self.checkpoint.exists():
            return "none yet"
        return torch.load(self.checkpoint, map_location="cpu", weights_only=True)["step"]

    # -- validation -----------------------------------------------------------------------
    def _validation_set(self, test: PatchPairs) -> tuple[torch.Tensor, torch.Tensor]:
        count = min(self.cfg.val_patches, len(test))
        positions = np.linspace(0, len(test) - 1, count).round().astype(np.int64)
        return test.gather(positions)

    @torch.no_grad()
    def evaluate(self, images: torch.Tensor | None = None) -> dict[str, float]:
        """PSNR and MS-SSIM (the DPED protocol's) against the DSLR side of the fixed validation
        subset, of the generator's output, or of ``images`` when given (the input: the baseline)."""
        if images is None:
            outputs = []
            self.generator.eval()
            for start in range(0, len(self.val_phone), 64):
                with self._autocast():
                    out = self.generator(self._to_device(self.val_phone[start:start + 64]))
                outputs.append(out.float().cpu())
            self.generator.train()
            images = torch.cat(outputs)
        score, infinite = mean_finite(psnr(images, self.val_dslr))
        ms = ms_ssim(images, self.val_dslr, dtype=torch.float32).mean().item()  # 4x faster
        return {"psnr": score, "ms_ssim": ms,
                "psnr_infinite": infinite}

    # -- checkpoints ----------------------------------------------------------------------
    def save_checkpoint(self) -> None:
        rng_states = [self.rng.bit_generator.state]
        if self.dist.world > 1:
            rng_states = [None] * self.dist.world
            dist.all_gather_object(rng_states, self.rng.bit_generator.state)
        if not self.dist.main:
            return
        atomic_torch_save({
            "step": self.step,
            "fingerprint": self.spec.fingerprint(),
            "generator": self.generator.state_dict(),
            "discriminator": self.discriminator.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "numpy_rng": [json.dumps(s) for s in rng_states],
            "torch_rng": torch.get_rng_state(),
            "losses": self.losses,
            "val": self.val,
            "train_seconds": self.seconds_so_far(),
        }, self.checkpoint)

    def try_resume(self) -> str:
        """Continue from the checkpoint when it belongs to this run; say what happened."""
        if not self.checkpoint.exists():
            return "no checkpoint: starting at step 0"
        state = torch.load(self.checkpoint, map_location="cpu", weights_only=True)
        if state.get("fingerprint") != self.spec.fingerprint():
            return (f"{self.checkpoint} is from other settings, data or code: starting at step 0 "
                    "(it is replaced at the first checkpoint)")
        if state["step"] > self.cfg.steps:
            return (f"{self.checkpoint} is at step {state['step']}, beyond train.steps "
                    f"{self.cfg.steps}: starting at step 0")
        self.generator.load_state_dict(state["generator"])
        self.discriminator.load_state_dict(state["discriminator"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.rng.bit_generator.state = json.loads(state["numpy_rng"][self.dist.rank])
        torch.set_rng_state(state["torch_rng"])
        self.losses, self.val = list(state["losses"]), list(state["val"])
        self.step = int(state["step"])
        self._seconds_before = float(state.get("train_seconds", 0.0))
        return f"resuming from {self.checkpoint} at step {self.step}"

    # -- the loop -------------------------------------------------------------------------
    def fit(self, on_step: Callable[[int, dict[str, float]], None] | None = None,
            on_log: Callable[[], None] | None = None) -> TrainResult:
        """Train up to ``train.steps``; ``on_step(step, row)`` after each step (progress),
        ``on_log()`` whenever new log rows exist (the caller writes the curves)."""
        cfg = self.cfg
        resumed_from = self.step
        baseline = self.evaluate(self.val_phone) if self.dist.main else {}
        window: list[dict[str, float]] = []
        started = self._session_started = time.perf_counter()
        tick, tick_step = started, self.step
        self.generator.train()
        self.discriminator.train()
        while self.step < cfg.steps:
            row = self.optimize()
            self.step += 1
            window.append(row)
            if on_step is not None and self.dist.main:
                on_step(self.step, row)
            last = self.step == cfg.steps
            if self.step % cfg.log_every == 0 or last:
                now = time.perf_counter()
                rate = (self.step - tick_step) * cfg.batch_size * self.dist.world / (now - tick)
                tick, tick_step = now, self.step
                self.losses.append({"step": self.step, **_mean(window), "patches_per_s": rate})
                window = []
            if self.dist.main and (self.step % cfg.val_every == 0 or last):
                self.val.append({"step": self.step, **self.evaluate()})
            if on_log is not None and self.dist.main and (self.step % cfg.log_every == 0 or last):
                on_log()
            if self.step % cfg.checkpoint_every == 0 or last:
                self.save_checkpoint()
        # Over the whole run; a checkpoint from before train_seconds existed has no earlier time,
        # and then only this session's steps count.
        seconds = self.seconds_so_far()
        done = self.step if self._seconds_before > 0 else self.step - resumed_from
        self._session_started = None
        self._seconds_before = seconds
        validation = self.val[-1] if self.val else (self.evaluate() if self.dist.main else {})
        recent = self.losses[-max(1, len(self.losses) // 10):]
        return TrainResult(
            step=self.step, seconds=seconds,
            patches_per_s=done * cfg.batch_size * self.dist.world / seconds if done else 0.0,
            final={k: v for k, v in _mean(recent).items() if k not in ("step", "patches_per_s")},
            validation=validation, baseline=baseline, losses=self.losses, val=self.val,
            resumed_from=resumed_from)


def _mean(rows: list[dict[str, float]]) -> dict[str, float]:
    keys = rows[0].keys() if rows else []
    return {k: float(np.mean([r[k] for r in rows if k in r])) for k in keys}
