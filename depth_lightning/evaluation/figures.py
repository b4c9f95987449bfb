"""Colour maps and the depth panels logged at every validation (RGB | GT | prediction | error | uncertainty)."""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import LogNorm, Normalize
from matplotlib.figure import Figure


def colorize(values: np.ndarray, vmin: float, vmax: float, cmap: str = "magma_r", log: bool = True) -> np.ndarray:
    """``(H,W)`` values -> ``(H,W,3)`` uint8; non-finite or non-positive (when ``log``) pixels are black."""
    values = np.asarray(values, dtype=np.float64)
    valid = np.isfinite(values) & ((values > 0) if log else True)
    if log:
        vmin, vmax = np.log(max(vmin, 1e-6)), np.log(max(vmax, 1e-6))
        values = np.log(np.where(valid, values, 1.0))
    scaled = np.clip((values - vmin) / max(vmax - vmin, 1e-12), 0, 1)
    rgb = colormaps[cmap](np.where(valid, scaled, 0))[..., :3]
    rgb[~valid] = 0
    return (rgb * 255 + 0.5).astype(np.uint8)


def _resize_nearest(a: np.ndarray, height: int, width: int) -> np.ndarray:
    rows = (np.arange(height) * a.shape[0] // height).clip(0, a.shape[0] - 1)
    cols = (np.arange(width) * a.shape[1] // width).clip(0, a.shape[1] - 1)
    return a[rows][:, cols]


# The panel's columns: title and colour map.
PANEL_COLUMNS = (
    ("RGB", None),
    ("ground truth (m)", "magma_r"),
    ("prediction (m)", "magma_r"),
    ("abs rel error", "inferno"),
    ("uncertainty (std of log depth)", "viridis"),
)


def depth_panel(*args: Any, **kwargs: Any) -> np.ndarray:
    """:func:`depth_panel_figure` as an RGB array."""
    return _figure_to_array(depth_panel_figure(*args, **kwargs))


def depth_panel_figure(
    image: np.ndarray,
    depth: np.ndarray,
    pred: np.ndarray,
    uncertainty: np.ndarray,
    vmin: float,
    vmax: float,
    title: str = "",
) -> Figure:
    """One row per image: RGB, ground truth, prediction, |abs rel| error (0..0.5), uncertainty, with
    column titles and a colour bar under each column (depth in metres on a log scale).

    ``image`` (N,3,H,W) in [0,1]; ``depth``, ``pred``, ``uncertainty`` (N,h,w) of any size: all are
    shown at the image's size.
    """
    n, (h, w) = image.shape[0], image.shape[-2:]
    u_max = max(float(np.nanmax(uncertainty)) if np.isfinite(uncertainty).any() else 0.0, 1e-6)
    norms = (None, LogNorm(vmin, vmax), LogNorm(vmin, vmax), Normalize(0.0, 0.5), Normalize(0.0, u_max))
    fig = _figure(figsize=(5 * 2.2 * w / max(h, w) + 0.4, n * 2.2 * h / max(h, w) + 1.3), dpi=100)
    axes = fig.subplots(n, 5, squeeze=False)
    for i in range(n):
        gt = _resize_nearest(depth[i], h, w)
        p = _resize_nearest(pred[i], h, w)
        err = np.where(gt > 0, np.abs(p - gt) / np.where(gt > 0, gt, 1), np.nan)
        shown = (
            np.clip(image[i].transpose(1, 2, 0), 0, 1),
            np.where(gt > 0, gt, np.nan),  # no ground truth: blank
            p,
            err,
            _resize_nearest(uncertainty[i], h, w),
        )
        for j, (ax, values) in enumerate(zip(axes[i], shown, strict=True)):
            name, cmap = PANEL_COLUMNS[j]
            im = ax.imshow(values, cmap=cmap, norm=norms[j], interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(name, fontsize=8)
            if i == n - 1 and cmap is not None:
                bar = fig.colorbar(im, ax=axes[:, j].tolist(), orientation="horizontal", fraction=0.05, pad=0.04)
                bar.ax.tick_params(labelsize=6)
    if title:
        fig.suptitle(title, fontsize=9)
    return fig


def _figure(**kwargs) -> Figure:
    """A figure on its own Agg canvas: no pyplot state, no change to the user's backend."""
    fig = Figure(**kwargs)
    FigureCanvasAgg(fig)
    return fig


def _figure_to_array(fig: Figure) -> np.ndarray:
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()


def distribution_figure(
    steps: np.ndarray, probs: np.ndarray, labels: np.ndarray, log_centres: np.ndarray, title: str = ""
) -> np.ndarray:
    """Fig. 6 style: for each tracked pixel, the predicted distribution over bins at each step.

    ``probs`` (T, P, K); ``labels`` (P,) ground-truth bins (negative: invalid); ``title`` names the run.
    """
    n = probs.shape[1]
    fig = _figure(figsize=(3.2 * n, 2.6))
    axes = fig.subplots(1, n, squeeze=False)
    colours = colormaps["viridis"](np.linspace(0, 1, len(steps)))
    depth = np.exp(log_centres)
    for p, ax in enumerate(axes[0]):
        for t, step in enumerate(steps):
            ax.plot(depth, probs[t, p], color=colours[t], lw=1, label=f"step {step}")
        if labels[p] >= 0:
            ax.axvline(depth[labels[p]], color="red", ls="--", lw=1)
        ax.set_xscale("log")
        ax.set_title(f"pixel {p + 1}", fontsize=9)
        ax.set_xlabel("depth (m)", fontsize=8)
    axes[0][0].set_ylabel("probability", fontsize=8)
    axes[0][-1].legend(fontsize=6)
    fig.suptitle(f"{title}, K = {probs.shape[-1]}: predicted distribution (red: true bin)".lstrip(", "), fontsize=9)
    fig.tight_layout()
    return _figure_to_array(fig)


def confusion_figure(counts: np.ndarray, title: str = "", num_bins: int | None = None) -> np.ndarray:
    """Fig. 7 style: row-normalised confusion of hard-max bin labels (log colour scale), titled with
    the run and its K (``num_bins``; the matrix may merge bins)."""
    rows = counts.sum(1, keepdims=True)
    norm = np.where(rows > 0, counts / np.maximum(rows, 1), 0)
    fig = _figure(figsize=(4, 3.6))
    ax = fig.subplots()
    im = ax.imshow(np.log10(norm + 1e-4), cmap="magma", origin="lower")
    ax.set_xlabel("predicted bin (merged)")
    ax.set_ylabel("ground-truth bin (merged)")
    fig.colorbar(im, ax=ax, label="log10 fraction of row")
    k = f"K = {num_bins}, " if num_bins else ""
    ax.set_title(f"{title}\n{k}{counts.shape[0]} merged bins".strip(), fontsize=9)
    fig.tight_layout()
    return _figure_to_array(fig)


def sparsification_figure(curves: dict[str, Any], title: str = "") -> np.ndarray:
    """Sparsification curves (``sparsification.json``: per decoder, abs rel and RMSE of the pixels kept
    after removing the most uncertain fraction, against the oracle), AUSE in the legend."""
    fig = _figure(figsize=(8, 3.2))
    axes = fig.subplots(1, 2)
    for ax, (error, label) in zip(axes, (("abs_rel", "abs rel"), ("rmse", "RMSE (m)")), strict=True):
        for decoder, colour in (("soft", "tab:blue"), ("hard", "tab:orange")):
            c = curves.get(decoder)
            if not c:
                continue
            x = np.asarray(c["fractions"])
            ax.plot(x, c[error]["uncertainty"], color=colour, label=f"{decoder}: AUSE {c[f'ause_{error}']:.3f}")
            ax.plot(x, c[error]["oracle"], color=colour, ls="--", lw=1, label=f"{decoder} oracle")
        ax.set_xlabel("fraction of pixels removed (most uncertain first)", fontsize=8)
        ax.set_ylabel(label, fontsize=8)
        ax.legend(fontsize=7)
    fig.suptitle(f"{title}: sparsification (dashed: oracle)".lstrip(": "), fontsize=9)
    fig.tight_layout()
    return _figure_to_array(fig)
