"""What the machine's convolutions can do: the reference for efficiency ratios."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from benchmarks.timing import measure


def _conv_flops_per_s(cin: int, cout: int, k: int, h: int, w: int, bf16: bool, channels_last: bool = True) -> float:
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(1, cin, h, w).contiguous(memory_format=fmt).requires_grad_()
    weight = torch.randn(cout, cin, k, k).contiguous(memory_format=fmt).requires_grad_()

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            y = F.conv2d(x, weight, padding=k // 2)
        y.sum().backward()

    return 3 * 2 * cin * cout * k * k * h * w / measure(step)["median"]  # forward + two backward convolutions


def peak_conv(bf16: bool) -> dict[str, float]:
    """FLOP/s of a 256-channel 3x3 convolution at 60x80, forward and backward, in both layouts;
    ``best`` is the machine's reference for the efficiency ratios."""
    out = {name: _conv_flops_per_s(256, 256, 3, 60, 80, bf16, cl) for name, cl in (("nchw", False), ("nhwc", True))}
    out["best"] = max(out.values())
    return out


def conv_kinds(bf16: bool) -> dict[str, float]:
    """FLOP/s (fwd+bwd, channels_last, batch 1, 30x40) of the convolutions ResNet-152 is made of at
    240x320: they, not the suite, set how close a training step can come to the peak."""
    shapes = {"3x3 256->256": (256, 256, 3), "1x1 1024->256": (1024, 256, 1), "1x1 256->1024": (256, 1024, 1)}
    return {name: _conv_flops_per_s(cin, cout, k, 30, 40, bf16) for name, (cin, cout, k) in shapes.items()}
