"""The networks: the paper's Dense U-Net generator, DPED's ResNet generator (the ablation
baseline) and the paper's discriminator, plus the cost helpers the benchmarks and tests use.

Every image tensor crossing this module's boundary is ``(N, 3, H, W)`` float in ``[0, 1]``.
Generators map such a tensor to one of the same shape and range; the discriminator maps it to
``(N,)`` logits. Each model is built from a ``@dataclass`` config so that a checkpoint can store
``(kind, config_dict)`` and rebuild the exact architecture with :func:`build_generator`.

    g = build_generator("dense_unet", {"base_width": 16})
    d = build_discriminator()
    macs_per_pixel(g)   # ~53K multiply-adds per pixel with the defaults (DPED's: ~400K)
"""

from __future__ import annotations

import math
from dataclasses import asdict, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

# The configs live in gan.config (torch-free): params.yaml's model section builds them there.
from gan.config import (GENERATORS, DenseUNetConfig, DiscriminatorConfig,
                        DpedResNetConfig)

# Negative slope of every LeakyReLU in this file (the value DCGAN and ESRGAN use).
LEAKY_SLOPE = 0.2
# The global residual works in the logit domain; inputs are clamped this far from 0 and 1 so
# that logit(x) stays finite (|logit| <= 6.9). It is also the identity error of the untrained
# Dense U-Net: only pixels closer than this to black or white are moved, by at most this much.
LOGIT_EPS = 1e-3
# Residual branches (the dense blocks' transitions) start with their Kaiming weights scaled
# down, as ESRGAN does for its residual-in-residual dense blocks: each block then starts close
# to the identity and the sum of many branches does not blow up the activations.
RESIDUAL_INIT_SCALE = 0.1


def _make_config(cls: type, config: dict[str, Any] | None) -> Any:
    """``cls(**config)`` with missing keys left at their defaults and unknown keys refused."""
    config = dict(config or {})
    valid = [f.name for f in fields(cls)]
    unknown = sorted(set(config) - set(valid))
    if unknown:
        raise ValueError(
            f"unknown {cls.__name__} key(s) {', '.join(map(repr, unknown))}; "
            f"valid keys are: {', '.join(valid)}"
        )
    return cls(**config)


class _Configured(nn.Module):
    """Mixin giving a model its ``config`` dataclass and a plain-dict view of it."""

    config: Any

    def config_dict(self) -> dict[str, Any]:
        """The config as a plain dict (what a checkpoint stores; ``build_*`` accepts it back)."""
        return asdict(self.config)


# -----------------------------------------------------------------------------
# Dense U-Net (the paper's generator)


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    # Zero padding inside the network: the input itself is reflect-padded once in forward().
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1)


def _act() -> nn.LeakyReLU:
    return nn.LeakyReLU(LEAKY_SLOPE, inplace=True)


class DenseLayer(nn.Module):
    """conv 3x3 + LeakyReLU; no batch norm (BN hurts image-to-image enhancement: it normalises
    away the very brightness and contrast statistics the network must change; ESRGAN removed it).

    (N, in_channels, H, W) -> (N, growth_rate, H, W).
    """

    def __init__(self, in_channels: int, growth_rate: int):
        super().__init__()
        self.conv = _conv3x3(in_channels, growth_rate)
        self.act = _act()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv(x))


