"""The pipeline every dataset shares: which list a split reads, the validation hold-out, the crop box,
augmentation, resizing, the evaluation region and the bad-sample policy."""

from __future__ import annotations

import hashlib
import logging
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset, default_collate

from depth_lightning.core.errors import ConfigError, DataError
from depth_lightning.data.splits import HoldOut
from depth_lightning.data.transforms import PaperAugmentation, unit_rgb

SPLITS = ("train", "val", "test")
FILLS = ("colorization", "none")  # data.dataset.fill: the toolbox's colorization of missing depth, or none
log = logging.getLogger(__name__)


class FrameDataset(Dataset, ABC):
    """One split of a dataset. Subclasses implement ``__len__``, ``load(i) -> (rgb uint8, depth
    float32 metres)`` and ``describe(i)`` (the files of sample ``i``, for error messages); those that
    read a training list also ``scenes()`` and ``subset(keep)``, so that validation can be held out
    of it by scene.

    Args:
        split: ``train``, ``val`` or ``test``.
        input_size: ``(height, width)`` of the network's input.
        augment: the training augmentation (training split only).
        skip_bad_samples: a sample whose files are unreadable is logged and skipped, not an error.
        seed: augmentation and the validation hold-out are pure functions of it.
        protocol: the evaluation protocol (an :class:`~depth_lightning.evaluation.protocol.EvalProtocol`,
            handed in by the datamodule; its ``mask`` is each evaluated frame's region). None: the whole frame.
        hold_out: which scenes of the training list validation takes.
        augment_on: ``host`` (augmented here) or ``device`` (only the parameters drawn here; the
            datamodule applies them to the batch on the accelerator).

    Items: ``image`` (3,h,w) in [0,1] at the input size; ``depth``: at the input size for training,
    at the frame's native (cropped) resolution for evaluation, with ``eval_mask``, the protocol's
    region of that frame; ``index``; ``augment``, the sample's augmentation parameters, when
    ``augment_on`` is ``device`` (the datamodule applies them to the batch on the accelerator; the
    image is then uint8).
    """

    def __init__(
        self,
        split: str = "train",
        input_size: tuple[int, int] = (120, 160),
        augment: PaperAugmentation | None = None,
        skip_bad_samples: bool = False,
        seed: int = 0,
        protocol: Any = None,
        hold_out: HoldOut | None = None,
        augment_on: str = "host",
    ) -> None:
        if split not in SPLITS:
            raise ConfigError(f"split {split!r} is unknown; allowed: {', '.join(SPLITS)}")
        self.split, self.train = split, split == "train"
        self.input_size = tuple(input_size)
        self.seed = seed
        self.augment = augment if self.train else None
        self.skip_bad_samples = skip_bad_samples
        self.protocol, self.augment_on = protocol, augment_on
        self._hold_out = hold_out
        self.held_out_scenes: list[str] = []
        self.missing: list[str] = []  # listed files not found, skipped (skip_bad_samples): what check reports
        self.without_truth: list[str] = []  # listed frames left out for want of ground truth, and why

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """RGB uint8 (H,W,3) and depth float32 metres (H,W) of sample ``index``, 0 = invalid."""

    def describe(self, index: int) -> str:
        return f"sample {index}"

    def frame_problems(self, index: int) -> list[str]:
        """What is wrong in sample ``index``'s files that loading repairs quietly (for the dataset check)."""
        return []

    def frame_files(self, index: int) -> tuple[Path, Path] | None:
        """The RGB and depth files of sample ``index`` whose headers give their sizes (None: the
        dataset has no such pair, e.g. rendered frames or maps inside one container file)."""
        return None

    def depth_unit_setting(self) -> str | None:
        """The setting that says which unit the depth files are read in, for the dataset check's messages."""
        return None

    def frame_name(self, index: int) -> str:
        """The name other methods' saved predictions of this frame go by (``depth_lightning.score``):
        the RGB file's path under the dataset root without its extension; the index for datasets
        without files."""
        return f"{index:05d}"

    def source(self) -> dict[str, Any]:
        """What this split reads, for the protocol card: ``list`` (its file, line count and hash) and
        ``ground_truth`` (raw, filled, annotated, Velodyne...)."""
        return {"list": None, "ground_truth": "unspecified"}

    def list_line(self, index: int) -> int | None:
        """The line of the split list that names sample ``index`` (None: the dataset has no list)."""
        return None

    def crop_box(self, shape: tuple[int, int]) -> tuple[int, int, int, int] | None:
        """``(top, bottom, left, right)`` applied to RGB and depth before anything else."""
        return None

    def crop_box_of(self, index: int, shape: tuple[int, int]) -> tuple[int, int, int, int] | None:
        """:meth:`crop_box` of sample ``index`` (a packed dataset stores each frame's)."""
        return self.crop_box(shape)

    def cropped(
        self, index: int, original: tuple[int, int], *maps: np.ndarray, masked: bool = True
    ) -> tuple[list[np.ndarray], Any]:
        """``maps`` of sample ``index`` (frames of ``original`` size: RGB, depth, another method's
        prediction) cut to the part of the frame the dataset keeps, and (``masked``) the protocol's region
        of that part: the evaluation mask, a writable boolean tensor; None unmasked (training samples).
        The one place a frame is cropped and masked, for the suite's own loader and for saved predictions."""
        box = self.crop_box_of(index, original)
        if box is not None:
            t, b, left, r = box
            maps = tuple(m[t:b, left:r] for m in maps)
        if not masked:
            return list(maps), None
        kept = maps[0].shape[:2]
        region = np.ones(kept, dtype=bool) if self.protocol is None else np.array(self.protocol.mask(original, box))
        return list(maps), torch.from_numpy(region)

    # -- splits
    def list_for_split(self, train_list: str | Path, test_list: str | Path, val_list: str | Path | None) -> Path:
        """The list this split reads: the test list only for ``test``; validation reads its own list
        when one is given, else the training list, of which :meth:`hold_out_validation` keeps the
        held-out scenes."""
        refuse_test_as_validation(val_list, test_list)
        if self.split == "test":
            return Path(test_list)
        if val_list is not None:
            return Path(val_list if self.split == "val" else train_list)
        return Path(train_list)

    def holds_out(self, own_validation: bool = False) -> bool:
        """Whether this split is part of a training list that validation is held out of (by scene):
        not the test split, and not when validation has frames of its own (``own_validation``)."""
        return self._hold_out is not None and self.split != "test" and not own_validation

    def hold_out_validation(self, own_validation: bool = False) -> None:
        """Keep the part of the training list this split takes (validation: the held-out scenes);
        everything when validation has frames of its own (``own_validation``)."""
        if not self.holds_out(own_validation):
            return
        scenes = self.scenes()
        if not scenes:
            return  # no frame at all: the datamodule's check names why
        self.held_out_scenes = self._hold_out.held_out_scenes(scenes)
        self.subset(self._hold_out.select(scenes))

    # -- the pipeline
    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any] | None:
        """``key``: an index, or ``(epoch, index)`` from :class:`EpochSampler`."""
        epoch, index = key if isinstance(key, tuple) else (0, key)
        try:
            rgb, depth = self.load(index)
            if rgb.shape[:2] != depth.shape[:2]:  # the words of data/frame_check.size_mismatch
                rgb_hw, depth_hw = tuple(rgb.shape[:2]), tuple(depth.shape[:2])
                raise DataError(f"{self.describe(index)}: RGB {rgb_hw} and depth {depth_hw} differ in size")
        except DataError as err:
            if self.skip_bad_samples:
                log.warning("skipping bad sample: %s", err)
                return None
            raise
        (rgb, depth), region = self.cropped(index, depth.shape[:2], rgb, depth, masked=not self.train)
        h, w = self.input_size
        image = rgb if rgb.shape[:2] == (h, w) else cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA)
        item: dict[str, Any] = {"index": index}
        if self.train:
            if depth.shape != (h, w):
                depth = cv2.resize(depth, (w, h), interpolation=cv2.INTER_NEAREST)
            if self.augment is not None:
                # Augmentation as a pure function of (seed, epoch, index): reproducible, resumable.
                self.augment.set_seed(int(np.random.SeedSequence([self.seed, epoch, index]).generate_state(1)[0]))
                params = self.augment.draw()
                if self.augment_on == "device":  # applied to the batch by DepthDataModule.on_after_batch_transfer
                    item["augment"] = params  # and RGB stays uint8: a quarter of the bytes to collate and transfer
                else:  # the albumentations pipeline: the paper's part, then data.augment.extra
                    out = self.augment.host(image, depth, params)
                    image, depth = out["image"], out["depth"]
        else:
            item["eval_mask"] = region
        if "augment" not in item:
            image = unit_rgb(image)
        item["image"] = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))
        item["depth"] = torch.from_numpy(np.ascontiguousarray(depth, dtype=np.float32))
        return item


