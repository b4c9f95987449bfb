import logging

import numpy as np
import pytest
from PIL import Image

from depth_lightning.core.errors import DataError
from depth_lightning.data.io import read_depth_png
from depth_lightning.data.kitti import KITTIEigen, read_calib, velodyne_depth
from depth_lightning.evaluation.protocol import EvalProtocol
from tests.datasets import write_kitti
from tests.helpers import SHARED

REAL = SHARED / "realdata" / "kitti"
needs_real = pytest.mark.skipif(not REAL.is_dir(), reason=f"real KITTI samples not present at {REAL}")


@pytest.fixture(scope="module")
def kitti(tmp_path_factory):
    return write_kitti(tmp_path_factory.mktemp("kitti"))


def test_projection_keeps_points_in_front_and_the_nearest(kitti):
    raw = kitti["raw"] / "2011_09_26"
    depth = velodyne_depth(raw, raw / "2011_09_26_drive_0001_sync" / "velodyne_points" / "data" / "0000000000.bin")
    assert depth.shape == (375, 1242)
    valid = depth > 0
    assert valid.mean() > 0.01
    assert depth[valid].min() > 2.5 and depth[valid].max() < 62  # nothing from behind the scanner
    # two points on one ray from the camera: the pixel keeps the nearer
    scan = raw / "two.bin"
    cam, velo = read_calib(raw / "calib_cam_to_cam.txt"), read_calib(raw / "calib_velo_to_cam.txt")
    rect = np.eye(4)
    rect[:3, :3] = cam["R_rect_00"].reshape(3, 3)
    v2c = np.vstack([np.hstack([velo["R"].reshape(3, 3), velo["T"][:, None]]), [0, 0, 0, 1]])
    m = cam["P_rect_02"].reshape(3, 4) @ rect @ v2c
    cam_origin = -np.linalg.solve(m[:, :3], m[:, 3])  # the projection centre, in the Velodyne frame
    direction = np.array([1.0, 0.05, 0.01])
    pts = np.stack([cam_origin + 10 * direction, cam_origin + 20 * direction])
    np.hstack([pts, np.ones((2, 1))]).astype(np.float32).tofile(scan)
    two = velodyne_depth(raw, scan)
    assert (two > 0).sum() == 1 and 9.5 < two.max() < 10.5


@pytest.mark.parametrize("fmt", ["monodepth2", "bts"])
def test_split_formats_and_frames_with_ground_truth(kitti, fmt, caplog):
    with caplog.at_level(logging.INFO):
        ds = KITTIEigen(
            str(kitti["raw"]),
            None,
            str(kitti[fmt]),
            split="test",
            gt="annotated",
            annotated_root=str(kitti["annotated"]),
            frame_size=[370, 1224],
            input_size=(94, 310),
            protocol=EvalProtocol("garg", caps=(80.0,)),
        )
    assert ds.listed == 4 and len(ds) == 3  # the last frame has no annotated map
    assert "4 frames listed, 3 with ground truth" in caplog.text
    item = ds[0]
    assert item["image"].shape == (3, 94, 310) and item["depth"].shape == (370, 1224)
    mask = item["eval_mask"].numpy()
    # the Garg crop of the 375x1242 frame, moved into the bottom-centre 370x1224 crop
    rows, cols = np.nonzero(mask.any(1))[0], np.nonzero(mask.any(0))[0]
    assert rows.min() == int(0.40810811 * 375) - 5 and rows.max() == int(0.99189189 * 375) - 1 - 5
    assert cols.min() == int(0.03594771 * 1242) - 9
    png = np.array(Image.open(kitti["gt_dir"] / "0000000000.png")).astype(np.float32) / 256
    np.testing.assert_allclose(item["depth"].numpy(), png[5:375, 9:1233])
    velo = KITTIEigen(str(kitti["raw"]), None, str(kitti[fmt]), gt="velodyne", input_size=(94, 310), split="test")
    assert len(velo) == (4 if fmt == "monodepth2" else 3)


def test_kitti_errors(kitti, tmp_path):
    with pytest.raises(DataError, match="should hold KITTI raw"):
        KITTIEigen(str(tmp_path / "nope"), str(kitti["bts"]), None, input_size=(94, 310), split="train")
    bad = tmp_path / "list.txt"
    bad.write_text("2011_09_26/2011_09_26_drive_0001_sync 0000000099 l\n")
    with pytest.raises(DataError, match=r"list.txt:1 names .*0000000099.png"):
        KITTIEigen(str(kitti["raw"]), str(bad), None, input_size=(94, 310), split="train")
    bad.write_text("just-one-token-too-many a b c\n")
    with pytest.raises(DataError, match="list.txt:1: unrecognised"):
        KITTIEigen(str(kitti["raw"]), str(bad), None, input_size=(94, 310), split="train")


@needs_real
def test_real_velodyne_projection_agrees_with_official_annotation():
    date = REAL / "raw" / "2011_09_26"
    calib = read_calib(date / "calib_cam_to_cam.txt")
    assert calib["P_rect_02"][0] == pytest.approx(721.5377)
    scan = date / "2011_09_26_drive_0001_sync" / "velodyne_points" / "data" / "0000000005.bin"
    projected = velodyne_depth(date, scan, camera=2)
    annotated = read_depth_png(
        REAL
        / "data_depth_annotated"
        / "train"
        / "2011_09_26_drive_0001_sync"
        / "proj_depth"
        / "groundtruth"
        / "image_02"
        / "0000000005.png",
        256.0,
    )
    assert projected.shape == annotated.shape == (375, 1242)
    both = (projected > 0) & (annotated > 0)
    assert both.sum() > 5000
    rel = np.abs(projected[both] - annotated[both]) / annotated[both]
    print(f"\nreal KITTI 0001/5: {both.sum()} shared pixels, median relative difference {np.median(rel):.4f}")
    assert np.median(rel) < 0.02


@needs_real
def test_real_eigen_lists_parse(tmp_path):
    splits = REAL / "splits"
    lines = (splits / "bts" / "eigen_test_files_with_gt.txt").read_text().split("\n")
    entries = [ln.split() for ln in lines if ln.strip()]
    assert len(entries) == 697 and sum(e[1] == "None" for e in entries) == 45  # 652 with ground truth
    mono2 = (splits / "monodepth2" / "eigen" / "test_files.txt").read_text().split()
    assert len(mono2) == 697 * 3
