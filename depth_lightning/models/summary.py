"""Parameter count and forward FLOPs of a configuration.

python -m depth_lightning.models.summary backbone=resnet152 bins=200 size=240x320 [upsample=bilinear]
    [dilated=false] [fusion=false]
"""

from __future__ import annotations

import sys

import torch
from torch.utils.flop_counter import FlopCounterMode

from depth_lightning.models.network import DepthNet, count_parameters

# key -> how its value is read from the command line
_ARGS = {
    "backbone": str,
    "bins": int,
    "size": str,
    "upsample": str,
    "dilated": lambda v: v.lower() in ("true", "1", "yes"),
    "fusion": lambda v: v.lower() in ("true", "1", "yes"),
}


def forward_flops(net: torch.nn.Module, height: int, width: int, batch: int = 1) -> int:
    """FLOPs (multiply and add counted separately) of one forward pass."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        net(torch.zeros(batch, 3, height, width))
    return int(counter.get_total_flops())


def summarise(
    backbone: str = "resnet152",
    bins: int = 200,
    size: str = "240x320",
    upsample: str = "learned",
    dilated: bool = True,
    fusion: bool = True,
) -> dict[str, float]:
    try:
        height, width = (int(v) for v in size.lower().split("x"))
    except ValueError:
        raise ValueError(f"size={size!r}: expected HEIGHTxWIDTH, e.g. 240x320") from None
    net = DepthNet(backbone, bins, upsample=upsample, dilated=dilated, fusion=fusion).eval()
    return {
        "params": count_parameters(net),
        "params_backbone": count_parameters(net.backbone),
        "params_head": count_parameters(net.head),
        "gflops_forward": forward_flops(net, height, width) / 1e9,
    }


def main(argv: list[str] | None = None) -> None:
    kwargs: dict[str, object] = {}
    for arg in sys.argv[1:] if argv is None else argv:
        key, sep, value = arg.partition("=")
        if not sep or key not in _ARGS:
            raise SystemExit(f"unknown argument {arg!r}; use " + ", ".join(f"{k}=" for k in _ARGS))
        kwargs[key] = _ARGS[key](value)
    info = summarise(**kwargs)  # type: ignore[arg-type]
    print(" ".join(f"{k}={v}" for k, v in kwargs.items()) or "defaults")
    print(f"parameters: {info['params']:,} (backbone {info['params_backbone']:,}, head {info['params_head']:,})")
    print(f"forward:    {info['gflops_forward']:.1f} GFLOPs per image")


if __name__ == "__main__":
    main()
