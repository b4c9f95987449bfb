"""Datasets laid out as files under a root, described in a config: the zero-shot benchmarks (DIODE,
ETH3D, iBims-1, ScanNet, SUN RGB-D, TUM RGB-D, Middlebury, Hypersim, Sintel, Virtual KITTI 2).

A split's frames are named by a list file (columns as ``columns`` says), found by a glob of their
images, or, for TUM RGB-D, associated by timestamp; a frame's depth and companion files (a mask, a
calibration) come from the list's columns or from a rule that rewrites the image's path; the depth
is read in the encoding the config names (:mod:`depth_lightning.data.encodings`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from depth_lightning.core.errors import ConfigError, DataError
from depth_lightning.data.encodings import (
    ENCODINGS,
    HEADER_SIZED,
    check_encoding,
    read_depth,
    read_image,
    substitute,
)
from depth_lightning.data.frames import FrameDataset, dataset_root, list_identity, refuse_test_as_validation
from depth_lightning.data.nyu import parse_list


@dataclass(frozen=True)
class Frame:
    image: Path
    depth: Path
    companions: dict[str, Path] = field(default_factory=dict)
    line: int | None = None


def associate(
    rgb: list[tuple[float, str]], depth: list[tuple[float, str]], max_difference: float
) -> list[tuple[str, str]]:
    """TUM RGB-D's ``associate.py``: of every (rgb, depth) pair of timestamps closer than
    ``max_difference`` seconds, the closest first, each entry used once; in rgb time order."""
    pairs = sorted(
        (abs(a - b), i, j)
        for i, (a, _) in enumerate(rgb)
        for j, (b, _) in enumerate(depth)
        if abs(a - b) < max_difference
    )
    used_rgb, used_depth, matches = set(), set(), []
    for _, i, j in pairs:
        if i not in used_rgb and j not in used_depth:
            used_rgb.add(i)
            used_depth.add(j)
            matches.append((i, j))
    return [(rgb[i][1], depth[j][1]) for i, j in sorted(matches)]


def read_timestamps(path: Path) -> list[tuple[float, str]]:
    """A TUM ``rgb.txt`` / ``depth.txt``: ``timestamp filename`` lines, ``#`` comments."""
    if not path.is_file():
        raise DataError(f"{path}: TUM RGB-D index file not found (each sequence holds rgb.txt and depth.txt)")
    out = []
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        parts = line.split()
        if not parts or parts[0].startswith("#"):
            continue
        try:
            out.append((float(parts[0]), parts[1]))
        except (ValueError, IndexError):
            raise DataError(f"{path}:{n}: expected 'timestamp filename', got {line!r}") from None
    return out


