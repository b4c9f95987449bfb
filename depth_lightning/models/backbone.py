"""ImageNet ResNets without pooling and fc, stages 3 and 4 kept at 1/8 resolution (Sec. 3.1)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch
import torchvision
from torch import Tensor, nn
from torchvision.models.resnet import BasicBlock

BACKBONES = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")
STAGES = ("layer2", "layer3", "layer4")  # the stages whose outputs are at 1/8 of the input


def _set_dilation(block: nn.Module, dilation: int) -> None:
    """Give every 3x3 convolution of a residual block stride 1 and the given dilation."""
    convs = [block.conv1, block.conv2] if isinstance(block, BasicBlock) else [block.conv2]
    for conv in convs:
        conv.stride, conv.dilation, conv.padding = (1, 1), (dilation, dilation), (dilation, dilation)
    if block.downsample is not None:
        block.downsample[0].stride = (1, 1)


class ResNetBackbone(nn.Module):
    """A torchvision ResNet trunk returning the maps named in ``taps``.

    Args:
        name: one of ``resnet18|34|50|101|152``.
        dilated: stages 3 and 4 use dilation 2 and 4 (the paper); ``False`` is Table 3's
            "no dilation" ablation: same 1/8 feature size, 1-dilated 3x3 convolutions.
        taps: feature maps to return, e.g. ``["layer2", "layer3.mid", "layer3", "layer4"]``;
            ``layerN`` is the end of stage N, ``layerN.i`` the output of its block ``i``
            (negative counts from the end), ``layerN.mid`` its middle block.

    The parameter names are torchvision's, so its ``state_dict`` (less ``fc.*``) loads key for key
    (:meth:`load_torchvision_state_dict`). The constructor reads no file and downloads nothing: ImageNet
    initialisation is training's business (:func:`torchvision_state_dict`, ``models/builder.py``).
    """

    def __init__(
        self,
        name: str = "resnet152",
        dilated: bool = True,
        taps: Sequence[str] = ("layer2", "layer3.mid", "layer3", "layer4"),
    ) -> None:
        super().__init__()
        if name not in BACKBONES:
            raise ValueError(f"model.net.backbone={name!r} is unknown; allowed: {', '.join(BACKBONES)}")
        net = getattr(torchvision.models, name)(weights=None)
        self.name, self.dilated = name, dilated
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4
        # torchvision's replace_stride_with_dilation convention (DeepLab): the first block of a
        # dilated stage keeps the previous dilation, the following blocks use the new one.
        for stage, (first, rest) in ((self.layer3, (1, 2)), (self.layer4, (2, 4))):
            if not dilated:
                first, rest = 1, 1
            for i, block in enumerate(stage):
                _set_dilation(block, first if i == 0 else rest)
        self.taps = list(taps)
        self._tap_index = [self._parse_tap(t) for t in self.taps]
        if len(set(self._tap_index)) != len(self._tap_index):
            raise ValueError(f"model.net.taps has duplicates after resolution: {self.taps}")
        self.stage_channels = {
            "layer2": self.layer2[-1].conv1.in_channels,
            "layer3": self.layer3[-1].conv1.in_channels,
            "layer4": self.layer4[-1].conv1.in_channels,
        }
        self.out_channels = [self.stage_channels[f"layer{s}"] for s, _ in self._tap_index]

    def _parse_tap(self, tap: str) -> tuple[int, int]:
        allowed = "layer2, layer3, layer4, layerN.<block index>, layerN.mid (N in 2..4)"
        stage_name, _, block = str(tap).partition(".")
        if stage_name not in STAGES:
            raise ValueError(f"model.net.taps: unknown tap {tap!r}; allowed: {allowed} (all at 1/8 resolution)")
        n = len(getattr(self, stage_name))
        if block == "":
            index = n - 1
        elif block == "mid":
            index = (n - 1) // 2
        else:
            try:
                index = int(block)
            except ValueError:
                raise ValueError(f"model.net.taps: unknown tap {tap!r}; allowed: {allowed}") from None
            if not -n <= index < n:
                raise ValueError(f"model.net.taps: {tap!r} is out of range, {stage_name} of {self.name} has {n} blocks")
            index %= n
        return int(stage_name[-1]), index

    def load_torchvision_state_dict(self, state_dict: dict[str, Tensor]) -> None:
        """Load a torchvision ResNet ``state_dict`` strictly, ignoring only the classifier ``fc.*``."""
        trunk = {k: v for k, v in state_dict.items() if not k.startswith("fc.")}
        missing, unexpected = self.load_state_dict(trunk, strict=False)
        if missing or unexpected:
            raise ValueError(
                f"not a torchvision {self.name} state_dict: missing keys {missing[:5]}..., "
                f"unexpected keys {unexpected[:5]}... (model.net.pretrained)"
            )

    def stem(self, x: Tensor) -> Tensor:
        return self.layer1(self.maxpool(self.relu(self.bn1(self.conv1(x)))))

    def forward(self, x: Tensor) -> list[Tensor]:
        """Return the tapped maps in the order of ``taps``."""
        wanted = {idx: i for i, idx in enumerate(self._tap_index)}
        last = max(self._tap_index)
        out: list[Tensor | None] = [None] * len(self.taps)
        x = self.stem(x)
        for s in (2, 3, 4):
            for b, block in enumerate(getattr(self, f"layer{s}")):
                x = block(x)
                if (s, b) in wanted:
                    out[wanted[(s, b)]] = x
                if (s, b) == last:
                    return out  # type: ignore[return-value]
        return out  # type: ignore[return-value]


def torchvision_state_dict(name: str, pretrained: str) -> dict[str, Tensor]:
    """The torchvision ``state_dict`` of ResNet ``name`` that ``model.net.pretrained`` names: ``imagenet``
    (torchvision's weights, through its cache) or the path of a ``state_dict`` file (read with
    ``weights_only``)."""
    if pretrained == "imagenet":
        weights = torchvision.models.get_model_weights(name).DEFAULT
        cache = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights.url)
        try:
            return weights.get_state_dict(progress=False, check_hash=True)
        except (OSError, RuntimeError) as err:  # URLError is an OSError
            raise RuntimeError(
                f"model.net.pretrained=imagenet: could not load {name} ImageNet weights ({err}). "
                f"torchvision looks for them in its cache at {cache}; with no network, copy "
                f"{weights.url} there (or set TORCH_HOME), or use model.net.pretrained=<path to a state_dict>."
            ) from err
    path = Path(pretrained)
    if not path.is_file():
        raise FileNotFoundError(
            f"model.net.pretrained={pretrained!r}: no such file; use 'none', 'imagenet' or a state_dict path"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(f"model.net.pretrained={pretrained!r}: cannot read a state_dict from it ({err})") from err
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    return state
