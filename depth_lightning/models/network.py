"""The paper's network, the one deployable model: dilated ResNet trunk + hierarchical fusion head +
log-depth bins, with its input size, normalisation and decoder."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from huggingface_hub import PyTorchModelHubMixin
from torch import Tensor, nn

from depth_lightning.core.files import save_atomic
from depth_lightning.models.backbone import ResNetBackbone
from depth_lightning.models.bins import DECODERS, LogDepthBins
from depth_lightning.models.head import FusionHead
from depth_lightning.models.settings import NORMALIZATIONS
from depth_lightning.models.storage import (
    CARD,
    CONFIG,
    FORMAT,
    WEIGHTS,
    minimal_card,
    read_model_folder,
    resolve_folder,
    save_weights,
)

# torchvision's ImageNet classification weights expect RGB in [0, 1] normalised by these
# (weights.transforms().mean / .std).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
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


class DepthNet(
    nn.Module,
    PyTorchModelHubMixin,
    library_name="depth_lightning",
    pipeline_tag="depth-estimation",
    tags=["monocular-depth", "depth_lightning"],
):
    """The deployable model: RGB ``(B,3,H,W)`` in [0, 1] -> logits over K log-depth bins
    ``(B,K,floor(H/2),floor(W/2))``, with everything needed to predict (normalisation, bins, input size,
    decoder) and nothing of training. Its constructor's arguments are its ``config.json``
    (huggingface_hub's ``PyTorchModelHubMixin``: ``save_pretrained`` / ``from_pretrained`` /
    ``push_to_hub``, weights as safetensors); the bins travel in the weights (``bins.log_centres``).

    Args:
        backbone: the trunk's ResNet (:class:`ResNetBackbone`).
        num_bins: K, the bins' count (:class:`LogDepthBins`).
        d_min: the first bin centre's depth (metres).
        d_max: the last bin centre's depth (metres).
        dilated: stages 3 and 4 dilated (2, 4) instead of strided (Sec. 3.1).
        fusion: concatenate L1..L4 (hierarchical fusion, :class:`FusionHead`), else L4 alone.
        taps: where L1..L4 are taken from the trunk.
        dropout: the head's dropout rate.
        upsample: ``learned`` (the 8x8 stride-4 deconvolution) or ``bilinear`` (fixed).
        normalize: ``imagenet`` standardises the input as ImageNet weights expect; ``none``.
        input_size: ``(height, width)`` the network was trained at: what inference feeds it.
        decoder: the headline decoder, ``soft`` (Eq. 5) or ``hard`` (argmax bin).
        channels_last: NHWC tensors (oneDNN's and cuDNN's preferred layout; the numbers do not change).

    Training's builder (``models/builder.py``) initialises the trunk from ImageNet and freezes what
    ``model.net`` says; this constructor reads no file and downloads nothing.
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
        normalize: str = "none",
        input_size: Sequence[int] = (240, 320),
        decoder: str = "soft",
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        if normalize not in NORMALIZATIONS:
            raise ValueError(f"model.net.normalize={normalize!r} is unknown; allowed: {', '.join(NORMALIZATIONS)}")
        if decoder not in DECODERS:
            raise ValueError(f"model.decoder={decoder!r} is unknown; allowed: {', '.join(DECODERS)}")
        if len(input_size) != 2 or min(input_size) < MIN_INPUT:
            raise ValueError(
                f"input size {list(input_size)} (data.height, data.width): [height, width], each >= {MIN_INPUT}"
            )
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.decoder, self.channels_last = decoder, bool(channels_last)
        self.normalize = Normalize(IMAGENET_MEAN, IMAGENET_STD) if normalize == "imagenet" else Normalize()
        self.bins = LogDepthBins(d_min, d_max, num_bins)
        self.backbone = ResNetBackbone(backbone, dilated=dilated, taps=taps)
        self.head = FusionHead(self.backbone.out_channels, num_bins, fusion=fusion, dropout=dropout, upsample=upsample)
        self.card: str | None = None  # the model card it was loaded with, kept by save_pretrained
        if self.channels_last:
            self.to(memory_format=torch.channels_last)

    @property
    def settings(self) -> dict[str, Any]:
        """The constructor's arguments: what ``config.json`` holds."""
        return dict(self._hub_mixin_config)

    @staticmethod
    def output_size(height: int, width: int) -> tuple[int, int]:
        return height // 2, width // 2

    def forward(self, image: Tensor) -> Tensor:
        if image.ndim != 4 or image.shape[1] != 3:
            raise ValueError(f"the network takes (B, 3, H, W) RGB images, got shape {tuple(image.shape)}")
        h, w = image.shape[-2:]
        if min(h, w) < MIN_INPUT:
            raise ValueError(f"input {(h, w)} is too small: height and width must be >= {MIN_INPUT}")
        if self.channels_last:
            image = image.contiguous(memory_format=torch.channels_last)
        return self.head(self.backbone(self.normalize(image)), self.output_size(h, w))

    # huggingface_hub's hooks: the weights as safetensors, read back strictly (models/storage.py)
    def _save_pretrained(self, save_directory: Path) -> None:
        save_weights(self, Path(save_directory) / WEIGHTS)

    def save_pretrained(self, save_directory: str | Path, *, card: str | None = None, **kwargs: Any) -> str | None:
        """Write ``model.safetensors``, ``config.json`` (the settings, format 2) and ``README.md``
        (``card``, else the card it was loaded with, else a minimal one); huggingface_hub's keyword
        arguments (``push_to_hub``, ``repo_id``...) pass through."""
        folder = Path(save_directory)
        folder.mkdir(parents=True, exist_ok=True)
        text = card or self.card or minimal_card(self.settings)
        save_atomic(folder / CARD, lambda p: p.write_text(text))  # before the mixin, which keeps a README
        kwargs.pop("config", None)  # push_to_hub passes one back: the config is always the settings
        return super().save_pretrained(folder, config={**self.settings, **FORMAT}, **kwargs)

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: str | Path,
        *,
        revision: str | None = None,
        cache_dir: str | Path | None = None,
        **hub_kwargs: Any,
    ) -> DepthNet:
        """The network of a model folder or a Hub repo id (``owner/name`` at ``revision``, through
        huggingface_hub's cache; ``HF_HUB_OFFLINE=1`` honoured), any layout the suite has written. The
        config is parsed as data and the weights checked against it (``models/storage.py``); the
        mixin's own reader would ignore unknown settings and load weights non-strictly."""
        folder = resolve_folder(pretrained_model_name_or_path, revision, cache_dir, **hub_kwargs)
        return read_model_folder(folder / CONFIG, folder / WEIGHTS, folder / CARD, cls)


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
