"""Losses of the generator and the discriminator (Que & Lee, eq. 1).

    L_G = perceptual * L_p + adversarial * L_GAN + msssim * (1 - MS-SSIM) + pixel * L1
          + color * L_colour + tone * L_tone + texture * L_texture

- ``L_p``: distance between VGG19 ``conv5_4`` features taken *before* their ReLU, as ESRGAN
  (Wang et al., the paper's [7]) proposes: the activated features are sparse and lose
  information, and their brightness is inconsistent with the target.
- ``L_GAN``: non-saturating GAN loss on the discriminator's logits.
- ``1 - MS-SSIM``: multi-scale structural similarity (Wang, Simoncelli & Bovik 2003), with a
  window that fits 96x96 patches (see :class:`MSSSIMLoss`).
- ``L1``: an optional pixel term (0 by default, as in the paper).
- ``L_colour``, ``L_tone``, ``L_texture``: optional terms for the DSLR's *look* (0 by default):
  colour on blurred images (DPED's colour loss), and the per-image distributions of luma,
  chroma and fine detail (see :class:`LookLoss`). Pixel and MS-SSIM losses on pairs that are
  aligned only to a pixel and noisy on the phone side are minimised by the conditional mean,
  which is soft, with lifted blacks and flat contrast; a distribution does not care where a
  value sits, so matching distributions asks for the target's blacks, contrast, colourfulness
  and amount of detail without asking for an exact registration of them.

The vocabulary follows BasicSR (explicit weights, a VGG extractor with a named layer and
``use_input_norm``), without its registries. All images are ``(N, 3, H, W)`` float in [0, 1].
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision
from torch import Tensor, nn

from gan.config import LOSS_TERMS, LossWeights
from gan.metrics import MS_SSIM_WEIGHTS  # the standard scale weights (Wang et al. 2003)

VGG19_FILE = "vgg19-dcbb9e9d.pth"  # torchvision's ImageNet VGG19 checkpoint name

# Index of conv5_4 in torchvision's ``vgg19().features``; the slice [:35] ends on it, before
# the ReLU at 35 (and the last max-pool at 36).
CONV5_4 = 34
VGG_LAYER = "conv5_4"

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

MSSSIM_SIGMA = 1.5
MSSSIM_K = (0.01, 0.03)
# Floor for the per-scale contrast-structure (and final SSIM) values before they are raised to
# their fractional weights. See MSSSIMLoss for why a floor and not pytorch-msssim's relu.
MSSSIM_FLOOR = 1e-4


class VGGWeightsError(RuntimeError):
    """The VGG19 weights asked for cannot be had (offline, missing or malformed file)."""


# -- the VGG19 feature extractor ---------------------------------------------------------------

def _vgg19_layers() -> nn.Sequential:
    """``torchvision.models.vgg19().features[:35]`` without building the classifier.

    torchvision's own layer table is used, so indices (and state-dict keys) are exactly those
    of ``vgg19().features``. Building the whole ``vgg19()`` would also initialise its 120M
    classifier parameters (about 2 s on a CPU) only to throw them away.
    """
    layers = torchvision.models.vgg.make_layers(torchvision.models.vgg.cfgs["E"])
    return layers[:CONV5_4 + 1]


def _check_state_dict(state: object, features: nn.Sequential, source: str) -> dict[str, Tensor]:
    """The ``features.*`` entries of a torchvision-format VGG19 state dict, renamed to the keys
    of ``features``; VGGWeightsError saying which keys are missing, unexpected or misshapen."""
    if not isinstance(state, dict):
        raise VGGWeightsError(f"{source}: expected a torchvision VGG19 state dict (a dict of "
                              f"tensors), found a {type(state).__name__}")
    expected = {f"features.{k}": v.shape for k, v in features.state_dict().items()}
    found = {k: v for k, v in state.items() if isinstance(k, str) and k.startswith("features.")}
    missing = sorted(set(expected) - set(found))
    # features.* beyond conv5_4 would mean another layout (e.g. vgg19_bn); classifier.* is
    # simply not needed here.
    unexpected = sorted(set(found) - set(expected))
    misshapen = [f"{k} {tuple(found[k].shape)} (expected {tuple(shape)})"
                 for k, shape in expected.items()
                 if k in found and (not isinstance(found[k], Tensor) or found[k].shape != shape)]
    problems = []
    if missing:
        problems.append(f"missing keys {_few(missing)}")
    if unexpected:
        problems.append(f"unexpected keys {_few(unexpected)}")
    if misshapen:
        problems.append(f"wrong shapes {_few(misshapen)}")
    if problems:
        raise VGGWeightsError(
            f"{source} is not a torchvision VGG19 state dict (keys 'features.0.weight', ..., "
            f"'features.34.bias'): {'; '.join(problems)}. Save one with "
            "torch.save(torchvision.models.vgg19(...).state_dict(), path)")
    return {k.removeprefix("features."): v for k, v in found.items()}


def _few(items: list[str], limit: int = 5) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def _imagenet_state_dict(download: bool) -> dict:
    """torchvision's ImageNet VGG19 weights from the torch hub cache, downloaded when absent
    and allowed; VGGWeightsError telling how to provide them otherwise."""
    weights = torchvision.models.VGG19_Weights.IMAGENET1K_V1
    checkpoints = Path(torch.hub.get_dir()) / "checkpoints"
    cached = checkpoints / VGG19_FILE
    advice = (
        f"Either put {VGG19_FILE} (downloadable from {weights.url}) into {checkpoints} "
        "($TORCH_HOME/hub/checkpoints), or set loss.vgg_weights: /path/to/vgg19.pth in "
        "params.yaml to use a torchvision VGG19 state dict stored elsewhere, or set "
        "loss.vgg_weights: random to train offline with a fixed-seed random VGG19.")
    if not cached.exists() and not download:
        raise VGGWeightsError(f"ImageNet VGG19 weights: {VGG19_FILE} is not in {checkpoints} and "
                              f"downloading is not allowed. {advice}")
    try:
        # check_hash only applies to a download: the file name carries the sha256 prefix.
        return weights.get_state_dict(progress=False, check_hash=True, weights_only=True)
    except Exception as exc:  # URLError, timeouts, hash mismatch, a truncated cached file...
        what = (f"the cached {cached} cannot be read ({exc}): delete it." if cached.exists()
                else f"{VGG19_FILE} is not in {checkpoints} and downloading it failed ({exc}).")
        raise VGGWeightsError(f"ImageNet VGG19 weights: {what} {advice}") from exc


def load_vgg19_features(weights: str | os.PathLike, seed: int = 0, *,
                        download: bool = True) -> nn.Sequential:
    """VGG19 up to ``conv5_4`` before its ReLU: ``torchvision vgg19().features[:35]``, frozen.

    Args:
        weights: where the weights come from.
            ``'imagenet'``: torchvision's ImageNet weights (``VGG19_Weights.IMAGENET1K_V1``),
            read from the torch hub cache ``$TORCH_HOME/hub/checkpoints/vgg19-dcbb9e9d.pth`` and
            downloaded there only when absent and ``download`` is true.
            ``'random'``: a fixed-seed random VGG19, for offline runs. Randomly weighted deep
            networks work as generic perceptual losses (Liu et al., "Generic Perceptual Loss
            for Modeling Structured Output Dependencies", CVPR 2021). The convolutions get
            Kaiming-normal weights in fan-in mode (zero biases), which keeps the activations'
            scale through the 16 layers (He et al. 2015); torchvision's own VGG init uses
            fan-out, which shrinks the signal at every layer that widens, leaving conv5_4
            features about 13x smaller (std ~0.07 against ~0.9 on smooth random 96x96 images) and
            the perceptual term negligible next to 1 - MS-SSIM at equal weights. Still, the
            scale differs from ImageNet features: weights tuned for one do not carry over.
            Anything else: the path of a torchvision-format VGG19 state dict
            (``'features.0.weight'``, ...; ``classifier.*`` keys are ignored).
        seed: the seed of the ``'random'`` weights; the global torch RNG is left untouched.
        download: allow ``'imagenet'`` to download when the file is not cached.

    Returns:
        An ``nn.Sequential`` of 35 modules (16 convolutions, the last ``Conv2d(512, 512, 3)``),
        in eval mode with ``requires_grad`` off: (N, 3, H, W) -> (N, 512, H/16, W/16).

    Raises:
        VGGWeightsError: the weights cannot be had or are not a VGG19 state dict.
    """
    # Building the layers draws from the global RNG (default conv init): fork it so that
    # creating a loss never shifts the random stream of the model or the data.
    with torch.random.fork_rng(devices=[]):
        features = _vgg19_layers()
    source = os.fspath(weights)
    if source == "random":
        generator = torch.Generator().manual_seed(seed)
        for module in features:
            if isinstance(module, nn.Conv2d):  # fan_in: see the docstring
                nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu",
                                        generator=generator)
                nn.init.zeros_(module.bias)
    else:
        if source == "imagenet":
            state = _imagenet_state_dict(download)
            what = f"the cached {Path(torch.hub.get_dir()) / 'checkpoints' / VGG19_FILE}"
        else:
            path = Path(source)
            if not path.is_file():
                raise VGGWeightsError(
                    f"VGG19 weights file {path} does not exist. loss.vgg_weights takes 'imagenet', "
                    "'random' or the path of a torchvision VGG19 state dict")
            try:
                state = torch.load(path, map_location="cpu", weights_only=True)
            except Exception as exc:  # not a torch file, or pickled objects beyond tensors
                raise VGGWeightsError(f"VGG19 weights file {path} cannot be loaded as a state "
                                      f"dict: {exc}") from exc
            what = f"VGG19 weights file {path}"
        features.load_state_dict(_check_state_dict(state, features, what))
    features.requires_grad_(False)
    return features.eval()


class VGGFeatures(nn.Module):
    """Frozen VGG19 ``conv5_4`` features before the ReLU.

    ``forward``: (N, 3, H, W) float in [0, 1] -> (N, 512, H/16, W/16) float (unbounded: taken
    before the activation). With ``use_input_norm`` the ImageNet mean and std are applied
    inside, so callers pass images as they are.
    """

    layer = VGG_LAYER

    def __init__(self, weights: str = "random", use_input_norm: bool = True, seed: int = 0):
        super().__init__()
        self.use_input_norm = use_input_norm
        self.features = load_vgg19_features(weights, seed)
        # Not persistent: constants, not state worth a checkpoint entry.
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.train(False)

    def train(self, mode: bool = True) -> VGGFeatures:
        """Stay in eval mode whatever is asked: the extractor is a fixed measuring device."""
        return super().train(False)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"VGG features need (N, 3, H, W) RGB images, got {tuple(x.shape)}")
        if self.use_input_norm:
            x = (x - self.mean) / self.std
        return self.features(x)


class PerceptualLoss(nn.Module):
    """Mean L1 (or MSE) distance between the VGG19 ``conv5_4`` features (before ReLU) of the
    generated and the target images.

    ``forward(fake, real)``: two (N, 3, H, W) float in [0, 1], H and W at least 16 -> a 0-dim
    tensor >= 0. Gradients flow into ``fake`` only; the target's features are computed without
    a graph.
    """

    def __init__(self, weights: str = "random", distance: str = "l1", seed: int = 0,
                 use_input_norm: bool = True):
        super().__init__()
        if distance not in ("l1", "mse"):
            raise ValueError(f"perceptual distance must be 'l1' or 'mse', got {distance!r}")
        self.distance = distance
        self.vgg = VGGFeatures(weights, use_input_norm=use_input_norm, seed=seed)

    def forward(self, fake: Tensor, real: Tensor) -> Tensor:
        # The distance in fp32 even when the VGG19 runs under bf16 autocast.
        fake_features = self.vgg(fake).float()
        with torch.no_grad():
            real_features = self.vgg(real).float()
        if self.distance == "l1":
            return F.l1_loss(fake_features, real_features)
        return F.mse_loss(fake_features, real_features)


# -- adversarial losses ------------------------------------------------------------------------

def adversarial_d_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """Discriminator loss: binary cross-entropy, DSLR patches -> 1, generated ones -> 0.

    Args:
        real_logits, fake_logits: D's raw scores (any shape), before the sigmoid: the loss is
            computed on logits (log-sum-exp form), which stays finite where sigmoid saturates.

    Returns:
        0-dim tensor, the mean of the real and the fake terms (log 2 when D outputs 0).
    """
    real = F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
    fake = F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    return 0.5 * (real + fake)


def adversarial_g_loss(fake_logits: Tensor) -> Tensor:
    """Non-saturating generator loss: -log D(G(x)), i.e. BCE of the fake logits against 1.

    Unlike log(1 - D(G(x))), its gradient is strong exactly when D rejects the generated
    patches, which is the case early in training. Returns a 0-dim tensor >= 0.
    """
    return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))


# -- MS-SSIM -----------------------------------------------------------------------------------

class MSSSIMLoss(nn.Module):
    """``1 - MS-SSIM`` for images in [0, 1] (data range 1, K = (0.01, 0.03)).

    Setting: a 5x5 Gaussian window (sigma 1.5) at all 5 scales with the standard weights
    [0.0448, 0.2856, 0.3001, 0.2363, 0.1333]. Why: pytorch-msssim, like the usual definition,
    filters 'valid' at every scale, so its 11x11 window needs images larger than
    (11 - 1) * 2**4 = 160 px and 96x96 patches are refused. Shrinking the window keeps what
    the alternative (the 11x11 window on 3 scales, weights renormalised) would drop: the two
    coarsest scales, which carry the global contrast, and the luminance comparison at the
    coarsest one, i.e. the tone and colour shifts that phone -> DSLR enhancement is mostly
    about; and the weights stay the published ones. At 96x96 the scales are 96, 48, 24, 12
    and 6 px (the last comparing 2x2 window positions). The smallest accepted side is
    ``(win_size - 1) * 2**(scales - 1) + 1`` (65 px for the default), as in pytorch-msssim.
    The DPED evaluation metric (11x11 window shrunk at small scales) is a separate function;
    this one is a training loss.

    Negative values: pytorch-msssim's ``ms_ssim`` applies ``relu`` to each scale's
    contrast-structure term before raising it to its fractional weight. That keeps values and
    gradients finite, but a single scale at or below 0 (anti-correlated structure, e.g. the
    large-scale shading of an image inverted) zeroes the whole product and with it every
    gradient of that image: the term goes dead exactly where it is worst. Here the terms are
    clamped at 1e-4 instead, so the scales that are still positive keep pulling the image
    towards its target, and ``x ** w`` is never differentiated at or near 0 (where its
    derivative is infinite). When every scale is negative the term is flat, as with relu, and
    the other loss terms have to bring the image back. Otherwise the computation is
    pytorch-msssim's (its ``ms_ssim`` agrees with this to 1e-6 wherever no term falls below
    the floor, which the tests check).

    Computed in float32 with autocast off: sigma^2 = E[x^2] - E[x]^2 cancels catastrophically
    in half precision.

    ``forward(fake, real)``: two (N, 3, H, W) tensors, float in [0, 1], H, W >= the minimum
    size -> 0-dim tensor in [0, 1] (mean over images and channels; 0 for identical images,
    up to rounding).
    """

    def __init__(self, win_size: int = 5, win_sigma: float = MSSSIM_SIGMA,
                 scale_weights: Sequence[float] = MS_SSIM_WEIGHTS):
        super().__init__()
        if win_size < 3 or win_size % 2 == 0:
            raise ValueError(f"MS-SSIM window size must be odd and at least 3, got {win_size}")
        if not scale_weights or any(w <= 0 for w in scale_weights):
            raise ValueError(f"MS-SSIM scale weights must be positive, got {list(scale_weights)}")
        self.win_size = win_size
        self.scales = len(scale_weights)
        self.min_size = (win_size - 1) * 2 ** (self.scales - 1) + 1
        coords = torch.arange(win_size, dtype=torch.float32) - win_size // 2
        window = torch.exp(-coords**2 / (2 * win_sigma**2))
        self.register_buffer("window", (window / window.sum()).view(1, 1, 1, -1), persistent=False)
        weights = torch.tensor(list(scale_weights), dtype=torch.float32)
        self.register_buffer("scale_weights", weights, persistent=False)

    def _blur(self, x: Tensor) -> Tensor:
        """Separable Gaussian, per channel, 'valid': (N, C, H, W) -> (N, C, H-w+1, W-w+1)."""
        channels = x.shape[1]
        row = self.window.to(x.dtype).expand(channels, 1, 1, self.win_size)
        x = F.conv2d(x, row, groups=channels)
        return F.conv2d(x, row.transpose(2, 3), groups=channels)

    def _ssim_cs(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """Mean SSIM and mean contrast-structure term per image and channel, each (N, C)."""
        c1 = MSSSIM_K[0] ** 2  # data range 1
        c2 = MSSSIM_K[1] ** 2
        mu_x, mu_y = self._blur(x), self._blur(y)
        var_x = self._blur(x * x) - mu_x**2
        var_y = self._blur(y * y) - mu_y**2
        cov = self._blur(x * y) - mu_x * mu_y
        cs_map = (2 * cov + c2) / (var_x + var_y + c2)
        luminance = (2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1)
        return (luminance * cs_map).mean(dim=(2, 3)), cs_map.mean(dim=(2, 3))

    def ms_ssim(self, fake: Tensor, real: Tensor) -> Tensor:
        """MS-SSIM per image, (N,), in [0, 1] (the floor: at least 1e-4 ** sum(weights))."""
        if fake.shape != real.shape or fake.dim() != 4:
            raise ValueError(f"MS-SSIM needs two (N, C, H, W) images of one shape, got "
                             f"{tuple(fake.shape)} and {tuple(real.shape)}")
        if min(fake.shape[-2:]) < self.min_size:
            raise ValueError(
                f"MS-SSIM with a {self.win_size}x{self.win_size} window and {self.scales} scales "
                f"needs images of at least {self.min_size}x{self.min_size} pixels, got "
                f"{fake.shape[-2]}x{fake.shape[-1]}; use a smaller loss.msssim_win")
        dtype = torch.promote_types(fake.dtype, torch.float32)
        with torch.autocast(device_type=fake.device.type, enabled=False):
            x, y = fake.to(dtype), real.to(dtype)
            terms = []
            for scale in range(self.scales):
                ssim, cs = self._ssim_cs(x, y)
                if scale < self.scales - 1:
                    terms.append(cs)
                    # 2x2 average, zero-padding odd sides as pytorch-msssim does
                    padding = [side % 2 for side in x.shape[2:]]
                    x = F.avg_pool2d(x, kernel_size=2, padding=padding)
                    y = F.avg_pool2d(y, kernel_size=2, padding=padding)
            terms.append(ssim)
            stacked = torch.stack(terms).clamp(min=MSSSIM_FLOOR)  # (scales, N, C)
            weights = self.scale_weights.to(dtype).view(-1, 1, 1)
            return torch.prod(stacked**weights, dim=0).mean(dim=1)

    def forward(self, fake: Tensor, real: Tensor) -> Tensor:
        return 1.0 - self.ms_ssim(fake, real).mean()


# -- the look: colour, tone and texture -------------------------------------------------------

class LookLoss(nn.Module):
    """Terms that compare how two images look rather than where each value sits.

    - :meth:`color`: L1 between the images blurred by a Gaussian (sigma 3 px, 21 taps, as DPED's
      colour loss): brightness and colour without the texture, so a pixel of misalignment or
      the phone's noise costs nothing.
    - :meth:`tone`: per image, the sorted luma values of output and target compared (L1): the
      1-D Wasserstein distance between their luma histograms, which is what black level,
      contrast and brightness are made of; and the same for chroma, max(RGB) - min(RGB), the
      colourfulness. Differentiable through the sort (the gradient goes to the pixel that holds
      each rank).
    - :meth:`texture`: per image, the sorted absolute Laplacians of luma compared the same way:
      the amount of fine detail, whatever its position. Noise would match it too, which is why
      it is only ever used beside MS-SSIM, which punishes detail that is not the target's.

    All three: (N, 3, H, W) float in [0, 1] -> a 0-dim tensor >= 0, computed in fp32.
    """

    BLUR_SIGMA = 3.0
    BLUR_TAPS = 21

    def __init__(self):
        super().__init__()
        radius = self.BLUR_TAPS // 2
        axis = torch.arange(-radius, radius + 1, dtype=torch.float32)
        taps = torch.exp(-axis**2 / (2 * self.BLUR_SIGMA**2))
        self.register_buffer("taps", (taps / taps.sum()).view(1, 1, 1, -1), persistent=False)
        laplacian = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])
        self.register_buffer("laplacian", laplacian.view(1, 1, 3, 3), persistent=False)

    def _blur(self, x: Tensor) -> Tensor:
        """Separable Gaussian, borders reflected, per channel."""
        n, c, h, w = x.shape
        x = x.reshape(n * c, 1, h, w)
        pad = self.BLUR_TAPS // 2
        x = F.conv2d(F.pad(x, (pad, pad, 0, 0), mode="reflect"), self.taps)
        x = F.conv2d(F.pad(x, (0, 0, pad, pad), mode="reflect"), self.taps.transpose(2, 3))
        return x.reshape(n, c, h, w)

    @staticmethod
    def _luma(x: Tensor) -> Tensor:
        r, g, b = x.unbind(1)
        return (0.299 * r + 0.587 * g + 0.114 * b).unsqueeze(1)

    @staticmethod
    def _sorted_l1(a: Tensor, b: Tensor) -> Tensor:
        """Mean |sort(a) - sort(b)| per image: (N, ...) -> 0-dim."""
        return (a.flatten(1).sort(dim=1).values - b.flatten(1).sort(dim=1).values).abs().mean()

    def color(self, fake: Tensor, real: Tensor) -> Tensor:
        with torch.autocast(fake.device.type, enabled=False):
            return F.l1_loss(self._blur(fake.float()), self._blur(real.float()))

    def tone(self, fake: Tensor, real: Tensor) -> Tensor:
        fake, real = fake.float(), real.float()
        luma = self._sorted_l1(self._luma(fake), self._luma(real))
        chroma = self._sorted_l1(fake.amax(1) - fake.amin(1), real.amax(1) - real.amin(1))
        return luma + chroma

    def texture(self, fake: Tensor, real: Tensor) -> Tensor:
        with torch.autocast(fake.device.type, enabled=False):  # the convolutions in fp32 too
            detail = [F.conv2d(self._luma(x.float()), self.laplacian).abs() for x in (fake, real)]
        return self._sorted_l1(*detail)


# -- the generator's composite loss ------------------------------------------------------------

class GeneratorLoss(nn.Module):
    """``L_G = perceptual * L_p + adversarial * L_GAN + msssim * (1 - MS-SSIM) + pixel * L1``.

    A term whose weight is 0 is not computed (the VGG19 is not even built when ``perceptual``
    is 0 at construction) and is reported as 0. Weights may be changed on ``self.weights``
    later, except switching the perceptual term on when it was built without it.
    """

    TERMS = LOSS_TERMS

    def __init__(self, weights: LossWeights, vgg_weights: str = "random", distance: str = "l1",
                 msssim_win: int = 5):
        super().__init__()
        self.weights = weights
        self.perceptual = (PerceptualLoss(vgg_weights, distance) if weights.perceptual > 0
                           else None)
        self.msssim = MSSSIMLoss(msssim_win)
        self.look = LookLoss()

    def forward(self, fake: Tensor, real: Tensor, fake_logits: Tensor | None = None
                ) -> tuple[Tensor, dict[str, Tensor]]:
        """The weighted total and every term.

        Args:
            fake: generated images, (N, 3, H, W) float in [0, 1] (gradients flow into it).
            real: the DSLR targets, same shape.
            fake_logits: D's logits for ``fake``; None skips the adversarial term (validation).

        Returns:
            ``(total, terms)``: ``total`` a 0-dim tensor with a graph (none when every term is
            skipped); ``terms`` the detached 0-dim, *unweighted* value of each term
            ('perceptual', 'adversarial', 'msssim' = 1 - MS-SSIM, 'pixel', 'color', 'tone',
            'texture'; 0 when skipped)
            and the detached 'total'.
        """
        w = self.weights
        values: dict[str, Tensor] = {}
        if w.perceptual > 0:
            if self.perceptual is None:
                raise RuntimeError("the perceptual weight was 0 when this GeneratorLoss was "
                                   "built, so it has no VGG19; build a new one to use it")
            values["perceptual"] = self.perceptual(fake, real)
        if w.adversarial > 0 and fake_logits is not None:
            values["adversarial"] = adversarial_g_loss(fake_logits)
        if w.msssim > 0:
            values["msssim"] = self.msssim(fake, real)
        if w.pixel > 0:
            values["pixel"] = F.l1_loss(fake, real)
        if w.color > 0:
            values["color"] = self.look.color(fake, real)
        if w.tone > 0:
            values["tone"] = self.look.tone(fake, real)
        if w.texture > 0:
            values["texture"] = self.look.texture(fake, real)

        total = fake.new_zeros((), dtype=torch.float32)
        for name, value in values.items():
            total = total + getattr(w, name) * value.float()
        zero = total.new_zeros(()).detach()
        terms = {name: values[name].detach().float() if name in values else zero
                 for name in self.TERMS}
        terms["total"] = total.detach()
        return total, terms
