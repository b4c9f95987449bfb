import warnings

import numpy as np
import pytest
import torch

from depth_lightning.core.errors import NoValidPixels
from depth_lightning.evaluation.metrics import METRIC_NAMES, DepthMetrics
from depth_lightning.evaluation.protocol import EvalProtocol

MIN, MAX = 1e-3, 10.0


def numpy_reference(pred: np.ndarray, gt: np.ndarray, mode: str = "per_image") -> dict[str, float]:
    """The formulas as BTS/AdaBins write them, one image at a time, in NumPy float64."""
    pred = np.nan_to_num(pred.astype(np.float64), nan=MIN, posinf=MAX, neginf=MIN).clip(MIN, MAX)
    gt = gt.astype(np.float64)

    def one(p, g):
        thresh = np.maximum(g / p, p / g)
        e = np.log(p) - np.log(g)
        return {
            "d1": (thresh < 1.25).mean(),
            "d2": (thresh < 1.25**2).mean(),
            "d3": (thresh < 1.25**3).mean(),
            "abs_rel": np.mean(np.abs(g - p) / g),
            "sq_rel": np.mean((g - p) ** 2 / g),
            "rmse": np.sqrt(np.mean((g - p) ** 2)),
            "rmse_log": np.sqrt(np.mean(e**2)),
            "log10": np.mean(np.abs(np.log10(g) - np.log10(p))),
            "silog": np.sqrt(np.mean(e**2) - np.mean(e) ** 2) * 100,
        }

    with np.errstate(invalid="ignore"):
        masks = [np.isfinite(g) & (g > MIN) & (g < MAX) for g in gt]
    if mode == "pooled":
        return one(
            np.concatenate([p[m] for p, m in zip(pred, masks)]), np.concatenate([g[m] for g, m in zip(gt, masks)])
        )
    per = [one(p[m], g[m]) for p, g, m in zip(pred, gt, masks) if m.any()]
    return {k: float(np.mean([r[k] for r in per])) for k in METRIC_NAMES}


def random_maps(n: int = 6, h: int = 24, w: int = 32, seed: int = 0):
    rng = np.random.default_rng(seed)
    gt = rng.uniform(0.2, 12.0, (n, h, w))
    gt[rng.random((n, h, w)) < 0.2] = 0.0  # holes
    gt[0, 0, :5] = np.nan
    gt[1, 1, :5] = np.inf
    pred = gt * rng.uniform(0.7, 1.4, (n, h, w))
    pred[np.isnan(pred) | (pred == 0)] = 3.0
    pred[2, :2] = np.nan
    pred[3, :2] = np.inf
    pred[4, :1] = -1.0
    return pred.astype(np.float32), gt.astype(np.float32)


@pytest.mark.parametrize("mode", ["per_image", "pooled"])
def test_metrics_match_independent_numpy(mode):
    pred, gt = random_maps()
    metric = DepthMetrics(MIN, MAX, mode=mode)
    metric.update(torch.from_numpy(pred[:4]), torch.from_numpy(gt[:4]))
    metric.update(torch.from_numpy(pred[4:]), torch.from_numpy(gt[4:]))
    ours = {k: v.item() for k, v in metric.compute().items()}
    ref = numpy_reference(pred, gt, mode)
    for k in METRIC_NAMES:
        assert ours[k] == pytest.approx(ref[k], rel=1e-6), k


def test_per_image_and_pooled_differ_as_they_should():
    # image 0: 4 valid pixels, perfect; image 1: 1 valid pixel, off by 100 %
    gt = torch.zeros(2, 2, 2)
    gt[0] = 2.0
    gt[1, 0, 0] = 2.0
    pred = torch.full((2, 2, 2), 2.0)
    pred[1, 0, 0] = 4.0
    per, pooled = DepthMetrics(MIN, MAX), DepthMetrics(MIN, MAX, mode="pooled")
    per.update(pred, gt)
    pooled.update(pred, gt)
    assert per.compute()["abs_rel"].item() == pytest.approx(0.5)  # mean of (0, 1)
    assert pooled.compute()["abs_rel"].item() == pytest.approx(0.2)  # 1 / 5 pixels
    assert per.compute()["d1"].item() == pytest.approx(0.5)
    assert pooled.compute()["d1"].item() == pytest.approx(0.8)