class DenseBlock(nn.Module):
    """A DenseNet block with a transition back to its input width and a local residual.

    Layer k sees the concatenation of the block input and the outputs of layers 0..k-1, so its
    conv has ``channels + k * growth_rate`` input channels. A 1x1 conv (the transition, "local
    feature fusion" in RDN's terms) compresses the full concatenation back to ``channels`` and is
    added to the block input: the block learns a correction, which keeps gradients flowing
    through a deep stack of blocks (RDN/ESRGAN's residual dense block).

    (N, channels, H, W) -> (N, channels, H, W).
    """

    def __init__(self, channels: int, growth_rate: int, num_layers: int):
        super().__init__()
        self.layers = nn.ModuleList(
            DenseLayer(channels + k * growth_rate, growth_rate) for k in range(num_layers)
        )
        # Linear on purpose: it is a residual branch, summed with the input.
        self.transition = nn.Conv2d(channels + num_layers * growth_rate, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for layer in self.layers:
            features.append(layer(torch.cat(features, dim=1)))
        return x + self.transition(torch.cat(features, dim=1))


class Upsample(nn.Module):
    """Bilinear x2 resize, then conv 3x3 + LeakyReLU.

    A stride-2 transposed conv makes checkerboard artifacts (Odena et al., Distill 2016): its
    kernel overlaps unevenly, so neighbouring output pixels get different numbers of
    contributions, a periodic pattern that is visible on the smooth skies and walls of photos.
    Resizing first spreads every input pixel evenly; the conv after it then learns the details.

    (N, cin, H, W) -> (N, cout, 2H, 2W).
    """

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = _conv3x3(cin, cout)
        self.act = _act()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
        return self.act(self.conv(x))


class DenseUNet(_Configured):
    """The paper's generator: a U-Net whose every level is a dense block.

    Level i (0 = full resolution) has ``base_width * 2**i`` channels at ``1 / 2**i`` of the
    resolution. Encoder: head conv, then per level a dense block (its output is that level's
    skip) and a 3x3 stride-2 conv down. Bottleneck: a dense block at level ``depth``. Decoder:
    per level up-sampling (bilinear + conv), concatenation with the skip, a 1x1 fuse conv, a
    dense block. An output conv gives a 3-channel map ``r``.

    Global feature learning (global residual): ``r`` is a correction in the logit domain,
    ``out = sigmoid(logit(clamp(x, eps, 1 - eps)) + r)``. The output is always inside (0, 1)
    and smooth in ``r`` (no clipping that would kill gradients), and a global change of
    exposure or contrast is a nearly constant ``r``, which a U-Net's coarse levels produce
    easily. The output conv is zero-initialised, so the untrained network is the identity
    (within ``LOGIT_EPS``) and training starts from the input's quality instead of from noise.
    Without the global residual, ``out = sigmoid(r)`` (flat 0.5 grey when untrained).

    Any H x W works: the input is reflect-padded to a multiple of ``2**depth`` and the output
    cropped back.
    """

    kind = "dense_unet"

    def __init__(self, config: DenseUNetConfig):
        super().__init__()
        self.config = config
        c = config
        widths = [c.base_width * 2**i for i in range(c.depth + 1)]

        def block(width: int) -> DenseBlock:
            return DenseBlock(width, c.growth_rate, c.layers_per_block)

        self.head = _conv3x3(3, widths[0])
        self.encoder = nn.ModuleList(block(w) for w in widths[:-1])
        self.down = nn.ModuleList(
            nn.Sequential(_conv3x3(widths[i], widths[i + 1], stride=2), _act())
            for i in range(c.depth)
        )
        self.bottleneck = block(widths[-1])
        # Decoder modules are indexed by level, like the encoder's: up[i] goes level i+1 -> i.
        self.up = nn.ModuleList(Upsample(widths[i + 1], widths[i]) for i in range(c.depth))
        self.fuse = nn.ModuleList(
            nn.Sequential(nn.Conv2d(2 * widths[i], widths[i], 1), _act()) for i in range(c.depth)
        )
        self.decoder = nn.ModuleList(block(w) for w in widths[:-1])
        self.tail = _conv3x3(widths[0], 3)
        self.smooth = (GuidedOutputFilter(c.guided_radius, c.guided_eps) if c.guided_radius
                       else None)
        self._init_weights()

    def _init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, a=LEAKY_SLOPE, nonlinearity="leaky_relu")
                nn.init.zeros_(module.bias)
        for module in self.modules():
            if isinstance(module, DenseBlock):
                module.transition.weight.data.mul_(RESIDUAL_INIT_SCALE)
        # Zero output conv: r = 0, so the untrained generator returns its input (see class doc).
        nn.init.zeros_(self.tail.weight)
        nn.init.zeros_(self.tail.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) float in [0, 1] -> (N, 3, H, W) float in (0, 1)."""
        _check_image(x)
        height, width = x.shape[-2:]
        multiple = 2**self.config.depth
        pad_h, pad_w = -height % multiple, -width % multiple
        x = _pad(x, pad_h, pad_w)

        # Centre the input so the Kaiming-initialised convs see roughly zero-mean activations.
        h = self.head(x * 2.0 - 1.0)
        skips = []
        for block, down in zip(self.encoder, self.down):
            h = block(h)
            skips.append(h)
            h = down(h)
        h = self.bottleneck(h)
        for i in reversed(range(self.config.depth)):
            h = self.up[i](h)
            h = self.fuse[i](torch.cat([h, skips[i]], dim=1))
            h = self.decoder[i](h)
        r = self.tail(h)

        if self.config.global_residual:
            out = torch.sigmoid(torch.logit(x.clamp(LOGIT_EPS, 1 - LOGIT_EPS)) + r)
        else:
            out = torch.sigmoid(r)
        if self.smooth is not None:
            # On the padded image, like every other layer: the filter's boxes at the bottom
            # and right edges then see what they see when the exporters pad outside the model.
            out = self.smooth(out)
        return out[..., :height, :width]


class GuidedOutputFilter(nn.Module):
    """A self-guided filter (He et al., "Guided image filtering", 2010) per channel, with a
    trainable strength: ``a = var / (var + eps)``, ``b = mean * (1 - a)`` over (2r+1)^2 boxes,
    ``out = box(a) * y + box(b)``. Flat areas (var << eps) are averaged, edges and texture
    (var >> eps) pass. Differentiable, so it is trained with the generator (as in Wu et al.,
    "Fast end-to-end trainable guided filter", CVPR 2018); ``eps`` is learnt per channel in the
    log domain, from ``eps`` (model.guided_eps).

    Why: the trained U-Net keeps the phone's noise and does not learn that smoothing by itself;
    this layer gives it the operation directly (the gains measured with and without it:
    bench/README.md, issue 10). Computed in float32: the variance E[y^2] - E[y]^2 cancels in
    bf16. Clamped to [0, 1]: ``a`` and ``b`` are averaged over different boxes, which can step
    slightly outside.
    """

    # eps = exp(LOG_EPS_SCALE * log_eps_scaled): Adam moves a parameter by about lr per step
    # whatever its gradient's size, so an unscaled log(eps) would barely move in a short run;
    # scaled by 20 it can travel a factor of ~3.
    LOG_EPS_SCALE = 20.0

    def __init__(self, radius: int, eps: float = 3e-4, channels: int = 3):
        super().__init__()
        if radius < 1 or not eps > 0:
            raise ValueError(f"GuidedOutputFilter needs radius >= 1 and eps > 0, "
                             f"got {radius}, {eps}")
        self.radius = radius
        self.log_eps_scaled = nn.Parameter(
            torch.full((1, channels, 1, 1), math.log(eps) / self.LOG_EPS_SCALE))

    @property
    def eps(self) -> torch.Tensor:
        """The current eps per channel, (1, C, 1, 1)."""
        return (self.LOG_EPS_SCALE * self.log_eps_scaled.float()).exp()

    def _box(self, x: torch.Tensor) -> torch.Tensor:
        """The mean over the (2r+1)^2 box around each pixel, borders mirrored. Rows then
        columns, each as a sum of shifted views: faster than avg_pool2d's square window on a
        CPU (bench/guided_filter.py) and, since every slice bound is a constant, traced by the
        exporters for any size."""
        r = self.radius
        can_reflect = r < x.shape[-2] and r < x.shape[-1]
        x = F.pad(x, (r, r, r, r), mode="reflect" if can_reflect else "replicate")
        for axis in (-1, -2):
            views = [x[..., :, s:s - 2 * r or None] if axis == -1
                     else x[..., s:s - 2 * r or None, :] for s in range(2 * r + 1)]
            total = views[0].clone()
            for view in views[1:]:
                total += view
            x = total
        return x / (2 * r + 1) ** 2

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        # float32 throughout: autocast leaves pooling and elementwise ops in their inputs'
        # dtype, so casting y is enough (and keeps the module free of autocast contexts,
        # which the exporters would have to record).
        y = y.float()
        mean = self._box(y)
        var = (self._box(y * y) - mean * mean).clamp(min=0.0)
        a = var / (var + self.eps)
        b = mean - a * mean
        return (self._box(a) * y + self._box(b)).clamp(0.0, 1.0)


def _pad(x: torch.Tensor, pad_h: int, pad_w: int) -> torch.Tensor:
    """Pad bottom/right; reflect (no artificial edge for the convs to see) when the image is
    large enough for it, else replicate (reflect needs the pad to be smaller than the side)."""
    if pad_h == 0 and pad_w == 0:
        return x
    can_reflect = pad_h < x.shape[-2] and pad_w < x.shape[-1]
    return F.pad(x, (0, pad_w, 0, pad_h), mode="reflect" if can_reflect else "replicate")


def _check_image(x: torch.Tensor) -> None:
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(
            f"expected an image batch of shape (N, 3, H, W), got {tuple(x.shape)}; "
            "add a batch dimension with x[None] or convert to RGB"
        )


# -----------------------------------------------------------------------------
# DPED ResNet (the ablation baseline)


class ResidualBlock(nn.Module):
    """DPED's residual block: (conv 3x3, InstanceNorm, ReLU, conv 3x3, InstanceNorm) + skip.

    (N, C, H, W) -> (N, C, H, W).
    """

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.InstanceNorm2d(channels, affine=True),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.InstanceNorm2d(channels, affine=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class DpedResNet(_Configured):
    """DPED's generator (Ignatov et al., ICCV 2017), at full resolution throughout.

    conv 9x9 3 -> width + ReLU; ``blocks`` residual blocks; two conv 3x3 width -> width + ReLU;
    conv 9x9 width -> 3; ``tanh(y) * 0.58 + 0.5``. That output transform is DPED's and spans
    [-0.08, 1.08] (so that pure black and white are reachable without saturating tanh); the
    result is clamped to [0, 1] at the end so both generators share one output range.
    Padding is 'same' (zeros, as in DPED's TensorFlow code), so any H x W works.
    """

    kind = "dped_resnet"

    def __init__(self, config: DpedResNetConfig):
        super().__init__()
        self.config = config
        w = config.width
        self.head = nn.Sequential(nn.Conv2d(3, w, 9, padding=4), nn.ReLU(inplace=True))
        self.blocks = nn.Sequential(*(ResidualBlock(w) for _ in range(config.blocks)))
        self.body = nn.Sequential(
            nn.Conv2d(w, w, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(w, w, 3, padding=1),
            nn.ReLU(inplace=True),
        )
        self.tail = nn.Conv2d(w, 3, 9, padding=4)
        self._init_weights()

    def _init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                nn.init.zeros_(module.bias)
        # The output feeds tanh, not a ReLU: unit gain keeps tanh out of saturation at the start.
        nn.init.kaiming_normal_(self.tail.weight, nonlinearity="linear")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) float in [0, 1] -> (N, 3, H, W) float in [0, 1]."""
        _check_image(x)
        h = self.head(x)
        h = self.body(self.blocks(h))
        return (torch.tanh(self.tail(h)) * 0.58 + 0.5).clamp(0.0, 1.0)


# -----------------------------------------------------------------------------
# Discriminator (the paper's)


class Discriminator(_Configured):
    """Estimates the probability that an image is a DSLR photo rather than a generator output.

    conv 3x3 stride 2 + LeakyReLU (no BN on the first layer, as in DCGAN: normalising the raw
    image's statistics would hide exactly the colour and contrast differences D must see), then
    ``layers - 1`` x (conv 3x3 stride 2, BatchNorm, LeakyReLU) with the width doubling up to
    8 x width, then average pooling to ``pool x pool`` (96x96 patches are 6x6 there already with
    4 layers; other sizes are pooled to it), flatten, linear -> one logit.

    ``forward`` returns logits, because the loss uses BCE-with-logits (numerically stable where
    sigmoid saturates); :meth:`probability` is the paper's single sigmoid output.
    """

    def __init__(self, config: DiscriminatorConfig):
        super().__init__()
        self.config = config
        c = config
        widths = [c.width * 2 ** min(i, 3) for i in range(c.layers)]
        channels = 3 if c.input == "rgb" else 1
        layers: list[nn.Module] = [nn.Conv2d(channels, widths[0], 3, stride=2, padding=1), _act()]
        for cin, cout in zip(widths[:-1], widths[1:]):
            # No conv bias: BatchNorm's shift replaces it.
            layers += [
                nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(cout),
                _act(),
            ]
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(c.pool)
        self.classifier = nn.Linear(widths[-1] * c.pool * c.pool, 1)
        self._init_weights()

    def _init_weights(self) -> None:
        # DCGAN's initialisation: N(0, 0.02) weights, BN scales N(1, 0.02).
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.normal_(module.weight, 0.0, 0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.normal_(module.weight, 1.0, 0.02)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) float in [0, 1] -> (N,) logits (any H, W >= 1)."""
        _check_image(x)
        h = self.features(self._judged(x) * 2.0 - 1.0)  # centred input, as for the generator
        return self.classifier(self.pool(h).flatten(1)).squeeze(1)

    def _judged(self, x: torch.Tensor) -> torch.Tensor:
        """What D sees of an image (DiscriminatorConfig.input)."""
        if self.config.input == "rgb":
            return x
        luma = (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])
        if self.config.input == "grey":
            return luma
        # Centred on 0.5 so the "* 2 - 1" above centres it on 0 like the other inputs.
        return luma - F.avg_pool2d(luma, 5, stride=1, padding=2, count_include_pad=False) + 0.5

    def probability(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) float in [0, 1] -> (N,) probability in (0, 1) that x is a DSLR photo."""
        return torch.sigmoid(self(x))


# -----------------------------------------------------------------------------
# Builders and cost helpers

_GENERATOR_CLASSES: dict[str, tuple[type, type]] = {
    "dense_unet": (DenseUNet, DenseUNetConfig),
    "dped_resnet": (DpedResNet, DpedResNetConfig),
}


def size_multiple(generator: nn.Module) -> int:
    """The multiple a generator's input sides need: its total down-sampling factor, 2 ** depth
    for the Dense U-Net; 1 for DPED's full-resolution ResNet and any module that does not
    down-sample. Tiles start on it (gan.deploy.inference); exports pad to it (gan.deploy.export)."""
    if getattr(generator, "kind", None) == "dense_unet":
        return 2 ** generator.config.depth
    return 1


def build_generator(kind: str, config: dict[str, Any] | None = None) -> nn.Module:
    """A freshly initialised generator.

    kind: one of ``GENERATORS``. config: a plain dict of the kind's config fields (missing keys
    take the defaults; an unknown key raises ValueError). The module has ``.kind``,
    ``.config`` (the dataclass) and ``.config_dict()``; ``build_generator(g.kind,
    g.config_dict())`` rebuilds the same architecture.
    """
    if kind not in _GENERATOR_CLASSES:
        raise ValueError(f"unknown generator kind {kind!r}; expected one of {', '.join(GENERATORS)}")
    model_cls, config_cls = _GENERATOR_CLASSES[kind]
    return model_cls(_make_config(config_cls, config))


def build_discriminator(config: dict[str, Any] | None = None) -> nn.Module:
    """A freshly initialised discriminator from a plain dict of DiscriminatorConfig fields."""
    return Discriminator(_make_config(DiscriminatorConfig, config))


def count_parameters(module: nn.Module) -> int:
    """Number of scalar parameters (shared parameters counted once, frozen ones included)."""
    return sum(p.numel() for p in module.parameters())


def macs_per_pixel(module: nn.Module, height: int = 96, width: int = 96) -> float:
    """Multiply-adds of one forward pass on a (1, 3, height, width) input, per input pixel.

    Counted with forward hooks on Conv2d / ConvTranspose2d / Linear, i.e. the layers that hold
    essentially all the arithmetic (activations, norms, resizes and concatenations are left out).
    Conv2d: kernel area * in_channels / groups * out_channels * output pixels. ConvTranspose2d:
    the same with *input* pixels, since each input pixel is scattered through the kernel once.
    Linear: in_features * out_features per row.
    """
    total = 0

    def hook(layer: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal total
        if isinstance(layer, nn.Conv2d):
            kernel = math.prod(layer.kernel_size) * layer.in_channels // layer.groups
            total += kernel * layer.out_channels * output[0, 0].numel()
        elif isinstance(layer, nn.ConvTranspose2d):
            kernel = math.prod(layer.kernel_size) * layer.out_channels // layer.groups
            total += kernel * layer.in_channels * inputs[0][0, 0].numel()
        elif isinstance(layer, nn.Linear):
            rows = output[0].numel() // layer.out_features
            total += layer.in_features * layer.out_features * rows

    counted = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)
    handles = [m.register_forward_hook(hook) for m in module.modules() if isinstance(m, counted)]
    was_training = module.training
    try:
        param = next(module.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
        dtype = param.dtype if param is not None else torch.float32
        module.eval()  # eval: BatchNorm must not update its running statistics here
        with torch.no_grad():
            module(torch.rand(1, 3, height, width, device=device, dtype=dtype))
    finally:
        module.train(was_training)
        for handle in handles:
            handle.remove()
    return total / (height * width)
