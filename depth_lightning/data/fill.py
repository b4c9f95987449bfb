"""Filling depth holes by colorization (Levin, Lischinski, Weiss 2004), as the NYU toolbox's
``fill_depth_colorization`` does, written from the math: every unknown depth is the
intensity-weighted average of its 3x3 neighbours; known depths are kept softly (alpha = 1);
one sparse linear solve."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

_OFFSETS = [(di, dj) for di in (-1, 0, 1) for dj in (-1, 0, 1) if (di, dj) != (0, 0)]


def _gray(rgb: np.ndarray) -> np.ndarray:
    """MATLAB's rgb2gray weights on [0, 1] intensities."""
    rgb = rgb.astype(np.float64) / (255.0 if rgb.dtype == np.uint8 else 1.0)
    return rgb @ np.array([0.2989, 0.5870, 0.1140])


def fill_depth_colorization(rgb: np.ndarray, depth: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    """``depth`` (H,W) metres with 0 = missing -> a dense map; ``rgb`` (H,W,3) guides the fill."""
    depth = np.asarray(depth, dtype=np.float64)
    known = np.isfinite(depth) & (depth > 0)
    if not known.any():
        raise ValueError("fill_depth_colorization: the depth map has no valid pixel to propagate")
    scale = depth[known].max()
    norm = np.where(known, np.minimum(depth / scale, 1.0), 0.0)
    gray = _gray(rgb)
    h, w = depth.shape
    n = h * w
    pad = np.pad(gray, 1, mode="edge")
    inside = np.pad(np.ones((h, w), bool), 1, constant_values=False)
    neigh = np.stack([pad[1 + di : 1 + di + h, 1 + dj : 1 + dj + w] for di, dj in _OFFSETS])
    valid = np.stack([inside[1 + di : 1 + di + h, 1 + dj : 1 + dj + w] for di, dj in _OFFSETS])
    # Variance of the window (neighbours in the image plus the centre).
    count = valid.sum(0) + 1
    mean = (np.where(valid, neigh, 0).sum(0) + gray) / count
    var = (np.where(valid, (neigh - mean) ** 2, 0).sum(0) + (gray - mean) ** 2) / count
    diff2 = np.where(valid, (neigh - gray) ** 2, np.inf)
    csig = var * 0.6
    # Lower bounds of the toolbox: the closest neighbour keeps a weight of at least 0.01; never below 2e-6.
    csig = np.maximum(csig, -diff2.min(0) / np.log(0.01))
    csig = np.maximum(csig, 2e-6)
    weights = np.where(valid, np.exp(-diff2 / csig), 0.0)
    weights /= weights.sum(0, keepdims=True)
    idx = np.arange(n).reshape(h, w)
    rows, cols, vals = [idx.ravel()], [idx.ravel()], [np.ones(n)]
    for k, (di, dj) in enumerate(_OFFSETS):
        m = valid[k]
        rows.append(idx[m])
        cols.append(idx[m] + di * w + dj)
        vals.append(-weights[k][m])
    a = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))
    g = sp.diags(known.ravel() * alpha)
    solution = spla.spsolve((a + g).tocsc(), known.ravel() * norm.ravel() * alpha)
    return (solution.reshape(h, w) * scale).astype(np.float32)
