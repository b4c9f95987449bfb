"""One check of a split's frames, run by ``python -m depth_lightning.check`` and by training's setup, so
that ``check`` passes exactly what training accepts:

- every frame's RGB and depth pair have one size, read from the files' headers (no decode: seconds on
  NYU's 24k frames);
- the depth is plausible for the dataset: a frame's median valid depth inside ``data.plausible_median``
  (a map in another unit lands far outside: millimetres read as metres x1000);
- a split holds frames with ground truth, and some valid depth.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from depth_lightning.core.errors import DataError
from depth_lightning.data.encodings import header_size
from depth_lightning.data.frames import FrameDataset

SAMPLED = 8  # frames spread over a split whose contents setup decodes (check reads them all)


def size_problem(dataset: FrameDataset, index: int) -> str | None:
    """Frame ``index``'s RGB and depth sizes from their headers, named when they differ (None: they agree,
    or the dataset has no header-sized pair)."""
    files = dataset.frame_files(index)
    if files is None:
        return None
    try:
        rgb, depth = header_size(files[0]), header_size(files[1])
    except DataError as err:
        return str(err)
    return size_mismatch(dataset, index, rgb, depth)


def size_mismatch(dataset: FrameDataset, index: int, rgb: tuple[int, ...], depth: tuple[int, ...]) -> str | None:
    """The message of a frame whose RGB and depth differ in size (the loader refuses it in the same words)."""
    if tuple(rgb) == tuple(depth):
        return None
    return f"{dataset.describe(index)}: RGB {tuple(rgb)} and depth {tuple(depth)} differ in size"


def size_problems(dataset: FrameDataset) -> list[str]:
    """:func:`size_problem` of every frame of the split."""
    if len(dataset) == 0 or dataset.frame_files(0) is None:
        return []
    return [p for p in (size_problem(dataset, i) for i in range(len(dataset))) if p is not None]


def unit_problem(
    dataset: FrameDataset, index: int, depth: np.ndarray, plausible: Sequence[float] | None, name: str
) -> str | None:
    """Frame ``index``'s median valid depth outside ``plausible`` (a wrong unit?), named with the setting
    its maps are read with; None when plausible, empty, or no range is set."""
    valid = depth[np.isfinite(depth) & (depth > 0)]
    if plausible is None or valid.size == 0:
        return None
    low, high = plausible
    median = float(np.median(valid))
    if low <= median <= high:
        return None
    unit = dataset.depth_unit_setting()
    return (
        f"{dataset.describe(index)}: median depth {median:.4g} m, outside the {low:g}-{high:g} m a {name} frame "
        "holds (data.plausible_median): a depth map in another unit? Replace the file, or check the unit its maps "
        "are read in" + (f" ({unit})" if unit else "")
    )


def check_frames(dataset: FrameDataset, plausible: Sequence[float] | None, name: str) -> list[str]:
    """What training's setup checks of a split: frames with ground truth (else raised), every frame's sizes,
    the unit and some valid depth in :data:`SAMPLED` frames spread over it. Returns the problems found."""
    if len(dataset) == 0:
        left_out = dataset.without_truth
        raise DataError(
            f"the {dataset.split} split has no frame with ground truth ({len(left_out)} listed left out"
            + (f", e.g. {'; '.join(left_out[:3])}" if left_out else "")
            + "): check the dataset's depth files or its list"
        )
    problems = size_problems(dataset)
    picked = sorted({int(i) for i in np.linspace(0, len(dataset) - 1, min(SAMPLED, len(dataset)))})
    unreadable, has_depth = [], False
    for i in picked:
        try:
            depth = dataset.load(i)[1]
        except DataError as err:
            unreadable.append(str(err))  # a bad file is reported when it is loaded, or skipped (skip_bad_samples)
            continue
        has_depth |= bool((np.isfinite(depth) & (depth > 0)).any())
        problem = unit_problem(dataset, i, depth, plausible, name)
        if problem is not None:
            problems.append(problem)
    if len(unreadable) == len(picked):
        raise DataError(
            f"the {dataset.split} split: none of the {len(picked)} frames checked could be read: {unreadable[0]}"
            + (f" (and {len(unreadable) - 1} more)" if len(unreadable) > 1 else "")
        )
    if not has_depth:
        raise DataError(
            f"the {dataset.split} split holds no valid depth (finite, > 0) in any of the {len(picked)} frames checked "
            f"({'; '.join(dataset.describe(i) for i in picked[:3])}{' ...' if len(picked) > 3 else ''}): check the "
            "depth files and their unit"
        )
    return problems
