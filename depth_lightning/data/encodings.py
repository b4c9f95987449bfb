"""Depth encodings: one reader per file format the field's datasets use, each returning float32 metres
with 0 where there is no measurement, and errors that name the file.

A dataset config names its encoding and the encoding's options (``data.dataset.depth``); companion
files (a validity mask, a calibration) are paired to the depth file by the dataset
(:mod:`depth_lightning.data.files`). What each dataset's own documentation and the peers' loaders say
of the format is written beside its reader.
"""

from __future__ import annotations

import functools
import inspect
import re
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from depth_lightning.core.errors import ConfigError, DataError
from depth_lightning.data.io import read_depth_png, read_mask, read_rgb


def _no_measurement(depth: np.ndarray) -> np.ndarray:
    """NaN, inf and negative values become 0, the suite's "no measurement"."""
    return np.where(np.isfinite(depth) & (depth > 0), depth, 0.0).astype(np.float32)


def _read_png_values(path: Path) -> np.ndarray:
    return read_depth_png(path, 1.0).astype(np.uint32)  # the stored integers (exact in float32)


def png(path: Path, scale: float, invalid: Sequence[int] = (0,)) -> np.ndarray:
    """A 16-bit PNG of ``scale`` units per metre: NYU sync and ScanNet (millimetres, 1000), KITTI's
    annotated maps (256), TUM RGB-D (5000), Virtual KITTI 2 (centimetres, 100). ``invalid``: the stored
    values that mean "no measurement" (0 for all of these)."""
    values = _read_png_values(path)
    return np.where(np.isin(values, list(invalid)), 0.0, values / scale).astype(np.float32)


def png_bitshift(path: Path, scale: float = 1000.0) -> np.ndarray:
    """SUN RGB-D's raw release: uint16 millimetres rotated right by 3 bits in storage (the toolbox's
    ``bitor(bitshift(depth, -3), bitshift(depth, 16 - 3))``); 0 = missing."""
    values = _read_png_values(path)
    return ((((values >> 3) | (values << 13)) & 0xFFFF) / scale).astype(np.float32)


def npy(path: Path, key: str | None = None, mask: Path | None = None) -> np.ndarray:
    """Float metres in ``.npy`` (DIODE's ``(H, W, 1)`` float32 maps) or under ``key`` of an ``.npz``;
    ``mask``: a companion array, nonzero where the depth is valid (DIODE's ``_depth_mask.npy``)."""
    depth = _load_array(path, key).squeeze()
    if depth.ndim != 2:
        raise DataError(f"{path}: expected an (H, W) depth map, got shape {depth.shape}")
    if mask is not None:
        valid = _load_array(mask, None).squeeze()
        if valid.shape != depth.shape:
            raise DataError(f"{mask}: a {valid.shape} mask for the {depth.shape} depth map {path}")
        depth = np.where(valid != 0, depth, 0.0)
    return _no_measurement(depth)


def _load_array(path: Path, key: str | None) -> np.ndarray:
    if not path.is_file():
        raise DataError(f"{path}: depth file not found")
    try:
        loaded = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile) as err:  # a damaged .npz is a broken zip
        with open(path, "rb") as f:
            head = f.read(8)
        if not head.startswith((b"\x93NUMPY", b"PK")):  # neither .npy nor .npz: another format
            raise DataError(
                f"{path}: not a NumPy .npy/.npz file, which data.dataset.depth.encoding=npy reads; set the encoding "
                "its depth files are in (data.dataset.depth.encoding: png, pfm_disparity, ...)"
            ) from None
        raise DataError(f"{path}: unreadable array ({err})") from None
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        return loaded.astype(np.float32)
    with loaded:
        if key is None or key not in loaded.files:
            raise DataError(
                f"{path}: no array {key!r} in the file (it holds {', '.join(loaded.files)}); set data.dataset.depth.key"
            )
        return np.asarray(loaded[key], dtype=np.float32)


def raw_float32(path: Path, height: int = 4032, width: int = 6048) -> np.ndarray:
    """ETH3D's ground truth: headerless little-endian float32, ``height`` x ``width`` (the DSLR images'
    4032 x 6048), ``inf`` where unknown (Marigold's ``eth3d_dataset.py`` reads it so)."""
    if not path.is_file():
        raise DataError(f"{path}: depth file not found")
    data = np.fromfile(path, dtype="<f4")
    if data.size != height * width:
        raise DataError(
            f"{path}: {data.size} float32 values, not {height} x {width}: set data.dataset.depth.height / width"
        )
    return _no_measurement(data.reshape(height, width))


@functools.lru_cache(maxsize=1)  # a frame's RGB and depth come from the one file: read it once
def _ibims_struct(path: Path) -> Any:
    import scipy.io

    try:
        return scipy.io.loadmat(path)["data"]
    except FileNotFoundError:
        raise DataError(f"{path}: iBims-1 .mat file not found") from None
    except (KeyError, ValueError, OSError) as err:
        raise DataError(f"{path}: not an iBims-1 .mat (a struct 'data' with rgb, depth, masks): {err}") from None


