"""Alignment of relative predictions before scoring: exact recovery of the affine families, fits that
equal NumPy's least squares on the same pixels, MoGe's weighted-L1 fit against brute force, and what
the card and the report make of aligned numbers."""

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from depth_lightning.core.errors import ConfigError, DataError, NonFiniteError
from depth_lightning.evaluation.alignment import (
    MODES,
    Alignment,
    alignment_from,
    weighted_l1_affine,
    weighted_l1_scale,
)
from depth_lightning.evaluation.evaluator import Evaluator
from depth_lightning.evaluation.protocol import EvalProtocol, card_differences
from tests.helpers import bilinear_by_hand

PROTOCOL = EvalProtocol(region="full", min_depth=1e-3, caps=(10.0,))


def scene(seed=0, h=30, w=40):
    """Ground truth with holes and out-of-range pixels, and a region that leaves the border out."""
    rng = np.random.default_rng(seed)
    gt = rng.uniform(0.5, 9.0, (2, h, w))
    gt[rng.random(gt.shape) < 0.2] = 0  # holes
    gt[:, 0, :6] = 12.0  # beyond the cap: not scored, so not fitted on
    region = np.zeros((2, h, w), dtype=bool)
    region[:, 2:-2, 3:-3] = True
    return torch.from_numpy(gt).float(), torch.from_numpy(region)


def evaluate(pred, gt, region, mode, protocol=PROTOCOL, **kw):
    ev = Evaluator(protocol, predictions=["p"], per_image=True, alignment=Alignment(mode, **kw))
    ev.process({"depth": gt, "eval_mask": region}, {"p": pred})
    return ev.evaluate()


@pytest.mark.parametrize(
    ("mode", "make"),
    [
        ("scale_shift", lambda g: 0.37 * g + 2.5),
        ("scale_shift_disparity", lambda g: 1 / (0.8 / g + 0.05)),
        ("median", lambda g: 3.7 * g),
        ("scale", lambda g: 0.21 * g),
        ("scale_robust", lambda g: 5.0 * g),
        ("scale_shift_robust", lambda g: 2.0 * g + 1.0),
    ],
)
def test_each_family_is_recovered_exactly(mode, make):
    gt, region = scene()
    pred = torch.where(gt > 0, make(gt.double()), 1.0).float()  # holes: anything, they are not scored
    result = evaluate(pred, gt, region, mode)
    assert result.values["abs_rel"] < 1e-6 and result.values["d1"] == 1
    # unaligned, the same maps are far off
    assert evaluate(pred, gt, region, "none" if mode != "scale_shift" else "scale").values["abs_rel"] > 1e-3


def _scored_pixels(gt, region, b):
    g = gt[b].double().numpy()
    return region[b].numpy() & (g > 1e-3) & (g < 10.0)


def test_fits_equal_numpy_lstsq_on_exactly_the_scored_pixels():
    gt, region = scene(1)
    rng = np.random.default_rng(5)
    pred = torch.from_numpy(0.5 * gt.numpy() + 0.3 + rng.normal(0, 0.2, gt.shape)).float()
    result = evaluate(pred, gt, region, "scale_shift")
    ids, fits = result.record.fits["p"]
    positive = pred.abs() + 0.1
    disparity = evaluate(positive, gt, region, "scale_shift_disparity").record.fits["p"][1]
    for b in ids:
        keep = _scored_pixels(gt, region, b)
        p, g = pred[b].double().numpy()[keep], gt[b].double().numpy()[keep]
        expected = np.linalg.lstsq(np.stack([p, np.ones_like(p)], 1), g, rcond=None)[0]
        np.testing.assert_allclose(fits[b], expected, rtol=0, atol=1e-10)
        q = 1 / positive[b].double().numpy()[keep]  # the disparity of the prediction, fitted to 1 / g
        np.testing.assert_allclose(
            disparity[b], np.linalg.lstsq(np.stack([q, np.ones_like(q)], 1), 1 / g, rcond=None)[0], atol=1e-10
        )
    # per_image.csv's columns are these fits
    rows = result.record.rows()
    assert [r["p/scale"] for r in rows] == [float(f[0]) for f in fits]
    assert [r["p/shift"] for r in rows] == [float(f[1]) for f in fits]


