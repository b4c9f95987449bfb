"""Reading RGB images and depth maps from the datasets' files, with errors that name the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError


class DataError(ValueError):
    """A dataset file that is missing, corrupt or of the wrong format; the message names it."""


def read_rgb(path: str | Path) -> np.ndarray:
    """``(H,W,3)`` uint8."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: image file not found")
    try:
        with Image.open(path) as im:
            im.load()
            return np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise DataError(f"{path}: corrupt or unreadable image ({err})") from None


def read_depth_png(path: str | Path, scale: float) -> np.ndarray:
    """A 16-bit depth PNG as float32 metres (``value / scale``; 0 stays 0 = invalid).

    NYU sync maps are millimetres (scale 1000), KITTI's annotated maps metres x 256 (scale 256).
    An 8-bit PNG cannot hold depth at that precision and is refused.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: depth file not found")
    try:
        with Image.open(path) as im:
            im.load()
            mode = im.mode
            arr = np.asarray(im)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise DataError(f"{path}: corrupt or unreadable depth PNG ({err})") from None
    if mode not in ("I;16", "I;16B", "I;16L", "I") or arr.ndim != 2:
        raise DataError(
            f"{path}: expected a 16-bit single-channel depth PNG, got mode {mode} "
            f"({'8-bit' if mode in ('L', 'P', 'RGB', 'RGBA') else mode}); depth PNGs must be uint16"
        )
    return arr.astype(np.float32) / scale


def write_depth_png(path: str | Path, depth: np.ndarray, scale: float) -> None:
    """Float metres -> 16-bit PNG (``round(depth * scale)``), written atomically."""
    path = Path(path)
    arr = np.clip(np.round(np.nan_to_num(depth) * scale), 0, 65535).astype(np.uint16)
    tmp = path.with_name(f".{path.name}.tmp.png")
    Image.fromarray(arr).save(tmp, format="PNG")
    tmp.replace(path)
