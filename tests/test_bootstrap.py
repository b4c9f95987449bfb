"""Bootstrap intervals over test images, checked against a computation from the pixels in pure NumPy
(nothing of depth_lightning's metrics reused: the metrics' formulas written out again below)."""

import numpy as np
import pytest

from depth_lightning.evaluation import bootstrap
from depth_lightning.evaluation.metrics import METRIC_NAMES, SUMS, DepthMetrics


def _images(n=30, seed=3):
    """``n`` images of real predictions against real ground truth (random scenes), as pixel arrays."""
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(n):
        g = rng.uniform(0.5, 9.5, (12, 16)).astype(np.float32)
        p = (g * rng.lognormal(rng.normal(0, 0.1), 0.2, (12, 16))).astype(np.float32)
        images.append((p.ravel().astype(np.float64), g.ravel().astype(np.float64)))
    return images


def _numpy_metrics(p, g):
    """The field's metrics of prediction ``p`` against ground truth ``g`` (1-D, metres), by their formulas."""
    ratio, e = np.maximum(p / g, g / p), np.log(p) - np.log(g)
    return {
        "d1": np.mean(ratio < 1.25),
        "d2": np.mean(ratio < 1.25**2),
        "d3": np.mean(ratio < 1.25**3),
        "abs_rel": np.mean(np.abs(p - g) / g),
        "sq_rel": np.mean((p - g) ** 2 / g),
        "rmse": np.sqrt(np.mean((p - g) ** 2)),
        "rmse_log": np.sqrt(np.mean(e**2)),
        "log10": np.mean(np.abs(np.log10(p) - np.log10(g))),
        "silog": 100 * np.sqrt(np.mean(e**2) - np.mean(e) ** 2),
    }


def _sums(images):
    """Each image's sums as the suite computes them (the input of the code under test)."""
    import torch

    metric = DepthMetrics(1e-3, 100.0)  # no prediction clipped: the pixels are the NumPy side's
    for p, g in images:
        metric.update(torch.from_numpy(p.reshape(1, 12, 16)).float(), torch.from_numpy(g.reshape(1, 12, 16)).float())
    return metric.images()[1]


@pytest.mark.parametrize("aggregation", ["per_image", "pooled"])
@pytest.mark.parametrize("level", [0.95, 0.8])
def test_the_bootstrap_interval_equals_a_pure_numpy_computation_from_the_pixels(aggregation, level):
    images = _images()
    n = len(images)
    ours = bootstrap.interval(bootstrap.depth_statistic(_sums(images), aggregation), n, 1000, seed=7, level=level)
    draws = np.random.default_rng(7).integers(0, n, size=(1000, n))  # the documented draw
    values = []
    for row in draws:
        if aggregation == "per_image":  # the mean over the drawn images of each image's metrics
            per = [_numpy_metrics(*images[i]) for i in row]
            values.append([np.mean([m[k] for m in per]) for k in METRIC_NAMES])
        else:  # the metrics of all the drawn images' pixels at once
            p = np.concatenate([images[i][0] for i in row])
            g = np.concatenate([images[i][1] for i in row])
            values.append([_numpy_metrics(p, g)[k] for k in METRIC_NAMES])
    tail = 100 * (1 - level) / 2
    expected = np.percentile(np.array(values), [tail, 100 - tail], axis=0)
    np.testing.assert_allclose(ours, expected, rtol=2e-5, atol=1e-7)  # float32 pixel sums against float64
    whole = [_numpy_metrics(*im) for im in images]
    point = np.array([np.mean([m[k] for m in whole]) for k in METRIC_NAMES])
    if aggregation == "per_image":
        assert (ours[0] < point).all() and (point < ours[1]).all()  # a spread-out sample: a real interval


def test_resample_counts_follow_the_documented_draw_and_refuse_no_images():
    counts = bootstrap.resample_counts(5, resamples=4, seed=2)
    draws = np.random.default_rng(2).integers(0, 5, size=(4, 5))
    assert counts.tolist() == [[list(row).count(i) for i in range(5)] for row in draws]
    assert bootstrap.resample_counts(1, resamples=3).tolist() == [[1.0], [1.0], [1.0]]  # one image: itself
    with pytest.raises(ValueError, match="^a bootstrap needs at least one image$"):
        bootstrap.resample_counts(0)