def ibims_mat(path: Path) -> np.ndarray:
    """iBims-1's official per-image ``.mat``: the struct ``data`` with ``depth`` (metres), ``mask_invalid``
    and ``mask_transp`` (1 = valid; the official script scores ``mask_transp * mask_invalid * (depth != 0)``)."""
    data = _ibims_struct(path)
    depth, invalid, transparent = (
        np.asarray(data[k][0][0], dtype=np.float32) for k in ("depth", "mask_invalid", "mask_transp")
    )
    return _no_measurement(np.where((invalid != 0) & (transparent != 0), depth, 0.0))


def ibims_rgb(path: Path) -> np.ndarray:
    """The RGB image held in an iBims-1 ``.mat`` (``data.rgb``, uint8)."""
    rgb = np.asarray(_ibims_struct(path)["rgb"][0][0])
    if rgb.ndim != 3 or rgb.dtype != np.uint8:
        raise DataError(f"{path}: data.rgb is {rgb.dtype} {rgb.shape}, not an (H, W, 3) uint8 image")
    return rgb


def ibims_png(path: Path, invalid_mask: Path, transparent_mask: Path) -> np.ndarray:
    """iBims-1's PNG release: uint16 of 50 m full scale (``value * 50 / 65535``, as ZoeDepth's
    ``ibims.py`` reads it), valid where both masks (``mask_invalid/``, ``mask_transp/``) are nonzero."""
    depth = _read_png_values(path).astype(np.float32) * np.float32(50.0 / 65535)
    valid = np.ones(depth.shape, dtype=bool)
    for mask in (invalid_mask, transparent_mask):
        values = read_mask(mask)
        if values.shape != depth.shape:
            raise DataError(f"{mask}: a {values.shape} mask for the {depth.shape} depth map {path}")
        valid &= values != 0
    return np.where(valid, depth, 0.0).astype(np.float32)


def read_pfm(path: Path) -> np.ndarray:
    """A single-channel PFM as float32, top row first (PFM stores the bottom row first)."""
    try:
        with path.open("rb") as f:
            kind = f.readline().strip()
            dims = f.readline().split()
            scale = float(f.readline())
            width, height = int(dims[0]), int(dims[1])
            data = np.fromfile(f, dtype="<f4" if scale < 0 else ">f4", count=width * height)
    except FileNotFoundError:
        raise DataError(f"{path}: disparity file not found") from None
    except (ValueError, IndexError) as err:
        raise DataError(f"{path}: not a PFM file ({err})") from None
    if kind != b"Pf" or data.size != width * height:
        raise DataError(
            f"{path}: expected a single-channel PFM ('Pf') of {width}x{height}, got {kind!r}, {data.size} values"
        )
    return np.flipud(data.reshape(height, width)).astype(np.float32)


def read_calibration(path: Path) -> dict[str, float]:
    """Middlebury's ``calib.txt``: the focal length of ``cam0``, ``doffs`` and ``baseline`` (millimetres)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise DataError(f"{path}: calibration file not found") from None
    fields = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    try:
        focal = float(fields["cam0"].strip(" []").split()[0])
        return {"focal": focal, "doffs": float(fields["doffs"]), "baseline": float(fields["baseline"])}
    except (KeyError, ValueError, IndexError) as err:
        raise DataError(f"{path}: expected cam0=[f 0 cx; ...], doffs= and baseline= lines ({err})") from None


def pfm_disparity(path: Path, calib: Path) -> np.ndarray:
    """Middlebury 2014: disparity in a PFM (``inf`` = unknown) to depth through ``calib.txt``,
    ``Z [mm] = baseline * f / (d + doffs)``."""
    disparity = read_pfm(path).astype(np.float64)
    c = read_calibration(calib)
    with np.errstate(divide="ignore", invalid="ignore"):
        depth = c["baseline"] * c["focal"] / (disparity + c["doffs"]) / 1000.0
    return _no_measurement(np.where(np.isfinite(disparity), depth, 0.0))


def hypersim_hdf5(path: Path, focal: float = 886.81) -> np.ndarray:
    """Hypersim's ``depth_meters.hdf5``: the distance from the camera centre (not planar depth), NaN
    where invalid; to planar depth by the pixel's ray through a pinhole of ``focal`` pixels centred on
    the image (ZoeDepth's and Depth-Anything-V2's conversion: 886.81 px at 768 x 1024)."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            distance = np.asarray(f["dataset"], dtype=np.float64)
    except FileNotFoundError:
        raise DataError(f"{path}: depth file not found") from None
    except (OSError, KeyError) as err:
        raise DataError(f"{path}: not a Hypersim depth_meters.hdf5 with a 'dataset' ({err})") from None
    height, width = distance.shape
    x = np.arange(width) - (width - 1) / 2  # pixel centres, from the image centre
    y = np.arange(height) - (height - 1) / 2
    ray = np.sqrt(x[None, :] ** 2 + y[:, None] ** 2 + focal**2)
    return _no_measurement(distance * focal / ray)