def test_a_subsampled_fit_uses_marigolds_nearest_subsample_and_scores_every_pixel():
    gt, region = scene(2, h=60, w=80)
    pred = torch.from_numpy(0.5 * gt.numpy() + np.random.default_rng(6).normal(0, 0.3, gt.shape)).float()
    result = evaluate(pred, gt, region, "scale_shift", max_resolution=20)
    fits = result.record.fits["p"][1]
    # Marigold's alignment.py:49-59: nearest downsampling of gt, pred and mask by min(max_res/H, max_res/W)
    down = torch.nn.Upsample(scale_factor=min(20 / 60, 20 / 80), mode="nearest")
    for b in range(2):
        keep = torch.from_numpy(_scored_pixels(gt, region, b))
        g, p, m = (down(t[None, None].double())[0, 0].numpy() for t in (gt[b], pred[b], keep))
        expected = np.linalg.lstsq(np.stack([p[m > 0], np.ones(int((m > 0).sum()))], 1), g[m > 0], rcond=None)[0]
        np.testing.assert_allclose(fits[b], expected, atol=1e-10)
    assert result.pixels("p") == sum(int(_scored_pixels(gt, region, b).sum()) for b in range(2))


def _brute_force_l1(x, y, w):
    """min over lines through two points of sum w |s x + t - y|: the weighted-L1 optimum is one of them."""
    best = (np.inf, None)
    for i, j in itertools.combinations(range(len(x)), 2):
        if x[i] == x[j]:
            continue
        s = (y[j] - y[i]) / (x[j] - x[i])
        t = y[i] - s * x[i]
        cost = np.sum(w * np.abs(s * x + t - y))
        best = min(best, (cost, (s, t)), key=lambda c: c[0])
    return best


def test_the_robust_fits_reach_the_brute_force_weighted_l1_minimum():
    rng = np.random.default_rng(7)
    for trial in range(5):
        x = rng.uniform(0.5, 5, 14)
        y = 1.7 * x + 0.4 + rng.normal(0, 0.3, 14)
        y[:3] += rng.uniform(3, 8, 3)  # outliers least squares would follow
        w = 1 / np.abs(y)
        cost, (s, t) = _brute_force_l1(x, y, w)
        ours = weighted_l1_affine(*(torch.from_numpy(a) for a in (x, y, w))).numpy()
        assert np.sum(w * np.abs(ours[0] * x + ours[1] - y)) == pytest.approx(cost, rel=1e-12), trial
        np.testing.assert_allclose(ours, (s, t), rtol=1e-9)  # unique here
        scales = np.sort(y / x)
        costs = [np.sum(w * np.abs(a * x - y)) for a in scales]
        robust = float(weighted_l1_scale(*(torch.from_numpy(a) for a in (x, y, w))))
        assert np.sum(w * np.abs(robust * x - y)) == pytest.approx(min(costs), rel=1e-12)


def test_disparity_below_one_over_the_cap_is_clipped_before_inversion():
    gt = torch.full((1, 8, 8), 4.0)
    gt[0, :4] = 2.0
    # disparity maps: the lower half's fitted disparity would be negative, never inverted to a negative depth
    pred = torch.where(gt == 2.0, 0.5, 0.25).float()
    pred[0, 4:, :2] = -3.0
    everywhere = torch.ones_like(gt, dtype=torch.bool)
    result = evaluate(pred, gt, everywhere, "scale_shift_disparity", prediction="disparity", min_pixels=64)
    ids, rows = result.record.sums["p"]
    assert np.isfinite(rows).all() and 0 < result.values["d1"] < 1


