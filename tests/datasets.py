"""Writers of format-faithful miniature datasets (the real names, dtypes, axis orders and text)."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import scipy.io
from PIL import Image

MAT_HEADER = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5 schema 1.00 ."


def smooth_depth(h: int, w: int, rng: np.random.Generator, lo: float = 1.0, hi: float = 6.0) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    a, b = rng.uniform(0.5, 2, 2)
    return (lo + (hi - lo) * (0.5 + 0.25 * np.sin(a * x / w * 3) + 0.25 * y / h * b)).astype(np.float32)


def textured_rgb(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([(x * 3 + y) % 256, (y * 2) % 256, (x + 2 * y) % 256], -1)
    return np.clip(base + rng.integers(0, 30, (h, w, 3)), 0, 255).astype(np.uint8)


def write_nyu_labelled(
    root: Path, n: int = 6, train: tuple[int, ...] = (1, 2, 3, 4), test: tuple[int, ...] = (5, 6), seed: int = 0
) -> Path:
    """``nyu_depth_v2_labeled.mat`` (HDF5 with MATLAB's 512-byte header) and ``splits.mat`` (v5)."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    images = np.zeros((n, 3, 640, 480), np.uint8)
    depths = np.zeros((n, 640, 480), np.float32)
    raw = np.zeros((n, 640, 480), np.float32)
    for i in range(n):
        rgb = textured_rgb(480, 640, rng)
        d = smooth_depth(480, 640, rng)
        images[i] = rgb.transpose(2, 1, 0)  # MATLAB column-major: (3, 640, 480)
        depths[i] = d.T
        r = d.copy()
        r[rng.random(d.shape) < 0.1] = 0  # Kinect holes
        raw[i] = r.T
    path = root / "nyu_depth_v2_labeled.mat"
    with h5py.File(path, "w", userblock_size=512) as f:
        f.create_dataset("images", data=images)
        f.create_dataset("depths", data=depths)
        f.create_dataset("rawDepths", data=raw)
        # MATLAB's cell of scene names: object references to uint16 char arrays, two frames a scene
        scenes = f.create_dataset("scenes", (1, n), dtype=h5py.ref_dtype)
        for i in range(n):
            name = f"scene_{i // 2:04d}"
            scenes[0, i] = f.create_dataset(f"#refs#/s{i}", data=np.array([[ord(c)] for c in name], np.uint16)).ref
    with open(path, "r+b") as f:
        f.write(MAT_HEADER.ljust(128, b" "))
    scipy.io.savemat(
        root / "splits.mat",
        {"trainNdxs": np.array(train, np.uint16)[:, None], "testNdxs": np.array(test, np.uint16)[:, None]},
    )
    return root


def write_nyu_sync(root: Path, scenes: dict[str, int], seed: int = 0, size: tuple[int, int] = (480, 640)) -> Path:
    """``scene/rgb_XXXXX.jpg`` + ``scene/sync_depth_XXXXX.png`` (uint16 mm, 0 = missing) and a list."""
    rng = np.random.default_rng(seed)
    lines = []
    for scene, count in scenes.items():
        (root / scene).mkdir(parents=True, exist_ok=True)
        for k in range(count):
            rgb, d = textured_rgb(*size, rng), smooth_depth(*size, rng)
            d[rng.random(d.shape) < 0.1] = 0
            Image.fromarray(rgb).save(root / scene / f"rgb_{k:05d}.jpg", quality=90)
            Image.fromarray(np.round(d * 1000).astype(np.uint16)).save(root / scene / f"sync_depth_{k:05d}.png")
            lines.append(f"/{scene}/rgb_{k:05d}.jpg /{scene}/sync_depth_{k:05d}.png 518.8579")
    (root / "train.txt").write_text("\n".join(lines) + "\n")
    (root / "test.txt").write_text("\n".join(ln.lstrip("/").replace(" /", " ") for ln in lines[:2]) + "\n")
    return root


CAM_TO_CAM = """calib_time: 09-Jan-2012 13:57:47
corner_dist: 9.950000e-02
S_rect_00: 1.242000e+03 3.750000e+02
R_rect_00: 9.999239e-01 9.837760e-03 -7.445048e-03 -9.869795e-03 9.999421e-01 -4.278459e-03 7.402527e-03 4.351614e-03 9.999631e-01
P_rect_00: 7.215377e+02 0.000000e+00 6.095593e+02 0.000000e+00 0.000000e+00 7.215377e+02 1.728540e+02 0.000000e+00 0.000000e+00 0.000000e+00 1.000000e+00 0.000000e+00
S_rect_02: 1.242000e+03 3.750000e+02
R_rect_02: 9.998817e-01 1.511453e-02 -2.841595e-03 -1.511724e-02 9.998853e-01 -9.338510e-04 2.827154e-03 9.766976e-04 9.999955e-01
P_rect_02: 7.215377e+02 0.000000e+00 6.095593e+02 4.485728e+01 0.000000e+00 7.215377e+02 1.728540e+02 2.163791e-01 0.000000e+00 0.000000e+00 1.000000e+00 2.745884e-03
S_rect_03: 1.242000e+03 3.750000e+02
P_rect_03: 7.215377e+02 0.000000e+00 6.095593e+02 -3.395242e+02 0.000000e+00 7.215377e+02 1.728540e+02 2.199936e+00 0.000000e+00 0.000000e+00 1.000000e+00 2.729905e-03
"""
VELO_TO_CAM = """calib_time: 15-Mar-2012 11:37:16
R: 7.533745e-03 -9.999714e-01 -6.166020e-04 1.480249e-02 7.280733e-04 -9.998902e-01 9.998621e-01 7.523790e-03 1.480755e-02
T: -4.069766e-03 -7.631618e-02 -2.717806e-01
delta_f: 0.000000e+00 0.000000e+00
delta_c: 0.000000e+00 0.000000e+00
"""


def _calib(text: str) -> dict[str, np.ndarray]:
    return {
        k: np.array(v.split(), float) for k, v in (ln.split(":", 1) for ln in text.splitlines()) if k != "calib_time"
    }


def project_scan(points: np.ndarray) -> np.ndarray:
    """The fixture's "annotated" map of a scan, written out here independently of the package
    (KITTI's devkit recipe with the calibration above): x' = P_rect_02 R_rect_00 [R|T] x for points
    ahead of the scanner, pixel = round(u, v), the nearest point kept where several meet."""
    cam, velo = _calib(CAM_TO_CAM), _calib(VELO_TO_CAM)
    rigid = np.eye(4)
    rigid[:3, :3], rigid[:3, 3] = velo["R"].reshape(3, 3), velo["T"]
    rect = np.eye(4)
    rect[:3, :3] = cam["R_rect_00"].reshape(3, 3)
    ahead = points[points[:, 0] >= 0].astype(np.float64)
    x = cam["P_rect_02"].reshape(3, 4) @ rect @ rigid @ np.c_[ahead[:, :3], np.ones(len(ahead))].T
    x = x[:, x[2] > 0]
    depth = np.zeros((375, 1242), np.float32)
    for u, v, z in zip(np.round(x[0] / x[2]).astype(int), np.round(x[1] / x[2]).astype(int), x[2], strict=True):
        if 0 <= u < 1242 and 0 <= v < 375 and (depth[v, u] == 0 or z < depth[v, u]):
            depth[v, u] = z
    return depth


def write_kitti(root: Path, frames: tuple[int, ...] = (0, 1, 2, 3), seed: int = 0) -> dict[str, Path]:
    """A KITTI raw tree (one drive, image_02, velodyne_points, calibration) and annotated maps."""
    rng = np.random.default_rng(seed)
    date, drive = "2011_09_26", "2011_09_26_drive_0001_sync"
    raw, ann = root / "raw", root / "data_depth_annotated"
    (raw / date).mkdir(parents=True, exist_ok=True)
    (raw / date / "calib_cam_to_cam.txt").write_text(CAM_TO_CAM)
    (raw / date / "calib_velo_to_cam.txt").write_text(VELO_TO_CAM)
    img_dir = raw / date / drive / "image_02" / "data"
    velo_dir = raw / date / drive / "velodyne_points" / "data"
    gt_dir = ann / "train" / drive / "proj_depth" / "groundtruth" / "image_02"
    for d in (img_dir, velo_dir, gt_dir):
        d.mkdir(parents=True, exist_ok=True)
    for k in frames:
        Image.fromarray(textured_rgb(375, 1242, rng)).save(img_dir / f"{k:010d}.png")
        # a scan of a ground plane and a wall ahead, in the Velodyne frame (x forward, y left, z up)
        xs = rng.uniform(3, 60, 20000)
        ys = rng.uniform(-15, 15, 20000)
        ground = np.stack([xs, ys, np.full_like(xs, -1.73)], 1)
        wall = np.stack([np.full(8000, 25.0 + k), rng.uniform(-10, 10, 8000), rng.uniform(-1.7, 3, 8000)], 1)
        behind = np.stack([-rng.uniform(3, 30, 2000), rng.uniform(-10, 10, 2000), np.zeros(2000)], 1)
        pts = np.concatenate([ground, wall, behind])
        np.hstack([pts, rng.random((len(pts), 1))]).astype(np.float32).tofile(velo_dir / f"{k:010d}.bin")
    for k in frames[:-1]:  # the last frame has no annotated map, as 45 Eigen test frames have none
        d = project_scan(np.fromfile(velo_dir / f"{k:010d}.bin", np.float32).reshape(-1, 4))
        Image.fromarray(np.round(d * 256).astype(np.uint16)).save(gt_dir / f"{k:010d}.png")
    lists = {
        "monodepth2": root / "test_files.txt",
        "bts": root / "eigen_test_files_with_gt.txt",
    }
    lists["monodepth2"].write_text("".join(f"{date}/{drive} {k:010d} l\n" for k in frames))
    bts = []
    for k in frames:
        depth = "None" if k == frames[-1] else f"{drive}/proj_depth/groundtruth/image_02/{k:010d}.png"
        bts.append(f"{date}/{drive}/image_02/data/{k:010d}.png {depth} 721.5377")
    lists["bts"].write_text("\n".join(bts) + "\n")
    return {"raw": raw, "annotated": ann, "gt_dir": gt_dir, **lists}


def write_tum(base: Path, color: Path, depth: Path) -> Path:
    """One TUM RGB-D sequence as TUM publishes it (``rgb.txt``, ``depth.txt``: comments, then ``timestamp
    filename``) from a real colour and depth frame; the second colour frame has no depth within 0.02 s."""
    import shutil

    tum = base / "rgbd_dataset_freiburg1_xyz"
    (tum / "rgb").mkdir(parents=True)
    (tum / "depth").mkdir()
    shutil.copy(color, tum / "rgb" / "1305031102.175304.png")
    shutil.copy(depth, tum / "depth" / "1305031102.160407.png")
    (tum / "rgb.txt").write_text(
        "# color images\n# timestamp filename\n1305031102.175304 rgb/1305031102.175304.png\n1305031109.5 rgb/x.png\n"
    )
    (tum / "depth.txt").write_text(
        "# depth maps\n# timestamp filename\n1305031102.160407 depth/1305031102.160407.png\n"
    )
    return base


def write_rgbd_folder(
    root: Path, splits: dict[str, dict[str, int]], size: tuple[int, int] = (96, 128), seed: int = 0
) -> Path:
    """A user's own frames: ``<split>/<folder>/rgb/<k>.jpg`` beside ``<split>/<folder>/depth/<k>.png`` (16-bit
    millimetres, 0 = no depth), and a list per split (``<split>.txt``: image and depth, relative to the root)."""
    rng = np.random.default_rng(seed)
    for split, folders in splits.items():
        lines = []
        for folder, count in folders.items():
            for sub in ("rgb", "depth"):
                (root / split / folder / sub).mkdir(parents=True, exist_ok=True)
            for k in range(count):
                d = smooth_depth(*size, rng)
                d[rng.random(d.shape) < 0.05] = 0
                Image.fromarray(textured_rgb(*size, rng)).save(root / split / folder / "rgb" / f"{k}.jpg", quality=90)
                Image.fromarray(np.round(d * 1000).astype(np.uint16)).save(root / split / folder / "depth" / f"{k}.png")
                lines.append(f"{split}/{folder}/rgb/{k}.jpg {split}/{folder}/depth/{k}.png\n")
        (root / f"{split}.txt").write_text("".join(lines))
    return root
