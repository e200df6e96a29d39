"""Losses: the VGG19 cut and its weights (offline), perceptual, adversarial, MS-SSIM, composite.

No test may touch the network: TORCH_HOME points to an empty temporary folder and torch hub's
download function raises for every test in this file.
"""

from __future__ import annotations

import math
import os
import urllib.error
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import torchvision
from pytorch_msssim import ms_ssim
from torch import nn

from gan.losses import (
                        VGG19_FILE,
                        GeneratorLoss,
                        LookLoss,
                        LossWeights,
                        MSSSIMLoss,
                        PerceptualLoss,
                        VGGFeatures,
                        VGGWeightsError,
                        adversarial_d_loss,
                        adversarial_g_loss,
                        load_vgg19_features,
                        )

# Known values planted in the test state dict.
FIRST_WEIGHT = 0.125  # features.0.weight[0, 0, 0, 0]
LAST_BIAS = 0.5  # every element of features.34.bias (conv5_4)


@pytest.fixture(autouse=True)
def offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """An empty torch home and no downloads; returns the URLs a download was attempted for."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    attempts: list[str] = []

    def refuse(url: str, *args, **kwargs) -> None:
        attempts.append(url)
        raise urllib.error.URLError("tests run offline")

    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    return attempts


@pytest.fixture(scope="module")
def tv_state() -> dict[str, torch.Tensor]:
    """A torchvision-format VGG19 state dict with known values: the keys and shapes of
    ``vgg19(weights=None).state_dict()``, seeded random values, and of the classifier only its
    last bias (ignored by the loader; the full classifier would cost 500 MB and 2 s)."""
    with torch.device("meta"):  # keys and shapes without initialising 140M parameters
        reference = torchvision.models.vgg19(weights=None).state_dict()
    shapes = {k: v.shape for k, v in reference.items()}
    g = torch.Generator().manual_seed(0)
    state = {k: 0.01 * torch.randn(shape, generator=g) for k, shape in shapes.items()
             if k.startswith("features.") or k == "classifier.6.bias"}
    state["features.0.weight"][0, 0, 0, 0] = FIRST_WEIGHT
    state["features.34.bias"].fill_(LAST_BIAS)
    return state


def smooth(n: int, size: int, seed: int) -> torch.Tensor:
    """(n, 3, size, size) float in [0, 1]: random colour structure at several scales."""
    g = torch.Generator().manual_seed(seed)
    coarse = F.interpolate(torch.rand(n, 3, 6, 6, generator=g), size=size, mode="bilinear")
    medium = F.interpolate(torch.rand(n, 3, size // 4, size // 4, generator=g), size=size,
                           mode="bilinear")
    fine = torch.rand(n, 3, size, size, generator=g)
    return (0.5 * coarse + 0.35 * medium + 0.15 * fine).clamp(0, 1)


# -- the VGG19 cut ------------------------------------------------------------------------------

def test_cut_is_conv5_4_before_its_relu():
    features = load_vgg19_features("random")
    assert len(features) == 35
    last = features[-1]
    assert isinstance(last, nn.Conv2d)
    assert (last.in_channels, last.out_channels, last.kernel_size) == (512, 512, (3, 3))
    assert sum(isinstance(m, nn.Conv2d) for m in features) == 16
    assert not isinstance(features[-1], nn.ReLU)
    assert features(torch.rand(1, 3, 32, 32)).shape == (1, 512, 2, 2)


def test_layout_is_torchvisions_vgg19():
    with torch.device("meta"):  # no memory, no init cost: only the layout is compared
        reference = torchvision.models.vgg19(weights=None).features[:35]
    ours = load_vgg19_features("random")
    assert [type(m) for m in ours] == [type(m) for m in reference]
    assert {k: v.shape for k, v in ours.state_dict().items()} == \
        {k: v.shape for k, v in reference.state_dict().items()}


def test_feature_extractor_output_and_input_norm():
    x = torch.rand(2, 3, 32, 32)
    normed = VGGFeatures("random", use_input_norm=True)
    raw = VGGFeatures("random", use_input_norm=False)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    out = normed(x)
    assert out.shape == (2, 512, 2, 2)
    torch.testing.assert_close(out, raw((x - mean) / std))
    with pytest.raises(ValueError, match="RGB"):
        normed(torch.rand(1, 1, 32, 32))


# -- 'random' weights ---------------------------------------------------------------------------

def test_random_weights_are_seeded():
    a, b = load_vgg19_features("random", seed=0), load_vgg19_features("random", seed=0)
    other = load_vgg19_features("random", seed=1)
    for (name, pa), pb, po in zip(a.named_parameters(), b.parameters(), other.parameters()):
        assert torch.equal(pa, pb), name
        if name.endswith("weight"):  # biases are zero whatever the seed
            assert not torch.equal(pa, po), name


def test_random_features_keep_a_usable_scale():
    # fan-in Kaiming init: conv5_4 features of order 1, not shrunk layer after layer
    features = load_vgg19_features("random")
    with torch.no_grad():
        std = features(smooth(2, 64, 0)).std().item()
    assert 0.2 < std < 5


def test_random_weights_leave_the_global_rng_alone():
    torch.manual_seed(123)
    before = torch.rand(4)
    load_vgg19_features("random", seed=7)
    PerceptualLoss("random", seed=3)
    after = torch.rand(4)
    torch.manual_seed(123)
    assert torch.equal(torch.cat([before, after]), torch.rand(8))


# -- weights from a file ------------------------------------------------------------------------

def test_state_dict_from_a_path(tmp_path: Path, tv_state):
    path = tmp_path / "vgg19.pth"
    torch.save(tv_state, path)
    features = load_vgg19_features(str(path))
    assert features[0].weight[0, 0, 0, 0].item() == FIRST_WEIGHT
    assert torch.all(features[34].bias == LAST_BIAS)
    torch.testing.assert_close(features[16].weight, tv_state["features.16.weight"])
    assert load_vgg19_features(path)[34].bias[0].item() == LAST_BIAS  # a PathLike too


def test_state_dict_with_wrong_keys(tmp_path: Path, tv_state):
    torch.save({"body.0.weight": torch.zeros(64, 3, 3, 3)}, tmp_path / "renamed.pth")
    with pytest.raises(VGGWeightsError, match=r"missing keys features\.0\.bias"):
        load_vgg19_features(str(tmp_path / "renamed.pth"))

    wrong = dict(tv_state)
    wrong["features.34.weight"] = torch.zeros(256, 512, 3, 3)
    torch.save(wrong, tmp_path / "wrong_shape.pth")
    with pytest.raises(VGGWeightsError, match=r"wrong shapes features\.34\.weight"):
        load_vgg19_features(str(tmp_path / "wrong_shape.pth"))

    with torch.device("meta"):
        bn_keys = torchvision.models.vgg19_bn(weights=None).state_dict().keys()
    torch.save({k: torch.zeros(1) for k in bn_keys}, tmp_path / "bn.pth")
    with pytest.raises(VGGWeightsError, match="unexpected keys"):
        load_vgg19_features(str(tmp_path / "bn.pth"))


def test_missing_or_unreadable_file(tmp_path: Path):
    missing = tmp_path / "nowhere" / "vgg19.pth"
    with pytest.raises(VGGWeightsError, match=str(missing)):
        load_vgg19_features(str(missing))
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(VGGWeightsError, match="cannot be loaded"):
        load_vgg19_features(str(junk))


# -- 'imagenet' weights, offline ----------------------------------------------------------------

def checkpoints_dir() -> Path:
    return Path(os.environ["TORCH_HOME"]) / "hub" / "checkpoints"


def test_file_name_is_torchvisions():
    url = torchvision.models.VGG19_Weights.IMAGENET1K_V1.url
    assert url.rsplit("/", 1)[-1] == VGG19_FILE


def test_imagenet_offline_without_cache_explains(offline):
    with pytest.raises(VGGWeightsError) as info:
        load_vgg19_features("imagenet")
    message = str(info.value)
    assert offline, "a download should have been attempted (and refused)"
    for needed in (VGG19_FILE, str(checkpoints_dir()), "loss.vgg_weights", "random",
                   torchvision.models.VGG19_Weights.IMAGENET1K_V1.url):
        assert needed in message
    assert isinstance(info.value.__cause__, urllib.error.URLError)
    assert not (checkpoints_dir() / VGG19_FILE).exists()  # no partial file left behind


def test_imagenet_download_not_allowed_is_never_attempted(offline):
    with pytest.raises(VGGWeightsError, match="not allowed"):
        load_vgg19_features("imagenet", download=False)
    assert offline == []


def test_imagenet_from_the_cache(tv_state, offline):
    checkpoints_dir().mkdir(parents=True)
    torch.save(tv_state, checkpoints_dir() / VGG19_FILE)
    features = load_vgg19_features("imagenet", download=False)
    assert features[0].weight[0, 0, 0, 0].item() == FIRST_WEIGHT
    assert torch.all(features[34].bias == LAST_BIAS)
    assert VGGFeatures("imagenet").features[34].bias[0].item() == LAST_BIAS
    assert offline == []


def test_imagenet_truncated_cache_file():
    checkpoints_dir().mkdir(parents=True)
    (checkpoints_dir() / VGG19_FILE).write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(VGGWeightsError, match="cannot be read"):
        load_vgg19_features("imagenet")


# -- frozen extractor, perceptual loss ----------------------------------------------------------

def test_extractor_is_frozen_and_stays_in_eval():
    loss = PerceptualLoss("random")
    assert not any(p.requires_grad for p in loss.parameters())
    loss.train()
    assert not loss.vgg.training
    assert not any(m.training for m in loss.vgg.modules())
    assert not load_vgg19_features("random").training


def test_perceptual_gradients_reach_the_input_only():
    loss = PerceptualLoss("random")
    real = torch.rand(1, 3, 32, 32, requires_grad=True)
    fake = torch.rand(1, 3, 32, 32, requires_grad=True)
    value = loss(fake, real)
    assert value.dim() == 0 and value.item() > 0
    value.backward()
    assert fake.grad is not None and torch.isfinite(fake.grad).all() and fake.grad.abs().sum() > 0
    assert real.grad is None  # the target's features are computed without a graph
    assert all(p.grad is None for p in loss.parameters())


def test_perceptual_distances():
    x, y = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)
    l1, mse = PerceptualLoss("random", "l1"), PerceptualLoss("random", "mse")
    assert l1(x, x).item() == 0.0
    fx, fy = l1.vgg(x), l1.vgg(y)
    torch.testing.assert_close(l1(x, y), (fx - fy).abs().mean())
    torch.testing.assert_close(mse(x, y), ((fx - fy) ** 2).mean())
    with pytest.raises(ValueError, match="'l1' or 'mse'"):
        PerceptualLoss("random", "l2")


# -- adversarial losses -------------------------------------------------------------------------

def test_adversarial_known_values():
    zeros = torch.zeros(4, 1)
    assert adversarial_d_loss(zeros, zeros).item() == pytest.approx(math.log(2))
    assert adversarial_g_loss(zeros).item() == pytest.approx(math.log(2))
    confident = adversarial_d_loss(torch.full((4, 1), 20.0), torch.full((4, 1), -20.0))
    assert 0 <= confident.item() < 1e-8
    assert adversarial_g_loss(torch.full((4, 1), 20.0)).item() < 1e-8
    # the generator is penalised where D sees through it, and not where it fools D
    fooled, caught = torch.full((4, 1), 3.0), torch.full((4, 1), -3.0)
    assert adversarial_g_loss(caught) > adversarial_g_loss(fooled)


def test_adversarial_finite_at_extreme_logits():
    real = torch.tensor([100.0, -100.0], requires_grad=True)
    fake = torch.tensor([-100.0, 100.0], requires_grad=True)
    d = adversarial_d_loss(real, fake)
    g = adversarial_g_loss(fake)
    assert d.item() == pytest.approx(50.0)  # each side: (0 + 100) / 2; their mean: 50
    assert g.item() == pytest.approx(50.0)
    (d + g).backward()
    assert torch.isfinite(real.grad).all() and torch.isfinite(fake.grad).all()


# -- MS-SSIM ------------------------------------------------------------------------------------

def test_msssim_identical_and_different():
    loss = MSSSIMLoss()
    x, y = smooth(2, 96, 0), smooth(2, 96, 1)
    assert abs(loss(x, x).item()) < 1e-6
    value = loss(x, y)
    assert 0 < value.item() <= 1
    assert loss(x, (x + 0.05 * torch.randn_like(x)).clamp(0, 1)) < value


def test_msssim_matches_pytorch_msssim():
    loss = MSSSIMLoss()
    # pairs whose contrast-structure terms are all positive: there the floor changes nothing
    x = smooth(3, 96, 2)
    for y in ((x + 0.1 * torch.randn_like(x)).clamp(0, 1), 0.6 * x + 0.4 * smooth(3, 96, 3)):
        torch.testing.assert_close(loss.ms_ssim(x, y),
                                   ms_ssim(x, y, data_range=1, win_size=5, size_average=False),
                                   atol=1e-6, rtol=0)


@pytest.mark.parametrize("case", ["constant", "both_constant", "anti_correlated"])
def test_msssim_finite_loss_and_gradients(case: str):
    real = smooth(2, 96, 4)
    if case == "constant":
        fake = torch.full_like(real, 0.5)
    elif case == "both_constant":
        fake, real = torch.full_like(real, 0.3), torch.full_like(real, 0.7)
    else:
        fake = 1 - real
    fake.requires_grad_(True)
    value = MSSSIMLoss()(fake, real)
    value.backward()
    assert torch.isfinite(value) and 0 <= value.item() <= 1
    assert torch.isfinite(fake.grad).all()


def test_msssim_negative_coarse_scales_keep_a_gradient():
    # Same fine detail, inverted large-scale shading: the coarse contrast-structure terms are
    # negative. relu (pytorch-msssim) would zero the product and every gradient; the floor
    # lets the positive fine scales still pull.
    g = torch.Generator().manual_seed(0)
    shading = F.interpolate(torch.rand(2, 3, 6, 6, generator=g), size=96, mode="bilinear")
    detail = 0.1 * torch.rand(2, 3, 96, 96, generator=g)
    real = 0.3 + 0.5 * shading + detail
    fake = (0.3 + 0.5 * (1 - shading) + detail).requires_grad_(True)
    MSSSIMLoss()(fake, real).backward()
    assert torch.isfinite(fake.grad).all() and fake.grad.abs().sum() > 0


def test_msssim_under_autocast_is_computed_in_float32():
    x, y = smooth(2, 96, 5), smooth(2, 96, 6)
    loss = MSSSIMLoss()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = loss(x, y)
    assert low.dtype == torch.float32
    torch.testing.assert_close(low, loss(x, y))


def test_msssim_size_limits():
    with pytest.raises(ValueError, match="65x65"):
        MSSSIMLoss()(torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64))
    MSSSIMLoss()(torch.rand(1, 3, 65, 80), torch.rand(1, 3, 65, 80))  # the minimum works
    with pytest.raises(ValueError, match="161x161"):
        MSSSIMLoss(11)(torch.rand(1, 3, 96, 96), torch.rand(1, 3, 96, 96))
    with pytest.raises(ValueError, match="odd"):
        MSSSIMLoss(4)
    with pytest.raises(ValueError, match="one shape"):
        MSSSIMLoss()(torch.rand(1, 3, 96, 96), torch.rand(1, 3, 96, 80))


# -- the composite generator loss ---------------------------------------------------------------

class Exploding(nn.Module):
    """Stands in for a term that must not be computed."""

    def forward(self, *args):
        raise AssertionError("a term with weight 0 was computed")


def test_loss_weights_defaults_and_validation():
    w = LossWeights()
    assert (w.perceptual, w.adversarial, w.msssim, w.pixel) == (1.0, 1e-3, 1.0, 0.0)
    with pytest.raises(ValueError, match="adversarial"):
        LossWeights(adversarial=-1.0)


def test_generator_loss_terms_and_total():
    weights = LossWeights(perceptual=0.5, adversarial=0.01, msssim=2.0, pixel=0.3)
    criterion = GeneratorLoss(weights)
    real = smooth(2, 96, 7)
    fake = smooth(2, 96, 8).requires_grad_(True)
    logits = torch.tensor([[-1.0], [2.0]])
    total, terms = criterion(fake, real, logits)

    assert set(terms) == {*GeneratorLoss.TERMS, "total"}
    assert all(t.dim() == 0 and not t.requires_grad for t in terms.values())
    torch.testing.assert_close(terms["perceptual"], PerceptualLoss("random")(fake, real).detach())
    torch.testing.assert_close(terms["adversarial"], adversarial_g_loss(logits))
    torch.testing.assert_close(terms["msssim"], MSSSIMLoss()(fake, real).detach())
    torch.testing.assert_close(terms["pixel"], (fake - real).abs().mean().detach())
    expected = sum(getattr(weights, k) * terms[k] for k in GeneratorLoss.TERMS)
    torch.testing.assert_close(total.detach(), expected)
    torch.testing.assert_close(terms["total"], expected)

    total.backward()
    assert torch.isfinite(fake.grad).all() and fake.grad.abs().sum() > 0


def test_generator_loss_skips_zero_weights():
    real, fake = smooth(1, 96, 9), smooth(1, 96, 10)
    criterion = GeneratorLoss(LossWeights(perceptual=0.0, adversarial=0.0, msssim=1.0, pixel=1.0))
    assert criterion.perceptual is None  # no VGG19 built at all
    _, terms = criterion(fake, real, torch.zeros(1, 1))
    assert terms["perceptual"].item() == 0.0 and terms["adversarial"].item() == 0.0

    # a weight set to 0 later: the term's module is not even called
    criterion = GeneratorLoss(LossWeights(perceptual=1.0, msssim=1.0, pixel=1.0))
    criterion.perceptual, criterion.msssim = Exploding(), Exploding()
    criterion.weights.perceptual = criterion.weights.msssim = 0.0
    total, terms = criterion(fake, real, None)
    assert terms["perceptual"].item() == terms["msssim"].item() == 0.0
    assert terms["adversarial"].item() == 0.0  # no logits: skipped too
    torch.testing.assert_close(total, (fake - real).abs().mean())


def test_generator_loss_cannot_turn_perceptual_on_later():
    criterion = GeneratorLoss(LossWeights(perceptual=0.0))
    criterion.weights.perceptual = 1.0
    with pytest.raises(RuntimeError, match="build a new one"):
        criterion(smooth(1, 96, 0), smooth(1, 96, 1))


def test_generator_loss_train_mode_keeps_vgg_frozen():
    criterion = GeneratorLoss(LossWeights()).train()
    assert criterion.training and not criterion.perceptual.vgg.training
    assert not any(p.requires_grad for p in criterion.parameters())


# -- the look terms: colour on blurred images, tone and texture distributions ----------------

def test_look_terms_are_zero_for_identical_images_and_in_the_total():
    look = LookLoss()
    image = smooth(2, 96, 3)
    for term in (look.color, look.tone, look.texture):
        assert term(image, image).item() == 0.0
    weights = LossWeights(perceptual=0.0, msssim=0.0, color=0.5, tone=2.0, texture=3.0)
    fake = smooth(2, 96, 4).requires_grad_(True)
    total, terms = GeneratorLoss(weights)(fake, image)
    torch.testing.assert_close(terms["color"], look.color(fake, image).detach())
    torch.testing.assert_close(terms["tone"], look.tone(fake, image).detach())
    torch.testing.assert_close(terms["texture"], look.texture(fake, image).detach())
    torch.testing.assert_close(total.detach(), 0.5 * terms["color"] + 2.0 * terms["tone"]
                               + 3.0 * terms["texture"])
    total.backward()
    assert torch.isfinite(fake.grad).all() and fake.grad.abs().sum() > 0


def test_tone_and_texture_ignore_where_values_sit():
    """A distribution term does not care where a value is: a shuffled image has the tone of
    the original, and a shifted one has its texture too (away from the border); the colour
    term, blurred, barely sees a 1-pixel shift either."""
    look = LookLoss()
    image = torch.rand(1, 3, 64, 64)
    shuffled = image.flatten(2)[:, :, torch.randperm(64 * 64)].reshape(1, 3, 64, 64)
    assert look.tone(shuffled, image).item() < 1e-6
    assert look.texture(shuffled, image).item() > 0.01  # shuffling changes the detail
    shifted = torch.roll(image, 1, dims=3)
    assert look.texture(shifted, image).item() < 0.01
    assert look.color(shifted, image).item() < 0.1 * (shifted - image).abs().mean().item()


def test_tone_sees_lifted_blacks_and_lost_colour_that_l1_barely_sees():
    """A 'milky' output (blacks lifted, colour flattened towards grey) scores far worse on the
    tone term than on L1 relative to an output that is only noisy by the same L1."""
    look = LookLoss()
    target = smooth(1, 96, 5)
    milky = 0.85 * target + 0.15 * target.mean(dim=1, keepdim=True) + 0.04
    noise = torch.randn_like(target).sign() * (milky - target).abs().mean()
    noisy = target + noise
    assert math.isclose((milky - target).abs().mean().item(),
                        (noisy - target).abs().mean().item(), rel_tol=1e-3)
    assert look.tone(milky, target).item() > 3 * look.tone(noisy, target).item()


def test_texture_sees_a_blurred_output():
    look = LookLoss()
    target = torch.rand(1, 3, 64, 64)
    blurred = F.avg_pool2d(target, 3, stride=1, padding=1, count_include_pad=False)
    assert look.texture(blurred, target).item() > 0.05
    assert look.texture(target, target).item() == 0.0


def test_look_terms_run_in_float32_under_bf16_autocast():
    look = LookLoss()
    fake, real = smooth(1, 96, 6), smooth(1, 96, 7)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        values = [term(fake, real) for term in (look.color, look.tone, look.texture)]
    assert all(v.dtype == torch.float32 for v in values)
    for value, term in zip(values, (look.color, look.tone, look.texture)):
        torch.testing.assert_close(value, term(fake, real))
