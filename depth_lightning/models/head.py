"""Hierarchical fusion head (Sec. 3.1, Fig. 2): concatenated 1/8 maps -> K-bin logits at 1/2."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

UPSAMPLE_MODES = ("learned", "bilinear")
UP_KERNEL, UP_STRIDE = 8, 4
# Where the deconvolution's output grid meets the 1/2-resolution pixel grid: with an 1/8 feature
# centred at 8i + 3.5 input pixels and a k=8, s=4 deconvolution, output pixel m of the 1/2 map
# sits at deconvolution index m + 2 (FCN's crop-layer offset).
UP_OFFSET = 2


def bilinear_kernel(size: int) -> Tensor:
    """The 2-D bilinear interpolation kernel of FCN's upsampling layers."""
    factor = (size + 1) // 2
    centre = factor - 1 if size % 2 == 1 else factor - 0.5
    og = torch.arange(size, dtype=torch.float64)
    filt = 1 - (og - centre).abs() / factor
    return (filt[:, None] * filt[None, :]).float()


class Upsample4x(nn.Module):
    """The 8x8, stride-4 transposed convolution, initialised as per-channel bilinear upsampling.

    ``learned`` is the paper's full K x K deconvolution (trainable, K*K*64 weights); ``bilinear``
    keeps the per-channel kernel fixed and applies it grouped (no parameters: cheap at K = 1000).
    """

    def __init__(self, channels: int, mode: str = "learned") -> None:
        super().__init__()
        if mode not in UPSAMPLE_MODES:
            raise ValueError(f"model.upsample={mode!r} is unknown; allowed: {', '.join(UPSAMPLE_MODES)}")
        self.mode, self.channels = mode, channels
        kernel = bilinear_kernel(UP_KERNEL)
        if mode == "learned":
            weight = torch.zeros(channels, channels, UP_KERNEL, UP_KERNEL)
            weight[torch.arange(channels), torch.arange(channels)] = kernel
            self.weight = nn.Parameter(weight)
        else:
            self.register_buffer("weight", kernel.expand(channels, 1, UP_KERNEL, UP_KERNEL).clone())

    def forward(self, x: Tensor, out_size: tuple[int, int]) -> Tensor:
        groups = 1 if self.mode == "learned" else self.channels
        y = F.conv_transpose2d(x, self.weight.to(x.dtype), stride=UP_STRIDE, groups=groups)
        h, w = out_size
        return y[:, :, UP_OFFSET : UP_OFFSET + h, UP_OFFSET : UP_OFFSET + w]


class Dropout(nn.Dropout):
    """``nn.Dropout`` whose CPU mask costs a tenth: four 16-bit uniforms from each 64-bit random draw.

    On the CPU, PyTorch draws a Bernoulli mask one element at a time from its mt19937 generator:
    54 ms for the paper's 4608x30x40 fused map, 6 % of a training step. Here a pixel is kept when its
    16-bit uniform falls below ``(1 - p) * 2^16``, so ``p`` is honoured to 2^-16 (exactly for 0.5),
    and the draws come from the same seeded generator. Other devices use the fused built-in kernel.
    """

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0 or x.device.type != "cpu":
            return super().forward(x)
        if not (x.is_contiguous() or x.is_contiguous(memory_format=torch.channels_last)):
            x = x.contiguous()
        n = x.numel()
        words = torch.randint(-(2**63), 2**63 - 1, ((n + 3) // 4,), dtype=torch.int64, device=x.device)
        # x's own strides over the flat draws: the mask has x's memory layout (channels_last too)
        uniform = words.view(torch.int16)[:n].as_strided(x.shape, x.stride())
        keep = uniform < round((1 - self.p) * 2**16) - 2**15
        return (x * keep).mul_(1 / (1 - self.p))


class ConvBNReLU(nn.Sequential):
    def __init__(self, cin: int, cout: int, kernel: int = 1) -> None:
        super().__init__(
            nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        )


class FusionHead(nn.Module):
    """Concatenate the tapped maps, dropout, 3x3 conv to K channels + BN, 4x deconvolution.

    Args:
        in_channels: channels of each tapped map (all at 1/8 of the input).
        num_bins: K.
        fusion: concatenate every tap (the paper); ``False`` is Table 3's "no concat layer"
            ablation: only the last map is used.
        reduce_channels: if set, each tap first goes through a 1x1 conv + BN + ReLU to this width.
        dropout: dropout probability before the classifier (0.5 in the paper).
        upsample: ``learned`` or ``bilinear`` (see :class:`Upsample4x`).
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        num_bins: int,
        fusion: bool = True,
        reduce_channels: int | None = None,
        dropout: float = 0.5,
        upsample: str = "learned",
    ) -> None:
        super().__init__()
        if not in_channels:
            raise ValueError("model.taps must name at least one feature map")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"model.dropout must be in [0, 1), got {dropout}")
        self.fusion = fusion
        used = list(in_channels) if fusion else [in_channels[-1]]
        if reduce_channels:
            self.reduce = nn.ModuleList(ConvBNReLU(c, reduce_channels) for c in used)
            width = reduce_channels * len(used)
        else:
            self.reduce = None
            width = sum(used)
        self.dropout = Dropout(dropout)
        # Fig. 2 caption: BatchNorm follows every convolution but the last (the deconvolution).
        # No ReLU here: these are logits.
        self.classifier = nn.Sequential(nn.Conv2d(width, num_bins, 3, padding=1, bias=False), nn.BatchNorm2d(num_bins))
        self.upsample = Upsample4x(num_bins, upsample)

    def forward(self, features: Sequence[Tensor], out_size: tuple[int, int]) -> Tensor:
        maps = list(features) if self.fusion else [features[-1]]
        if self.reduce is not None:
            maps = [r(m) for r, m in zip(self.reduce, maps, strict=True)]
        x = torch.cat(maps, dim=1) if len(maps) > 1 else maps[0]
        return self.upsample(self.classifier(self.dropout(x)), out_size)
