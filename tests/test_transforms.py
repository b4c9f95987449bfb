"""The paper's augmentation (Sec. 3.3), on the host and on the device: the same parameters, the same
result, depth never interpolated."""

import albumentations as A
import numpy as np
import pytest
import torch
from torch.utils.data import default_collate

from depth_lightning.core.errors import ConfigError
from depth_lightning.data.transforms import PaperAugmentation

PAPER = {"color": [0.9, 1.1], "scale": [1.3, 1.5], "flip": True, "rotate": 5.0, "divide_depth_by_scale": True}


def sample(seed=0, h=60, w=80):
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    depth = np.round(rng.uniform(0.5, 9.0, (h, w)), 2).astype(np.float32)
    depth[rng.random((h, w)) < 0.2] = 0
    return rgb, depth


DEVICES = [
    "cpu",
    pytest.param(
        "cuda",
        marks=[pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")],
    ),
]


def on_device(aug, rgb, depth, params, device="cpu"):
    """Sample after sample through the device path, as the datamodule runs it on a collated batch
    moved to ``device``."""
    batch = default_collate([{"image": torch.from_numpy(r), "depth": torch.from_numpy(d), "augment": p}
                             for r, d, p in zip(rgb, depth, params)])  # fmt: skip
    image = batch["image"].permute(0, 3, 1, 2).to(device)  # uint8, as the loader hands it over
    params = {k: v.to(device) for k, v in batch["augment"].items()}
    image, d = aug.apply_batch(image, batch["depth"].to(device), params)
    assert image.device.type == d.device.type == device
    return image.permute(0, 2, 3, 1).cpu().numpy(), d.cpu().numpy()


@pytest.mark.parametrize("seed", range(5))
def test_depth_values_after_geometry_are_input_values_divided_by_s(seed):
    aug = PaperAugmentation(**PAPER, seed=seed)
    rgb, depth = sample(seed)
    p = aug.draw()
    assert 1.3 <= p["scale"] <= 1.5 and -5 <= p["angle"] <= 5
    d = aug.host(rgb, depth, p)["depth"]  # the albumentations pipeline the loader runs
    _, (dd,) = on_device(aug, [rgb], [depth], [p])
    allowed = np.append(depth.ravel() / p["scale"], 0)
    for out in (d, dd):
        assert np.isin(out, allowed).all(), "depth was interpolated"
        assert out.shape == depth.shape and out.dtype == np.float32


@pytest.mark.parametrize("device", DEVICES)
def test_host_and_device_give_the_same_samples(device):
    """NYU's size, 16 samples: RGB within 1e-5; depth equal but for the rare output pixel whose source
    lies within float rounding of the midpoint between two input pixels (OpenCV and torch may round
    that one either way; it is still one of the two neighbours' values)."""
    aug = PaperAugmentation(**PAPER)
    rgbs, depths, params = [], [], []
    for i in range(16):
        rgb, depth = sample(i, 240, 320)
        aug.set_seed(i)
        rgbs.append(rgb), depths.append(depth), params.append(aug.draw())
    host = [(o["image"], o["depth"]) for o in (aug.host(r, d, p) for r, d, p in zip(rgbs, depths, params))]
    image, depth = on_device(aug, rgbs, depths, params, device)
    assert {bool(p["flip"]) for p in params} == {True, False}
    for i, (hi, hd) in enumerate(host):
        assert np.abs(hi - image[i]).max() < 1e-5, i
        differ = hd != depth[i]
        assert differ.mean() < 1e-4, (i, differ.sum())
        assert np.isin(depth[i][differ], np.append(depths[i].ravel() / params[i]["scale"], 0)).all()


def test_geometry_is_a_zoom_and_rotation_about_the_centre():
    """A scale of 1.5 about the centre: the pixel 20 columns right of the centre shows what was 20/1.5
    columns right of it; a rotation of +5 degrees turns the frame anticlockwise, as OpenCV's."""
    h, w = 61, 81
    aug = PaperAugmentation(scale=[1.5, 1.5], rotate=None, divide_depth_by_scale=False)
    column = np.tile(np.arange(w, dtype=np.float32), (h, 1))
    _, d = aug.apply(np.zeros((h, w, 3), np.uint8), column, aug.draw())
    assert d[30, 40] == 40 and d[30, 60] == 40 + round(20 / 1.5)
    rot = PaperAugmentation(rotate=5.0, seed=0)
    p = {**rot.draw(), "angle": np.float32(5)}
    row = np.tile(np.arange(h, dtype=np.float32)[:, None], (1, w))
    _, r = rot.apply(np.zeros((h, w, 3), np.uint8), row, p)
    _, (rd,) = on_device(rot, [np.zeros((h, w, 3), np.uint8)], [row], [p])
    # anticlockwise on screen (y down): content right of the centre moves up, so the output's right-hand
    # side shows input rows from below the centre, its left-hand side rows from above
    assert r[30, 80] > 30 > r[30, 0] and rd[30, 80] > 30 > rd[30, 0]


def test_flip_is_exact_and_colour_never_touches_depth():
    rgb, depth = sample()
    flip_only = PaperAugmentation(flip=True, seed=0)
    seen = set()
    for _ in range(12):
        r, d = flip_only(rgb, depth)
        if np.array_equal(d, depth):
            np.testing.assert_array_equal(r, rgb / np.float32(255))
            seen.add("same")
        else:
            np.testing.assert_array_equal(d, depth[:, ::-1])
            np.testing.assert_array_equal(r, rgb[:, ::-1] / np.float32(255))
            seen.add("flipped")
    assert seen == {"same", "flipped"}
    colour = PaperAugmentation(color=[0.9, 1.1], seed=1)
    r, d = colour(rgb, depth)
    np.testing.assert_array_equal(d, depth)
    assert r.min() >= 0 and r.max() <= 1
    ratio = r.reshape(-1, 3).astype(float).sum(0) / (rgb.reshape(-1, 3) / 255).sum(0)
    assert ((ratio > 0.88) & (ratio < 1.12)).all() and not np.allclose(ratio, ratio[0])  # per channel


def test_parameter_distributions_are_the_papers():
    """4000 draws: flip a fair coin, s ~ U[1.3, 1.5], angle ~ U[-5, 5], each channel ~ U[0.9, 1.1]
    independently (Kolmogorov-Smirnov against the uniform distributions)."""
    from scipy import stats

    aug = PaperAugmentation(**PAPER, seed=0)
    draws = [aug.draw() for _ in range(4000)]
    flips = np.array([p["flip"] for p in draws])
    assert set(np.unique(flips)) == {0, 1} and abs(flips.mean() - 0.5) < 0.03
    for name, lo, hi in (("scale", 1.3, 1.5), ("angle", -5, 5)):
        values = np.array([p[name] for p in draws], dtype=float)
        assert stats.kstest(values, stats.uniform(lo, hi - lo).cdf).pvalue > 1e-3, name
    colours = np.stack([p["colour"] for p in draws]).astype(float)
    for c in range(3):
        assert stats.kstest(colours[:, c], stats.uniform(0.9, 0.2).cdf).pvalue > 1e-3
    assert abs(np.corrcoef(colours.T)[0, 1]) < 0.06


def test_same_seed_same_augmentation():
    rgb, depth = sample()
    a = PaperAugmentation(**PAPER, seed=7)
    b = PaperAugmentation(**PAPER, seed=7)
    for _ in range(3):
        ra, da = a(rgb, depth)
        rb, db = b(rgb, depth)
        np.testing.assert_array_equal(da, db)
        np.testing.assert_array_equal(ra, rb)


@pytest.mark.slow  # a training run or a second process: not for every mutant
def test_a_run_with_device_augmentation_trains_on_the_hosts_samples(tmp_path, monkeypatch):
    """4 optimiser steps on the synthetic default with the paper's augmentation: the batches
    training_step receives with data.augment_on=device are those of data.augment_on=host, to float
    rounding, and far from unaugmented ones: Lightning's batch hook is what augmented them. (The
    weights are not compared: 4 steps of this tiny run turn a 1e-7 change of the input into 0.07.)"""
    from depth_lightning.module import DepthModule
    from tests.helpers import train_here

    seen: dict[str, list] = {}
    original = DepthModule.training_step

    def recording(self, batch, batch_idx):
        seen.setdefault(self.trainer.default_root_dir, []).append(
            {k: batch[k].clone() for k in ("index", "image", "depth")}
        )
        return original(self, batch, batch_idx)

    monkeypatch.setattr(DepthModule, "training_step", recording)
    paper = ["+data.augment.color=[0.9,1.1]", "+data.augment.scale=[1.3,1.5]", "+data.augment.rotate=5.0"]
    run = ["debug=tiny", "logger=csv", "baselines=false", "trainer.max_steps=4", *paper]
    for name, setting in (
        ("host", "data.augment_on=host"),
        ("device", "data.augment_on=device"),
        ("none", "data.augment=null"),
    ):
        train_here(tmp_path / name, *run, setting)
    host, device, none = (seen[str(tmp_path / name)] for name in ("host", "device", "none"))
    assert len(host) == len(device) == 4
    for h, d, n in zip(host, device, none):
        assert torch.equal(h["index"], d["index"])
        assert (h["image"] - d["image"]).abs().max() < 1e-5 < (h["image"] - n["image"]).abs().max()
        assert (h["depth"] != d["depth"]).float().mean() < 1e-4


def test_the_albumentations_pipeline_gives_the_paper_part_bit_for_bit():
    aug = PaperAugmentation(**PAPER)
    for i in range(8):
        rgb, depth = sample(i, 48, 64)
        aug.set_seed(i)
        p = aug.draw()
        out, (image, d) = aug.host(rgb, depth, p), aug.apply(rgb, depth, p)
        assert np.array_equal(out["image"], image) and np.array_equal(out["depth"], d)
        assert out["image"].dtype == np.float32 and out["depth"].dtype == np.float32


def test_extras_apply_as_described_and_an_unsuitable_one_is_refused():
    import albumentations as A

    noise = A.GaussNoise(std_range=(0.1, 0.1), p=1.0)
    shift = A.Affine(translate_px={"x": 5, "y": 0}, p=1.0)
    aug = PaperAugmentation(**PAPER, extra=[noise, shift])
    plain = PaperAugmentation(**PAPER)
    rgb, depth = sample(1, 48, 64)
    valid = (depth > 0).astype(np.uint8)
    aug.set_seed(3), plain.set_seed(3)
    p = aug.draw()
    assert all(np.array_equal(p[k], v) for k, v in plain.draw().items())  # extras leave the paper's draw alone
    out, paper = aug.host(rgb, depth, p, valid=valid), plain.host(rgb, depth, p, valid=valid)
    # the geometric extra moves depth and mask with the RGB, 5 pixels right, values unchanged (nearest, 0 outside)
    assert np.array_equal(out["depth"][:, 5:], paper["depth"][:, :-5]) and not out["depth"][:, :5].any()
    assert np.array_equal(out["mask"][:, 5:], paper["mask"][:, :-5])
    assert np.array_equal(out["mask"] > 0, out["depth"] > 0)  # the validity mask follows the depth
    # the photometric extra touched the RGB only: it differs from the shifted paper RGB, the depth does not
    assert np.abs(out["image"][:, 5:] - paper["image"][:, :-5]).mean() > 0.02
    assert out["image"].min() >= 0 and out["image"].max() <= 1
    aug.set_seed(3)
    again = aug.host(rgb, depth, aug.draw(), valid=valid)  # seeded per sample: the same sample again
    assert np.array_equal(again["image"], out["image"])
    assert [t["__class_fullname__"] for t in aug.describe()["extra"]] == ["GaussNoise", "Affine"]
    refused = {
        "not an albumentations transform": object(),
        "changes the frame's size": A.RandomCrop(16, 16),
        "mask_interpolation=1": A.Affine(scale=1.1, mask_interpolation=1),
    }
    for message, t in refused.items():
        with pytest.raises(ConfigError, match=rf"data.augment.extra\[0\] \({type(t).__name__}\): .*{message}"):
            PaperAugmentation(**PAPER, extra=[t])


@pytest.mark.slow  # a training run or a second process: not for every mutant
def test_extras_from_the_command_line_reach_the_training_samples_and_the_record(tmp_path):
    from depth_lightning.core.config import build, compose_config
    from tests.helpers import train_here

    extras = (
        "+data.augment.extra=[{_target_:albumentations.GaussNoise,std_range:[0.1,0.1],p:1.0},"
        "{_target_:albumentations.HorizontalFlip,p:1.0}]"
    )
    datamodule = build(compose_config("debug=tiny", extras).data, "data")
    assert [type(t).__name__ for t in datamodule.augment.extra] == ["GaussNoise", "HorizontalFlip"]
    with pytest.raises(ConfigError, match="data.augment.extra with data.augment_on=device"):
        build(compose_config("debug=tiny", extras, "data.augment_on=device").data, "data")
    with pytest.raises(ConfigError, match=r"data.augment.extra\[0\] \(CenterCrop\): changes the frame's size"):
        build(
            compose_config(
                "debug=tiny", "+data.augment.extra=[{_target_:albumentations.CenterCrop,height:8,width:8}]"
            ).data,
            "data",
        )
    results = train_here(tmp_path / "run", "debug=tiny", "logger=csv", "trainer.max_steps=1", extras)
    assert [t["__class_fullname__"] for t in results["augmentation"]["extra"]] == ["GaussNoise", "HorizontalFlip"]


@pytest.mark.slow  # a training run or a second process: not for every mutant
def test_the_augmentation_ablation_is_reported_as_paired_differences(tmp_path):
    from experiments.report.build import build_report
    from tests.helpers import train_here

    tiny = ["debug=tiny", "logger=csv", "trainer.max_steps=4", "test=true", "data.dataset.test_length=8"]
    for variant in ("none", "gauss_noise"):
        done = train_here(tmp_path / "runs" / variant, *tiny, f"+augment_extra={variant}")
        assert done["status"] == "completed"
    result = build_report([tmp_path / "runs"], tmp_path / "report")
    (row,) = result["augmentation"]
    assert row["row"] == "paper + GaussNoise - paper (full, K = 80)" and row["images"] == 8 and row["seeds"] == 1
    low, high = row["ci"]["abs_rel"]
    assert low <= row["ours"]["abs_rel"] <= high
    text = (tmp_path / "report" / "report.md").read_text()
    assert "## Extra augmentations against the paper's" in text and "paper + GaussNoise - paper" in text
    assert len([r for r in result["runs"] if r.augmentation == "paper"]) == 1  # the paper's tables: that one


@pytest.mark.parametrize("as_float", [False, True])
def test_flip_and_colour_alone_agree_on_host_and_device_and_stay_in_range(as_float):
    # no scale and no rotation: the device path flips without resampling (its other branch)
    aug = PaperAugmentation(color=[1.5, 1.6], flip=True)  # colour pushing bright pixels past 1: clipped
    rgbs, depths, params = [], [], []
    for i in range(8):
        rgb, depth = sample(i, 24, 32)
        rgb[:4] = 250  # bright rows
        aug.set_seed(i)
        rgbs.append(rgb), depths.append(depth), params.append(aug.draw())
    assert {bool(p["flip"]) for p in params} == {True, False} and all(p["angle"] == 0 for p in params)
    for i, (rgb, depth, p) in enumerate(zip(rgbs, depths, params, strict=True)):
        host = aug.host(rgb, depth, p)
        flipped = bool(p["flip"])
        expected_depth = depth[:, ::-1] if flipped else depth
        expected_image = np.clip((rgb[:, ::-1] if flipped else rgb) / np.float32(255) * p["colour"], 0, 1)
        assert np.array_equal(host["depth"], expected_depth), i  # not divided: there is no scale
        np.testing.assert_allclose(host["image"], expected_image, atol=1e-6)
        assert host["image"].max() == 1.0 and host["image"].dtype == np.float32
    given = [r.astype(np.float32) / 255 for r in rgbs] if as_float else rgbs
    image, depth = on_device(aug, given, depths, params)
    for i, (rgb, d, p) in enumerate(zip(rgbs, depths, params, strict=True)):
        host = aug.host(rgb, d, p)
        np.testing.assert_allclose(image[i], host["image"], atol=1e-6)
        assert np.array_equal(depth[i], host["depth"]), i


def test_the_augmentation_describes_its_settings_and_moves_a_mask_without_dividing_it():
    aug = PaperAugmentation(**PAPER)
    assert aug.describe() == {
        "paper": {"color": (0.9, 1.1), "scale": (1.3, 1.5), "flip": True, "rotate": 5.0, "divide_depth_by_scale": True},
        "extra": [],
    }
    rgb, depth = sample(2, 48, 64)
    valid = (depth > 0).astype(np.uint8)
    aug.set_seed(5)
    p = aug.draw()
    out = aug.host(rgb, depth, p, valid=valid)
    assert set(np.unique(out["mask"])) <= {0, 1}  # a mask is moved, never divided by s
    assert np.array_equal(out["mask"] > 0, out["depth"] > 0)
    plain = PaperAugmentation(**{**PAPER, "divide_depth_by_scale": False})
    kept = plain.host(rgb, depth, p)["depth"]
    assert np.isin(kept, np.append(depth.ravel(), 0)).all() and np.allclose(out["depth"] * p["scale"], kept)


def test_the_device_grid_is_float64_to_the_last_digit():
    """The grid's coordinates are float64 throughout (float32 pixel centres are off by ~1e-7 of the frame,
    ~3e-5 pixel at 320 pixels), against the same rotation written in NumPy float64."""
    from depth_lightning.data.transforms import sampling_grid

    scale, angle, flip = torch.tensor([1.37, 1.5]), torch.tensor([-4.3, 2.9]), torch.tensor([1.0, 0.0])
    h, w = 7, 331
    grid = sampling_grid(scale, angle, flip, (h, w))
    assert grid.dtype == torch.float64 and grid.shape == (2, h, w, 2)
    X, Y = np.meshgrid((np.arange(w) * 2 + 1) / w - 1, (np.arange(h) * 2 + 1) / h - 1)  # pixel centres
    for b in range(2):
        a = np.deg2rad(np.float64(angle[b].item()))
        c, s = np.cos(a) / np.float64(scale[b].item()), np.sin(a) / np.float64(scale[b].item())
        sign = -1.0 if flip[b] else 1.0  # the flip negates x about the centre
        expected = np.stack([sign * (c * X - s * (h / w) * Y), s * (w / h) * X + c * Y], -1)
        np.testing.assert_allclose(grid[b].numpy(), expected, rtol=1e-13, atol=1e-15)


class _ImageTargetOnly:
    """An albumentations transform that declares the image as its only target, and leaves it as it is."""

    @property
    def targets(self):
        return {"image": self.apply}

    def apply(self, img, **params):
        return img


class _NoMask(_ImageTargetOnly, A.DualTransform):
    """A geometric transform that declares no mask target."""


class _Neither(_ImageTargetOnly, A.BasicTransform):
    """Neither photometric nor geometric."""


def test_each_unsuitable_extra_is_refused_with_its_whole_reason_and_suitable_ones_kept():
    name = "config error: data.augment.extra[0]"
    refused = {
        f"{name} (_NoMask): albumentations cannot apply it to a depth map (no mask target)": _NoMask(p=1.0),
        f"{name} (Affine): mask_interpolation=1: depth is resampled by nearest neighbour only (0), never "
        "interpolated across holes": A.Affine(scale=1.1, mask_interpolation=1),
        f"{name} (_Neither): neither photometric nor geometric; albumentations' kind unknown": _Neither(p=1.0),
        f"{name} (RandomCrop): changes the frame's size; the network's input is data.height x data.width "
        "(crop or resize transforms do not fit here)": A.RandomCrop(16, 16),
    }
    for message, t in refused.items():
        with pytest.raises(ConfigError) as err:
            PaperAugmentation(**PAPER, extra=[t])
        assert str(err.value) == message
    with pytest.raises(ConfigError) as err:  # albumentations' own refusal: a size beyond the frame
        PaperAugmentation(**PAPER, extra=[A.RandomCrop(40, 40)])
    assert str(err.value).startswith(f"{name} (RandomCrop): cannot be applied to an RGB-D frame (Crop size")
    # kept: colour transforms that need a 3-channel image, a size-keeping geometric one
    kept = [A.HueSaturationValue(p=1.0), A.ToSepia(p=1.0), A.HorizontalFlip(p=1.0)]
    assert PaperAugmentation(**PAPER, extra=kept).extra == kept


def test_the_defaults_divide_by_the_scale_never_flip_and_a_seed_repeats_the_extras():
    rgb, depth = sample(2, 48, 64)
    plain = PaperAugmentation(scale=[1.5, 1.5])
    p = plain.draw()
    assert [float(plain.draw()["flip"]) for _ in range(20)] == [0.0] * 20  # flip=False unless asked
    kept = depth[24, 32]
    assert plain.apply_depth(depth, p)[24, 32] == pytest.approx(kept / 1.5)  # the centre stays; depth / s
    noisy = [PaperAugmentation(**PAPER, seed=5, extra=[A.GaussNoise(std_range=(0.8, 0.8), p=1.0)]) for _ in range(2)]
    first, second = (aug.host(rgb, depth, aug.draw()) for aug in noisy)
    assert np.array_equal(first["image"], second["image"])  # seeded: the same noise
    image = first["image"]
    assert image.dtype == np.float32 and image.min() == 0.0 and image.max() == 1.0  # clipped into [0, 1]
    assert 0.0 < image.mean() < 1.0 and ((image > 0) & (image < 1)).any()


def test_a_zoom_out_leaves_no_depth_where_the_frame_has_none():
    aug = PaperAugmentation(scale=[0.8, 0.8])  # below the paper's range: the warped frame does not fill the output
    depth = np.full((40, 60), 3.0, np.float32)
    out = aug.apply_depth(depth, aug.draw())
    assert out[0, 0] == 0 and out[-1, -1] == 0 and out[20, 30] == pytest.approx(3.0 / 0.8)  # border: no depth