def test_what_each_mode_refuses_and_the_card_records():
    gt, region = scene()
    negative = torch.where(gt > 0, 2 * gt - 5, 1.0).float()  # an affine map: negative where g < 2.5
    with pytest.raises(NonFiniteError, match="non-positive"):
        evaluate(negative, gt, region, "median")
    assert evaluate(negative, gt, region, "scale_shift").values["abs_rel"] < 1e-6
    nan = negative.clone()
    nan[0, 5, 5] = float("nan")
    with pytest.raises(NonFiniteError, match=r"hold NaN or inf in image\(s\) 0 \(1 px\)"):
        evaluate(nan, gt, region, "scale_shift")
    with pytest.raises(ConfigError, match="alignment.mode='affine' is unknown; allowed: none, median"):
        alignment_from({"mode": "affine"})
    with pytest.raises(ConfigError, match="alignment.prediction=disparity needs alignment.mode=scale_shift_disparity"):
        alignment_from({"mode": "scale_shift", "prediction": "disparity"})
    with pytest.raises(ConfigError, match=r"max_resolution=1024 with scale_shift_robust: .* at most 128"):
        alignment_from({"mode": "scale_shift_robust", "max_resolution": 1024})
    with pytest.raises(ConfigError, match=r"alignment.max_res: not an alignment setting"):
        alignment_from({"mode": "scale", "max_res": 3})
    card = Alignment("scale_shift", max_resolution=1024).card()
    assert card["mode"] == "scale_shift" and "longer side <= 1024" in card["fitted_on"]
    assert "64 x 64" in Alignment("scale_shift_robust").card()["fitted_on"]
    assert Alignment().card()["mode"] == "none"


def test_the_report_refuses_aligned_and_unaligned_numbers_in_one_column():
    from experiments.report.runs import Run
    from experiments.report.tables import MixedProtocols, check_protocols

    base = PROTOCOL.card("d", "test", {"list": None, "ground_truth": "x"}, (30, 40), None)
    aligned, metric = dict(base), dict(base)
    aligned["alignment"], metric["alignment"] = Alignment("scale_shift").card(), Alignment().card()
    assert card_differences(aligned, metric)[0].startswith("alignment: ")
    runs = [
        Run(f"run{i}", "train", "full", 200, {}, "test", "completed", protocol=c)
        for i, c in enumerate((aligned, metric))
    ]
    with pytest.raises(MixedProtocols, match="alignment: "):
        check_protocols("table", runs, allow_mixed=False)


def test_an_image_without_a_valid_pixel_gets_no_row_of_its_own_under_alignment():
    gt, region = scene(4)
    gt[1] = 0  # the second image: no ground truth at all
    pred = torch.where(gt > 0, 2 * gt, 1.0).float()
    result = evaluate(pred, gt, region, "scale")
    rows = result.record.rows()
    assert [r["id"] for r in rows] == [0] and result.images == 1 and rows[0]["p/scale"] == pytest.approx(0.5)
    assert np.isnan(result.record.fits["p"][1][1]).all()  # fitted on nothing: recorded as NaN, never a row


@pytest.mark.parametrize("mode", [m for m in MODES if m != "none"])
def test_a_frame_with_too_few_pixels_is_never_fitted_into_the_means(mode):
    """One valid pixel fits any alignment exactly (abs rel 0): such a frame is left out, counted and named."""
    gt, region = scene(5)
    gt[1] = 0
    gt[1, 10, 10] = 3.0  # the second frame: one valid ground-truth pixel
    noise = torch.rand(gt.shape, generator=torch.Generator().manual_seed(0)) * 9 + 0.5
    result = evaluate(noise, gt, region, mode)
    alone = evaluate(noise[:1], gt[:1], region[:1], mode)
    assert result.images == 1 and result.values["abs_rel"] == alone.values["abs_rel"] > 0.1
    assert result.sparse_frames == ["sample 1"] and result.empty_frames == []
    assert [r["id"] for r in result.record.rows()] == [0]
    with pytest.raises(DataError, match=r"1 frame\(s\) with fewer than 100 valid ground-truth pixels .*sample 1"):
        evaluate(noise, gt, region, mode, too_few="refuse")
    kept = evaluate(noise, gt, region, mode, min_pixels=1)  # as before: the one-pixel frame scores as perfect
    assert kept.images == 2 and kept.values["abs_rel"] < result.values["abs_rel"]