def test_the_mean_and_ratio_statistics_weight_images_by_their_draws():
    counts = np.array([[2, 0, 1], [1, 1, 1], [0, 3, 1]])  # resamples of different sizes
    values = np.array([1, 4, 7])  # integers: the statistic computes in floating point
    mean = bootstrap.mean_statistic(values)(counts)
    assert mean.shape == (3, 1)
    np.testing.assert_allclose(mean[:, 0], [(2 + 7) / 3, 12 / 3, (12 + 7) / 4])
    two = bootstrap.mean_statistic(np.array([[1.0, 10.0], [4.0, 40.0], [7.0, 70.0]]))(counts)
    np.testing.assert_allclose(two, [[3, 30], [4, 40], [19 / 4, 190 / 4]])
    hits = np.array([[3, 4], [0, 0], [1, 1]])  # an image with no labelled pixel weighs nothing
    ratio = bootstrap.ratio_statistic(hits)(counts)
    assert ratio.shape == (3, 1)
    np.testing.assert_allclose(ratio[:, 0], [(6 + 1) / (8 + 1), 4 / 5, 1 / 1])
    assert bootstrap.ratio_statistic(hits)(np.array([[0, 2, 0]]))[0, 0] == 0  # nothing labelled: 0, not NaN


def test_the_interval_settings_are_checked_and_named():
    assert bootstrap.settings() == {
        "resamples": 1000,
        "seed": 0,
        "level": 0.95,
        "method": "percentile bootstrap over test images (95 %)",
    }
    with pytest.raises(ValueError, match="intervals.resamples=999: use at least 1000"):
        bootstrap.settings({"resamples": 999})
    for level in (0, 1, 1.5):
        with pytest.raises(ValueError, match=f"intervals.level={level}: a coverage in"):
            bootstrap.settings({"level": level})
    assert bootstrap.settings({"resamples": 1000, "level": 0.9})["method"].endswith("(90 %)")


def test_a_paired_interval_of_a_model_against_itself_is_zero_and_a_real_gap_excludes_zero():
    images = _images()
    sums = _sums(images)
    stat = bootstrap.depth_statistic(sums, "per_image")
    diff, low_high = bootstrap.paired_interval([stat], [stat], len(sums))
    assert (diff == 0).all() and (low_high == 0).all()
    worse = sums.copy()  # abs rel 1.5 times larger on every image, nothing else changed
    worse[:, SUMS.index("abs_rel")] *= 1.5
    diff, low_high = bootstrap.paired_interval(
        [bootstrap.depth_statistic(worse, "per_image")], [stat], len(sums), resamples=1000
    )
    j = METRIC_NAMES.index("abs_rel")
    per_image = [_numpy_metrics(*im)["abs_rel"] for im in images]
    assert diff[j] == pytest.approx(0.5 * np.mean(per_image), rel=1e-5)  # the gap, by hand
    assert low_high[0, j] > 0  # excludes 0: beyond noise
    assert low_high[0, METRIC_NAMES.index("d1")] == low_high[1, METRIC_NAMES.index("d1")] == 0  # untouched: [0, 0]
    # over two seeds: the mean of each side's seeds
    diff2, _ = bootstrap.paired_interval([stat, bootstrap.depth_statistic(worse, "per_image")], [stat, stat], len(sums))
    assert diff2[j] == pytest.approx(diff[j] / 2, rel=1e-12)


def test_a_paired_interval_uses_its_seed_and_level():
    sums = _sums(_images())
    a = [bootstrap.depth_statistic(sums, "per_image")]
    b = [bootstrap.depth_statistic(sums[::-1].copy(), "per_image")]  # the images paired with others
    n = len(sums)
    _, default = bootstrap.paired_interval(a, b, n)
    np.testing.assert_array_equal(default, bootstrap.paired_interval(a, b, n, seed=0, level=0.95)[1])
    assert not np.array_equal(default, bootstrap.paired_interval(a, b, n, seed=1)[1])
    narrow = bootstrap.paired_interval(a, b, n, level=0.5)[1]
    assert ((narrow[1] - narrow[0]) < (default[1] - default[0])).all()
    diff = bootstrap.paired_interval(a, b, n)[0]
    assert diff.shape == (len(METRIC_NAMES),)
