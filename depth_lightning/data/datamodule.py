"""The LightningDataModule: the configured dataset's three splits and their loaders."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from typing import Any

import lightning as L
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader

from depth_lightning.core.errors import ConfigError, DataError
from depth_lightning.data.frame_check import check_frames
from depth_lightning.data.frames import FrameDataset, collate_skipping_bad
from depth_lightning.data.samplers import EpochSampler, ResumableLoader, UnpaddedDistributedSampler
from depth_lightning.data.splits import HoldOut
from depth_lightning.data.transforms import AUGMENT_ON, PaperAugmentation

log = logging.getLogger(__name__)


def _worker_init(worker_id: int) -> None:
    # Workers share the machine with the training process: one thread each.
    torch.set_num_threads(1)


def chosen_protocol(protocol: Any, protocols: dict[str, Any]) -> Any:
    """``protocol`` itself (an :class:`~depth_lightning.evaluation.protocol.EvalProtocol` Hydra built,
    or None: evaluation's default), or the one of ``protocols`` it names."""
    if not isinstance(protocol, str):
        return protocol
    if protocol not in protocols:
        raise ConfigError(
            f"config error: data.protocol={protocol!r} is not one of this dataset's protocols "
            f"({', '.join(protocols) or 'none: set data.protocol to a protocol'})"
        )
    chosen = protocols[protocol]
    if isinstance(chosen, DictConfig):  # Hydra hands a dict of dataclasses over as structured configs
        chosen = OmegaConf.to_object(chosen)
    return dataclasses.replace(chosen, name=protocol)


def refuse_device_extras(augment: PaperAugmentation | None, augment_on: str) -> None:
    """``data.augment.extra`` are albumentations transforms, which run on the host after the paper's part."""
    if augment_on == "device" and augment is not None and augment.extra:
        raise ConfigError(
            "config error: data.augment.extra with data.augment_on=device: the extras are albumentations "
            "transforms, which run on the host after the paper's part; use data.augment_on=host with them"
        )


def plausible_range(value: Sequence[float] | None) -> tuple[float, float] | None:
    """``data.plausible_median`` checked: ``[low, high]`` metres, or null."""
    if value is None:
        return None
    if len(value) != 2 or not 0 <= value[0] < value[1]:
        raise ConfigError(f"config error: data.plausible_median={list(value)!r}: [low, high] metres, low < high")
    return float(value[0]), float(value[1])


class DepthDataModule(L.LightningDataModule):
    """Builds ``dataset(split=...)`` for train, val and test, and their loaders.

    Args:
        dataset: a dataset class with its own settings bound (a Hydra ``_partial_``), called with
            :class:`~depth_lightning.data.frames.FrameDataset`'s arguments for each split.
        name: the dataset's name in tables and reports.
        height: the network's input height.
        width: the network's input width.
        depth_min: the depth the bins start at (the model reads it).
        depth_max: the depth the bins end at.
        augment: the training augmentation (Sec. 3.3), or None.
        protocol: the evaluation protocol (:class:`~depth_lightning.evaluation.protocol.EvalProtocol`),
            or the name of one of ``protocols``.
        protocols: a dataset's protocols by the peer they follow (``marigold``, ``zoedepth``...),
            where the field's code disagrees; ``protocol`` names the one used.
        val_fraction: the share of the training list's scenes held out for validation (datasets with
            a validation list or split of their own ignore it).
        val_max_frames: at most this many held-out frames, evenly spaced.
        batch_size: the training loader's batch.
        eval_batch_size: the validation and test loaders' batch.
        num_workers: loader worker processes.
        skip_bad_samples: log and count unreadable samples instead of stopping.
        baseline_frames: training frames the baselines (median depth, position prior) are fitted on.
        seed: sample order, augmentation and the hold-out are pure functions of it.
        format: ``loose`` (the dataset's own files) or ``packed`` (LitData chunks written by
            ``python -m depth_lightning.prepare pack``, read from ``packed``).
        packed: the packed copy's folder or URL (``format=packed``).
        augment_on: ``host`` (each sample in the loader's workers) or ``device`` (the loader only
            draws each sample's parameters; the batch is augmented on the accelerator, after the
            transfer, with the same parameters and arithmetic).
        plausible_median: ``[low, high]`` metres a frame's median valid depth lies in; outside, the map is
            in another unit (millimetres read as metres). Checked by ``check`` and at setup; null: not checked.
    """

    def __init__(
        self,
        dataset: Callable[..., FrameDataset],
        name: str,
        height: int,
        width: int,
        depth_min: float,
        depth_max: float,
        augment: PaperAugmentation | None = None,
        protocol: Any = None,
        protocols: dict[str, Any] | None = None,
        val_fraction: float = 0.05,
        val_max_frames: int | None = None,
        batch_size: int = 8,
        eval_batch_size: int = 8,
        num_workers: int = 1,
        skip_bad_samples: bool = False,
        baseline_frames: int = 64,
        seed: int = 0,
        format: str = "loose",
        packed: str | None = None,
        augment_on: str = "host",
        plausible_median: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        self.plausible_median = plausible_range(plausible_median)
        if augment_on not in AUGMENT_ON:
            raise ConfigError(
                f"config error: data.augment_on={augment_on!r}; allowed: host (the loader's workers) or device "
                "(the batch, on the accelerator)"
            )
        self.augment_on = augment_on
        refuse_device_extras(augment, augment_on)
        if format not in ("loose", "packed") or (format == "packed") != (packed is not None):
            raise ConfigError(
                f"config error: data.format={format!r}, data.packed={packed!r}: format loose reads the dataset's files "
                "(packed=null); format packed reads data.packed=<folder or URL of prepare pack's output>"
            )
        self.format, self.packed = format, packed
        for key, value, low in (("height", height, 32), ("width", width, 32), ("batch_size", batch_size, 1)):
            if not isinstance(value, int) or value < low:
                raise ValueError(f"data.{key} must be an integer >= {low}, got {value!r}")
        if not isinstance(eval_batch_size, int) or eval_batch_size < 1:
            raise ValueError(f"data.eval_batch_size must be an integer >= 1, got {eval_batch_size!r}")
        if not isinstance(num_workers, int) or num_workers < 0:
            raise ValueError(f"data.num_workers must be an integer >= 0, got {num_workers!r}")
        if not 0 < val_fraction < 1:
            raise ValueError(f"data.val_fraction must be in (0, 1), got {val_fraction}")
        self.dataset, self.name = dataset, name
        self.input_size = (height, width)
        self.depth_range = (depth_min, depth_max)
        self.augment = augment
        self.protocol = chosen_protocol(protocol, protocols or {})
        self.val_fraction, self.val_max_frames = val_fraction, val_max_frames
        self.batch_size, self.eval_batch_size, self.num_workers = batch_size, eval_batch_size, num_workers
        self.skip_bad_samples, self.baseline_frames, self.seed = skip_bad_samples, baseline_frames, seed
        self.datasets: dict[str, FrameDataset] = {}
        self._depth_sample: np.ndarray | None = None
        self._pack_card: dict[str, Any] | None = None

    def build(self, split: str, whole_list: bool = False, augmented: bool = True) -> FrameDataset:
        """The ``split`` (train | val | test) of the dataset. ``whole_list``: every frame of the split's
        list, validation not held out, missing files collected instead of raised (``check``);
        ``augmented``: false for the training frames as they are (the baselines' sample)."""
        hold_out = split != "test" and not whole_list
        augment = self.augment if augmented and not whole_list else None
        if self.format == "packed":  # validation was held out when the splits were packed
            from depth_lightning.data.packed import PackedFrames, check_pack, read_pack_card

            if self._pack_card is None:  # the pack must hold this run's dataset, as this run would read it
                self._pack_card = read_pack_card(self.packed)
                check_pack(self._pack_card, self, self.packed)
            if split not in (self._pack_card.get("splits") or {}):
                raise DataError(
                    f"data.packed={self.packed!r} holds no {split} split (it holds "
                    f"{', '.join(self._pack_card.get('splits') or {}) or 'none'}); pack it: prepare pack ... "
                    f"splits={split}"
                )
            common = {"input_size": self.input_size, "seed": self.seed, "protocol": self.protocol}
            ds: FrameDataset = PackedFrames(
                self.packed, self._pack_card, split=split, augment=augment, skip_bad_samples=self.skip_bad_samples,
                augment_on=self.augment_on, **common,
            )  # fmt: skip
        else:
            ds = self.dataset(
                split=split,
                input_size=self.input_size,
                augment=augment,
                skip_bad_samples=self.skip_bad_samples or whole_list,
                seed=self.seed,
                protocol=self.protocol,
                hold_out=HoldOut(split, self.val_fraction, self.seed, self.val_max_frames) if hold_out else None,
                augment_on=self.augment_on,
            )
        return ds

    def setup(self, stage: str | None = None) -> None:
        wanted = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",)}.get(stage or "", ())
        for split in wanted or ("train", "val", "test"):
            if split not in self.datasets:
                self.datasets[split] = self.build(split)
                self.check_split(self.datasets[split])

    def check_split(self, dataset: FrameDataset) -> None:
        """The frame check ``check`` runs too (``data/frame_check.py``), before any step: its problems
        refuse the run, or (``skip_bad_samples``) are warned of and their frames skipped when loaded."""
        problems = check_frames(dataset, self.plausible_median, self.name)
        if not problems:
            return
        shown = "; ".join(problems[:3]) + (f" (and {len(problems) - 3} more)" if len(problems) > 3 else "")
        message = (
            f"the {dataset.split} split of {self.name}: {len(problems)} problem(s) found before training: {shown}; "
            f"python -m depth_lightning.check data={self.name} ... lists them all"
        )
        if not self.skip_bad_samples:
            raise DataError(message)
        log.warning("%s (data.skip_bad_samples: skipped when loaded)", message)

    def _loader(self, split: str) -> DataLoader:
        if split not in self.datasets:
            self.datasets[split] = self.build(split)
        dataset = self.datasets[split]
        if split == "train":
            sampler = EpochSampler(len(dataset), seed=self.seed, shuffle=True)
        else:
            sampler = UnpaddedDistributedSampler(len(dataset))
        workers = self.num_workers
        return (ResumableLoader if split == "train" else DataLoader)(
            dataset,
            batch_size=self.batch_size if split == "train" else self.eval_batch_size,
            sampler=sampler,
            num_workers=workers,
            persistent_workers=workers > 0,
            worker_init_fn=_worker_init if workers > 0 else None,
            drop_last=split == "train" and len(dataset) >= self.batch_size,
            collate_fn=collate_skipping_bad,
            # the loader's own generator: creating an iterator must not consume the global RNG
            # (dropout's), or a resumed run would diverge from an uninterrupted one
            generator=torch.Generator().manual_seed(self.seed),
        )

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """``data.augment_on=device``: the training batch augmented where it now is, with the
        parameters each sample's loader drew."""
        if isinstance(batch, dict) and "augment" in batch and self.augment is not None:
            batch = dict(batch)
            batch["image"], batch["depth"] = self.augment.apply_batch(
                batch["image"], batch["depth"], batch.pop("augment")
            )
        return batch

    def train_dataloader(self) -> DataLoader:
        return self._loader("train")

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")

    def training_depth_sample(self) -> np.ndarray:
        """Depth maps of the first ``baseline_frames`` training frames, unaugmented, for the baselines
        (read once: the training-health check and the baselines share them)."""
        if self._depth_sample is None:
            ds = self.build("train", augmented=False)
            n = min(self.baseline_frames, len(ds))
            self._depth_sample = np.stack([ds[i]["depth"].numpy() for i in range(n)])
            self._depth_sample.flags.writeable = False
        return self._depth_sample

    def describe_validation(self) -> str | None:
        """What the validation split holds, when it was held out of the training list (else None)."""
        self.setup("validate")
        val = self.datasets["val"]
        if not val.held_out_scenes:
            return None
        lines = [
            f"# validation of {self.name}: {len(val)} frames of {len(val.held_out_scenes)} scene(s) held out of the"
            f" training frames (data.val_fraction={self.val_fraction}, seed {self.seed}); no frame of these scenes"
            " is trained on, and the test list is not read",
            *(f"scene {s}" for s in val.held_out_scenes),
            *(val.describe(i) for i in range(len(val))),
        ]
        return "\n".join(lines) + "\n"