def test_the_minimum_is_a_setting_of_the_protocol_too_and_the_card_counts_the_frames():
    gt, region = scene(6)
    gt[1] = 0
    gt[1, 5:8, 5:8] = 2.0  # nine valid pixels
    pred = torch.where(gt > 0, gt, 1.0) * 1.1
    protocol = EvalProtocol(region="full", min_depth=1e-3, caps=(10.0,), min_pixels=10)
    result = evaluate(pred, gt, region, "none", protocol=protocol)
    assert result.images == 1 and result.sparse_frames == ["sample 1"]
    assert evaluate(pred, gt, region, "none").images == 2  # the default minimum: one pixel
    with pytest.raises(ValueError, match="data.protocol.min_pixels=0"):
        EvalProtocol(min_pixels=0)
    with pytest.raises(ConfigError, match="alignment.min_pixels=0"):
        alignment_from({"mode": "scale", "min_pixels": 0})
    with pytest.raises(ConfigError, match="alignment.too_few='skip'"):
        alignment_from({"mode": "scale", "too_few": "skip"})
    assert Alignment("scale").card()["min_pixels"] == 100


def _reference_fit(mode, x, g, prediction="depth"):
    """Each mode's (scale, shift) by its definition, in NumPy, by brute force where it is an L1 fit."""
    if mode == "median":
        return np.median(g) / np.median(x), 0.0
    if mode == "scale":
        return np.sum(x * g) / np.sum(x * x), 0.0
    if mode == "scale_shift":
        return tuple(np.polyfit(x, g, 1))
    if mode == "scale_shift_disparity":
        return tuple(np.polyfit(x if prediction == "disparity" else 1 / x, 1 / g, 1))
    if mode == "scale_robust":  # the optimum of sum |s x - g| / g is at one of the ratios g / x
        candidates = g / x
        return candidates[np.argmin([np.sum(np.abs(s * x - g) / g) for s in candidates])], 0.0
    return _brute_force_l1(x, g, 1 / g)[1]


@pytest.mark.parametrize(
    ("mode", "prediction"),
    [(m, "depth") for m in MODES if m != "none"] + [("scale_shift_disparity", "disparity")],
)
@pytest.mark.parametrize("odd", [False, True])
def test_every_mode_fits_noisy_low_resolution_predictions_as_its_definition_says(mode, prediction, odd):
    # noisy maps (no mode recovers them exactly, so the estimators differ), predicted at half the frame's
    # resolution (upsampled bilinearly before the fit), an even and an odd count of scored pixels (medians)
    rng = np.random.default_rng(11)
    h, w = 10, 13
    gt = rng.uniform(1.0, 8.0, (1, h, w))
    if odd:
        gt[0, 0, 0] = 0  # one hole: 129 scored pixels instead of 130
    truth = np.where(gt > 0, gt, 2.0)[0]
    small = truth[::2, ::2] * rng.uniform(0.7, 1.4, truth[::2, ::2].shape) + 0.3  # a relative map, with errors
    pred = 1 / small if prediction == "disparity" else small
    protocol = EvalProtocol(region="full", min_depth=1e-3, caps=(10.0,))
    ev = Evaluator(protocol, predictions=["p"], alignment=Alignment(mode, prediction=prediction, min_pixels=1))
    ev.process({"depth": torch.from_numpy(gt).float()}, {"p": torch.from_numpy(pred[None]).float()})
    result = ev.evaluate()
    keep = (gt[0] > 1e-3) & (gt[0] < 10.0)
    assert int(keep.sum()) == (129 if odd else 130)
    x = bilinear_by_hand(pred.astype(np.float32).astype(np.float64), (h, w))[keep]
    g = gt[0].astype(np.float32).astype(np.float64)[keep]
    scale, shift = _reference_fit(mode, x, g, prediction)
    fitted = result.record.fits["p"][1][0]
    np.testing.assert_allclose(fitted, (scale, shift), rtol=1e-5, atol=1e-7)
    # what is scored: the fitted map (disparity fits inverted, clipped at 1 / cap), clipped to the range
    full = bilinear_by_hand(pred.astype(np.float32).astype(np.float64), (h, w))
    if mode == "scale_shift_disparity":
        aligned = 1 / np.maximum((full if prediction == "disparity" else 1 / full) * scale + shift, 1 / 10.0)
    else:
        aligned = full * scale + shift
    scored = np.clip(aligned[keep], 1e-3, 10.0)
    assert result.values["abs_rel"] == pytest.approx(np.mean(np.abs(scored - g) / g), rel=1e-5)
    assert result.values["rmse"] == pytest.approx(np.sqrt(np.mean((scored - g) ** 2)), rel=1e-5)


