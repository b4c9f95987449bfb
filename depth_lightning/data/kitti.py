"""KITTI raw on the Eigen split: images, ground truth from the Velodyne scans (projected with the
calibration files) or from the official annotated depth maps, both split-list formats in use."""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Any

import numpy as np

from depth_lightning.core.errors import ConfigError, DataError
from depth_lightning.data.frames import FrameDataset, checked_fill, dataset_root, list_identity
from depth_lightning.data.io import read_depth_png, read_rgb
from depth_lightning.data.nyu import parse_list

KITTI_URL = "https://www.cvlibs.net/datasets/kitti/raw_data.php"
# Where a projected LiDAR point lands: ``round`` matches the official KITTI depth maps
# (data_depth_velodyne, data_depth_annotated); ``round_minus_one`` is monodepth2's Eigen ground truth
# (generate_depth_map), one pixel up-left of them.
PIXEL_RULES = ("round", "round_minus_one")
# The Velodyne HDL-64E of KITTI measures to about 120 m; a point farther than this is corrupt.
MAX_LIDAR_RANGE = 200.0
log = logging.getLogger(__name__)


def filled_velodyne_path(image: Path) -> Path:
    """Where ``python -m depth_lightning.prepare kitti`` writes a frame's colorization-filled depth."""
    drive, camera = image.parent.parent.parent, image.parent.parent.name
    return drive / "proj_depth" / "filled" / camera / f"{image.stem}.png"


def read_calib(path: str | Path) -> dict[str, np.ndarray]:
    """A KITTI calibration text file: ``key: numbers`` per line (non-numeric lines skipped)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: calibration file not found (KITTI raw ships it in each date folder)")
    out: dict[str, np.ndarray] = {}
    for line in path.read_text().splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        try:
            out[key.strip()] = np.array([float(v) for v in value.split()])
        except ValueError:
            continue  # e.g. calib_time
    return out


@functools.lru_cache(maxsize=64)
def velodyne_projection(calib_dir: str, camera: int = 2) -> tuple[np.ndarray, int, int]:
    """``P_rect_0c · R_rect_00 · [R|T]_velo_to_cam`` (3x4) and the rectified image size of one date's
    calibration; read once per date folder, not once per frame."""
    cam = read_calib(Path(calib_dir) / "calib_cam_to_cam.txt")
    velo = read_calib(Path(calib_dir) / "calib_velo_to_cam.txt")
    try:
        velo_to_cam = np.vstack([np.hstack([velo["R"].reshape(3, 3), velo["T"].reshape(3, 1)]), [0, 0, 0, 1]])
        rect = np.eye(4)
        rect[:3, :3] = cam["R_rect_00"].reshape(3, 3)
        p_rect = cam[f"P_rect_0{camera}"].reshape(3, 4)
        height, width = cam[f"S_rect_0{camera}"][::-1].astype(int)
    except KeyError as err:
        raise DataError(
            f"{calib_dir}: calib_cam_to_cam.txt / calib_velo_to_cam.txt lack the entry {err}, which the Velodyne "
            "projection needs; copy the date's calibration files from KITTI raw"
        ) from None
    except ValueError:
        counts = {"R": velo.get("R"), "T": velo.get("T"), "R_rect_00": cam.get("R_rect_00")}
        counts.update(
            {f"P_rect_0{camera}": cam.get(f"P_rect_0{camera}"), f"S_rect_0{camera}": cam.get(f"S_rect_0{camera}")}
        )
        found = ", ".join(f"{k} {len(v)}" for k, v in counts.items())
        raise DataError(
            f"{calib_dir}: a calibration entry has the wrong number of values ({found}; expected R 9, T 3, "
            f"R_rect_00 9, P_rect_0{camera} 12, S_rect_0{camera} 2): copy the date's calibration files from KITTI raw"
        ) from None
    projection = p_rect @ rect @ velo_to_cam
    projection.flags.writeable = False  # shared by every caller through the cache
    return projection, int(height), int(width)


def plausible_points(points: np.ndarray, velo_path: str | Path) -> tuple[np.ndarray, str | None]:
    """Which scan points are finite and within the scanner's range, and what is wrong with the others."""
    finite = np.isfinite(points[:, :3]).all(1)
    plausible = finite & (np.linalg.norm(np.where(finite[:, None], points[:, :3], 0), axis=1) <= MAX_LIDAR_RANGE)
    if plausible.all():
        return plausible, None
    return plausible, (
        f"{velo_path}: {(~plausible).sum()} of {len(points)} points dropped ({(~finite).sum()} NaN or inf, "
        f"{(finite & ~plausible).sum()} beyond the scanner's {MAX_LIDAR_RANGE:g} m)"
    )


