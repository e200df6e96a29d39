import math

import numpy as np
import pytest
import torch

from gan.data.dped import DpedSource, decode_patch, find_layout
from gan.data.patches import to_tensor
from gan import metrics
from gan.metrics import MS_SSIM_WEIGHTS, mean_finite, ms_ssim, ms_ssim_terms, psnr


def test_psnr_of_a_constant_offset():
    target = torch.full((1, 3, 8, 8), 0.5)
    output = target + 0.1  # mse 0.01 -> 20 dB
    assert psnr(output, target).item() == pytest.approx(20.0)


def test_psnr_clips_to_the_unit_range_first():
    target = torch.ones(1, 3, 4, 4)
    assert math.isinf(psnr(target + 0.5, target).item())  # 1.5 clips to 1: identical


def test_identical_images_give_infinite_psnr_counted_apart_and_ms_ssim_one():
    a = torch.rand(3, 3, 96, 96, generator=torch.Generator().manual_seed(0))
    b = a.clone()
    b[1] = (b[1] + 0.05).clamp(0, 1)
    values = psnr(b, a)
    assert math.isinf(values[0].item()) and math.isinf(values[2].item())
    mean, infinite = mean_finite(values)
    assert infinite == 2 and mean == pytest.approx(values[1].item())
    assert ms_ssim(a, a).tolist() == pytest.approx([1.0, 1.0, 1.0])


def test_ms_ssim_drops_with_noise_and_matches_the_hand_computed_single_scale_limit():
    gen = torch.Generator().manual_seed(1)
    a = torch.rand(1, 3, 96, 96, generator=gen)
    noisy = (a + 0.1 * torch.randn(1, 3, 96, 96, generator=gen)).clamp(0, 1)
    assert 0.0 < ms_ssim(noisy, a).item() < 0.99
    # a uniform image against a uniform image: contrast terms are 1, so MS-SSIM is the
    # luminance term of the last scale to its weight: ((2 m1 m2 + C1) / (m1^2 + m2^2 + C1))^0.1333
    m1, m2 = 100.0, 120.0
    c1 = (0.01 * 255) ** 2
    expected = ((2 * m1 * m2 + c1) / (m1**2 + m2**2 + c1)) ** 0.1333
    flat = ms_ssim(torch.full((1, 3, 96, 96), m1 / 255), torch.full((1, 3, 96, 96), m2 / 255))
    assert flat.item() == pytest.approx(expected, rel=1e-9)


def test_identity_scores_of_dped_mini_equal_the_published_ones(dped_mini):
    source_path = dped_mini / "iphone"
    with DpedSource(source_path) as source:
        pairs = find_layout(source.names(), "iphone").pairs["test"]
        phone = to_tensor(np.stack([decode_patch(source.read(p.phone)) for p in pairs]))
        dslr = to_tensor(np.stack([decode_patch(source.read(p.dslr)) for p in pairs]))
    mean, infinite = mean_finite(psnr(phone, dslr))
    # ../shared/reference/DPED.md: test pairs 17.33 dB (one pair identical), MS-SSIM 0.8619
    assert (round(mean, 2), infinite) == (17.33, 1)
    assert round(ms_ssim(phone, dslr).mean().item(), 4) == 0.8619


def test_ssim_agrees_with_scikit_image_where_the_definitions_coincide():
    from skimage.metrics import structural_similarity

    from gan.metrics import ssim

    gen = torch.Generator().manual_seed(2)
    a = torch.rand(2, 3, 40, 50, generator=gen)
    b = (a + 0.1 * torch.randn(2, 3, 40, 50, generator=gen)).clamp(0, 1)
    ours = ssim(a, b)
    for i in range(2):
        theirs = structural_similarity(
            a[i].permute(1, 2, 0).double().numpy() * 255, b[i].permute(1, 2, 0).double().numpy() * 255,
            gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255,
            channel_axis=2)
        assert ours[i].item() == pytest.approx(theirs, abs=1e-12)
    assert ssim(a, a).tolist() == pytest.approx([1.0, 1.0])


def test_ms_ssim_terms_show_fine_noise_at_the_fine_scales():
    torch.manual_seed(0)
    clean = torch.rand(2, 3, 1, 1) * 0.5 + torch.linspace(0, 0.4, 100).view(1, 1, 1, 100).expand(2, 3, 100, 100)
    noisy = clean + 0.05 * torch.randn_like(clean)
    terms = ms_ssim_terms(noisy, clean)
    assert terms.shape == (2, 5)
    # Pixel noise averages out as the scales halve: each factor is closer to 1 than the last.
    mean = terms.mean(dim=0)
    assert all(mean[i] < mean[i + 1] for i in range(3)), mean
    assert torch.allclose(ms_ssim_terms(clean, clean), torch.ones(2, 5, dtype=torch.float64))
    weights = torch.tensor(MS_SSIM_WEIGHTS, dtype=torch.float64)
    assert torch.allclose((terms ** weights).prod(dim=1), ms_ssim(noisy, clean))


def test_a_batch_is_scored_in_slices_with_each_image_scored_as_if_alone():
    # Batches are scored _IMAGES_PER_PASS images at a time to bound the float64 intermediates'
    # memory: the joined slices must give each image exactly its own score, in order.
    torch.manual_seed(0)
    count = metrics._IMAGES_PER_PASS * 2 + 5  # two full slices and a short one
    target = torch.rand(count, 3, 24, 24)
    strength = torch.linspace(0, 0.1, count)[:, None, None, None]  # image 0 untouched: inf dB
    output = (target + strength * torch.randn_like(target)).clamp(0, 1)
    for score in (metrics.psnr, metrics.ssim, metrics.ms_ssim):
        alone = torch.cat([score(output[k:k + 1], target[k:k + 1]) for k in range(count)])
        assert torch.equal(score(output, target), alone), score.__name__
