"""Log-depth bins: the single home of the paper's Eq. 3 (labels) and Eq. 5 (soft-weighted-sum).

Depth ``d`` in ``[d_min, d_max]`` is discretised into ``K`` bins equally spaced in log depth:
``q = (ln d_max - ln d_min) / (K - 1)``, bin centres ``w_i = ln d_min + q * i``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

IGNORE_INDEX = -100  # torch.nn.functional.cross_entropy's default
DECODERS = ("soft", "hard")  # Eq. 5's soft-weighted-sum and the hard-max of Table 3


class LogDepthBins(nn.Module):
    """Discretisation of depth into ``num_bins`` log-spaced classes and the two decoders.

    Args:
        d_min: depth of the first bin centre (metres).
        d_max: depth of the last bin centre (metres).
        num_bins: K, the number of classes.
        ignore_index: label given to invalid pixels (no depth: 0, NaN or inf).
    """

    def __init__(
        self,
        d_min: float,
        d_max: float,
        num_bins: int,
        ignore_index: int = IGNORE_INDEX,
    ) -> None:
        super().__init__()
        if not isinstance(num_bins, int) or isinstance(num_bins, bool) or num_bins < 2:
            raise ValueError(f"model.net.num_bins must be an integer >= 2, got {num_bins!r}")
        numbers = all(isinstance(d, (int, float)) and math.isfinite(d) for d in (d_min, d_max))
        if not numbers or d_min <= 0 or d_min >= d_max:
            raise ValueError(
                f"bins need 0 < d_min < d_max (data.depth_min / data.depth_max), got d_min={d_min}, d_max={d_max}"
            )
        self.d_min, self.d_max, self.num_bins = float(d_min), float(d_max), int(num_bins)
        self.ignore_index = int(ignore_index)
        self.log_d_min = math.log(self.d_min)
        self.q = (math.log(self.d_max) - self.log_d_min) / (self.num_bins - 1)
        # Eq. 5's w_i, kept in float64 on the host and float32 on the device.
        centres = self.log_d_min + self.q * torch.arange(self.num_bins, dtype=torch.float64)
        self.register_buffer("log_centres", centres.float(), persistent=False)

    def extra_repr(self) -> str:
        return f"d_min={self.d_min}, d_max={self.d_max}, num_bins={self.num_bins}, q={self.q:.5f}"

    def valid_mask(self, depth: Tensor) -> Tensor:
        """Pixels with a usable ground-truth depth: finite and positive."""
        return torch.isfinite(depth) & (depth > 0)

    def labels(self, depth: Tensor) -> Tensor:
        """Eq. 3: ``round((ln d - ln d_min) / q)`` clamped to ``[0, K-1]``; invalid -> ``ignore_index``."""
        depth = depth.float()
        valid = self.valid_mask(depth)
        safe = torch.where(valid, depth, torch.ones_like(depth))
        lab = torch.round((torch.log(safe) - self.log_d_min) / self.q).clamp_(0, self.num_bins - 1).long()
        return torch.where(valid, lab, torch.full_like(lab, self.ignore_index))

    def probabilities(self, logits: Tensor) -> Tensor:
        """Softmax over the bin axis (dim 1), always in float32, also under autocast."""
        with torch.autocast(device_type=logits.device.type, enabled=False):
            return torch.softmax(logits.float(), dim=1)

    def _expected_log(self, probs: Tensor) -> Tensor:
        return torch.einsum("bkhw,k->bhw", probs, self.log_centres)

    def soft(self, logits: Tensor) -> Tensor:
        """Eq. 5, the soft-weighted-sum: ``d = exp(sum_i p_i * w_i)``. ``(B,K,H,W) -> (B,H,W)``."""
        with torch.autocast(device_type=logits.device.type, enabled=False):
            return torch.exp(self._expected_log(self.probabilities(logits)))

    @staticmethod
    def most_likely(logits: Tensor) -> Tensor:
        """The argmax bin ``(B,H,W)``; ``max().indices`` (same first-maximum rule) runs 2-4x faster
        than ``argmax`` over the channel axis on the CPU."""
        return logits.max(dim=1).indices

    def centre(self, bins: Tensor) -> Tensor:
        """Depth at the centre of each bin index, ``exp(w_i)``."""
        return torch.exp(self.log_centres[bins])

    def hard(self, logits: Tensor) -> Tensor:
        """Hard-max inference: the centre of the most likely bin, ``exp(w_argmax)``."""
        return self.centre(self.most_likely(logits))

    def log_moments(self, logits: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and standard deviation of log depth under the predicted distribution (float32)."""
        return self.moments(self.probabilities(logits))

    def moments(self, probs: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and standard deviation of log depth under probabilities ``(B,K,H,W)`` over the bins."""
        mean = self._expected_log(probs)
        second = torch.einsum("bkhw,k->bhw", probs, self.log_centres.square())
        return mean, (second - mean.square()).clamp_min(0).sqrt()

    def uncertainty(self, logits: Tensor) -> Tensor:
        """Standard deviation of log depth under the predicted distribution (Sec. 5.2: near-Gaussian)."""
        with torch.autocast(device_type=logits.device.type, enabled=False):
            return self.log_moments(logits)[1]

    def decode(self, logits: Tensor) -> dict[str, Tensor]:
        """Both decoders, the uncertainty (from one softmax) and the most likely bin."""
        with torch.autocast(device_type=logits.device.type, enabled=False):
            mean, std = self.log_moments(logits)
            bins = self.most_likely(logits)
            return {"soft": torch.exp(mean), "hard": self.centre(bins), "uncertainty": std, "bin": bins}