@pytest.mark.parametrize("mode", ["per_image", "pooled"])
def test_merging_halves_equals_one_pass(mode):
    pred, gt = (torch.from_numpy(a) for a in random_maps(7, seed=3))
    whole, a, b = (DepthMetrics(MIN, MAX, mode=mode) for _ in range(3))
    whole.update(pred, gt)
    a.update(pred[:3], gt[:3], ids=torch.arange(3))
    b.update(pred[3:], gt[3:], ids=torch.arange(3, 7))
    a.merge_state(b)
    for k, v in whole.compute().items():
        assert a.compute()[k].item() == v.item(), k  # bit for bit


def test_no_valid_image_is_an_error_never_a_nan():
    metric = DepthMetrics(MIN, MAX)
    with warnings.catch_warnings(record=True), pytest.raises(NoValidPixels, match="no image holds"):
        metric.compute()
    metric.update(torch.ones(1, 4, 4), torch.zeros(1, 4, 4))  # an image with no valid pixel
    with pytest.raises(NoValidPixels, match=r"1 image\(s\) scored, every one empty"):
        metric.compute()
    assert len(metric.empty_images()) == 1


def test_predictions_are_upsampled_to_ground_truth_then_masked_by_the_region():
    gt = torch.full((1, 480, 640), 2.0)
    metric = DepthMetrics(MIN, MAX)
    pred = torch.full((1, 120, 160), 2.0)
    pred[..., :5, :] = 9.0  # the top rows fall outside the Eigen crop after upsampling
    region = torch.from_numpy(EvalProtocol("eigen_nyu").mask((480, 640)).copy())[None]
    metric.update(pred, gt, region)
    assert metric.compute()["abs_rel"].item() == pytest.approx(0.0, abs=1e-7)


def test_a_prepared_target_scores_several_predictions_as_separate_updates_do():
    pred, gt = random_maps(seed=3)
    region = torch.rand(gt.shape) > 0.3
    other = pred * 1.1
    separate = [DepthMetrics(MIN, MAX) for _ in range(2)]
    shared = [DepthMetrics(MIN, MAX) for _ in range(2)]
    for m, p in zip(separate, (pred, other)):
        m.update(torch.from_numpy(p), torch.from_numpy(gt), region)
    target = shared[0].prepare(torch.from_numpy(gt), region)
    for m, p in zip(shared, (pred, other)):
        m.update(torch.from_numpy(p), target)
    for a, b in zip(separate, shared):
        assert a.compute() == b.compute()
    with pytest.raises(ValueError, match="prepared for"):
        DepthMetrics(MIN, 80.0).update(torch.from_numpy(pred), target)


def _one_pixel(p, g, min_depth=1e-3, max_depth=1000.0, mode="per_image"):
    metric = DepthMetrics(min_depth, max_depth, mode)
    metric.update(torch.tensor([[[p]]], dtype=torch.float32), torch.tensor([[[g]]], dtype=torch.float32))
    return metric


@pytest.mark.parametrize(("p", "g", "k"), [(5.0, 4.0, 1), (25.0, 16.0, 2), (125.0, 64.0, 3)])
def test_a_ratio_of_exactly_1_25_to_the_k_is_outside_delta_k(p, g, k):
    # p / g = 1.25**k exactly in float32: the threshold is strict, max(p/g, g/p) < 1.25**k
    values = _one_pixel(p, g).compute()
    assert values[f"d{k}"] == 0 and all(values[f"d{j}"] == 1 for j in range(k + 1, 4))
    assert _one_pixel(g, p).compute()[f"d{k}"] == 0  # the same from below
    assert _one_pixel(p * 0.999, g).compute()[f"d{k}"] == 1


def test_ground_truth_exactly_at_min_or_max_depth_is_invalid():
    metric = DepthMetrics(0.5, 10.0)
    g = torch.tensor([[[0.5, 10.0, 2.0, 4.0]]])
    metric.update(torch.full((1, 1, 4), 3.0), g)
    assert metric.images()[1][0, 0] == 2  # only 2.0 and 4.0


def test_non_finite_and_out_of_range_predictions_are_clipped_to_the_range():
    g = torch.full((1, 1, 4), 2.0)
    pred = torch.tensor([[[float("nan"), float("inf"), float("-inf"), 50.0]]])
    metric = DepthMetrics(1.0, 8.0)
    metric.update(pred, g)
    sums = metric.images()[1][0]
    # scored as 1 (NaN), 8 (+inf), 1 (-inf), 8 (50): |p - g| / g = 0.5, 3, 0.5, 3
    assert sums[0] == 4 and sums[4] == pytest.approx(0.5 + 3 + 0.5 + 3)


