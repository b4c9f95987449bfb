"""Frames/s of the synthetic renderer on one core (median of repeats)."""

from __future__ import annotations

import statistics
import time

import torch

from depth_lightning.data import SyntheticScenes


def frames_per_second(scene: str, height: int, width: int, frames: int = 20, repeats: int = 3) -> dict[str, float]:
    torch.set_num_threads(1)
    rates = []
    for r in range(repeats):
        ds = SyntheticScenes(frames, height, width, seed=100 + r, scene=scene)
        start = time.perf_counter()
        for i in range(frames):
            ds[i]
        rates.append(frames / (time.perf_counter() - start))
    return {"median": statistics.median(rates), "min": min(rates), "max": max(rates)}


def main() -> dict[str, dict[str, float]]:
    results = {
        "indoor_240x320": frames_per_second("indoor", 240, 320),
        "indoor_120x160": frames_per_second("indoor", 120, 160),
        "outdoor_188x620": frames_per_second("outdoor", 188, 620, frames=8),
    }
    for k, v in results.items():
        print(f"{k:18s} {v['median']:7.1f} frames/s (min {v['min']:.1f}, max {v['max']:.1f})")
    return results


if __name__ == "__main__":
    main()
