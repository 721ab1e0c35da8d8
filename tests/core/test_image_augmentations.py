"""Batched image augmentations: shapes, determinism, per-sample randomness and exactness."""

from __future__ import annotations

import functools

import pytest
import torch
from pydantic import ValidationError

from sslcore.builtins.augmentations.image import (
    GaussianBlur,
    GaussianBlurParams,
    RandomResizedCrop,
    RandomResizedCropParams,
    band_dropout,
    gaussian_blur,
    gaussian_noise,
    random_flip,
    random_intensity,
    random_resized_crop,
    random_rot90,
)
from sslcore.errors import DataError

pytestmark = pytest.mark.usefixtures("single_thread")  # see tests/core/conftest.py

OPS = {
    "crop": functools.partial(random_resized_crop, size=24, degrees=15.0, translate=0.1),
    "flip": functools.partial(random_flip, horizontal=True, vertical=True),
    "rot90": random_rot90,
    "intensity": functools.partial(random_intensity, brightness=0.4, contrast=0.4, gamma=0.5),
    "intensity_per_band": functools.partial(random_intensity, brightness=0.4, contrast=0.4,
                                            gamma=0.5, per_channel=True, p=1.0),
    "noise": gaussian_noise,
    "blur": gaussian_blur,
    "band_dropout": functools.partial(band_dropout, p=0.3),
}


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def images(n: int = 16, c: int = 1, h: int = 24, w: int = 24, seed: int = 0) -> torch.Tensor:
    return torch.rand((n, c, h, w), generator=gen(seed))


@pytest.mark.parametrize("channels", [1, 13])
@pytest.mark.parametrize("name", sorted(OPS))
def test_shape_dtype_determinism_and_input_untouched(name: str, channels: int) -> None:
    x = images(c=channels)
    before = x.clone()
    out = OPS[name](x, gen(3))
    assert out.shape == x.shape and out.dtype == x.dtype and out.device == x.device
    assert torch.isfinite(out).all()
    assert torch.equal(x, before)
    assert torch.equal(OPS[name](x, gen(3)), out)
    if not (name == "band_dropout" and channels == 1):
        assert not torch.equal(OPS[name](x, gen(4)), out), "another seed, other views"


@pytest.mark.parametrize("name", sorted(set(OPS) - {"band_dropout"}))
def test_each_sample_gets_its_own_parameters(name: str) -> None:
    # The same image repeated: any difference between outputs comes from per-sample draws.
    base = images(n=1, c=2, seed=1)
    out = OPS[name](base.expand(32, -1, -1, -1).contiguous(), gen(0))
    distinct = {tuple(o.flatten()[:64].tolist()) for o in out.round(decimals=5)}
    assert len(distinct) >= 3