def test_alignment_from_reads_a_name_a_mapping_or_nothing():
    assert alignment_from(None) == Alignment("none") and not alignment_from(None).active
    assert alignment_from("median") == Alignment("median")
    given = {"mode": "scale_shift_disparity", "prediction": "disparity", "max_resolution": 64, "min_pixels": 5}
    assert alignment_from(given) == Alignment("scale_shift_disparity", "disparity", 64, 5)
    with pytest.raises(ConfigError, match=r"^config error: alignment.scal: not an alignment setting \(mode, "):
        alignment_from({"scal": 1})


def test_a_robust_fit_keeps_moges_grid_when_the_protocol_subsamples_for_least_squares():
    # the protocol's fit_max_resolution (Marigold's ETH3D subsample) is for the least-squares fits; the
    # weighted-L1 fits keep their 64 x 64 grid: on a 10 x 13 frame, every pixel
    rng = np.random.default_rng(3)
    gt = rng.uniform(1.0, 8.0, (1, 10, 13))
    pred = gt * rng.uniform(0.6, 1.5, gt.shape)
    fits = {}
    for limit in (None, 4):
        protocol = EvalProtocol(region="full", min_depth=1e-3, caps=(10.0,), fit_max_resolution=limit)
        ev = Evaluator(protocol, predictions=["p"], alignment=Alignment("scale_robust", min_pixels=1))
        ev.process({"depth": torch.from_numpy(gt).float()}, {"p": torch.from_numpy(pred).float()})
        fits[limit] = ev.evaluate().record.fits["p"][1][0]
    np.testing.assert_array_equal(fits[None], fits[4])
    x, g = pred[0].astype(np.float32).ravel().astype(np.float64), gt[0].astype(np.float32).ravel().astype(np.float64)
    assert fits[4][0] == pytest.approx(_reference_fit("scale_robust", x, g)[0], rel=1e-6)
    least_squares = Alignment("scale_shift", min_pixels=1)
    assert least_squares._fit_resolution(4) == 4 and Alignment("scale_robust")._fit_resolution(4) is None


