import numpy as np
import pytest
import torch

from depth_lightning.data import SyntheticScenes
from depth_lightning.data.transforms import PaperAugmentation


def scenes(length: int, h: int, w: int, **kw) -> SyntheticScenes:
    return SyntheticScenes(train_length=length, input_size=(h, w), **kw)


def test_frames_are_deterministic_per_seed_and_index():
    a, b = scenes(4, 48, 64, seed=3), scenes(4, 48, 64, seed=3)
    torch.testing.assert_close(a[2]["image"], b[2]["image"])
    torch.testing.assert_close(a[2]["depth"], b[2]["depth"])
    assert not torch.equal(a[1]["depth"], a[2]["depth"])
    assert not torch.equal(scenes(4, 48, 64, seed=4)[2]["depth"], a[2]["depth"])


def test_splits_render_different_scenes():
    train, val = scenes(4, 48, 64), SyntheticScenes(val_length=4, input_size=(48, 64), split="val")
    assert not torch.equal(train[0]["depth"], val[0]["depth"])
    assert val[0]["eval_mask"].all() and "eval_mask" not in train[0]  # the protocol's region: the whole frame


def test_indoor_frames_look_like_nyu():
    ds = scenes(8, 120, 160)
    depth = torch.stack([ds[i]["depth"] for i in range(8)])
    image = ds[0]["image"]
    assert image.shape == (3, 120, 160) and image.dtype == torch.float32
    assert 0 <= image.min() and image.max() <= 1 and image.std() > 0.05
    assert (depth > 0).all(), "a closed room has depth everywhere"
    assert 0.3 < depth.min() and depth.max() < 12
    assert depth.std() > 0.5


def test_outdoor_frames_have_sky_and_far_depth():
    ds = scenes(3, 64, 208, scene="outdoor")
    depth = torch.stack([ds[i]["depth"] for i in range(3)])
    assert ((depth == 0).float().mean(dim=(1, 2)) > 0.01).all(), "sky is invalid depth"
    assert depth.max() > 30 and depth.max() <= 80
    assert (depth[:, -1] > 0).all(), "the bottom row sees the ground"


def test_flips_mirror_image_and_depth_together_and_follow_the_epoch():
    flipped = scenes(1, 40, 56, augment=PaperAugmentation(flip=True))
    plain = scenes(1, 40, 56)
    ref = plain[0]
    seen = set()
    for epoch in range(20):
        item = flipped[(epoch, 0)]
        torch.testing.assert_close(item["depth"], flipped[(epoch, 0)]["depth"])  # a pure function of the key
        if torch.equal(item["depth"], ref["depth"]):
            torch.testing.assert_close(item["image"], ref["image"])
            seen.add("plain")
        else:
            torch.testing.assert_close(item["depth"], ref["depth"].flip(-1))
            torch.testing.assert_close(item["image"], ref["image"].flip(-1))
            seen.add("flipped")
    assert seen == {"plain", "flipped"}


def test_cache_returns_the_same_frame():
    ds = scenes(2, 40, 56, cache=True)
    first = ds[1]
    assert 1 in ds._cache
    np.testing.assert_array_equal(ds[1]["depth"].numpy(), first["depth"].numpy())


def test_bad_arguments():
    with pytest.raises(ValueError, match="data.dataset.scene"):
        scenes(2, 40, 56, scene="forest")
    with pytest.raises(ValueError, match="data.dataset.train_length"):
        scenes(0, 40, 56)