SINTEL_TAG = 202021.25  # the first float of a .dpt file (the Sintel SDK's TAG_FLOAT)


def sintel_dpt(path: Path) -> np.ndarray:
    """MPI Sintel's ``.dpt``: a float32 tag (202021.25), int32 width and height, then float32 depth."""
    try:
        with path.open("rb") as f:
            tag = np.fromfile(f, dtype="<f4", count=1)
            width, height = (int(v) for v in np.fromfile(f, dtype="<i4", count=2))
            depth = np.fromfile(f, dtype="<f4", count=width * height)
    except FileNotFoundError:
        raise DataError(f"{path}: depth file not found") from None
    except ValueError as err:
        raise DataError(f"{path}: not a Sintel .dpt file ({err})") from None
    if tag.size != 1 or tag[0] != np.float32(SINTEL_TAG) or depth.size != width * height:
        raise DataError(f"{path}: not a Sintel .dpt file (tag {tag}, {depth.size} values for {width}x{height})")
    return _no_measurement(depth.reshape(height, width))


# encoding -> (reader, the companion files it takes, what it is)
ENCODINGS: dict[str, tuple[Callable[..., np.ndarray], tuple[str, ...], str]] = {
    "png": (png, (), "16-bit PNG, value / scale metres"),
    "png_bitshift": (png_bitshift, (), "SUN RGB-D raw: 16-bit PNG rotated by 3 bits, millimetres"),
    "npy": (npy, ("mask",), "float metres in .npy / .npz (optional validity mask)"),
    "raw_float32": (raw_float32, (), "ETH3D: headerless float32, inf = unknown"),
    "ibims_mat": (ibims_mat, (), "iBims-1 .mat struct: depth with its invalid and transparent masks"),
    "ibims_png": (ibims_png, ("invalid_mask", "transparent_mask"), "iBims-1 PNG release: value * 50 / 65535"),
    "pfm_disparity": (pfm_disparity, ("calib",), "Middlebury: PFM disparity to depth via calib.txt"),
    "hypersim_hdf5": (hypersim_hdf5, (), "Hypersim: distance from the camera centre to planar depth"),
    "sintel_dpt": (sintel_dpt, (), "Sintel .dpt float32 depth"),
}


# encodings whose depth map's size its file's header tells (PIL for PNG, NumPy's header for .npy)
HEADER_SIZED = ("png", "png_bitshift", "npy", "ibims_png")


def header_size(path: Path) -> tuple[int, int]:
    """``(height, width)`` of an image or ``.npy`` file from its header, without decoding it."""
    path = Path(path)
    try:
        if path.suffix == ".npy":
            with open(path, "rb") as f:
                major, _ = np.lib.format.read_magic(f)
                read = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
                shape = read(f)[0]  # the header only
            return int(shape[0]), int(shape[1])
        from PIL import Image

        with Image.open(path) as image:
            width, height = image.size
        return height, width
    except (OSError, ValueError, IndexError, SyntaxError) as err:
        raise DataError(f"{path}: unreadable header ({err})") from None


def check_encoding(settings: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """``(encoding, options)`` of a ``data.dataset.depth`` setting, refused by name when unknown."""
    settings = dict(settings)
    name = settings.pop("encoding", None)
    if name not in ENCODINGS:
        raise ConfigError(
            f"config error: data.dataset.depth.encoding={name!r} is unknown; allowed: {', '.join(ENCODINGS)}"
        )
    reader, companions, _ = ENCODINGS[name]
    allowed = set(inspect.signature(reader).parameters) - {"path", *companions}
    for key in settings:
        if key not in allowed:
            raise ConfigError(
                f"config error: data.dataset.depth.{key}: not an option of encoding {name} "
                f"(its options: {', '.join(sorted(allowed)) or 'none'})"
            )
    return name, settings


def read_depth(path: Path, encoding: str, options: dict[str, Any], companions: dict[str, Path]) -> np.ndarray:
    """Depth in float32 metres (0 = no measurement) of ``path`` in ``encoding``."""
    reader = ENCODINGS[encoding][0]
    return reader(Path(path), **options, **companions)


def read_image(path: Path) -> np.ndarray:
    """An RGB image file, or the image inside an iBims-1 ``.mat``."""
    return ibims_rgb(path) if Path(path).suffix == ".mat" else read_rgb(path)


def substitute(relative: str, rule: Sequence[str], what: str) -> str:
    """The companion file of an image path by the regular-expression rule ``[pattern, replacement]``."""
    pattern, replacement = rule
    out, count = re.subn(pattern, replacement, relative)
    if count == 0:
        raise DataError(
            f"{relative}: the pairing rule for the {what} ({pattern!r} -> {replacement!r}) does not match it"
        )
    return out