def test_least_squares_fits_use_every_pixel_of_a_large_frame_unless_the_protocol_subsamples():
    # the 64 x 64 grid is the robust fits' alone; a least-squares fit uses every scored pixel, or the
    # nearest subsample of the protocol's fit_max_resolution (Marigold on ETH3D)
    rng = np.random.default_rng(8)
    gt = rng.uniform(1.0, 8.0, (1, 70, 90))
    pred = 0.002 * gt + 0.2 + rng.normal(0, 0.0005, gt.shape)  # a narrow range: sum of squared deviations < 1
    x, g = pred[0].astype(np.float32).astype(np.float64), gt[0].astype(np.float32).astype(np.float64)
    assert np.sum((x - x.mean()) ** 2) < 1
    for limit in (None, 30):
        protocol = EvalProtocol(region="full", min_depth=1e-3, caps=(10.0,), fit_max_resolution=limit)
        ev = Evaluator(protocol, predictions=["p"], alignment=Alignment("scale_shift"))
        ev.process({"depth": torch.from_numpy(gt).float()}, {"p": torch.from_numpy(pred).float()})
        fitted = ev.evaluate().record.fits["p"][1][0]
        if limit is None:
            expected = np.polyfit(x.ravel(), g.ravel(), 1)
        else:
            down = torch.nn.Upsample(scale_factor=min(30 / 70, 30 / 90), mode="nearest")
            xs, gs = (down(torch.from_numpy(a)[None, None])[0, 0].numpy().ravel() for a in (x, g))
            expected = np.polyfit(xs, gs, 1)
        np.testing.assert_allclose(fitted, expected, rtol=1e-6)


def test_the_weighted_l1_fits_on_ties_constant_predictions_and_two_pixels():
    rng = np.random.default_rng(9)
    for trial in range(40):  # predictions quantised to 0.5: many pixels level with each anchor
        x = np.round(rng.uniform(0.5, 5, 12) * 2) / 2
        y = 1.3 * x + 0.7 + rng.normal(0, 0.4, 12)
        w = 1 / np.abs(y)
        cost = _brute_force_l1(x, y, w)[0]
        ours = weighted_l1_affine(*(torch.from_numpy(a) for a in (x, y, w))).numpy()
        assert np.sum(w * np.abs(ours[0] * x + ours[1] - y)) == pytest.approx(cost, rel=1e-12), trial
        ones = np.where(rng.random(12) < 0.3, 1.0, x)  # some predictions exactly 1
        scales = y / ones
        best = min(np.sum(w * np.abs(a * ones - y)) for a in scales)
        robust = float(weighted_l1_scale(*(torch.from_numpy(a) for a in (ones, y, w))))
        assert np.sum(w * np.abs(robust * ones - y)) == pytest.approx(best, rel=1e-12), trial
    # a constant prediction: no slope to fit, the shift is the weighted median of the truth
    y = np.array([1.0, 2.0, 4.0, 8.0])
    s, t = weighted_l1_affine(torch.full((4,), 3.0, dtype=torch.float64), torch.from_numpy(y), torch.from_numpy(1 / y))
    assert float(s) == 0.0 and float(t) == 1.0  # weights 1, .5, .25, .125: the first holds over half the total
    # two pixels: the line through both
    two = weighted_l1_affine(*(torch.tensor(v, dtype=torch.float64) for v in ([1.0, 3.0], [2.0, 8.0], [1.0, 1.0])))
    np.testing.assert_allclose(two.numpy(), [3.0, -1.0])
    one = weighted_l1_affine(*(torch.tensor(v, dtype=torch.float64) for v in ([2.0], [5.0], [0.2])))
    assert one.tolist() == [0.0, 5.0]  # one pixel: no slope, its value
    assert float(weighted_l1_scale(*(torch.zeros(3, dtype=torch.float64),) * 3)) == 0.0  # nothing to scale


