"""ONNX export with the decoding inside (``python -m depth_lightning.export`` is built on it).

The graph takes RGB ``(B, 3, H, W)`` in [0, 1] (any H, W >= 32) and returns the soft-weighted-sum
depth in metres ``(B, H/2, W/2)`` and, with ``uncertainty=true``, the standard deviation of log depth.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from depth_lightning.models.network import DepthNet


class ExportedDepth(nn.Module):
    """The network plus its decoding (:meth:`LogDepthBins.decode`: Eq. 5 and the uncertainty), for export."""

    def __init__(self, net: DepthNet, uncertainty: bool = False) -> None:
        super().__init__()
        self.net, self.with_uncertainty = net, uncertainty

    def forward(self, image: Tensor) -> Tensor | tuple[Tensor, Tensor]:
        decoded = self.net.bins.decode(self.net(image))
        return (decoded["soft"], decoded["uncertainty"]) if self.with_uncertainty else decoded["soft"]


def export_onnx(
    net: DepthNet,
    output: str | Path,
    uncertainty: bool = False,
    example_size: tuple[int, int] | None = None,
    opset: int = 18,
) -> Path:
    """Export ``net`` with dynamic batch, height and width."""
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    model = ExportedDepth(net.eval(), uncertainty).eval()
    h, w = example_size or net.input_size
    example = torch.rand(2, 3, h, w)  # not 1: torch.export would specialise a size-1 batch
    batch = torch.export.Dim("batch", min=1, max=1024)
    height, width = torch.export.Dim("height", min=32, max=4096), torch.export.Dim("width", min=32, max=4096)
    names = ["depth", "uncertainty"] if uncertainty else ["depth"]
    with torch.no_grad():
        torch.onnx.export(
            model,
            (example,),
            str(output),
            input_names=["image"],
            output_names=names,
            dynamic_shapes={"image": {0: batch, 2: height, 3: width}},
            opset_version=opset,
            dynamo=True,
        )
    return output