class FileFrames(FrameDataset):
    """One split of a dataset of files under ``root``.

    Args:
        root: the dataset's folder (every path below is relative to it).
        depth: ``{encoding: <name>, ...options}``, an encoding of :data:`~depth_lightning.data.encodings.ENCODINGS`.
        test_list: the test split's list file, one frame per line; without one, the test frames
            are found by ``images``.
        train_list: the training list (an evaluation-only dataset has none).
        val_list: a validation list; null: held out of the training list.
        columns: what each column of a list line is: ``image``, ``depth``, a companion file's name
            (``mask``, ``calib``...), or null for a column to skip (a timestamp, a focal length).
        images: a glob under ``root`` of the test split's images, or ``{train, val, test}`` globs
            (with ``timestamps``: of the sequences' ``rgb.txt``); a split with a list reads its list.
        pair: ``{depth | <companion>: [pattern, replacement]}``: a regular expression that rewrites an
            image's path (relative to ``root``) into that file's, for files a list does not name.
        timestamps: TUM RGB-D: associate each ``rgb.txt`` entry with the closest ``depth.txt`` entry
            within this many seconds (``pair.depth`` rewrites rgb.txt into depth.txt).
        ground_truth: what the depth is, for the protocol card.
    """

    def __init__(
        self,
        root: str,
        depth: dict[str, Any],
        test_list: str | None = None,
        train_list: str | None = None,
        val_list: str | None = None,
        columns: list[str | None] | None = None,
        images: str | dict[str, str | None] | None = None,
        pair: dict[str, list[str]] | None = None,
        timestamps: float | None = None,
        ground_truth: str = "",
        **kw: Any,
    ) -> None:
        super().__init__(**kw)
        self.root = dataset_root(root, "the dataset's files")
        self.encoding, self.options = check_encoding(depth)
        self.columns = list(columns or ["image", "depth"])
        if "image" not in self.columns or "depth" not in self.columns:
            raise ConfigError(
                f"config error: data.dataset.columns={self.columns} must name an 'image' and a 'depth' column"
            )
        self.pair = dict(pair or {})
        self.ground_truth = ground_truth or ENCODINGS[self.encoding][2]
        globs = dict(images) if isinstance(images, Mapping) else {"test": images}
        lists = {"train": train_list, "val": val_list, "test": test_list}
        self.list_file, self.pattern = None, None
        kind, value = self._source(lists, globs)
        if kind == "list":
            self.list_file = Path(value)
            self.frames = self._listed(self.list_file)
        else:
            self.pattern = value
            self.frames = self._associated(timestamps) if timestamps else self._globbed()
        self.frames = self._present(self.frames)
        if not self.frames:
            found_by = self.list_file or f"the glob {value!r} under {self.root}"
            raise DataError(f"{found_by}: no frame found; check data.dataset.root and the dataset's layout")
        self.hold_out_validation(self.own_validation)

    def _source(self, lists: dict[str, Any], globs: dict[str, Any]) -> tuple[str, str]:
        """``("list", file)`` or ``("glob", pattern)`` of this split; validation without a source of its
        own is held out of the training frames by folder (:meth:`hold_out_validation`)."""
        refuse_test_as_validation(lists["val"], lists["test"])
        own_val = self.own_validation = lists["val"] is not None or globs.get("val") is not None
        split = self.split if self.split == "test" or own_val else "train"
        if lists.get(split) is not None:
            return "list", lists[split]
        if globs.get(split) is not None:
            return "glob", globs[split]
        if split == "test":
            raise ConfigError("config error: data.dataset: give test_list or an images glob for the test frames")
        raise ConfigError(
            "this dataset has no training frames (data.dataset.train_list, or data.dataset.images.train): it is for "
            "evaluation only; evaluate on it (python -m depth_lightning.evaluate / benchmark), or give its lists"
        )

    # -- finding the frames
    def _companions(self, relative: str, named: dict[str, str]) -> dict[str, Path]:
        files = ENCODINGS[self.encoding][1]
        out = {k: self.root / v for k, v in named.items() if k in files}
        for name in files:
            if name not in out and name in self.pair:
                out[name] = self.root / substitute(relative, self.pair[name], name)
        return out

    def _frame(self, image: str, depth: str | None, named: dict[str, str], line: int | None = None) -> Frame:
        if depth is None:
            if "depth" not in self.pair:
                raise ConfigError("config error: data.dataset.pair.depth: no rule pairs an image with its depth file")
            depth = substitute(image, self.pair["depth"], "depth")
        return Frame(self.root / image, self.root / depth, self._companions(image, named), line)

    def _listed(self, path: Path) -> list[Frame]:
        frames = []
        for n, parts in enumerate(parse_list(path), start=1):
            if len(parts) < len(self.columns):
                raise DataError(f"{path}:{n}: expected columns {self.columns}, got {' '.join(parts)!r}")
            named = {c: p.lstrip("/") for c, p in zip(self.columns, parts, strict=False) if c}
            image, depth = named.pop("image"), named.pop("depth")
            frames.append(self._frame(image, depth, named, n))
        return frames

    def _globbed(self) -> list[Frame]:
        found = sorted(p.relative_to(self.root).as_posix() for p in self.root.glob(self.pattern) if p.is_file())
        return [self._frame(image, None, {}) for image in found]

    def _associated(self, max_difference: float) -> list[Frame]:
        frames = []
        for index in sorted(self.root.glob(self.pattern)):
            relative = index.relative_to(self.root).as_posix()
            depth_index = self.root / substitute(relative, self.pair["depth"], "depth index")
            folder = index.parent.relative_to(self.root)
            for rgb, depth in associate(read_timestamps(index), read_timestamps(depth_index), max_difference):
                frames.append(Frame(self.root / folder / rgb, self.root / folder / depth))
        return frames

    def _present(self, frames: list[Frame]) -> list[Frame]:
        """The frames whose files all exist: every file checked now, not hours into an epoch; a missing
        one is an error naming it (with ``skip_bad_samples``: skipped and counted for the dataset check)."""
        kept = []
        for frame in frames:
            files = (frame.image, frame.depth, *frame.companions.values())
            missing = next((p for p in files if not p.is_file()), None)
            if missing is None:
                kept.append(frame)
                continue
            where = f"{self.list_file}:{frame.line} names" if frame.line else f"{frame.image} pairs with"
            if not self.skip_bad_samples:
                raise DataError(f"{where} {missing}, which does not exist (data.skip_bad_samples=true skips it)")
            self.missing.append(f"{where} {missing}, which does not exist")
        return kept

    # -- FrameDataset
    def __len__(self) -> int:
        return len(self.frames)

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        frame = self.frames[index]
        return read_image(frame.image), read_depth(frame.depth, self.encoding, self.options, frame.companions)

    def frame_files(self, index: int) -> tuple[Path, Path] | None:
        frame = self.frames[index]
        return (frame.image, frame.depth) if self.encoding in HEADER_SIZED else None

    def describe(self, index: int) -> str:
        frame = self.frames[index]
        where = f"{self.list_file}:{frame.line} " if frame.line else ""
        return f"{where}({frame.image}, {frame.depth})"

    def depth_unit_setting(self) -> str | None:
        options = ", ".join(f"data.dataset.depth.{k}={v}" for k, v in self.options.items() if k == "scale")
        return f"read as data.dataset.depth.encoding={self.encoding}" + (f", {options}" if options else "")

    def frame_name(self, index: int) -> str:
        return self.frames[index].image.relative_to(self.root).with_suffix("").as_posix()

    def list_line(self, index: int) -> int | None:
        return self.frames[index].line

    def scenes(self) -> list[str]:
        return [f.image.parent.relative_to(self.root).as_posix() for f in self.frames]

    def subset(self, keep: list[int]) -> None:
        self.frames = [self.frames[i] for i in keep]

    def source(self) -> dict[str, Any]:
        if self.list_file is not None:
            listing = list_identity(self.list_file)
        else:  # frames found by a glob: the card names the pattern and hashes what it found
            names = "\n".join(self.frame_name(i) for i in range(len(self)))
            listing = {
                "file": str(self.root.resolve()),
                "found_by": self.pattern,
                "lines": len(self),
                "sha256": hashlib.sha256(names.encode()).hexdigest()[:16],
            }
        truth = f"{self.ground_truth} (encoding {self.encoding}{', ' if self.options else ''}"
        truth += ", ".join(f"{k}={v}" for k, v in self.options.items()) + ")"
        return {"list": listing, "ground_truth": truth}