def velodyne_depth(
    calib_dir: str | Path, velo_path: str | Path, camera: int = 2, pixel_rule: str = "round"
) -> np.ndarray:
    """Sparse depth (H,W) of one Velodyne scan seen by rectified camera ``camera`` (0 = no point).

    ``P_rect_0c · R_rect_00 · [R|T]_velo_to_cam`` on homogeneous points; points behind the camera
    dropped; pixel = round(u, v) (``pixel_rule=round``, as the official depth maps) or
    round(u, v) - 1 (``round_minus_one``, monodepth2's Eigen ground truth); the nearest point kept.
    """
    if pixel_rule not in PIXEL_RULES:
        raise ConfigError(f"data.dataset.velodyne_pixel={pixel_rule!r} is unknown; allowed: {', '.join(PIXEL_RULES)}")
    projection, height, width = velodyne_projection(str(calib_dir), camera)
    velo_path = Path(velo_path)
    if not velo_path.is_file():
        raise DataError(f"{velo_path}: Velodyne scan not found")
    size = velo_path.stat().st_size
    if size == 0 or size % 16:
        raise DataError(
            f"{velo_path}: {size} bytes, not a whole number of points (16 bytes each: x, y, z, reflectance as "
            "float32): a truncated or foreign file; replace it from KITTI raw"
        )
    points = np.fromfile(velo_path, dtype=np.float32).reshape(-1, 4).astype(np.float64)
    plausible, problem = plausible_points(points, velo_path)
    if problem is not None:
        log.warning("%s", problem)
        points = points[plausible]
    points = points[points[:, 0] >= 0]  # in front of the scanner
    points[:, 3] = 1.0
    im = (projection @ points.T).T
    im = im[im[:, 2] > 0]  # in front of the camera
    shift = 1 if pixel_rule == "round_minus_one" else 0
    u = np.round(im[:, 0] / im[:, 2]).astype(np.int64) - shift
    v = np.round(im[:, 1] / im[:, 2]).astype(np.int64) - shift
    z = im[:, 2]
    ok = (u >= 0) & (v >= 0) & (u < width) & (v < height)
    u, v, z = u[ok], v[ok], z[ok]
    order = np.argsort(-z)  # far first, so the nearest point is written last and kept
    depth = np.zeros((height, width), dtype=np.float32)
    depth[v[order], u[order]] = z[order]
    return depth


