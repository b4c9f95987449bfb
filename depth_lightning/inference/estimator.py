"""Metric depth from a trained model in two lines::

    estimator = DepthEstimator.from_pretrained("last.ckpt")   # or a model folder, or owner/name on the Hub
    depth = estimator.predict(Image.open("room.jpg"))["depth"]      # (H, W) metres, NumPy

The predict CLI is built on it. The network sees the image at its checkpoint's input size; depth is
brought back to the image's own size in log depth (what the bins are linear in).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from depth_lightning.core.errors import ConfigError
from depth_lightning.inference.loading import load_model
from depth_lightning.models.bins import DECODERS, LogDepthBins
from depth_lightning.models.network import DepthNet

# precision -> autocast dtype of the network (None: float32)
PRECISIONS = {
    "32": None,
    "32-true": None,
    "bf16": torch.bfloat16,
    "bf16-mixed": torch.bfloat16,
    "16-mixed": torch.float16,
}


def pick_device(device: str | torch.device = "auto") -> torch.device:
    """``auto``: the GPU when there is one, else the CPU."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def as_batch(image: Any) -> tuple[torch.Tensor, bool]:
    """``(B, 3, H, W)`` float in [0, 1] from a PIL image, an ``(H, W, 3)`` array (uint8, or float in
    [0, 1]) or a ``(3, H, W)`` / ``(B, 3, H, W)`` tensor in [0, 1]; and whether it was one image given
    as PIL or NumPy (the results then come back as NumPy arrays without the batch axis)."""
    if isinstance(image, Image.Image):
        if image.mode not in ("RGB", "L", "RGBA", "P"):
            raise ValueError(
                f"a {image.mode} image is not an RGB photograph (a depth map?); convert it first if it is one"
            )
        image = np.asarray(image.convert("RGB"))
    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"an image array must be (H, W, 3) RGB, got shape {image.shape}")
        scale = 255.0 if image.dtype == np.uint8 else 1.0
        if image.dtype not in (np.uint8, np.float32, np.float64):
            raise ValueError(f"an image array must be uint8 or float in [0, 1], got {image.dtype}")
        return torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].float() / scale, True  # a writable copy
    if isinstance(image, torch.Tensor):
        batch = image[None] if image.ndim == 3 else image
        if batch.ndim != 4 or batch.shape[1] != 3:
            raise ValueError(f"an image tensor must be (3, H, W) or (B, 3, H, W), got {tuple(image.shape)}")
        return batch.float(), False
    raise TypeError(f"predict takes a PIL image, a NumPy array or a tensor, not {type(image).__name__}")


def resize_log_depth(log_depth: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``(B, h, w)`` log depth (or any map) bilinearly to ``size``."""
    return F.interpolate(log_depth[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]


class DepthEstimator:
    """A trained :class:`~depth_lightning.models.DepthNet` ready for inference.

    Args:
        model: the trained network (:func:`~depth_lightning.inference.loading.load_model`).
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:1``...
        precision: ``32`` (default), ``bf16`` or ``16-mixed`` autocast for the network; the softmax
            and decoding always run in float32.
    """

    def __init__(self, model: DepthNet, device: str | torch.device = "auto", precision: str = "32") -> None:
        if str(precision) not in PRECISIONS:
            raise ConfigError(f"precision={precision!r} is not one of: {', '.join(PRECISIONS)}")
        self.device = pick_device(device)
        self.model = model.eval().to(self.device)
        self.dtype = PRECISIONS[str(precision)]

    @classmethod
    def from_checkpoint(
        cls, path: str | Path, device: str | torch.device = "auto", precision: str = "32"
    ) -> DepthEstimator:
        """Load a checkpoint of ``depth_lightning.train`` (refused, naming it, if it is not one)."""
        return cls(load_model(path), device, precision)

    @classmethod
    def from_pretrained(
        cls,
        source: str | Path,
        revision: str | None = None,
        device: str | torch.device = "auto",
        precision: str = "32",
        cache_dir: str | None = None,
    ) -> DepthEstimator:
        """Load a model folder (:meth:`save_pretrained`), a Hugging Face Hub repo id (``owner/name`` at
        ``revision``, through ``huggingface_hub``'s cache; ``HF_HUB_OFFLINE=1`` honoured) or a
        training checkpoint; a folder whose config and weights disagree is refused, naming the keys."""
        return cls(load_model(source, revision, cache_dir), device, precision)

    def save_pretrained(self, folder: str | Path, card: str | None = None) -> Path:
        """Write this model as a folder :meth:`from_pretrained` loads: ``model.safetensors``,
        ``config.json``, ``README.md`` (``card``: its text; by default the card it was loaded with)."""
        self.model.save_pretrained(folder, card=card)
        return Path(folder)

    @property
    def input_size(self) -> tuple[int, int]:
        """The ``(height, width)`` the network was trained at."""
        return self.model.input_size

    @property
    def bins(self) -> LogDepthBins:
        return self.model.bins

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)

    def _logits(self, batch: torch.Tensor) -> torch.Tensor:
        with self._autocast():
            return self.model(batch).float()

    @torch.no_grad()
    def predict(
        self,
        image: Any,
        decoder: str | None = None,
        flip: bool = False,
        resize: bool = True,
        upsample: bool = True,
        uncertainty: bool = True,
        distribution: bool = False,
    ) -> dict[str, Any]:
        """Depth in metres for an image or a batch.

        Args:
            image: a PIL image, an ``(H, W, 3)`` array or a ``(3, H, W)`` / ``(B, 3, H, W)`` tensor in [0, 1].
            decoder: ``soft`` (Eq. 5) or ``hard`` (argmax bin); default: the checkpoint's.
            flip: horizontal-flip test-time augmentation: the prediction of the flipped image, flipped
                back, is averaged with the direct one in log depth (the space the bins are linear in);
                the distribution is the mean of the two.
            resize: feed the network the checkpoint's input size (else the image's own size).
            upsample: bring the outputs to the image's size (else the network's, half its input).
            uncertainty: also return the std of log depth under the predicted distribution.
            distribution: also return the probabilities over the bins ``(K, h, w)`` at the network's
                resolution, and the bins' log-depth centres.

        Returns:
            ``{"depth", ["uncertainty"], ["probabilities", "log_centres"]}``: NumPy arrays without the
            batch axis for a PIL or NumPy image, tensors ``(B, ...)`` on the CPU for a tensor input.
        """
        decoder = decoder or self.model.decoder
        if decoder not in DECODERS:
            raise ConfigError(f"decoder={decoder!r} is not one of: {', '.join(DECODERS)}")
        batch, single = as_batch(image)
        height, width = batch.shape[-2:]
        batch = batch.to(self.device)
        if resize:
            batch = F.interpolate(batch, size=self.input_size, mode="bilinear", align_corners=False, antialias=True)
        views = [self._logits(batch)]
        if flip:
            views.append(self._logits(batch.flip(-1)).flip(-1))
        decoded = self.bins.decode(views, log=True, distribution=distribution)
        out: dict[str, torch.Tensor] = {"depth": decoded[decoder]}
        if uncertainty:
            out["uncertainty"] = decoded["uncertainty"]
        if upsample:
            out = {k: resize_log_depth(v, (height, width)) for k, v in out.items()}
        out["depth"] = torch.exp(out["depth"])
        if distribution:
            out["probabilities"] = decoded["probabilities"]
            out["log_centres"] = self.bins.log_centres
        results: dict[str, Any] = {k: v.cpu() for k, v in out.items()}
        if single:
            results = {k: v.numpy() if k == "log_centres" else v[0].numpy() for k, v in results.items()}
        return results
