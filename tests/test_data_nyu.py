import numpy as np
import pytest
import torch
from PIL import Image

from depth_lightning.core.errors import DataError
from depth_lightning.data.io import read_depth_png
from depth_lightning.data.nyu import NYULabelled, NYUSync, read_splits
from depth_lightning.evaluation.metrics import DepthMetrics
from tests.datasets import write_nyu_labelled, write_nyu_sync
from tests.helpers import SHARED

REAL_NYU = SHARED / "realdata" / "nyu"
needs_real = pytest.mark.skipif(not REAL_NYU.is_dir(), reason=f"real NYU samples not present at {REAL_NYU}")
BORDER = [45, 471, 41, 601]


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    return write_nyu_labelled(tmp_path_factory.mktemp("nyu"))


def test_labelled_mat_reads_lazily_with_matlab_axis_order(labelled):
    train = NYULabelled(labelled, split="train", input_size=(240, 320))
    test = NYULabelled(labelled, split="test", border=BORDER, input_size=(240, 320))
    assert (len(train), len(test)) == (4, 2)
    rgb, depth = test.load(0)
    assert rgb.shape == (480, 640, 3) and depth.shape == (480, 640)
    assert test.key == "rawDepths" and train.key == "depths"
    assert (depth == 0).mean() > 0.05  # the raw map has holes
    item = test[0]
    assert item["image"].shape == (3, 240, 320)
    assert item["depth"].shape == (426, 560)  # evaluation at the native resolution of the border box
    assert (train.load(0)[1] > 0).all()  # training targets: the filled maps
    # the box at its native resolution is the field's Eigen crop of the 480x640 frame, pixel for pixel:
    # the same ground truth, and the same pixels scored (valid ones, 1e-3 < d < 10)
    np.testing.assert_array_equal(item["depth"].numpy(), depth[45:471, 41:601])
    metric = DepthMetrics(1e-3, 10.0)
    metric.update(torch.full((1, 120, 160), 2.0), item["depth"][None], item["eval_mask"][None])
    eigen = np.zeros((480, 640), bool)
    eigen[45:471, 41:601] = True
    assert int(metric.images()[1][0, 0]) == int((eigen & (depth > 1e-3) & (depth < 10)).sum())


def test_labelled_is_safe_in_several_workers(labelled):
    ds = NYULabelled(labelled, labelled / "nyu_depth_v2_labeled.mat", labelled / "splits.mat", input_size=(64, 80))
    ds.load(0)  # a handle opened in the parent must not leak into the workers
    loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=2)
    batches = list(loader)
    assert sum(b["image"].shape[0] for b in batches) == 4


def test_sync_list_and_depth_in_metres(tmp_path):
    root = write_nyu_sync(tmp_path, {"kitchen_0001": 2, "office_0003": 1})
    ds = NYUSync(root, root / "train.txt", None, fill="none", border=BORDER, input_size=(120, 160), split="train")
    assert len(ds) == 3
    rgb, depth = ds.load(2)
    png = np.array(Image.open(root / "office_0003" / "sync_depth_00000.png"))
    np.testing.assert_allclose(depth, png / 1000.0, rtol=1e-6)
    assert ds[0]["depth"].shape == (120, 160)
    # without leading slashes too
    assert len(NYUSync(root, None, root / "test.txt", input_size=(120, 160), split="test")) == 2


def test_sync_errors_name_the_line_and_the_file_when_the_list_is_read(tmp_path):
    root = write_nyu_sync(tmp_path, {"bedroom": 2})
    (root / "bedroom" / "rgb_00001.jpg").unlink()
    # found when the dataset is built (at setup, before any training), not when the sample is loaded
    with pytest.raises(DataError, match=r"train.txt:2 names .*rgb_00001.jpg, which does not exist"):
        NYUSync(root, root / "train.txt", None, input_size=(64, 80), split="train")
    skipping = NYUSync(root, root / "train.txt", None, input_size=(64, 80), split="train", skip_bad_samples=True)
    assert len(skipping) == 1
    with pytest.raises(DataError, match="prepare nyu"):
        NYUSync(root, root / "train.txt", None, fill="colorization", input_size=(64, 80), split="train")
    (root / "empty.txt").write_text("\n")
    with pytest.raises(DataError, match="empty.txt: the split list is empty"):
        NYUSync(root, root / "empty.txt", None, input_size=(64, 80), split="train")
    with pytest.raises(DataError, match="does not exist; it should hold the NYU sync scenes"):
        NYUSync(tmp_path / "absent", root / "train.txt", None, input_size=(64, 80), split="train")


def test_corrupt_and_8bit_files_are_refused_by_name(tmp_path):
    root = write_nyu_sync(tmp_path, {"s": 3})
    (root / "s" / "rgb_00000.jpg").write_bytes((root / "s" / "rgb_00000.jpg").read_bytes()[:200])  # truncated
    Image.fromarray(np.zeros((480, 640), np.uint8)).save(root / "s" / "sync_depth_00001.png")  # 8-bit
    ds = NYUSync(root, root / "train.txt", None, input_size=(64, 80), split="train")
    with pytest.raises(DataError, match="rgb_00000.jpg: corrupt"):
        ds[0]
    with pytest.raises(DataError, match="sync_depth_00001.png: expected a 16-bit"):
        ds[1]
    skipping = NYUSync(root, root / "train.txt", None, input_size=(64, 80), split="train", skip_bad_samples=True)
    from depth_lightning.data.frames import collate_skipping_bad

    batch = collate_skipping_bad([skipping[i] for i in range(3)])
    assert batch["skipped"].item() == 2 and batch["image"].shape[0] == 1


@needs_real
def test_real_sync_frames_load_in_metres(tmp_path):
    demo = REAL_NYU / "sync" / "metric3d_nyu_demo"
    frames = sorted(p.stem.split("_")[1] for p in (demo / "rgb").glob("rgb_*.jpg"))
    assert frames
    listing = tmp_path / "list.txt"
    listing.write_text("".join(f"rgb/rgb_{k}.jpg depth/sync_depth_{k}.png 518.8579\n" for k in frames))
    ds = NYUSync(demo, None, listing, border=BORDER, input_size=(240, 320), split="test")
    for i, k in enumerate(frames):
        rgb, depth = ds.load(i)
        png = np.array(Image.open(demo / "depth" / f"sync_depth_{k}.png"))
        assert png.dtype == np.uint16 and rgb.shape == (480, 640, 3)
        np.testing.assert_array_equal(depth, png.astype(np.float32) / 1000.0)
        assert 0.3 < np.median(depth[depth > 0]) < 10
        item = ds[i]
        assert item["depth"].shape == (426, 560) and item["image"].shape == (3, 240, 320)
    np.testing.assert_array_equal(read_depth_png(demo / "depth" / f"sync_depth_{frames[0]}.png", 1000.0), ds.load(0)[1])


@needs_real
def test_real_official_split_is_795_654():
    split = read_splits(REAL_NYU / "splits.mat")
    assert (len(split["train"]), len(split["test"])) == (795, 654)
    assert split["train"].min() >= 0 and max(split["train"].max(), split["test"].max()) <= 1448
    assert not set(split["train"]) & set(split["test"])