class KITTIEigen(FrameDataset):
    """Frames of a KITTI split list.

    List formats: ``<date>/<drive> <frame> l|r`` (monodepth2), ``<image> <depth|None> <focal>``
    (BTS; depth relative to ``annotated_root``), ``<left image> <right image>`` (monodepth).
    ``gt``: ``velodyne`` (projected scans) or ``annotated`` (official maps, value / 256).
    ``fill``: ``colorization`` trains on the filled maps of ``prepare kitti`` (Sec. 4.2), ``none`` on
    the sparse ground truth; evaluation always uses the ``gt`` maps, unfilled.
    Frames without ground truth (no scan, or no annotated map) are left out, and how many is logged.
    ``frame_size``: a bottom-centre crop every frame is cut to first (drives differ by a few
    pixels); ``None`` (the paper: "the entire image is the network input") uses frames whole.
    """

    def __init__(
        self,
        root: str,
        train_list: str,
        test_list: str,
        val_list: str | None = None,
        gt: str = "velodyne",
        annotated_root: str | None = None,
        frame_size: list[int] | None = None,
        image_ext: str = ".png",
        fill: str = "none",
        velodyne_pixel: str = "round",
        **kw: Any,
    ) -> None:
        super().__init__(**kw)
        if gt not in ("velodyne", "annotated"):
            raise ConfigError(f"data.dataset.gt={gt!r} is unknown; allowed: velodyne, annotated")
        if velodyne_pixel not in PIXEL_RULES:
            raise ConfigError(
                f"data.dataset.velodyne_pixel={velodyne_pixel!r} is unknown; allowed: {', '.join(PIXEL_RULES)}"
            )
        self.fill = checked_fill(fill, self.train)  # evaluation always scores the raw Velodyne points
        self.list_file = self.list_for_split(train_list, test_list, val_list)
        self.own_validation = val_list is not None
        holds = "KITTI raw (<date>/<date>_drive_XXXX_sync/image_02/data/*.png, velodyne_points/, calib_*.txt; "
        holds += f"{KITTI_URL})"
        self.root = dataset_root(root, holds)
        self.velodyne_pixel = velodyne_pixel
        self.gt, self.image_ext = gt, image_ext
        self.annotated_root = Path(annotated_root) if annotated_root else None
        self.frame_size = frame_size
        listed = [self._parse(parts, n) for n, parts in enumerate(parse_list(self.list_file), start=1)]
        self.samples = [s for s in listed if s["depth"] is not None]
        for calib_dir, camera in {s["depth"][1:4:2] for s in self.samples if s["depth"][0] == "velodyne"}:
            velodyne_projection(str(calib_dir), camera)  # every calibration entry read now, errors named
        log.info("%s: %d frames listed, %d with ground truth (%s)", self.list_file, len(listed), len(self.samples), gt)
        self.listed = len(listed)
        self.hold_out_validation(self.own_validation)

    def _parse(self, parts: list[str], n: int) -> dict[str, Any]:
        where = f"{self.list_file}:{n}"
        if len(parts) == 3 and parts[2] in ("l", "r"):
            drive, frame, side = parts
            camera = 2 if side == "l" else 3
            rel = f"{drive}/image_0{camera}/data/{int(frame):010d}{self.image_ext}"
            image, depth_rel = self.root / rel, None
        elif len(parts) in (2, 3):
            image = self.root / parts[0].lstrip("/")
            camera = 3 if "/image_03/" in parts[0] else 2
            depth_rel = parts[1] if len(parts) == 3 and parts[1] != "None" else None
            if len(parts) == 3 and parts[1] == "None":
                return {"image": image, "depth": None, "line": where}
        else:
            raise DataError(f"{where}: unrecognised split line {' '.join(parts)!r}")
        if not image.is_file():  # found now, not hours into an epoch
            if not self.skip_bad_samples:
                raise DataError(f"{where} names {image}, which does not exist (data.skip_bad_samples=true skips it)")
            log.warning("skipping %s: %s does not exist", where, image)
            self.missing.append(f"{where} names {image}, which does not exist")
            return {"image": image, "depth": None, "line": where}
        frame_name = image.stem
        drive_dir = image.parent.parent.parent
        if self.gt == "velodyne":
            scan = drive_dir / "velodyne_points" / "data" / f"{frame_name}.bin"
            if not scan.is_file():
                self.without_truth.append(f"{where} ({image}): no Velodyne scan {scan}")
                return {"image": image, "depth": None, "line": where}
            depth = ("velodyne", drive_dir.parent, scan, camera)
        else:
            if self.annotated_root is None:
                raise DataError(
                    "data.dataset.gt=annotated needs data.dataset.annotated_root (the data_depth_annotated folder)"
                )
            rel = depth_rel or f"{drive_dir.name}/proj_depth/groundtruth/image_0{camera}/{frame_name}.png"
            found = [p for p in (self.annotated_root / s / rel for s in ("", "train", "val")) if p.is_file()]
            if not found:
                self.without_truth.append(f"{where} ({image}): no annotated map {self.annotated_root / rel}")
                return {"image": image, "depth": None, "line": where}
            depth = ("annotated", found[0])
        return {"image": image, "depth": depth, "line": where}

    def __len__(self) -> int:
        return len(self.samples)

    def describe(self, index: int) -> str:
        s = self.samples[index]
        return f"{s['line']} ({s['image']})"

    def frame_name(self, index: int) -> str:
        return str(self.samples[index]["image"].relative_to(self.root).with_suffix(""))

    def frame_problems(self, index: int) -> list[str]:
        s = self.samples[index]
        if self.fill == "colorization" or s["depth"][0] != "velodyne" or not s["depth"][2].is_file():
            return []
        points = np.fromfile(s["depth"][2], dtype=np.float32)
        problem = plausible_points(points[: len(points) // 4 * 4].reshape(-1, 4), s["depth"][2])[1]
        return [problem] if problem else []

    def list_line(self, index: int) -> int | None:
        return int(self.samples[index]["line"].rsplit(":", 1)[1])

    def source(self) -> dict[str, Any]:
        if self.fill == "colorization":
            truth = "filled by colorization (prepare kitti) from the projected Velodyne scans"
        elif self.gt == "velodyne":
            truth = f"Velodyne scans projected with each date's calibration, pixel rule {self.velodyne_pixel}, sparse"
        else:
            truth = "annotated: data_depth_annotated PNG / 256 (the official maps, 652 of the 697 Eigen test frames)"
        return {
            "list": {**list_identity(self.list_file), "frames_with_ground_truth": len(self.samples)},
            "ground_truth": truth,
        }

    def scenes(self) -> list[str]:
        return [s["image"].parent.parent.parent.name for s in self.samples]  # the drive

    def subset(self, keep: list[int]) -> None:
        self.samples = [self.samples[i] for i in keep]

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        s = self.samples[index]
        if not s["image"].is_file():
            raise DataError(f"{s['line']} names {s['image']}, which does not exist")
        rgb = read_rgb(s["image"])
        if self.fill == "colorization":
            filled = filled_velodyne_path(s["image"])
            if not filled.is_file():
                raise DataError(
                    f"{filled}: no filled depth for {s['line']}; run python -m depth_lightning.prepare kitti "
                    f"{self.root} --list {self.list_file} (or set data.dataset.fill=none)"
                )
            return rgb, read_depth_png(filled, scale=256.0)
        if s["depth"][0] == "velodyne":
            _, calib_dir, velo, camera = s["depth"]
            depth = velodyne_depth(calib_dir, velo, camera, self.velodyne_pixel)
        else:
            depth = read_depth_png(s["depth"][1], scale=256.0)
        return rgb, depth  # FrameDataset checks that the sizes agree

    def crop_box(self, shape: tuple[int, int]) -> tuple[int, int, int, int] | None:
        # Drives differ by a few pixels (375x1242, 370x1224, ...): a fixed-size bottom-centre crop.
        if self.frame_size is None:
            return None
        fh, fw = self.frame_size
        h, w = shape
        if h < fh or w < fw:
            raise DataError(f"a {h}x{w} frame is smaller than data.dataset.frame_size={fh}x{fw}")
        left = (w - fw) // 2
        return h - fh, h, left, left + fw
