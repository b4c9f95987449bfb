"""Evaluation protocols: which pixels count, in which depth range, under which caps.

The single owner of each dataset's protocol. A region is defined on the *original* frame (the
480x640 NYU frame, the ~375x1242 KITTI frame) and cut once, by the dataset, to the part of the frame
it keeps; the model, both decoders and the baselines are all scored through the same mask. Each cap
is a maximum depth: ground truth beyond it is left out and predictions are clipped to it, as the
field's evaluation code does (BTS, monodepth2).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from depth_lightning.evaluation.metrics import AGGREGATIONS, DEFINITIONS

# Region name -> what it keeps, for error messages and the README.
REGIONS = {
    "full": "the whole frame",
    "eigen_nyu": "NYU's Eigen crop: rows 45:471, cols 41:601 of the 480x640 frame (scaled for other sizes)",
    "eigen_nyu_pixels": "rows 45:471, cols 41:601 in pixels whatever the frame's size (ZoeDepth's eigen crop "
    "on non-KITTI data, zoedepth/utils/misc.py:240)",
    "garg": "KITTI's Garg crop: rows 0.408-0.992 H, cols 0.036-0.964 W (the field's KITTI protocol)",
    "eigen": "KITTI's Eigen crop: rows 0.332-0.914 H, cols 0.036-0.964 W",
    "paper": "KITTI as in Li et al. Sec. 4.2: the lower 256 rows, the full width",
    "box": "rows top:bottom, cols left:right in pixels (data.protocol.box), cut to the frame",
}
# Li et al. Sec. 4.2: "the lower crop of the image of size 256 x 1242".
PAPER_KITTI_ROWS = 256


def region_mask(region: str, height: int, width: int, box: tuple[int, ...] | None = None) -> np.ndarray:
    """Boolean ``(height, width)`` mask of ``region`` on an original frame of that size (``box``: the
    ``[top, bottom, left, right]`` of region ``box``)."""
    if region not in REGIONS:
        raise ValueError(f"data.protocol.region={region!r} is unknown; allowed: {', '.join(REGIONS)}")
    mask = np.zeros((height, width), dtype=bool)
    if region == "full":
        mask[:] = True
    elif region == "eigen_nyu":
        sy, sx = height / 480, width / 640
        mask[round(45 * sy) : round(471 * sy), round(41 * sx) : round(601 * sx)] = True
    elif region == "box":
        top, bottom, left, right = box or (0, height, 0, width)
        mask[top:bottom, left:right] = True
    elif region == "eigen_nyu_pixels":
        mask[45:471, 41:601] = True
    elif region == "paper":
        mask[max(0, height - PAPER_KITTI_ROWS) :] = True
    else:  # garg / eigen, as fractions of the frame, the way peers compute them
        top, bottom = (0.40810811, 0.99189189) if region == "garg" else (0.3324324, 0.91351351)
        mask[int(top * height) : int(bottom * height), int(0.03594771 * width) : int(0.96405229 * width)] = True
    return mask


def region_box(region: str, height: int, width: int, box: tuple[int, ...] | None = None) -> list[int]:
    """``[top, bottom, left, right]`` of ``region`` on an original frame of that size (rows top:bottom)."""
    rows, cols = np.nonzero(region_mask(region, height, width, box))
    return [int(rows.min()), int(rows.max()) + 1, int(cols.min()), int(cols.max()) + 1]


# Card entries that say where this machine keeps a file, not how the numbers were made.
# A packed copy of a split gives its frames bit for bit (tests/test_packed.py): where it is does not count.
# The precision says how the model computed, not which pixels count: results in fp32 and bf16 share a table.
_LOCAL = ("file", "frames_evaluated", "frames_left_out", "packed", "precision")


def protocol_key(card: dict[str, Any]) -> str:
    """What must agree for two results to share a table: the card without file locations and counts."""

    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k not in _LOCAL}
        return value

    return json.dumps(strip(card), sort_keys=True)


def card_differences(first: dict[str, Any], second: dict[str, Any]) -> list[str]:
    """The entries in which two protocol cards differ, as ``key: a != b``."""
    a, b = json.loads(protocol_key(first)), json.loads(protocol_key(second))
    return [f"{k}: {a.get(k)!r} != {b.get(k)!r}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


@dataclass(frozen=True)
class EvalProtocol:
    """How a dataset is evaluated.

    Args:
        region: one of :data:`REGIONS`, on the original frame.
        min_depth: ground truth at or below it is invalid; predictions are clipped up to it.
        caps: maximum depths; every evaluation reports each. The first is the headline
            (``test/soft/abs_rel``), the others are logged as ``test/cap<c>/soft/abs_rel``.
        aggregation: ``per_image`` (each image's metric, then the mean: the field's convention) or
            ``pooled`` (all valid pixels of all images at once).
        truth_in_range: ground truth outside ``(min_depth, cap)`` is left out; false: only the
            dataset's own mask and the region say which pixels count, and the range only clips
            predictions (Marigold on DIODE).
        fit_max_resolution: an alignment is fitted on a nearest subsample of at most this longer side
            (Marigold on ETH3D: 1024); null: on every scored pixel.
        follows: the peer whose protocol this is, with where its code says so (for the card).
        name: the protocol's key among its dataset's ``protocols`` (set when chosen by name).
        box: ``[top, bottom, left, right]`` in pixels of region ``box`` (a folder dataset's valid area).
        min_pixels: a frame with fewer valid ground-truth pixels is left out of the means, counted and
            named (an alignment's own minimum applies when one is fitted).
    """

    region: str = "full"
    min_depth: float = 1e-3
    caps: tuple[float, ...] = (10.0,)
    aggregation: str = "per_image"
    truth_in_range: bool = True
    fit_max_resolution: int | None = None
    follows: str | None = None
    name: str | None = None
    box: tuple[int, ...] | None = None
    min_pixels: int = 1

    def __post_init__(self) -> None:
        if isinstance(self.min_pixels, bool) or not isinstance(self.min_pixels, int) or self.min_pixels < 1:
            raise ValueError(f"data.protocol.min_pixels={self.min_pixels!r} must be an integer >= 1")
        try:
            object.__setattr__(self, "caps", tuple(float(c) for c in self.caps))
        except (TypeError, ValueError):
            raise ValueError(
                f"data.protocol.caps={self.caps!r}: a list of maximum depths in metres, e.g. [10.0]"
            ) from None
        region_mask(self.region, 1, 1)  # validates the name
        if self.box is not None:
            object.__setattr__(self, "box", tuple(int(v) for v in self.box))
        if (self.region == "box") != (self.box is not None) or (
            self.box is not None
            and (len(self.box) != 4 or not 0 <= self.box[0] < self.box[1] or not 0 <= self.box[2] < self.box[3])
        ):
            raise ValueError(
                f"data.protocol.box={self.box}: region=box takes box=[top, bottom, left, right] with top < bottom, "
                "left < right (python -m depth_lightning.check prints the box of the training frames' valid depth); "
                "other regions take none"
            )
        if not self.caps:
            raise ValueError("data.protocol.caps must hold at least one maximum depth")
        if any(not self.min_depth < c for c in self.caps) or self.min_depth < 0:
            raise ValueError(
                f"data.protocol: need 0 <= min_depth < every cap, got min_depth={self.min_depth} and caps={self.caps}"
            )
        if self.aggregation not in AGGREGATIONS:
            raise ValueError(f"data.protocol.aggregation={self.aggregation!r} is unknown; allowed: {AGGREGATIONS}")

    def card(
        self,
        dataset: str,
        split: str,
        source: dict[str, Any],
        original: tuple[int, int],
        output: tuple[int, int] | None,
    ) -> dict[str, Any]:
        """The protocol card of a result: what produced the numbers, in full (``source``: the split's
        list and ground truth, from the dataset; ``original``: a frame's size before any crop;
        ``output``: the prediction's resolution)."""
        h, w = original
        card = {
            "dataset": dataset,
            "split": split,
            **source,
            "region": {
                "name": self.region,
                "what": REGIONS[self.region],
                "box": region_box(self.region, h, w, self.box),
                "original_frame": [h, w],
            },
            "depth_range": [self.min_depth, self.caps[0]],
            "caps": list(self.caps),
            "prediction": {
                "resolution": list(output) if output else None,
                "to_ground_truth": "depth upsampled bilinearly to each frame's ground-truth resolution, clipped "
                "to [min_depth, cap]; ground truth valid where min_depth < g < cap, finite, inside the region",
            },
            "aggregation": self.aggregation,
            "metrics": DEFINITIONS,
        }
        # entries only a zero-shot protocol sets: earlier cards stay comparable with new ones
        if self.min_pixels > 1:
            card["min_pixels"] = self.min_pixels
        if self.name:
            card["protocol_name"] = self.name
        if self.follows:
            card["follows"] = self.follows
        if not self.truth_in_range:
            card["truth_in_range"] = (
                "no: only the dataset's mask and the region select pixels; the range clips predictions"
            )
        if self.fit_max_resolution:
            card["fit_max_resolution"] = self.fit_max_resolution
        return card

    def mask(self, original: tuple[int, int], box: tuple[int, int, int, int] | None = None) -> np.ndarray:
        """The region of a frame of ``original`` size, cut to ``box`` = (top, bottom, left, right) when
        the dataset keeps only that part of the frame."""
        return _cut(_cached_mask(self.region, *original, self.box), box)


def protocol_of(datamodule: Any) -> EvalProtocol:
    """The protocol a datamodule evaluates under; the default one when it has none (or is None)."""
    return getattr(datamodule, "protocol", None) or EvalProtocol()


@functools.lru_cache(maxsize=32)
def _cached_mask(region: str, height: int, width: int, box: tuple[int, ...] | None = None) -> np.ndarray:
    mask = region_mask(region, height, width, box)
    mask.flags.writeable = False  # shared by every frame of that size
    return mask


def _cut(mask: np.ndarray, box: tuple[int, int, int, int] | None) -> np.ndarray:
    if box is None:
        return mask
    top, bottom, left, right = box
    return mask[top:bottom, left:right]