def test_autocast_keeps_float32_and_results() -> None:
    x = images(c=3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside = {k: op(x, gen(0)) for k, op in OPS.items()}
    for k, op in OPS.items():
        assert inside[k].dtype == torch.float32
        assert torch.equal(inside[k], op(x, gen(0))), k


def test_crop_with_full_scale_is_the_identity() -> None:
    x = images(c=3)
    same = random_resized_crop(x, gen(), size=24, scale=(1.0, 1.0), ratio=(1.0, 1.0))
    torch.testing.assert_close(same, x, atol=1e-5, rtol=0)
    wide = images(h=12, w=20)  # non-square: the full crop has the image's own aspect ratio
    same = random_resized_crop(wide, gen(), size=(12, 20), scale=(1.0, 1.0),
                               ratio=(20 / 12, 20 / 12))
    torch.testing.assert_close(same, wide, atol=1e-5, rtol=0)


def test_crop_samples_a_region_of_the_requested_area() -> None:
    # A horizontal ramp: a crop of half the width, resized to full width, advances half an
    # input pixel per output pixel, and is flat vertically. (The outermost output pixels may
    # sample past the last input pixel centre, where the border is repeated.)
    ramp = torch.arange(32.0).view(1, 1, 1, 32).expand(8, 2, 32, 32).contiguous()
    out = random_resized_crop(ramp, gen(), size=32, scale=(0.25, 0.25), ratio=(1.0, 1.0))
    step = out[..., 1:-1].diff(dim=-1)
    torch.testing.assert_close(step, torch.full_like(step, 0.5))
    assert len({round(v, 3) for v in out[:, 0, 0, 16].tolist()}) > 4  # crops at many places
    assert out.diff(dim=-2).abs().max() < 1e-4
    assert out.amin() >= 0 and out.amax() <= 31
    small = random_resized_crop(ramp, gen(), size=16)
    assert small.shape == (8, 2, 16, 16)


def test_crop_rotation_and_translation_stay_finite_and_bounded() -> None:
    x = images(c=2)
    out = random_resized_crop(x, gen(), size=24, scale=(0.5, 1.0), degrees=30.0, translate=0.3)
    assert torch.isfinite(out).all() and out.min() >= 0 and out.max() <= 1  # border padding
    assert not torch.allclose(out, random_resized_crop(x, gen(), size=24, scale=(0.5, 1.0)))


def test_flips_are_exact() -> None:
    x = images(n=64, c=2)
    out = random_flip(x, gen(), horizontal=True, p=0.5)
    flipped = torch.tensor([torch.equal(o, f) for o, f in zip(out, x.flip(-1))])
    kept = torch.tensor([torch.equal(o, i) for o, i in zip(out, x)])
    assert (flipped | kept).all() and flipped.any() and kept.any()
    assert torch.equal(random_flip(x, gen(), p=1.0, vertical=True), x.flip(-1).flip(-2))
    assert torch.equal(random_flip(x, gen(), p=0.0, vertical=True), x)
    assert torch.equal(random_flip(x, gen(), horizontal=False, vertical=True, p=1.0), x.flip(-2))


def test_rot90_is_exact_and_uses_every_orientation() -> None:
    x = images(n=64, c=3)
    out = random_rot90(x, gen())
    seen = set()
    for o, i in zip(out, x):
        ks = [k for k in range(4) if torch.equal(o, torch.rot90(i, k, dims=(-2, -1)))]
        assert len(ks) == 1
        seen.add(ks[0])
    assert seen == {0, 1, 2, 3}
    # Non-square images turn by 0 or 180 degrees only: their shape never changes.
    wide = images(n=64, h=8, w=12)
    out = random_rot90(wide, gen())
    assert out.shape == wide.shape
    turned = [torch.equal(o, i.flip(-2, -1)) for o, i in zip(out, wide)]
    kept = [torch.equal(o, i) for o, i in zip(out, wide)]
    assert all(t or k for t, k in zip(turned, kept)) and any(turned) and any(kept)


def test_band_dropout_never_drops_every_band() -> None:
    x = images(n=64, c=13) + 1.0  # strictly positive: zero means dropped
    out = band_dropout(x, gen(), p=1.0)
    kept = (out.flatten(2) != 0).all(dim=2)
    assert (kept.sum(dim=1) == 1).all()  # everything drawn: exactly one band survives
    out = band_dropout(x, gen(), p=0.5)
    dropped = (out.flatten(2) == 0).all(dim=2)
    kept = (out == x).flatten(2).all(dim=2)
    assert (dropped | kept).all() and (~dropped).any(dim=1).all()
    assert 0.3 < dropped.float().mean() < 0.7
    single = images(c=1)
    assert torch.equal(band_dropout(single, gen(), p=1.0), single)


def test_gamma_is_safe_outside_unit_range() -> None:
    x = images(c=2) * 6.0 - 3.0  # values in [-3, 3]
    out = random_intensity(x, gen(), gamma=1.0, p=1.0)
    assert torch.isfinite(out).all()
    lo, hi = x.amin(dim=(1, 2, 3)), x.amax(dim=(1, 2, 3))
    assert (out.amin(dim=(1, 2, 3)) >= lo - 1e-5).all()
    assert (out.amax(dim=(1, 2, 3)) <= hi + 1e-5).all()
    assert not torch.allclose(out, x)


def test_per_band_brightness_scales_each_band_by_its_own_gain() -> None:
    x = images(n=8, c=4) + 0.5
    out = random_intensity(x, gen(), brightness=0.5, per_channel=True, p=1.0)
    gain = out / x
    per_band = gain.flatten(2)
    torch.testing.assert_close(per_band, per_band[..., :1].expand_as(per_band))
    assert ((gain - 1.0).abs() <= 0.5 + 1e-5).all()
    assert per_band[:, :, 0].std(dim=1).min() > 0  # bands of a sample differ
    shared = random_intensity(x, gen(), brightness=0.5, p=1.0) / x
    assert shared.flatten(1).std(dim=1).max() < 1e-5  # one gain per sample


def test_blur_keeps_constants_and_spreads_a_point_by_sigma() -> None:
    flat = torch.full((4, 2, 16, 16), 0.7)
    torch.testing.assert_close(gaussian_blur(flat, gen(), p=1.0), flat)
    point = torch.zeros(32, 1, 17, 17)
    point[:, :, 8, 8] = 1.0
    out = gaussian_blur(point, gen(), sigma=(0.3, 2.0), p=1.0)
    torch.testing.assert_close(out.sum(dim=(1, 2, 3)), torch.ones(32))
    peaks = out[:, 0, 8, 8]
    assert peaks.max() - peaks.min() > 0.3  # sharp and wide kernels in the same batch
    assert torch.equal(gaussian_blur(point, gen(), p=0.0), point)


def test_noise_has_the_requested_std() -> None:
    x = torch.zeros(64, 1, 32, 32)
    out = gaussian_noise(x, gen(), std=0.05, p=1.0)
    assert out.std().item() == pytest.approx(0.05, rel=0.05)
    assert torch.equal(gaussian_noise(x, gen(), p=0.0), x)


def test_registered_crop_keeps_the_input_size_by_default() -> None:
    x = images(h=20, w=28)
    assert RandomResizedCrop()(x, gen()).shape == x.shape
    assert RandomResizedCrop(RandomResizedCropParams(size=8))(x, gen()).shape == (16, 1, 8, 8)
    with pytest.raises(ValidationError, match="scale"):
        RandomResizedCropParams(scale=(0.8, 0.2))
    with pytest.raises(DataError, match="N x C x H x W"):
        RandomResizedCrop()(torch.zeros(4, 6), gen())


def test_registered_blur_sigma_scales_with_the_image_side() -> None:
    """sigma is quoted for a 64 px image: a point blurred at 32 px spreads half as far."""
    def spread(side: int, reference: int | None) -> float:
        point = torch.zeros(1, 1, side, side)
        point[..., side // 2, side // 2] = 1.0
        params = GaussianBlurParams(sigma=(1.6, 1.6), reference_side=reference, p=1.0)
        out = GaussianBlur(params)(point, gen())[0, 0]
        centre = torch.arange(side, dtype=torch.float32) - side // 2
        return float((out.sum(dim=0) * centre.square()).sum().sqrt())  # std along x

    assert spread(64, 64) == pytest.approx(1.6, rel=0.01)
    assert spread(32, 64) == pytest.approx(0.8, rel=0.01)
    assert spread(32, None) == pytest.approx(1.6, rel=0.01)  # absolute pixels when asked