def test_a_low_resolution_prediction_is_upsampled_bilinearly_with_half_pixel_centres():
    metric = DepthMetrics(1e-3, 100.0)
    metric.update(torch.tensor([[[2.0, 6.0, 4.0]]]), torch.ones(1, 1, 6))
    # align_corners=False, 3 -> 6 columns: source x = i / 2 - 0.25, clamped at the ends:
    # [2, 2 + 0.25 * 4, 2 + 0.75 * 4, 6 - 0.25 * 2, 6 - 0.75 * 2, 4] = [2, 3, 5, 5.5, 4.5, 4]
    abs_rel_sum = metric.images()[1][0, 4]
    assert abs_rel_sum == pytest.approx(1 + 2 + 4 + 4.5 + 3.5 + 3)


def test_settings_are_checked_with_messages_that_name_them():
    DepthMetrics(0.0, 10.0)  # min_depth 0 is allowed (predictions are still kept above 1e-6)
    with pytest.raises(ValueError, match=r"^metrics need 0 <= min_depth < max_depth, got 5.0, 5.0$"):
        DepthMetrics(5.0, 5.0)
    with pytest.raises(ValueError, match=r"^metrics mode 'mean' is unknown; allowed: per_image, pooled$"):
        DepthMetrics(1e-3, 10.0, "mean")
    metric = DepthMetrics(1e-3, 10.0)
    with pytest.raises(ValueError, match=r"^batch sizes differ: prediction 2, ground truth 3$"):
        metric.update(torch.ones(2, 4, 4), torch.ones(3, 4, 4))


def test_images_get_consecutive_ids_across_updates_and_again_after_a_reset():
    metric = DepthMetrics(1e-3, 10.0)
    assert [a.shape for a in metric.images()] == [(0,), (0, 10)]
    assert metric.empty_images() == []
    g = torch.ones(2, 3, 3)
    g[1] = 0  # the second image of the first batch has no valid pixel
    metric.update(torch.ones(2, 3, 3), g)
    metric.update(torch.ones(3, 3, 3), torch.ones(3, 3, 3))
    metric.update(torch.ones(1, 3, 3), torch.ones(1, 3, 3))
    ids, rows = metric.images()
    assert ids.tolist() == [0, 2, 3, 4, 5] and rows.shape == (5, 10) and metric.empty_images() == [1]
    metric.reset()
    metric.update(torch.ones(1, 3, 3), torch.ones(1, 3, 3))
    assert metric.images()[0].tolist() == [0]


def test_image_rows_come_back_in_id_order():
    from depth_lightning.evaluation.metrics import ImageRows

    rows = ImageRows()
    ids, values = rows.compute()
    assert ids.shape == (0,) and ids.dtype == np.int64 and values.shape == (0, 0)
    rows.update(torch.tensor([[3.0, 30.0], [1.0, 10.0]]), torch.tensor([[7], [2]]))
    rows.update(torch.tensor([[2.0, 20.0]]), torch.tensor([5]))
    ids, values = rows.compute()
    assert ids.tolist() == [2, 5, 7] and values.tolist() == [[1, 10], [2, 20], [3, 30]]


def test_no_valid_pixel_names_how_many_images_were_scored():
    metric = DepthMetrics(1e-3, 10.0)
    with pytest.raises(NoValidPixels, match=r"\(0 image\(s\) scored"):
        metric.compute()
    metric.update(torch.ones(2, 2, 2), torch.zeros(2, 2, 2))
    with pytest.raises(NoValidPixels, match=r"^no image holds a valid ground-truth pixel \(2 image\(s\) scored"):
        metric.compute()


