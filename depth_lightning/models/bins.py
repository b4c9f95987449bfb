"""Log-depth bins: the single home of the paper's Eq. 3 (labels) and Eq. 5 (soft-weighted-sum).

Depth ``d`` in ``[d_min, d_max]`` is discretised into ``K`` bins equally spaced in log depth:
``q = (ln d_max - ln d_min) / (K - 1)``, bin centres ``w_i = ln d_min + q * i``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

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
        # Eq. 5's w_i, computed in float64, kept in float32. Saved with the weights: a model's bins travel
        # with it, and a config that names other bins is refused against them (models/storage.py).
        centres = self.log_d_min + self.q * torch.arange(self.num_bins, dtype=torch.float64)
        self.register_buffer("log_centres", centres.float())

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

    def uncertainty(self, logits: Tensor) -> Tensor:
        """Standard deviation of log depth under the predicted distribution (Sec. 5.2: near-Gaussian)."""
        return self.decode(logits)["uncertainty"]

    def moments(self, probs: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and standard deviation of log depth under probabilities ``(B,K,H,W)`` over the bins."""
        mean = self._expected_log(probs)
        second = torch.einsum("bkhw,k->bhw", probs, self.log_centres.square())
        return mean, (second - mean.square()).clamp_min(0).sqrt()

    def decode(
        self, logits: Tensor | Sequence[Tensor], log: bool = False, distribution: bool = False
    ) -> dict[str, Tensor]:
        """Every output of the bins, the one decoding that validation, test, the estimator and the ONNX
        graph share (always float32, also under autocast).

        Args:
            logits: ``(B,K,H,W)`` of one view, or of several aligned views of the same images (a
                flipped view flipped back): their distributions are averaged, and since Eq. 5 is linear
                in the probabilities the soft depth is the mean of the views' in log depth; the hard
                depth is the mean of the views' argmax bin centres in log depth.
            log: ``soft`` and ``hard`` in log depth (what the bins are linear in, e.g. to resize).
            distribution: also return ``probabilities`` ``(B,K,H,W)``.

        Returns:
            ``soft`` (Eq. 5), ``hard`` (the argmax bin's centre), ``uncertainty`` (std of log depth
            under the distribution, Sec. 5.2) and ``bin`` (the most likely bin), each ``(B,H,W)``.
        """
        views = [logits] if isinstance(logits, Tensor) else list(logits)
        with torch.autocast(device_type=views[0].device.type, enabled=False):
            one = len(views) == 1  # the mean of one view is that view, exactly: no copy
            probs = self.probabilities(views[0]) if one else torch.stack([self.probabilities(v) for v in views]).mean(0)
            mean, std = self.moments(probs)
            most_likely = [self.most_likely(v) for v in views]
            hard = torch.stack([self.log_centres[b] for b in most_likely]).mean(0)
            bins = most_likely[0] if one else self.most_likely(probs)
            out = {"soft": mean, "hard": hard, "uncertainty": std, "bin": bins}
            if not log:
                out["soft"], out["hard"] = torch.exp(mean), torch.exp(hard)
            if distribution:
                out["probabilities"] = probs
            return out
