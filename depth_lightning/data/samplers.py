"""Samplers that make runs reproducible and evaluation exact across processes."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, DistributedSampler


def _world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size(), dist.get_rank()
    return 1, 0


class EpochSampler(DistributedSampler):
    """Training order as a pure function of ``(seed, epoch)``, yielding ``(epoch, index)`` keys.

    Datasets derive their augmentation randomness from the key, so a run resumed from a checkpoint
    sees exactly the samples and augmentations the uninterrupted run would have, whatever the
    number of workers. In a distributed run each rank takes every ``world``-th sample (padded by
    repetition to equal length, as training needs). Lightning calls ``set_epoch``. A run resumed
    mid-epoch (:class:`ResumableLoader`) skips the keys its rank had already trained on.
    """

    def __init__(self, length: int, seed: int = 0, shuffle: bool = True) -> None:
        world, rank = _world()
        # DistributedSampler's bookkeeping without its dataset: only the length is needed.
        self.dataset = range(length)  # type: ignore[assignment]
        self.num_replicas, self.rank, self.epoch, self.seed, self.shuffle = world, rank, 0, seed, shuffle
        self.drop_last = False
        self.num_samples = math.ceil(length / world)
        self.total_size = self.num_samples * world
        self.skip = 0  # keys of the next epoch's iteration already trained on (resume), dropped once

    def __iter__(self) -> Iterator[tuple[int, int]]:  # type: ignore[override]
        n = len(self.dataset)
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(n, generator=g).tolist()
        else:
            order = list(range(n))
        order += order[: self.total_size - n]
        epoch, skip, self.skip = self.epoch, self.skip, 0
        return iter([(epoch, i) for i in order[self.rank : self.total_size : self.num_replicas][skip:]])

    def __len__(self) -> int:
        return self.num_samples


class UnpaddedDistributedSampler(DistributedSampler):
    """Evaluation sharding without padding (detectron2's InferenceSampler): rank ``r`` of ``w`` takes
    a contiguous slice, every sample is seen exactly once, so metrics summed across processes equal
    single-process evaluation, also for a number of samples that does not divide evenly."""

    def __init__(self, length: int) -> None:
        world, rank = _world()
        self.dataset = range(length)  # type: ignore[assignment]
        self.num_replicas, self.rank, self.epoch, self.shuffle, self.drop_last = world, rank, 0, False, False
        per, extra = divmod(length, world)
        self.start = rank * per + min(rank, extra)
        self.stop = self.start + per + (1 if rank < extra else 0)
        self.num_samples = self.stop - self.start
        self.total_size = length

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.start, self.stop))

    def __len__(self) -> int:
        return self.num_samples


class ResumableLoader(DataLoader):
    """The training loader, with its place in the epoch saved in the checkpoint (Lightning's stateful
    dataloader interface: ``state_dict`` / ``load_state_dict``), so that a run killed mid-epoch and
    resumed trains on the rest of that epoch, not on its first samples again. Its sampler is an
    :class:`EpochSampler`; the state is the epoch and how many of this rank's keys were consumed."""

    sampler: EpochSampler
    _pending: dict[str, int] | None = None
    _epoch = _consumed = 0

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        # A generator: nothing is read before the first batch is asked for, after Lightning's
        # set_epoch (with worker processes the iterator would otherwise take the order of the old epoch).
        resume, self._pending = self._pending or {}, None
        self._epoch = self.sampler.epoch
        self._consumed = self.sampler.skip = resume.get("consumed", 0) if resume.get("epoch") == self._epoch else 0
        for batch in super().__iter__():
            # counted as the batch leaves the loader: Lightning fetches no batch ahead of a sized loader
            self._consumed += self.batch_size or 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self._epoch, "consumed": self._consumed}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Skip the consumed keys when the next iteration is of the saved epoch (else the epoch had
        ended, and the next one starts afresh)."""
        self._pending = {"epoch": int(state["epoch"]), "consumed": int(state["consumed"])}
