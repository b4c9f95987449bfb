import numpy as np
import pytest

from depth_lightning.data.fill import fill_depth_colorization
from tests.datasets import smooth_depth, textured_rgb


def test_holes_in_a_smooth_depth_are_filled_within_5_percent():
    rng = np.random.default_rng(0)
    h, w = 120, 160
    truth = smooth_depth(h, w, rng)
    rgb = textured_rgb(h, w, rng)
    depth = truth.copy()
    holes = np.zeros((h, w), bool)
    for _ in range(6):
        cy, cx = rng.integers(10, h - 10), rng.integers(10, w - 10)
        holes[cy - 6 : cy + 6, cx - 8 : cx + 8] = True
    holes |= rng.random((h, w)) < 0.1  # scattered missing pixels too
    depth[holes] = 0
    filled = fill_depth_colorization(rgb, depth)
    rel = np.abs(filled - truth)[holes] / truth[holes]
    print(f"\nfill: {holes.sum()} holes, median rel error {np.median(rel):.4f}, max {rel.max():.4f}")
    assert rel.max() < 0.05
    # measured pixels are a soft constraint (the NYU toolbox's, alpha = 1): they move, a little
    kept = np.abs(filled - truth)[~holes] / truth[~holes]
    assert np.median(kept) < 2e-3 and kept.max() < 0.015
    # a stiff constraint pins them: the solver keeps what was measured
    pinned = fill_depth_colorization(rgb, depth, alpha=1e4)
    np.testing.assert_allclose(pinned[~holes], truth[~holes], rtol=1e-5)


def test_nothing_to_propagate_is_an_error():
    with pytest.raises(ValueError, match="no valid pixel"):
        fill_depth_colorization(np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8)))