def test_each_modes_card_in_full():
    scored = "of the scored pixels (valid ground truth in the region and range)"
    clip = "the aligned depth clipped to [min_depth, cap]"
    assert Alignment().card() == {"mode": "none", "what": "metric predictions, scored as they are"}
    assert Alignment("scale_shift").card() == {
        "mode": "scale_shift", "prediction": "depth", "fitted_on": f"per image, every scored pixel {scored}",
        "fit": "least squares, float64", "min_pixels": 100, "too_few": "leave_out", "after": clip,
    }  # fmt: skip
    protocol_limit = Alignment("median", min_pixels=7, too_few="refuse").card(fit_max_resolution=32)
    assert protocol_limit["fitted_on"] == f"per image, a nearest subsample of longer side <= 32 {scored}"
    assert (protocol_limit["min_pixels"], protocol_limit["too_few"]) == (7, "refuse")
    disparity = Alignment("scale_shift_disparity", prediction="disparity", max_resolution=16).card(32)
    assert disparity["prediction"] == "disparity"  # its own limit wins over the protocol's
    assert disparity["fitted_on"] == f"per image, a nearest subsample of longer side <= 16 {scored}"
    assert disparity["after"] == "the fitted disparity clipped at 1 / cap, then inverted; " + clip
    robust = Alignment("scale_robust").card(fit_max_resolution=32)  # MoGe's grid, not the protocol's limit
    assert robust["fitted_on"] == f"per image, the scored pixels of a nearest 64 x 64 grid {scored}"
    assert (robust["fit"], robust["after"]) == ("weighted L1, weights 1 / g (MoGe)", clip)
    robust_limited = Alignment("scale_shift_robust", max_resolution=20).card()
    assert robust_limited["fitted_on"] == f"per image, a nearest subsample of longer side <= 20 {scored}"


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"prediction": "inverse"}, "alignment.prediction='inverse'; allowed: depth, disparity"),
        ({"max_resolution": 1}, "alignment.max_resolution=1 must be an integer >= 2"),
        ({"max_resolution": "64"}, "alignment.max_resolution='64' must be an integer >= 2"),
        ({"min_pixels": True}, "alignment.min_pixels=True must be an integer >= 1"),
        ({"min_pixels": 0}, "alignment.min_pixels=0 must be an integer >= 1"),
        ({"min_pixels": 2.5}, "alignment.min_pixels=2.5 must be an integer >= 1"),
        ({"too_few": "skip"}, "alignment.too_few='skip'; allowed: leave_out, refuse"),
        ({"mode": "scale_robust", "max_resolution": 129}, "alignment.max_resolution=129 with scale_robust"),
    ],
)
def test_each_alignment_setting_is_refused_by_name(settings, message):
    with pytest.raises(ConfigError) as refused:
        Alignment(**{"mode": "scale", **settings})
    assert str(refused.value).startswith("config error: " + message)


def test_the_limits_of_the_settings_are_allowed():
    Alignment("scale", max_resolution=2, min_pixels=1)
    Alignment("scale_robust", max_resolution=128)


def test_the_median_of_an_even_count_is_numpys_the_mean_of_the_middle_two():
    from depth_lightning.evaluation.alignment import _median

    for values in ([3.0, 1.0, 2.0], [4.0, 1.0, 3.0, 2.0], [5.0]):
        assert _median(torch.tensor(values, dtype=torch.float64)).item() == np.median(values)


def test_a_subsample_follows_marigolds_nearest_resize_on_a_tall_frame_and_a_robust_fit_its_grid():
    from depth_lightning.evaluation.alignment import _subsample

    for size, limit, mode, shape in [
        ((90, 30), 45, "scale", {"scale_factor": 0.5}),  # the longer side is the height
        ((70, 90), None, "scale_robust", {"size": (64, 64)}),
        ((40, 90), None, "scale_shift_robust", {"size": (40, 64)}),
    ]:
        h, w = size
        index = torch.arange(h * w, dtype=torch.float64).reshape(1, 1, h, w)
        picked = F.interpolate(index, mode="nearest", **shape).long().flatten()
        expected = torch.zeros(h * w, dtype=torch.bool)
        expected[picked] = True
        mask = _subsample(size, limit, mode, torch.device("cpu"))
        assert mask.shape == (1, h * w) and torch.equal(mask[0], expected), (size, mode)
        assert 0 < int(mask.sum()) < h * w
    assert bool(_subsample((30, 40), 40, "scale", torch.device("cpu")).all())  # at the limit: every pixel
