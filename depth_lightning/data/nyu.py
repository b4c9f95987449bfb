"""NYU Depth v2: the labelled set (``nyu_depth_v2_labeled.mat`` + ``splits.mat``) and the sync set
(list files of ``scene/rgb_XXXXX.jpg scene/sync_depth_XXXXX.png focal``)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from depth_lightning.core.errors import DataError
from depth_lightning.data.frames import FrameDataset, checked_fill, dataset_root, list_identity
from depth_lightning.data.io import read_depth_png, read_rgb

NYU_URL = "https://cs.nyu.edu/~fergus/datasets/nyu_depth_v2.html"
log = logging.getLogger(__name__)


def filled_path(depth_path: Path) -> Path:
    """Where ``prepare`` writes the colorization-filled map of a sync depth PNG."""
    return depth_path.with_name(depth_path.stem + "_filled.png")


def read_splits(path: str | Path) -> dict[str, np.ndarray]:
    """The official split: 0-based indices into the 1449 labelled frames (795 train, 654 test)."""
    import scipy.io

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: splits.mat not found (the official NYU split, published at {NYU_URL})")
    try:
        mat = scipy.io.loadmat(path)
    except Exception as err:
        raise DataError(f"{path}: not a readable MATLAB v5 splits.mat ({err})") from None
    if "trainNdxs" not in mat or "testNdxs" not in mat:
        raise DataError(f"{path}: expected variables trainNdxs and testNdxs")
    return {
        "train": mat["trainNdxs"].ravel().astype(np.int64) - 1,
        "test": mat["testNdxs"].ravel().astype(np.int64) - 1,
    }


class NYUBase(FrameDataset):
    def __init__(self, border: list[int] | None = None, **kw: Any) -> None:
        super().__init__(**kw)
        self.border = border

    def crop_box(self, shape: tuple[int, int]) -> tuple[int, int, int, int] | None:
        # The white/black border of the 640x480 frames: a fixed box, the Eigen crop, as peers do.
        if self.border is None:
            return None
        top, bottom, left, right = self.border
        if shape[0] < bottom or shape[1] < right:
            raise DataError(
                f"a {shape[0]}x{shape[1]} frame is smaller than the border box data.dataset.border="
                f"{list(self.border)} (rows top:bottom, cols left:right of a 480x640 NYU frame); NYU frames are "
                "480x640: is this the right dataset, or set data.dataset.border=null for frames without the border"
            )
        return top, bottom, left, right


class NYULabelled(NYUBase):
    """Frames of the labelled ``.mat`` (MATLAB v7.3 / HDF5), read lazily, one file handle per worker.

    ``root`` holds ``nyu_depth_v2_labeled.mat`` and ``splits.mat`` unless ``labelled_mat`` and
    ``splits_mat`` name them. ``target``: ``filled`` (the toolbox's colorization-filled ``depths``) or ``raw``
    (``rawDepths``, 0 = missing) for training; validation and test always use raw depth, as the
    field does. Validation: scenes held out of the official training frames (the file's ``scenes``).
    """

    def __init__(
        self,
        root: str,
        labelled_mat: str | None = None,
        splits_mat: str | None = None,
        target: str = "filled",
        **kw: Any,
    ) -> None:
        super().__init__(**kw)
        if target not in ("filled", "raw"):
            raise ValueError(f"data.dataset.target={target!r} is unknown; allowed: filled, raw")
        self.mat_path = Path(labelled_mat or Path(root) / "nyu_depth_v2_labeled.mat")
        splits_mat = self.splits_mat = Path(splits_mat or Path(root) / "splits.mat")
        if not self.mat_path.is_file():
            raise DataError(
                f"{self.mat_path}: nyu_depth_v2_labeled.mat not found; data.dataset.root should hold it and splits.mat "
                f"(both published at {NYU_URL})"
            )
        # validation: scenes held out of the official training frames (``hold_out``), never the test set
        self.indices = read_splits(splits_mat)["test" if self.split == "test" else "train"]
        self.key = "depths" if self.train and target == "filled" else "rawDepths"
        self._h5 = None
        self._pid = None
        with self._file() as f:
            for key in ("images", self.key):
                if key not in f:
                    raise DataError(f"{self.mat_path}: no dataset '{key}' in the file (not the labelled NYU .mat?)")
            n = f["images"].shape[0]
            self._scene_names = _scene_names(f) if self.holds_out() else None
        if self.indices.max(initial=-1) >= n:
            raise DataError(f"{splits_mat}: index {self.indices.max() + 1} is beyond the {n} frames of {self.mat_path}")
        self.hold_out_validation()

    def _file(self):
        import h5py

        try:
            return h5py.File(self.mat_path, "r")
        except OSError as err:
            raise DataError(f"{self.mat_path}: not a readable MATLAB v7.3 (HDF5) file ({err})") from None

    def _handle(self):
        # h5py handles must not cross fork(): each worker opens its own.
        if self._h5 is None or self._pid != os.getpid():
            self._h5, self._pid = self._file(), os.getpid()
        return self._h5

    def __len__(self) -> int:
        return len(self.indices)

    def describe(self, index: int) -> str:
        return f"{self.mat_path} frame {int(self.indices[index]) + 1}"

    def source(self) -> dict[str, Any]:
        which = "testNdxs" if self.split == "test" else "trainNdxs"
        truth = {"depths": "filled (the toolbox's colorization)", "rawDepths": "raw Kinect depth, holes invalid"}
        return {
            "list": {**list_identity(self.splits_mat, len(self.indices)), "entries": f"{which} of splits.mat"},
            "ground_truth": f"{self.key} of {self.mat_path.name}: {truth[self.key]}",
        }

    def scenes(self) -> list[str]:
        if self._scene_names is None:  # no 'scenes' in the file: each frame stands alone
            return [f"frame {int(k) + 1}" for k in self.indices]
        return [self._scene_names[int(k)] for k in self.indices]

    def subset(self, keep: list[int]) -> None:
        self.indices = self.indices[keep]

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        f, k = self._handle(), int(self.indices[index])
        # MATLAB stores column-major: (3, 640, 480) per image, (640, 480) per depth map.
        rgb = np.ascontiguousarray(f["images"][k].transpose(2, 1, 0))
        depth = np.ascontiguousarray(f[self.key][k].T).astype(np.float32)
        return rgb, depth

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_h5"], state["_pid"] = None, None
        return state


def _scene_names(f: Any) -> list[str] | None:
    """The labelled file's ``scenes`` (a MATLAB cell of char arrays: HDF5 object references)."""
    if "scenes" not in f:
        log.warning("%s has no 'scenes': validation frames are held out by frame, not by scene", f.filename)
        return None
    refs = f["scenes"][()].ravel()
    return ["".join(chr(c) for c in np.asarray(f[r]).ravel()) for r in refs]


def parse_list(path: str | Path) -> list[list[str]]:
    """The non-empty lines of a split list, split on whitespace; an empty list is an error."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: split list not found")
    lines = [ln for ln in (line.split() for line in path.read_text().splitlines()) if ln]
    if not lines:
        raise DataError(f"{path}: the split list is empty; it should name one frame per line")
    return lines


class NYUSync(NYUBase):
    """The field's ~24k-frame sync training set (and the 654-frame test list in the same format).

    ``fill``: ``colorization`` reads ``sync_depth_XXXXX_filled.png`` written by
    ``python -m depth_lightning.prepare nyu <root>``; ``none`` keeps holes (ignored in the loss).
    """

    def __init__(
        self,
        root: str,
        train_list: str,
        test_list: str,
        val_list: str | None = None,
        fill: str = "none",
        **kw: Any,
    ) -> None:
        super().__init__(**kw)
        self.fill = checked_fill(fill)  # used by the training split only (evaluation reads raw depth)
        self.list_file = self.list_for_split(train_list, test_list, val_list)
        self.own_validation = val_list is not None
        holds = "the NYU sync scenes (scene/rgb_XXXXX.jpg, scene/sync_depth_XXXXX.png) named by "
        holds += f"{self.list_file} ({NYU_URL})"
        self.root = dataset_root(root, holds)
        self.samples: list[tuple[Path, Path, int]] = []
        for n, parts in enumerate(parse_list(self.list_file), start=1):
            if len(parts) < 2:
                raise DataError(f"{self.list_file}:{n}: expected 'image depth [focal]', got {' '.join(parts)!r}")
            rgb, depth = (self.root / p.lstrip("/") for p in parts[:2])
            # every listed file checked now (seconds for 24k lines), not hours into an epoch
            needed = (rgb, depth, filled_path(depth)) if self.train and fill == "colorization" else (rgb, depth)
            missing = next((p for p in needed if not p.is_file()), None)
            if missing is None:
                self.samples.append((rgb, depth, n))
            elif self.skip_bad_samples:
                log.warning("skipping %s:%d: %s does not exist", self.list_file, n, missing)
                hint = " (run python -m depth_lightning.prepare nyu)" if missing == filled_path(depth) else ""
                self.missing.append(f"{self.list_file}:{n} names {missing}, which does not exist{hint}")
            elif missing == needed[-1] and len(needed) == 3:
                raise DataError(
                    f"{missing}: no filled depth for {depth}; run python -m depth_lightning.prepare nyu "
                    f"{self.root} --list {self.list_file} (or set data.dataset.fill=none)"
                )
            else:
                raise DataError(
                    f"{self.list_file}:{n} names {missing}, which does not exist (data.skip_bad_samples=true skips it)"
                )
        self.hold_out_validation(self.own_validation)

    def __len__(self) -> int:
        return len(self.samples)

    def describe(self, index: int) -> str:
        rgb, depth, n = self.samples[index]
        return f"{self.list_file}:{n} ({rgb}, {depth})"

    def frame_name(self, index: int) -> str:
        return str(self.samples[index][0].relative_to(self.root).with_suffix(""))

    def list_line(self, index: int) -> int | None:
        return self.samples[index][2]

    def source(self) -> dict[str, Any]:
        filled = self.train and self.fill == "colorization"
        truth = "filled by colorization (prepare nyu)" if filled else "raw Kinect depth, holes invalid"
        return {"list": list_identity(self.list_file), "ground_truth": f"sync_depth PNG, millimetres / 1000: {truth}"}

    def scenes(self) -> list[str]:
        return [rgb.parent.name for rgb, _, _ in self.samples]

    def subset(self, keep: list[int]) -> None:
        self.samples = [self.samples[i] for i in keep]

    def frame_files(self, index: int) -> tuple[Path, Path] | None:
        rgb_path, depth_path, _ = self.samples[index]
        return rgb_path, filled_path(depth_path) if self.train and self.fill == "colorization" else depth_path

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        rgb_path, depth_path, _ = self.samples[index]  # every file was found when the list was read
        if self.train and self.fill == "colorization":
            depth_path = filled_path(depth_path)
        return read_rgb(rgb_path), read_depth_png(depth_path, scale=1000.0)
