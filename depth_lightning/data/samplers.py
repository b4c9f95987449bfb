"""Samplers that make runs reproducible and evaluation exact across processes."""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
import torch.distributed as dist
from torch.utils.data import DistributedSampler


def _world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size(), dist.get_rank()
    return 1, 0


class EpochSampler(DistributedSampler):
    """Training order as a pure function of ``(seed, epoch)``, yielding ``(epoch, index)`` keys.

    Datasets derive their augmentation randomness from the key, so a run resumed from a checkpoint
    sees exactly the samples and augmentations the uninterrupted run would have, whatever the
    number of workers. In a distributed run each rank takes every ``world``-th sample (padded by
    repetition to equal length, as training needs). Lightning calls ``set_epoch``.
    """

    def __init__(self, length: int, seed: int = 0, shuffle: bool = True) -> None:
        world, rank = _world()
        # DistributedSampler's bookkeeping without its dataset: only the length is needed.
        self.dataset = range(length)  # type: ignore[assignment]
        self.num_replicas, self.rank, self.epoch, self.seed, self.shuffle = world, rank, 0, seed, shuffle
        self.drop_last = False
        self.num_samples = math.ceil(length / world)
        self.total_size = self.num_samples * world

    def __iter__(self) -> Iterator[tuple[int, int]]:  # type: ignore[override]
        n = len(self.dataset)
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(n, generator=g).tolist()
        else:
            order = list(range(n))
        order += order[: self.total_size - n]
        return iter((self.epoch, i) for i in order[self.rank : self.total_size : self.num_replicas])

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