def dataset_root(root: str | Path, holds: str) -> Path:
    """``data.dataset.root`` as a folder; a :class:`DataError` saying what it should hold when it is none."""
    path = Path(root)
    if not path.is_dir():
        raise DataError(f"data.dataset.root={str(path)!r} does not exist; it should hold {holds}")
    return path


def checked_fill(fill: str, train: bool = True) -> str:
    """``data.dataset.fill`` checked; what a split reads (evaluation always the raw depth)."""
    if fill not in FILLS:
        raise ConfigError(f"config error: data.dataset.fill={fill!r} is unknown; allowed: {', '.join(FILLS)}")
    return fill if train else "none"


def refuse_test_as_validation(val_list: str | Path | None, test_list: str | Path | None) -> None:
    """Choosing a checkpoint on the test set biases the test numbers: a validation list that is the
    test list is refused."""
    if val_list is not None and test_list is not None and Path(val_list) == Path(test_list):
        raise ConfigError(
            f"data.dataset.val_list={str(val_list)!r} is the test list: choosing a checkpoint on the test "
            "set biases the test numbers; set val_list=null to validate on scenes held out of the training list"
        )


def list_identity(path: str | Path, entries: int | None = None) -> dict[str, Any]:
    """A list file as the protocol card names it: path, non-empty lines (or ``entries``), SHA-256."""
    path = Path(path)
    data = path.read_bytes()
    lines = sum(1 for line in data.decode(errors="replace").splitlines() if line.strip())
    return {
        "file": str(path.resolve()),
        "lines": lines if entries is None else entries,
        "sha256": hashlib.sha256(data).hexdigest()[:16],
    }


def collate_skipping_bad(batch: list[dict[str, Any] | None]) -> dict[str, Any]:
    """Default collation of the good samples; ``skipped`` counts the bad ones (``skip_bad_samples``)."""
    good = [b for b in batch if b is not None]
    sizes = {tuple(b["depth"].shape) for b in good}
    if len(sizes) > 1:  # evaluation ground truth is at each frame's own size
        raise DataError(
            f"frames of {len(sizes)} sizes in one evaluation batch ({', '.join('x'.join(map(str, s)) for s in sizes)} "
            f"at indices {[b['index'] for b in good]}): set data.eval_batch_size=1, or data.dataset.frame_size=[h, w] "
            "to cut every frame to one size"
        )
    out = default_collate(good) if good else {}
    out["skipped"] = torch.tensor(len(batch) - len(good))
    return out
