"""The paper's multinomial logistic loss (Eq. 4) over valid pixels."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from depth_lightning.models.bins import IGNORE_INDEX


def bin_cross_entropy(logits: Tensor, labels: Tensor, ignore_index: int = IGNORE_INDEX) -> Tensor:
    """Cross-entropy averaged over valid pixels; 0 (with a gradient) when no pixel is valid.

    ``logits`` (B,K,H,W) of any float dtype are promoted to float32 so the loss stays exact under
    bf16 autocast; ``labels`` (B,H,W) hold bin indices or ``ignore_index``.
    """
    with torch.autocast(device_type=logits.device.type, enabled=False):
        total = F.cross_entropy(logits.float(), labels, ignore_index=ignore_index, reduction="sum")
    n_valid = (labels != ignore_index).sum()
    # 'mean' reduction divides by zero on an all-invalid batch; 'sum' / max(n, 1) is 0 there.
    return total / n_valid.clamp_min(1)


def targets_at(depth: Tensor, size: tuple[int, int]) -> Tensor:
    """Ground truth at the logits' resolution: nearest neighbour, never mixing valid and invalid."""
    if depth.shape[-2:] == size:
        return depth
    return F.interpolate(depth[:, None], size=size, mode="nearest")[:, 0]
