"""Each zero-shot dataset config finds its frames in the layout the dataset publishes (written here in
miniature, in the published formats), pairs each image with its depth and companions, and scores a
perfect prediction as perfect under its protocol."""

import struct

import h5py
import numpy as np
import pytest
import scipy.io
from PIL import Image

from depth_lightning.core.config import build, compose_data, plain
from depth_lightning.core.errors import ConfigError, DataError
from depth_lightning.evaluation.saved import ScoreSettings, score_predictions

H, W = 480, 640
RNG = np.random.default_rng(0)


def rgb(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(RNG.integers(0, 256, (H, W, 3), dtype=np.uint8)).save(path)


def metres(low=0.5, high=9.0):
    depth = RNG.uniform(low, high, (H, W)).astype(np.float32)
    depth[:20] = 0  # no measurement
    return depth


def uint16(path, values):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(values, dtype=np.uint16)).save(path)


def diode(root):
    for part, name in (("indoors", "00019_00183_indoors_000_010"), ("outdoor", "00022_00193_outdoor_000_000")):
        folder = root / "val" / part / f"scene_{name[:5]}" / f"scan_{name[6:11]}"
        rgb(folder / f"{name}.png")
        np.save(folder / f"{name}_depth.npy", metres(0.6, 300)[..., None])  # DIODE's range: 0.6-350 m
        np.save(folder / f"{name}_depth_mask.npy", (RNG.random((H, W)) > 0.1).astype(np.float32))


def eth3d(root):
    rgb(root / "rgb" / "courtyard" / "images" / "dslr_images" / "DSC_0286.JPG")
    depth = metres(0.5, 60)
    depth[depth == 0] = np.inf
    path = root / "depth" / "courtyard_dslr_depth" / "courtyard" / "ground_truth_depth" / "dslr_images" / "DSC_0286.JPG"
    path.parent.mkdir(parents=True)
    path.write_bytes(depth.astype("<f4").tobytes())


def ibims(root):
    data = {"rgb": RNG.integers(0, 256, (H, W, 3), dtype=np.uint8), "depth": metres()}
    data |= {"mask_invalid": np.ones((H, W), np.uint8), "mask_transp": (RNG.random((H, W)) > 0.05).astype(np.uint8)}
    (root / "ibims1_core_mat").mkdir(parents=True)
    scipy.io.savemat(root / "ibims1_core_mat" / "corridor_01.mat", {"data": data})


def ibims_png(root):
    rgb(root / "rgb" / "corridor_01.png")
    uint16(root / "depth" / "corridor_01.png", np.round(metres() / 50 * 65535))
    for mask in ("mask_invalid", "mask_transp"):
        (root / mask).mkdir()
        Image.fromarray(np.full((H, W), 255, np.uint8)).save(root / mask / "corridor_01.png")


def scannet(root):
    rgb(root / "scene0000_00" / "color" / "000000.jpg")
    uint16(root / "scene0000_00" / "depth" / "000000.png", np.round(metres() * 1000))


def hypersim(root):
    folder = root / "ai_001_001" / "images"
    rgb(folder / "scene_cam_00_final_preview" / "frame.0000.tonemap.jpg")
    (folder / "scene_cam_00_geometry_hdf5").mkdir()
    distance = metres().astype(np.float16)
    distance[distance == 0] = np.nan
    with h5py.File(folder / "scene_cam_00_geometry_hdf5" / "frame.0000.depth_meters.hdf5", "w") as f:
        f["dataset"] = distance


def sintel(root):
    rgb(root / "training" / "final" / "alley_1" / "frame_0001.png")
    path = root / "training" / "depth" / "alley_1" / "frame_0001.dpt"
    path.parent.mkdir(parents=True)
    path.write_bytes(struct.pack("<fii", 202021.25, W, H) + metres(0.5, 500).astype("<f4").tobytes())


def vkitti2(root):
    frames = root / "Scene01" / "clone" / "frames"
    rgb(frames / "rgb" / "Camera_0" / "rgb_00000.jpg")
    uint16(frames / "depth" / "Camera_0" / "depth_00000.png", np.round(metres(1, 70) * 100))


LAYOUTS = {
    "diode": (diode, 2, []),
    "diode_indoor": (diode, 1, []),
    "diode_outdoor": (diode, 1, ["protocol=zoedepth"]),
    "eth3d": (eth3d, 1, [f"dataset.depth.height={H}", f"dataset.depth.width={W}"]),
    "ibims": (ibims, 1, []),
    "ibims_png": (ibims_png, 1, []),
    "scannet": (scannet, 1, []),
    "hypersim": (hypersim, 1, []),
    "sintel": (sintel, 1, []),
    "vkitti2": (vkitti2, 1, ["protocol=zoedepth"]),
}


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_each_config_finds_its_published_layout_and_scores_the_truth_as_perfect(name, tmp_path):
    write, frames, extra = LAYOUTS[name]
    write(tmp_path / "root")
    datamodule = build(plain(compose_data(name, [f"dataset.root={tmp_path / 'root'}", *extra])), "data")
    datamodule.setup("test")
    dataset = datamodule.datasets["test"]
    assert len(dataset) == frames
    for i in range(frames):
        image, depth = dataset.load(i)
        assert image.shape == (H, W, 3) and depth.shape == (H, W) and depth.dtype == np.float32
        assert (depth > 0).mean() > 0.8 and np.isfinite(depth).all() and (depth[:20] == 0).all()
        path = tmp_path / "pred" / f"{dataset.frame_name(i)}.npy"
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, np.where(depth > 0, depth, 1.0))
    result, missing = score_predictions(datamodule, tmp_path / "pred", ScoreSettings())
    assert not missing and result.images == frames
    assert result.values["predictions/abs_rel"] == 0 and result.values["predictions/d1"] == 1
    card = result.card
    assert card["dataset"] == name and card["protocol_name"] == datamodule.protocol.name and card["follows"]


def test_the_training_split_of_an_evaluation_dataset_is_refused_and_a_bad_layout_named(tmp_path):
    scannet(tmp_path / "root")
    datamodule = build(plain(compose_data("scannet", [f"dataset.root={tmp_path / 'root'}"])), "data")
    with pytest.raises(ConfigError, match=r"no training frames \(data.dataset.train_list, .*\): it is for evaluation"):
        datamodule.setup("fit")
    empty = build(plain(compose_data("sintel", [f"dataset.root={tmp_path / 'root'}"])), "data")
    with pytest.raises(DataError, match=r"the glob 'training/final/\*/\*.png' under .*: no frame found"):
        empty.setup("test")
    (tmp_path / "root" / "scene0000_00" / "depth" / "000000.png").unlink()
    with pytest.raises(
        DataError, match=r"scene0000_00/color/000000\.jpg pairs with .*/depth/000000\.png, which does not exist"
    ):
        datamodule.setup("test")