def test_non_finite_pixels_are_replaced_before_upsampling_so_only_their_neighbourhood_moves():
    """NaN -> min, inf -> max, -inf -> min *before* the bilinear upsampling: replaced after, an inf would
    spread to every pixel it touches and a NaN would poison its neighbours."""
    from depth_lightning.evaluation.metrics import scored_prediction
    from tests.helpers import bilinear_by_hand

    low, high = 0.5, 10.0
    metric = DepthMetrics(low, high)
    small = np.full((3, 4), 4.0, np.float32)
    small[0, 0], small[1, 2], small[2, 3] = np.nan, np.inf, -np.inf
    target = metric.prepare(torch.full((1, 6, 8), 3.0))
    scored = scored_prediction(torch.from_numpy(small)[None], target).reshape(6, 8).numpy()
    replaced = np.nan_to_num(small.astype(np.float64), nan=low, posinf=high, neginf=low)
    np.testing.assert_allclose(scored, bilinear_by_hand(replaced, (6, 8)).clip(low, high), rtol=1e-6)
    assert 4.0 < scored[2, 4] < high and low < scored[4, 6] < 4.0  # interpolated towards the bounds, not clipped


def test_the_default_range_is_nyus_and_a_perfect_image_is_scored_not_left_out():
    metric = DepthMetrics()  # 1e-3 < depth < 10 m: the NYU protocol's cap
    assert (metric.min_depth, metric.max_depth) == (1e-3, 10.0)
    assert metric.sparse_images() == [] and metric.empty_images() == []
    truth = torch.tensor([[[5.0, 9.9, 10.5, 0.0005]], [[2.0, 2.0, 2.0, 2.0]], [[0.0, 0.0, 0.0, 0.0]]])
    metric.update(truth.clamp_min(1e-3), truth, ids=torch.tensor([4, 7, 9]))  # image 7: a perfect prediction
    ids, sums = metric.images()
    assert ids.tolist() == [4, 7] and metric.empty_images() == [9] and metric.sparse_images() == []
    assert sums[0, 0] == 2  # 10.5 m and 0.5 mm are outside the range: two pixels scored


def test_the_states_gather_through_torch_distributed(monkeypatch):
    """Every state concatenates across processes (``dist_reduce_fx="cat"``): through a real gloo group of
    one process the gathered rows, ids, empty and sparse images are those of the process itself."""
    import torch.distributed as dist

    from depth_lightning.evaluation.metrics import ImageRows

    truth = torch.tensor([[[5.0, 6.0, 7.0]], [[0.0, 0.0, 0.0]], [[0.0, 0.0, 3.0]], [[1.0, 2.0, 3.0]]])
    pred = torch.tensor([[[5.5, 6.0, 6.0]], [[1.0, 1.0, 1.0]], [[3.0, 3.0, 3.0]], [[1.0, 1.0, 1.0]]])

    def measured():
        metric, rows = DepthMetrics(min_pixels=2), ImageRows()
        for half in (slice(0, 2), slice(2, 4)):  # two batches: two list entries to gather
            metric.update(pred[half], truth[half], ids=torch.tensor([8, 2, 6, 1])[half])
            rows.update(truth[half].flatten(1), torch.tensor([8, 2, 6, 1])[half])
        return metric.images(), metric.empty_images(), metric.sparse_images(), rows.compute()

    alone = measured()
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        gathered = measured()
    finally:
        dist.destroy_process_group()
    assert alone[1:3] == gathered[1:3] == ([2], [6])
    for a, b in ((alone[0], gathered[0]), (alone[3], gathered[3])):
        assert a[0].tolist() == b[0].tolist() and a[1].shape == b[1].shape and np.array_equal(a[1], b[1])
    assert alone[0][0].tolist() == [1, 8] and alone[3][0].tolist() == [1, 2, 6, 8]


def test_without_truth_in_range_only_finite_positive_truth_is_scored():
    metric = DepthMetrics(MIN, MAX, truth_in_range=False)
    truth = torch.tensor([[[2.0, 0.0, float("inf"), float("nan"), -1.0, 20.0]]])
    target = metric.prepare(truth)
    assert target.valid.tolist() == [[True, False, False, False, False, True]]  # 20 m: scored, clipped to the cap
    metric.update(torch.full_like(truth, 2.0), truth)
    ids, sums = metric.images()
    assert sums[0, 0] == 2


def test_an_image_whose_pixels_all_miss_delta_1_is_scored_not_left_out():
    metric = DepthMetrics(MIN, MAX)
    truth = torch.full((1, 2, 2), 2.0)
    metric.update(truth * 3, truth, ids=torch.tensor([5]))  # every pixel off by 3x: no d1 hit, still 4 pixels
    assert metric.empty_images() == [] and metric.images()[0].tolist() == [5]
