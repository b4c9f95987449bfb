"""Coloured point clouds from predicted depth: pinhole back-projection, written as binary PLY (plyfile), or
as a glTF binary of points (``.glb``: what a browser's 3D viewer shows, the demo page's)."""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from depth_lightning.core.errors import ConfigError
from depth_lightning.core.files import save_atomic


def intrinsics_for(
    size: tuple[int, int], intrinsics: Sequence[float] | None = None, fov_deg: float | None = None
) -> tuple[float, float, float, float]:
    """``(fx, fy, cx, cy)`` in pixels of an image of ``size`` (height, width): the given ``intrinsics``,
    else a pinhole camera with a horizontal field of view of ``fov_deg`` and the centre at the middle."""
    height, width = size
    if intrinsics is not None:
        if len(intrinsics) != 4 or not all(isinstance(v, int | float) and v > 0 for v in intrinsics[:2]):
            raise ConfigError(f"config error: intrinsics: expected [fx, fy, cx, cy] in pixels, got {list(intrinsics)}")
        return tuple(float(v) for v in intrinsics)  # type: ignore[return-value]
    if fov_deg is None or not 0 < fov_deg < 180:
        raise ConfigError(
            f"config error: fov_deg: {fov_deg!r}; give the horizontal field of view in degrees (0-180) or "
            "intrinsics=[fx,fy,cx,cy] (NYU's Kinect: 518.86, 519.47, 325.58, 253.74 at 640x480)"
        )
    f = (width / 2) / math.tan(math.radians(fov_deg) / 2)
    return f, f, (width - 1) / 2, (height - 1) / 2


def back_project(depth: np.ndarray, intrinsics: Sequence[float]) -> np.ndarray:
    """``(H, W)`` depth (metres along the optical axis) -> ``(H, W, 3)`` camera coordinates
    (x right, y down, z forward), ``x = (u - cx) z / fx``, ``y = (v - cy) z / fy``."""
    fx, fy, cx, cy = intrinsics
    v, u = np.mgrid[: depth.shape[0], : depth.shape[1]].astype(np.float64)
    z = depth.astype(np.float64)
    return np.stack([(u - cx) * z / fx, (v - cy) * z / fy, z], axis=-1)


def write_ply(path: str | Path, depth: np.ndarray, rgb: np.ndarray, intrinsics: Sequence[float]) -> int:
    """One vertex per pixel with a finite positive depth, coloured by ``rgb`` (H, W, 3 uint8); binary
    little-endian PLY, written atomically. Returns the number of points."""
    from plyfile import PlyData, PlyElement

    points = back_project(depth, intrinsics)
    valid = np.isfinite(depth) & (depth > 0)
    vertices = np.empty(
        int(valid.sum()),
        dtype=[("x", "f4"), ("y", "f4"), ("z", "f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1")],
    )
    for i, axis in enumerate("xyz"):
        vertices[axis] = points[..., i][valid]
    for i, channel in enumerate(("red", "green", "blue")):
        vertices[channel] = rgb[..., i][valid]
    data = PlyData([PlyElement.describe(vertices, "vertex")], text=False)
    save_atomic(path, lambda p: data.write(str(p)))
    return len(vertices)


def write_glb(path: str | Path, depth: np.ndarray, rgb: np.ndarray, intrinsics: Sequence[float]) -> int:
    """The points of :func:`write_ply` (one per pixel with a finite positive depth, coloured) as a glTF 2.0
    binary of one POINTS primitive, in glTF's axes (y up, the camera looking down -z); atomically.
    Returns the number of points."""
    valid = np.isfinite(depth) & (depth > 0)
    xyz = back_project(depth, intrinsics)[valid].astype(np.float32) * np.float32([1, -1, -1])
    colour = np.concatenate([rgb[valid].astype(np.uint8), np.full((len(xyz), 1), 255, np.uint8)], axis=1)
    positions, colours = xyz.tobytes(), colour.tobytes()  # 12 and 4 bytes a point: 4-byte aligned
    gltf = {
        "asset": {"version": "2.0", "generator": "depth_lightning"},
        "scene": 0, "scenes": [{"nodes": [0]}], "nodes": [{"mesh": 0}],
        "meshes": [{"primitives": [{"attributes": {"POSITION": 0, "COLOR_0": 1}, "mode": 0}]}],
        "buffers": [{"byteLength": len(positions) + len(colours)}],
        "bufferViews": [
            {"buffer": 0, "byteOffset": 0, "byteLength": len(positions)},
            {"buffer": 0, "byteOffset": len(positions), "byteLength": len(colours)},
        ],
        "accessors": [
            {"bufferView": 0, "componentType": 5126, "count": len(xyz), "type": "VEC3",
             "min": (xyz.min(0) if len(xyz) else np.zeros(3)).tolist(),
             "max": (xyz.max(0) if len(xyz) else np.zeros(3)).tolist()},
            {"bufferView": 1, "componentType": 5121, "normalized": True, "count": len(xyz), "type": "VEC4"},
        ],
    }  # fmt: skip
    head = json.dumps(gltf, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 4)
    body = positions + colours
    total = 12 + 8 + len(head) + 8 + len(body)
    data = b"".join([
        struct.pack("<4sII", b"glTF", 2, total), struct.pack("<I4s", len(head), b"JSON"), head,
        struct.pack("<I4s", len(body), b"BIN\x00"), body,
    ])  # fmt: skip
    save_atomic(path, lambda p: p.write_bytes(data))
    return len(xyz)
