"""Generators, discriminator and cost helpers of gan.networks, on tiny configs and tensors."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from gan.networks import (
                          GENERATORS,
                          LOGIT_EPS,
                          DenseBlock,
                          DenseUNetConfig,
                          GuidedOutputFilter,
                          build_discriminator,
                          build_generator,
                          count_parameters,
                          macs_per_pixel,
                          )

# Small enough that the whole file runs in seconds on two cores, deep enough to pad and crop.
TINY = {
    "dense_unet": {"depth": 2, "base_width": 4, "growth_rate": 4, "layers_per_block": 2},
    "dped_resnet": {"width": 8, "blocks": 1},
}


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.mark.parametrize("kind", GENERATORS)
@pytest.mark.parametrize("shape", [(1, 3, 37, 53), (2, 3, 96, 96), (1, 3, 17, 100), (1, 3, 2, 2)])
def test_generator_keeps_shape(kind: str, shape: tuple[int, ...]) -> None:
    g = build_generator(kind, TINY[kind])
    with torch.no_grad():
        # Nudge the zero-initialised output conv so the output is not just the input.
        for p in g.parameters():
            p.add_(0.1 * torch.randn_like(p))
        y = g(torch.rand(shape))
    assert y.shape == shape


@pytest.mark.parametrize("bias, bound", [(5.0, 1.0), (-5.0, 0.0)])
def test_dped_resnet_output_is_clamped_to_the_unit_range(bias: float, bound: float) -> None:
    # tanh(y) * 0.58 + 0.5 spans [-0.08, 1.08]: saturated, only the clamp keeps it in [0, 1].
    g = build_generator("dped_resnet", TINY["dped_resnet"])
    with torch.no_grad():
        g.tail.bias.fill_(bias)
        y = g(torch.rand(1, 3, 16, 16))
    assert torch.equal(y, torch.full_like(y, bound))


def test_untrained_dense_unet_is_identity() -> None:
    g = build_generator("dense_unet")  # the defaults: what training really starts from
    x = torch.rand(2, 3, 45, 61)
    x[0, 0, :4, :4] = 0.0  # pure black and white: the clamped logit moves them by LOGIT_EPS
    x[0, 1, :4, :4] = 1.0
    with torch.no_grad():
        assert (g(x) - x).abs().max() <= LOGIT_EPS + 1e-6


def test_dense_unet_without_global_residual_starts_grey() -> None:
    g = build_generator("dense_unet", {**TINY["dense_unet"], "global_residual": False})
    with torch.no_grad():
        assert torch.allclose(g(torch.rand(1, 3, 16, 16)), torch.full((1, 3, 16, 16), 0.5))


def test_guided_filter_smooths_flat_areas_and_keeps_edges() -> None:
    smooth = GuidedOutputFilter(radius=2)
    flat = 0.5 + 0.01 * torch.randn(1, 3, 32, 32)  # noise of std 2.5 grey levels, var << eps
    edge = torch.zeros(1, 3, 32, 32)
    edge[..., 16:] = 1.0  # var >> eps next to the step
    with torch.no_grad():
        assert smooth(flat).std() < 0.5 * flat.std()
        out = smooth(edge)
    # Away from the step nothing changes; beside it the step is still a step.
    assert torch.equal(out[..., :12], edge[..., :12]) and torch.equal(out[..., 20:], edge[..., 20:])
    assert out[..., 15].max() < 0.1 and out[..., 16].min() > 0.9


def test_guided_filter_runs_in_float32_under_bf16_autocast_and_learns_its_eps() -> None:
    smooth = GuidedOutputFilter(radius=1)
    y = torch.rand(2, 3, 20, 20)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = smooth(y.bfloat16())
    assert out.dtype == torch.float32
    assert torch.allclose(out, smooth(y.bfloat16().float()))
    smooth(y).sum().backward()
    assert torch.allclose(smooth.eps, torch.full((1, 3, 1, 1), 3e-4))
    assert smooth.log_eps_scaled.grad is not None and smooth.log_eps_scaled.grad.abs().sum() > 0
    # One Adam-sized step on the stored parameter moves eps by a factor exp(20 * lr), not exp(lr).
    with torch.no_grad():
        smooth.log_eps_scaled -= 0.01
    assert torch.allclose(smooth.eps, torch.full((1, 3, 1, 1), 3e-4 * math.exp(-0.2)))


@pytest.mark.parametrize("shape", [(1, 3, 37, 53), (1, 3, 2, 2)])
def test_dense_unet_with_the_guided_filter(shape: tuple[int, ...]) -> None:
    g = build_generator("dense_unet", {**TINY["dense_unet"], "guided_radius": 3})
    assert isinstance(g.smooth, GuidedOutputFilter)
    x = torch.rand(shape)
    with torch.no_grad():
        y = g(x)
    assert y.shape == shape and 0.0 <= y.min() and y.max() <= 1.0
    if shape[-1] > 3:  # reflect-padded by the U-Net as by the filter: the identity, then the filter
        assert torch.allclose(y, g.smooth(x), atol=LOGIT_EPS + 1e-6)
    assert build_generator("dense_unet", TINY["dense_unet"]).smooth is None
    with pytest.raises(ValueError,
                       match=r"guided_radius must be an integer in 0\.\.64 \(0: none\), got -1"):
        DenseUNetConfig(guided_radius=-1)
    with pytest.raises(ValueError, match="guided_eps must be a number > 0"):
        DenseUNetConfig(guided_eps=0.0)
    g = build_generator("dense_unet", {**TINY["dense_unet"], "guided_radius": 1,
                                       "guided_eps": 0.01})
    assert torch.allclose(g.smooth.eps, torch.full((1, 3, 1, 1), 0.01))


@pytest.mark.parametrize("kind", GENERATORS)
def test_gradients_reach_every_parameter(kind: str) -> None:
    g = build_generator(kind, TINY[kind])
    x, target = torch.rand(2, 3, 24, 24), torch.rand(2, 3, 24, 24)
    # The zero-initialised output conv blocks the flow to earlier layers on the very first
    # backward; one plain SGD step opens it. (Written out: building a torch.optim optimizer
    # costs seconds of lazy imports.)
    for _ in range(2):
        g.zero_grad()
        (g(x) - target).abs().mean().backward()
        with torch.no_grad():
            for p in g.parameters():
                p -= 0.1 * p.grad
    missing = [n for n, p in g.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing


@pytest.mark.parametrize("size", [96, 128])
def test_discriminator_gives_one_logit_per_image(size: int) -> None:
    d = build_discriminator({"width": 8})
    x = torch.rand(3, 3, size, size)
    logits = d(x)
    assert logits.shape == (3,)
    # the paper's single sigmoid output is the probability of the same logits
    torch.testing.assert_close(d.probability(x), torch.sigmoid(logits))
    logits.sum().backward()  # the logits are differentiable w.r.t. every parameter of D
    assert all(p.grad is not None for p in d.parameters())


@pytest.mark.parametrize("judged", ["grey", "highpass"])
def test_discriminator_judging_texture_is_blind_to_what_it_leaves_out(judged: str) -> None:
    """DPED's texture discriminator: on luma, D cannot tell two images that differ by a
    change of hue at the same luma; on the high-pass luma, not even by a brightness offset."""
    d = build_discriminator({"width": 8, "input": judged}).eval()
    assert d.features[0].in_channels == 1
    x = torch.rand(2, 3, 96, 96) * 0.5 + 0.25
    luma = 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]
    grey = luma.unsqueeze(1).expand_as(x).contiguous()  # other colours, the same luma
    torch.testing.assert_close(d(x), d(grey))
    if judged == "highpass":
        torch.testing.assert_close(d(x), d(x + 0.1), atol=1e-5, rtol=1e-4)
    else:
        assert not torch.allclose(d(x), d(x + 0.1))
    with pytest.raises(ValueError, match="highpass"):
        build_discriminator({"input": "colour"})


def test_discriminator_single_image_in_eval() -> None:
    d = build_discriminator({"width": 8}).eval()
    assert d(torch.rand(1, 3, 96, 96)).shape == (1,)


@pytest.mark.parametrize("kind", GENERATORS)
def test_build_generator_round_trip(kind: str) -> None:
    g = build_generator(kind, TINY[kind])
    assert g.kind == kind
    assert g.config_dict() == {**type(g.config)().__dict__, **TINY[kind]}
    rebuilt = build_generator(g.kind, g.config_dict())
    a, b = g.state_dict(), rebuilt.state_dict()
    assert list(a) == list(b)
    assert all(a[k].shape == b[k].shape for k in a)


def test_unknown_config_key_and_kind_are_refused() -> None:
    with pytest.raises(ValueError, match="bogus_width") as err:
        build_generator("dense_unet", {"bogus_width": 3})
    assert "growth_rate" in str(err.value)  # the valid keys are listed
    with pytest.raises(ValueError, match="poool"):
        build_discriminator({"poool": 4})
    with pytest.raises(ValueError, match="dense_unet"):
        build_generator("unet")
    with pytest.raises(ValueError, match="depth"):
        build_generator("dense_unet", {"depth": -1})


def test_macs_of_single_layers() -> None:
    assert macs_per_pixel(nn.Conv2d(3, 8, 3, padding=1)) == 3 * 8 * 9
    # Stride 2 has a quarter of the output pixels; groups divide the input channels.
    grouped = nn.Sequential(nn.Conv2d(3, 4, 1), nn.Conv2d(4, 8, 3, stride=2, padding=1, groups=2))
    assert macs_per_pixel(grouped, 32, 32) == 3 * 4 + 2 * 8 * 9 / 4
    lin = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 5))
    assert macs_per_pixel(lin, 4, 4) == 48 * 5 / 16


def test_dense_unet_costs_a_quarter_of_dped() -> None:
    # 48x48 is exact for both (all 'same' convs; 48 is a multiple of 2**depth) and quick.
    dped = macs_per_pixel(build_generator("dped_resnet"), 48, 48)
    assert 350_000 <= dped <= 450_000
    assert macs_per_pixel(build_generator("dense_unet"), 48, 48) <= dped / 4
    assert count_parameters(nn.Conv2d(3, 8, 3)) == 3 * 8 * 9 + 8


def test_dense_connectivity() -> None:
    config = DenseUNetConfig()
    g = build_generator("dense_unet")
    blocks = [m for m in g.modules() if isinstance(m, DenseBlock)]
    assert len(blocks) == 2 * config.depth + 1  # encoder, bottleneck, decoder
    for block in blocks:
        channels = block.transition.out_channels
        assert len(block.layers) == config.layers_per_block
        for k, layer in enumerate(block.layers):
            assert layer.conv.in_channels == channels + k * config.growth_rate
            assert layer.conv.out_channels == config.growth_rate
        assert block.transition.in_channels == channels + len(block.layers) * config.growth_rate
