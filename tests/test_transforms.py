import numpy as np
import pytest

from depth_lightning.data.transforms import PaperAugmentation

PAPER = {"color": [0.9, 1.1], "scale": [1.3, 1.5], "flip": True, "rotate": 5.0, "divide_depth_by_scale": True}


def sample(seed=0):
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)
    depth = np.round(rng.uniform(0.5, 9.0, (60, 80)), 2).astype(np.float32)
    depth[rng.random((60, 80)) < 0.2] = 0
    return rgb, depth


@pytest.mark.parametrize("seed", range(5))
def test_depth_values_after_geometry_are_input_values_divided_by_s(seed):
    aug = PaperAugmentation(**PAPER, seed=seed)
    rgb, depth = sample(seed)
    out = aug.transform(image=rgb, mask=depth)
    s = dict(out["applied_transforms"])["Affine"]["scale"]["x"]
    assert 1.3 <= s <= 1.5
    _, d = aug.__class__.__call__(PaperAugmentation(**PAPER, seed=seed), rgb, depth)
    allowed = np.append(depth.ravel() / np.float32(s), 0)
    assert np.isin(d, allowed).all(), "depth was interpolated"
    assert d.shape == depth.shape


def test_flip_is_exact_and_colour_never_touches_depth():
    rgb, depth = sample()
    flip_only = PaperAugmentation(flip=True, seed=0)
    seen = set()
    for _ in range(12):
        r, d = flip_only(rgb, depth)
        if np.array_equal(d, depth):
            np.testing.assert_array_equal(r, rgb)
            seen.add("same")
        else:
            np.testing.assert_array_equal(d, depth[:, ::-1])
            np.testing.assert_array_equal(r, rgb[:, ::-1])
            seen.add("flipped")
    assert seen == {"same", "flipped"}
    colour = PaperAugmentation(color=[0.9, 1.1], seed=1)
    r, d = colour(rgb, depth)
    np.testing.assert_array_equal(d, depth)
    ratio = r.reshape(-1, 3).astype(float).sum(0) / rgb.reshape(-1, 3).astype(float).sum(0)
    assert ((ratio > 0.88) & (ratio < 1.12)).all() and not np.allclose(ratio, ratio[0])  # per channel


def test_same_seed_same_augmentation():
    rgb, depth = sample()
    a = PaperAugmentation(**PAPER, seed=7)
    b = PaperAugmentation(**PAPER, seed=7)
    for _ in range(3):
        ra, da = a(rgb, depth)
        rb, db = b(rgb, depth)
        np.testing.assert_array_equal(da, db)
        np.testing.assert_array_equal(ra, rb)
