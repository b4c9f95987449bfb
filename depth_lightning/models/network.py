"""The paper's network: dilated ResNet trunk + hierarchical fusion head + log-depth bins."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from depth_lightning.models.backbone import ResNetBackbone
from depth_lightning.models.bins import LogDepthBins
from depth_lightning.models.head import FusionHead

# torchvision's ImageNet classification weights expect RGB in [0, 1] normalised by these
# (weights.transforms().mean / .std).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
NORMALIZATIONS = ("auto", "imagenet", "none")
MIN_INPUT = 32  # below this the 1/8 feature map is < 4 pixels and BatchNorm statistics degenerate


class Normalize(nn.Module):
    """``(x - mean) / std`` per channel, part of the network so that training, evaluation, predict
    and the ONNX graph all feed the weights what they were trained on. The statistics are saved with
    the weights: a checkpoint restores the normalisation it was trained with."""

    def __init__(self, mean: Sequence[float] = (0.0, 0.0, 0.0), std: Sequence[float] = (1.0, 1.0, 1.0)) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)


class FrozenStatisticsBatchNorm2d(nn.Module):
    """BatchNorm that always normalises with its running statistics (never updates them) and still
    trains its affine weight and bias. Not a ``_BatchNorm``: ``train()``/``eval()`` and conversion to
    SyncBatchNorm leave it as it is. Same parameter and buffer names: checkpoints load either way."""

    def __init__(self, bn: nn.modules.batchnorm._BatchNorm) -> None:
        super().__init__()
        self.eps = bn.eps
        self.weight = nn.Parameter(bn.weight.detach().clone())
        self.bias = nn.Parameter(bn.bias.detach().clone())
        self.register_buffer("running_mean", bn.running_mean.detach().clone())
        self.register_buffer("running_var", bn.running_var.detach().clone())
        self.register_buffer("num_batches_tracked", bn.num_batches_tracked.detach().clone())

    def forward(self, x: Tensor) -> Tensor:
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)


def freeze_batchnorm_statistics(module: nn.Module) -> nn.Module:
    """Replace every BatchNorm of ``module`` by a :class:`FrozenStatisticsBatchNorm2d` of it."""
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            setattr(module, name, FrozenStatisticsBatchNorm2d(child))
        else:
            freeze_batchnorm_statistics(child)
    return module


class DepthNet(nn.Module):
    """RGB ``(B,3,H,W)`` in [0, 1] -> logits over K log-depth bins ``(B,K,floor(H/2),floor(W/2))``.

    Args:
        backbone: the trunk's ResNet (:class:`ResNetBackbone`).
        dilated: stages 3 and 4 dilated (2, 4) instead of strided (Sec. 3.1).
        taps: where L1..L4 are taken from the trunk.
        pretrained: ``imagenet``, ``none`` or a weights file for the trunk.
        num_bins: K, the bins' count (:class:`LogDepthBins`).
        d_min: the first bin centre's depth (metres).
        d_max: the last bin centre's depth (metres).
        fusion: concatenate L1..L4 (hierarchical fusion, :class:`FusionHead`), else L4 alone.
        dropout: the head's dropout rate.
        upsample: ``learned`` (the 8x8 stride-4 deconvolution) or ``bilinear`` (fixed).
        normalize: ``imagenet`` standardises the input as ImageNet weights expect; ``auto`` does so
            when the trunk starts from pretrained weights; ``none``.
        freeze_bn: the backbone's BatchNorm layers normalise with their (pretrained) running
            statistics and never update them, while their affine weights train: batch statistics
            of a single image are noisy (the paper trains at batch 1), and Caffe ResNets were
            fine-tuned with frozen statistics. ``auto``: when the trunk starts from pretrained
            weights (a trunk trained from scratch has no statistics to keep).
        freeze_backbone: the trunk does not train at all (weights and statistics), only the fusion
            head: fine-tuning a model on a small dataset (``init_from``).

    ``predict`` decodes the logits into depth (soft-weighted-sum and hard-max) and uncertainty.
    """

    def __init__(
        self,
        backbone: str = "resnet152",
        num_bins: int = 200,
        d_min: float = 0.5,
        d_max: float = 10.0,
        dilated: bool = True,
        fusion: bool = True,
        taps: Sequence[str] = ("layer2", "layer3.mid", "layer3", "layer4"),
        dropout: float = 0.5,
        upsample: str = "learned",
        pretrained: str = "none",
        normalize: str = "auto",
        freeze_bn: bool | str = "auto",
        freeze_backbone: bool = False,
    ) -> None:
        super().__init__()
        if normalize not in NORMALIZATIONS:
            raise ValueError(f"model.net.normalize={normalize!r} is unknown; allowed: {', '.join(NORMALIZATIONS)}")
        from_pretrained = pretrained not in (None, "none")
        imagenet = normalize == "imagenet" or (normalize == "auto" and from_pretrained)
        if freeze_bn not in (True, False, "auto"):
            raise ValueError(f"model.net.freeze_bn={freeze_bn!r}: true, false or auto")
        self.normalize = Normalize(IMAGENET_MEAN, IMAGENET_STD) if imagenet else Normalize()
        self.bins = LogDepthBins(d_min, d_max, num_bins)
        self.backbone = ResNetBackbone(backbone, dilated=dilated, taps=taps, pretrained=pretrained)
        if freeze_bn is True or (freeze_bn == "auto" and from_pretrained) or freeze_backbone:
            freeze_batchnorm_statistics(self.backbone)
        if freeze_backbone:  # fine-tuning on a small dataset: only the fusion head learns
            self.backbone.requires_grad_(False)
        self.head = FusionHead(self.backbone.out_channels, num_bins, fusion=fusion, dropout=dropout, upsample=upsample)

    @staticmethod
    def output_size(height: int, width: int) -> tuple[int, int]:
        return height // 2, width // 2

    def forward(self, image: Tensor) -> Tensor:
        if image.ndim != 4 or image.shape[1] != 3:
            raise ValueError(f"the network takes (B, 3, H, W) RGB images, got shape {tuple(image.shape)}")
        h, w = image.shape[-2:]
        if min(h, w) < MIN_INPUT:
            raise ValueError(f"input {(h, w)} is too small: height and width must be >= {MIN_INPUT}")
        return self.head(self.backbone(self.normalize(image)), self.output_size(h, w))

    def predict(self, image: Tensor) -> dict[str, Tensor]:
        """Logits plus ``soft``/``hard`` depth (metres) and ``uncertainty`` (std of log depth)."""
        logits = self(image)
        return {"logits": logits, **self.bins.decode(logits)}


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
