"""Training the GAN: the alternating D / G step, validation, checkpoints that resume, DDP.

The step follows pix2pix's shape: ``backward_d`` (the discriminator learns DSLR from generated),
``backward_g`` (the generator minimises L_G = perceptual + lambda * GAN + eta * (1 - MS-SSIM)
[+ pixel]), ``optimize`` (one of each). Everything a run needs to continue exactly where it
stopped (both networks, both optimisers, the step, the RNG states, the log rows) goes into one
checkpoint file every ``checkpoint_every`` steps; its format, and what happens to one that
cannot be continued, are gan.checkpoint's (the training state).
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import statistics
import time
import weakref
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from gan.checkpoint import (NotResumable, TrainingState, load_training_state, save_training_state,
                            saved_step, set_aside)
from gan.config import LossWeights, Params, TrainConfig
from gan.data.patches import PatchPairs, add_noise
from gan.losses import GeneratorLoss, adversarial_d_loss
from gan.metrics import mean_finite, ms_ssim, psnr
from gan.networks import build_discriminator, build_generator
from gan.runtime import describe_device, resolve_device, resolve_precision

# train.* keys that do not change what a training step computes: a checkpoint made with other
# values of these is continued. ``steps`` is among them so that a longer run continues a
# shorter one; ``device`` and ``precision`` so that a run moves between machines.
RUN_ONLY_KEYS = ("steps", "device", "precision", "log_every", "val_every", "val_patches",
                 "checkpoint_every", "compile")


# Divergence that stays finite (e.g. lr 1e6: losses of 1e15) still ruins a run. A total loss
# this many times above the smaller of the session's first one and the recent median, or a
# validation PSNR this many dB below the input's own, stops the run like a NaN does.
EXPLOSION_FACTOR = 100.0
COLLAPSE_DB = 10.0
_RECENT = 50  # steps in the running median


class TrainingDiverged(RuntimeError):
    """A loss became NaN, infinite or exploded, or validation collapsed; the message names the
    step and what happened."""


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
    data: str  # fingerprint of the patch set (gan.data.patches.data_fingerprint)

    @staticmethod
    def sections(params: Params) -> dict[str, dict[str, Any]]:
        """The ``model``, ``loss`` and ``train`` sections of params.yaml, key by key as
        they are there (what a model's provenance records)."""
        return {"model": asdict(params.model), "loss": asdict(params.loss),
                "train": asdict(params.train)}

    @classmethod
    def from_params(cls, params: Params, data: str) -> RunSpec:
        """The run that the ``model``, ``loss`` and ``train`` sections describe (flat keys ->
        the library's configs); ``data`` is the patch set's fingerprint. The sections were
        checked when they were built (gan.config)."""
        model, loss = params.model, params.loss
        return cls(generator=model.generator, generator_config=model.generator_args(),
                   discriminator_config=model.discriminator_args(), loss=loss.weights(),
                   vgg_weights=loss.vgg_weights, distance=loss.distance,
                   msssim_win=loss.msssim_win, train=params.train, data=data)

    def settings(self) -> dict[str, Any]:
        """What decides the result of the run, as flat ``section.key`` entries: the networks,
        the loss, the training settings except RUN_ONLY_KEYS, and the data's fingerprint. Code
        is not part of it: an edit to a docstring must not throw a long run away."""
        flat: dict[str, Any] = {"model.generator": self.generator}
        flat.update({f"model.{k}": v for k, v in sorted(self.generator_config.items())})
        flat.update({f"model.d_{k}": v for k, v in sorted(self.discriminator_config.items())})
        flat.update({f"loss.{k}": v for k, v in asdict(self.loss).items()})
        flat.update({"loss.vgg_weights": self.vgg_weights, "loss.distance": self.distance,
                     "loss.msssim_win": self.msssim_win})
        flat.update({f"train.{k}": v for k, v in asdict(self.train).items()
                     if k not in RUN_ONLY_KEYS})
        flat["data"] = self.data
        return flat

    def fingerprint(self) -> str:
        """A short hash of :meth:`settings`."""
        text = json.dumps(self.settings(), sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


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
    # The sessions whose steps the run kept, in order (Trainer.sessions): a run that was stopped
    # and resumed has several; seconds is the sum of theirs.
    sessions: list[dict[str, Any]] = field(default_factory=list)


class Trainer:
    """One GAN training run on the patches in ``data_dir``; checkpoints go to ``checkpoint``.

    Precision: with ``train.precision`` bf16 (auto picks it on CUDA and on CPUs with bf16
    hardware) the convolutions of G, D and the VGG19 run under bf16 autocast in channels_last;
    the weights, the optimisers, the generator's output (its global residual adds the bf16
    correction to the fp32 input in fp32), the MS-SSIM loss and every metric stay fp32.
    """

    def __init__(self, spec: RunSpec, data_dir: Path, checkpoint: Path, distributed: Dist):
        cfg = spec.train
        self.spec, self.cfg, self.dist = spec, cfg, distributed
        self.checkpoint = Path(checkpoint)
        self.device = resolve_device(cfg.device, distributed.local_rank)
        self.cuda = self.device.type == "cuda"
        self.amp_dtype = resolve_precision(cfg.precision, self.device)
        # The seed decides the initial weights (identical on every rank); it is scoped to their
        # construction, so the caller's torch RNG is left as it was. Nothing later in a run
        # draws from torch's RNG: batches come from self.rng, the random VGG19 seeds its own.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            self.generator = build_generator(spec.generator, spec.generator_config)
            self.discriminator = build_discriminator(spec.discriminator_config)
        self.generator.to(self.device)
        self.discriminator.to(self.device)
        self.criterion = GeneratorLoss(spec.loss, vgg_weights=spec.vgg_weights,
                                       distance=spec.distance, msssim_win=spec.msssim_win)
        self.criterion.to(self.device)
        # NHWC: the layout in which tensor cores (CUDA) and oneDNN (CPU) convolve fastest.
        self.generator.to(memory_format=torch.channels_last)
        self.discriminator.to(memory_format=torch.channels_last)
        self.criterion.to(memory_format=torch.channels_last)
        # The average of G's weights over the recent steps (Polyak averaging), which is what
        # gets saved and validated when train.ema > 0: on a small data set the last weights
        # wander with the last batches, their average does not.
        self.ema_generator = None
        if cfg.ema > 0:
            self.ema_generator = copy.deepcopy(self.generator).requires_grad_(False)
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=cfg.lr_g,
                                      betas=(cfg.beta1, cfg.beta2))
        self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=cfg.lr_d,
                                      betas=(cfg.beta1, cfg.beta2))
        # What the step calls. The generator step calls D directly, never through DDP: its
        # weights are frozen there, so there is nothing for DDP to all-reduce.
        self.g, self.d, self.d_frozen = self.generator, self.discriminator, self.discriminator
        if distributed.world > 1:
            ids = [self.device.index] if self.cuda else None
            self.g = nn.parallel.DistributedDataParallel(self.generator, device_ids=ids)
            self.d = nn.parallel.DistributedDataParallel(self.discriminator, device_ids=ids)
        if cfg.compile:
            self.g, self.d = torch.compile(self.g), torch.compile(self.d)
            self.d_frozen = torch.compile(self.discriminator)
        self.adversarial = spec.loss.adversarial > 0  # without the GAN term D is not trained
        self.train_data = PatchPairs(data_dir, "train", (distributed.rank, distributed.world))
        self.val_phone, self.val_dslr = self._validation_set(PatchPairs(data_dir, "test"))
        self.rng = np.random.default_rng([cfg.seed, distributed.rank])
        self._loader: ThreadPoolExecutor | None = None  # started on the first step drawn ahead
        self._pending: Future | None = None  # the next step's batch, loading
        self._rng_before_pending: dict[str, Any] | None = None
        self.losses: list[dict[str, float]] = []
        self.val: list[dict[str, float]] = []
        self.step = 0
        # Wall-clock seconds of training (validation included) up to the current step, summed
        # over every session of this run, so a resumed run reports the speed of the whole run.
        # What a session did after its last checkpoint is lost when it stops, and redone (and
        # timed) by the session that resumes: each step's time is counted once.
        self._seconds_before = 0.0  # sessions before this one, from the checkpoint
        self._sessions_before: list[dict[str, Any]] = []  # their ledger, from the checkpoint
        self._session_started: float | None = None
        self._session_from = 0  # the step this session started at
        self.hardware = describe_device(self.device)

    @property
    def output_generator(self) -> nn.Module:
        """The generator this run produces: the weight average when train.ema > 0."""
        return self.ema_generator if self.ema_generator is not None else self.generator

    @property
    def precision(self) -> str:
        return "bf16" if self.amp_dtype == torch.bfloat16 else "fp32"

    def seconds_so_far(self) -> float:
        if self._session_started is None:
            return self._seconds_before
        return self._seconds_before + time.perf_counter() - self._session_started

    def sessions(self) -> list[dict[str, Any]]:
        """The sessions that made the run's steps so far: ``{"steps": [first, last], "seconds":
        s, "hardware": "..."}`` each, in order. seconds and hardware are None for a session
        recorded by a checkpoint older than the ledger (which kept no time, or the total only).
        The current session is in it once it has trained a step."""
        ledger = list(self._sessions_before)
        if self._session_started is not None and self.step > self._session_from:
            ledger.append({"steps": [self._session_from, self.step],
                           "seconds": round(time.perf_counter() - self._session_started, 1),
                           "hardware": self.hardware})
        return ledger

    # -- the GAN step ---------------------------------------------------------------------
    def _autocast(self):
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

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
        """L_G on the generated patches, with D's opinion of them when the GAN term is on.

        D's weights are frozen meanwhile (pix2pix's ``set_requires_grad(D, False)``): the
        gradient flows through D into the generated patches, but D's own weight gradients,
        which its next step would discard, are never computed.
        """
        fake_logits = None
        self.discriminator.requires_grad_(False)
        try:
            with self._autocast():
                if self.adversarial:
                    fake_logits = self.d_frozen(fake).float()
                total, terms = self.criterion(fake.float(), real, fake_logits)
            self._check_finite(terms)
            total.backward()
        finally:
            self.discriminator.requires_grad_(True)
        return {name: value.item() for name, value in terms.items()}

    def optimize(self) -> dict[str, float]:
        """One training step: a D update, then a G update, on a fresh batch."""
        self._schedule_lr()
        phone, dslr = self._next_batch()
        if self.cfg.input_noise > 0:
            phone = add_noise(phone, self.rng, float(self.cfg.input_noise))
        if self.step + 1 < self.cfg.steps:
            self._prefetch()  # the next step's batch loads while this one computes
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
        # 3. generator step (D frozen)
        self.opt_g.zero_grad(set_to_none=True)
        row.update(self.backward_g(fake, dslr))
        self.opt_g.step()
        # 4. the weight average follows
        if self.ema_generator is not None:
            self._update_ema()
        return row

    def lr_factor(self, step: int) -> float:
        """The lr multiplier at ``step``: 1 (constant), or a cosine from 1 to 0 over
        train.lr_cosine_steps steps (0 after them). A function of the step alone, so a
        resumed run continues the schedule exactly."""
        span = int(self.cfg.lr_cosine_steps)
        if span <= 0:
            return 1.0
        return 0.5 * (1.0 + math.cos(math.pi * min(step, span) / span))

    def _schedule_lr(self) -> None:
        factor = self.lr_factor(self.step)
        for optimizer, base in ((self.opt_g, self.cfg.lr_g), (self.opt_d, self.cfg.lr_d)):
            for group in optimizer.param_groups:
                group["lr"] = base * factor

    def ema_decay(self, step: int) -> float:
        """train.ema, ramped up over the first steps as (1 + step) / (10 + step): with a fixed
        0.999 the average would still be 60% the initial weights after 500 steps. A function of
        the step alone, so a resumed run averages exactly as an uninterrupted one."""
        return min(float(self.cfg.ema), (1.0 + step) / (10.0 + step))

    @torch.no_grad()
    def _update_ema(self) -> None:
        decay = self.ema_decay(self.step)
        for average, current in zip(self.ema_generator.parameters(),
                                    self.generator.parameters()):
            average.lerp_(current, 1.0 - decay)

    def _check_finite(self, terms: dict[str, torch.Tensor]) -> None:
        for name, value in terms.items():
            if not torch.isfinite(value).all():
                self._diverged(f"the {name} loss is {value.item()}")

    def _check_explosion(self, total: float, totals: list[float]) -> None:
        """Stop when the total loss explodes against this session's first and recent ones."""
        if totals:
            reference = min(totals[0], statistics.median(totals[-_RECENT:]))
            if reference > 0 and total > EXPLOSION_FACTOR * reference:
                self._diverged(f"the total loss is {total:.3g}, {total / reference:.3g} times its "
                               f"running level ({reference:.3g})")
        totals.append(total)

    def _check_collapse(self, validation: dict[str, float], baseline: dict[str, float]) -> None:
        """Stop when the generator's validation PSNR falls far below the input's own."""
        if baseline and validation["psnr"] < baseline["psnr"] - COLLAPSE_DB:
            self._diverged(f"validation PSNR fell to {validation['psnr']:.2f} dB, "
                           f"{baseline['psnr'] - validation['psnr']:.1f} dB below the input's "
                           f"{baseline['psnr']:.2f} dB", step=self.step)

    def _diverged(self, what: str, step: int | None = None) -> None:
        advice = "Lower train.lr_g / train.lr_d or the loss weights and run again"
        if self.checkpoint.exists():
            saved = saved_step(self.checkpoint)
            kept = (f"The last good checkpoint ({self.checkpoint}, step {saved}) is kept and no "
                    f"model was written. {advice}: the run then starts over, and that checkpoint "
                    "is moved aside, not overwritten")
        else:
            kept = f"No checkpoint had been made yet and no model was written. {advice}"
        raise TrainingDiverged(f"step {step or self.step + 1}: {what}; training stopped. {kept}")

    # -- batches --------------------------------------------------------------------------
    # Loading a batch takes about as long as a GPU step, so the GPU would wait on one loaded in
    # line. The next batch is drawn (cheap: self.rng, in the order a sequential run draws) at
    # the end of this step's random draws and loaded by a thread while this step computes.
    # The rng state a checkpoint saves is the one from before that draw, so a resumed run draws
    # the same batch again: runs stay identical, bit for bit, to unprefetched ones.
    def _next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._pending is None:
            return self.train_data.sample(self.rng, self.cfg.batch_size)
        pending, self._pending, self._rng_before_pending = self._pending, None, None
        return pending.result()

    def _prefetch(self) -> None:
        if self._loader is None:
            self._loader = ThreadPoolExecutor(1, thread_name_prefix="batch-loader")
            weakref.finalize(self, self._loader.shutdown, wait=False, cancel_futures=True)
        self._rng_before_pending = copy.deepcopy(self.rng.bit_generator.state)
        plan = self.train_data.draw(self.rng, self.cfg.batch_size)
        self._pending = self._loader.submit(self.train_data.load, plan)

    def _rng_state(self) -> dict[str, Any]:
        """The rng state as of the end of the current step, before any batch drawn ahead."""
        if self._rng_before_pending is not None:
            return self._rng_before_pending
        return self.rng.bit_generator.state

    # -- validation -----------------------------------------------------------------------
    def _validation_set(self, test: PatchPairs) -> tuple[torch.Tensor, torch.Tensor]:
        count = min(self.cfg.val_patches, len(test))
        positions = np.linspace(0, len(test) - 1, count).round().astype(np.int64)
        return test.gather(positions)

    @torch.no_grad()
    def evaluate(self, images: torch.Tensor | None = None) -> dict[str, float]:
        """PSNR and MS-SSIM (the DPED protocol's) against the DSLR side of the fixed validation
        subset, of the generator's output, or of ``images`` when given (the input: the baseline).
        The generator runs in fp32 here whatever the training precision: validation measures
        the model as `evaluate` and `enhance` will run it."""
        if images is None:
            outputs = []
            generator = self.output_generator
            generator.eval()
            for start in range(0, len(self.val_phone), 64):
                out = generator(self._to_device(self.val_phone[start:start + 64]))
                outputs.append(out.float().cpu())
            generator.train()
            images = torch.cat(outputs)
        score, infinite = mean_finite(psnr(images, self.val_dslr))
        # fp32: the protocol's float64 is not needed to follow training, and slower
        ms = ms_ssim(images, self.val_dslr, dtype=torch.float32).mean().item()
        return {"psnr": score, "ms_ssim": ms,
                "psnr_infinite": infinite}

    # -- checkpoints (the file and its format: gan.checkpoint) ---------------------------
    def save_checkpoint(self) -> None:
        """Write the training state; rank 0 writes it, with every rank's rng state."""
        rng_states = [self._rng_state()]
        if self.dist.world > 1:
            rng_states = [None] * self.dist.world
            dist.all_gather_object(rng_states, self._rng_state())
        if not self.dist.main:
            return
        ema = self.ema_generator
        save_training_state(self.checkpoint, TrainingState(
            step=self.step, fingerprint=self.spec.fingerprint(), settings=self.spec.settings(),
            generator=self.generator.state_dict(),
            discriminator=self.discriminator.state_dict(),
            opt_g=self.opt_g.state_dict(), opt_d=self.opt_d.state_dict(),
            numpy_rng=rng_states, torch_rng=torch.get_rng_state(),
            losses=self.losses, val=self.val,
            train_seconds=self.seconds_so_far(), sessions=self.sessions(),
            ema_generator=ema.state_dict() if ema is not None else None))

    def try_resume(self) -> str:
        """Continue from the checkpoint when it belongs to this run; say what happened.

        A checkpoint that cannot be continued (other settings or data, a step beyond
        train.steps, an unreadable file) is never overwritten: it is moved aside under a dated
        name, the message says why and where, and the run starts at step 0.
        """
        if not self.checkpoint.exists():
            return "no checkpoint: starting at step 0"
        try:
            saved = load_training_state(self.checkpoint, self.spec.fingerprint(),
                                        self.spec.settings(), self.cfg.steps)
        except NotResumable as exc:
            message = set_aside(self.checkpoint, str(exc), move=self.dist.main)
            if self.dist.world > 1:
                dist.barrier()  # no rank starts before rank 0 has moved it
            return message
        self._restore(saved)
        return f"resuming from {self.checkpoint} at step {self.step}"

    def _restore(self, saved: TrainingState) -> None:
        """Take the networks, optimisers, rng states, log rows and clock back from ``saved``."""
        self.generator.load_state_dict(saved.generator)
        self.discriminator.load_state_dict(saved.discriminator)
        if self.ema_generator is not None:
            self.ema_generator.load_state_dict(saved.ema_generator)
        self.opt_g.load_state_dict(saved.opt_g)
        self.opt_d.load_state_dict(saved.opt_d)
        self.rng.bit_generator.state = saved.numpy_rng[self.dist.rank]
        self._pending = self._rng_before_pending = None  # nothing drawn ahead of the restored rng
        torch.set_rng_state(saved.torch_rng)
        self.losses, self.val = saved.losses, saved.val
        self.step = saved.step
        self._seconds_before = saved.train_seconds
        self._sessions_before = saved.sessions

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
        self._session_from = self.step
        tick, tick_step = started, self.step
        self.generator.train()
        self.discriminator.train()
        totals: list[float] = []
        while self.step < cfg.steps:
            row = self.optimize()
            self._check_explosion(row["total"], totals)
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
                self._check_collapse(self.val[-1], baseline)
            if on_log is not None and self.dist.main and (self.step % cfg.log_every == 0 or last):
                on_log()
            if self.step % cfg.checkpoint_every == 0 or last:
                self.save_checkpoint()
        # The speed over the whole run, or over this session's steps when the checkpoint it
        # resumed kept no time.
        seconds = self.seconds_so_far()
        done = self.step if self._seconds_before > 0 else self.step - resumed_from
        sessions = self.sessions()
        self._session_started = None
        self._seconds_before = seconds
        self._sessions_before = sessions
        validation = self.val[-1] if self.val else (self.evaluate() if self.dist.main else {})
        recent = self.losses[-max(1, len(self.losses) // 10):]
        return TrainResult(
            step=self.step, seconds=seconds,
            patches_per_s=done * cfg.batch_size * self.dist.world / seconds if done else 0.0,
            final={k: v for k, v in _mean(recent).items() if k not in ("step", "patches_per_s")},
            validation=validation, baseline=baseline, losses=self.losses, val=self.val,
            resumed_from=resumed_from, sessions=sessions)


def _mean(rows: list[dict[str, float]]) -> dict[str, float]:
    keys = rows[0].keys() if rows else []
    return {k: float(np.mean([r[k] for r in rows if k in r])) for k in keys}
