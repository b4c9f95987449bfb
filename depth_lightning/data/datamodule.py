"""The LightningDataModule: builds the configured dataset's splits and their loaders."""

from __future__ import annotations

from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from depth_lightning.data.frames import collate_skipping_bad
from depth_lightning.data.samplers import EpochSampler, UnpaddedDistributedSampler
from depth_lightning.data.splits import HoldOut
from depth_lightning.data.synthetic import SyntheticScenes
from depth_lightning.protocol import EvalProtocol

DATASETS = ("synthetic", "synthetic_outdoor", "nyu", "nyu_sync", "kitti")


def _worker_init(worker_id: int) -> None:
    # Workers share the machine with the training process: one thread each.
    torch.set_num_threads(1)


def hold_out_for(cfg: Any, split: str) -> HoldOut | None:
    """The part of the training list ``split`` takes: validation is held out of it by scene unless
    ``data.val_list`` names a list of its own; the test list is never part of it."""
    if split == "test" or cfg.get("val_list"):
        return None
    return HoldOut(split, fraction=cfg.val_fraction, seed=cfg.seed, max_frames=cfg.get("val_max_frames"))


def build_dataset(cfg: Any, split: str) -> Dataset:
    """The ``split`` (train | val | test) of the dataset named by ``cfg.name``."""
    protocol = EvalProtocol(**cfg.eval)
    if cfg.name in ("synthetic", "synthetic_outdoor"):
        # Disjoint seeds per split: validation scenes are never training scenes.
        offset = {"train": 0, "val": 1_000_003, "test": 2_000_003}[split]
        return SyntheticScenes(
            length=cfg[f"{split}_length"],
            height=cfg.height,
            width=cfg.width,
            seed=cfg.seed + offset,
            scene=cfg.scene,
            flip=cfg.flip and split == "train",
            augment_seed=cfg.seed,
            cache=cfg.cache,
            protocol=None if split == "train" else protocol,
        )
    common = {
        "input_size": (cfg.height, cfg.width),
        "train": split == "train",
        "augment": cfg.augment,
        "skip_bad_samples": cfg.skip_bad_samples,
        "seed": cfg.seed,
        "protocol": protocol,
    }
    hold = hold_out_for(cfg, split)
    if cfg.name == "nyu":
        from depth_lightning.data.nyu import NYULabelled

        return NYULabelled(
            cfg.labelled_mat, cfg.splits_mat, split, target=cfg.target, border=cfg.border, hold_out=hold, **common
        )
    list_file = (
        cfg.val_list
        if split == "val" and cfg.get("val_list")
        else cfg[f"{'test' if split == 'test' else 'train'}_list"]
    )
    if cfg.name == "nyu_sync":
        from depth_lightning.data.nyu import NYUSync

        return NYUSync(cfg.root, list_file, fill=cfg.fill, border=cfg.border, hold_out=hold, **common)
    if cfg.name == "kitti":
        from depth_lightning.data.kitti import KITTIEigen

        return KITTIEigen(
            cfg.root,
            list_file,
            gt=cfg.gt,
            annotated_root=cfg.annotated_root,
            frame_size=cfg.frame_size,
            image_ext=cfg.image_ext,
            fill=cfg.fill,
            velodyne_pixel=cfg.velodyne_pixel,
            hold_out=hold,
            **common,
        )
    raise ValueError(f"data.name={cfg.name!r} is unknown; allowed: {', '.join(DATASETS)}")


class DepthDataModule(L.LightningDataModule):
    def __init__(self, cfg: Any) -> None:
        super().__init__()
        self.cfg = cfg
        self.datasets: dict[str, Dataset] = {}

    def setup(self, stage: str | None = None) -> None:
        wanted = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",)}.get(stage or "", ())
        for split in wanted or ("train", "val", "test"):
            if split not in self.datasets:
                self.datasets[split] = build_dataset(self.cfg, split)

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        if split not in self.datasets:
            self.datasets[split] = build_dataset(self.cfg, split)
        dataset = self.datasets[split]
        workers = self.cfg.num_workers
        if split == "train":
            sampler = EpochSampler(len(dataset), seed=self.cfg.seed, shuffle=shuffle)
        else:
            sampler = UnpaddedDistributedSampler(len(dataset))
        return DataLoader(
            dataset,
            batch_size=self.cfg.batch_size if split == "train" else self.cfg.eval_batch_size,
            sampler=sampler,
            num_workers=workers,
            persistent_workers=workers > 0,
            worker_init_fn=_worker_init if workers > 0 else None,
            drop_last=split == "train" and len(dataset) >= self.cfg.batch_size,
            collate_fn=None if isinstance(dataset, SyntheticScenes) else collate_skipping_bad,
            # the loader's own generator: creating an iterator must not consume the global RNG
            # (dropout's), or a resumed run would diverge from an uninterrupted one
            generator=torch.Generator().manual_seed(self.cfg.seed),
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def training_depth_sample(self, frames: int) -> np.ndarray:
        """Depth maps of the first ``frames`` training frames, unaugmented, for the baselines."""
        ds = build_dataset(self.cfg, "train")
        ds.flip = False  # synthetic scenes
        ds.augment = None  # real datasets
        n = min(frames, len(ds))
        return np.stack([ds[i]["depth"].numpy() for i in range(n)])

    def describe_validation(self) -> str | None:
        """What the validation split holds, when it was held out of the training list (else None)."""
        if "val" not in self.datasets:
            self.setup("validate")
        val = self.datasets["val"]
        scenes = getattr(val, "held_out_scenes", None)
        if not scenes:
            return None
        source = self.cfg.labelled_mat if self.cfg.name == "nyu" else self.cfg.train_list
        lines = [
            f"# validation: {len(val)} frames of {len(scenes)} scene(s) held out of {source}",
            f"# (data.val_fraction={self.cfg.val_fraction}, data.seed={self.cfg.seed}); no frame of these scenes is"
            " trained on, and the test list is not read",
            *(f"scene {s}" for s in scenes),
            *(val.describe(i) for i in range(len(val))),
        ]
        return "\n".join(lines) + "\n"
