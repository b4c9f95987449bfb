"""Scoring saved depth maps of any method under the suite's protocol (python -m depth_lightning.score)."""

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from depth_lightning.core.errors import ConfigError, DataError
from depth_lightning.data.io import read_depth_png, write_depth_png
from depth_lightning.evaluation.per_image import read_per_image_csv
from depth_lightning.score import score_and_record
from tests.datasets import write_nyu_sync
from tests.helpers import SHARED, bilinear_by_hand, composed_for, run_module

REAL_NYU = SHARED / "realdata" / "nyu" / "sync" / "metric3d_nyu_demo"


@pytest.fixture(scope="module")
def nyu(tmp_path_factory):
    root = write_nyu_sync(tmp_path_factory.mktemp("score") / "nyu", {"a": 2, "b": 2})
    pairs = [line.split()[:2] for line in (root / "test.txt").read_text().splitlines()]
    return root, pairs


def _score_args(root, predictions, out, *extra):
    return [
        f"predictions={predictions}", "data=nyu_sync", f"data.dataset.root={root}",
        f"data.dataset.train_list={root / 'train.txt'}", f"data.dataset.test_list={root / 'test.txt'}",
        f"output={out}", *extra,
    ]  # fmt: skip


def _score(root, predictions, out, *extra):
    """What ``python -m depth_lightning.score`` runs, in this process: the run folder beside ``out``."""
    return score_and_record(composed_for("score", out.with_suffix(""), *_score_args(root, predictions, out, *extra)))


def test_the_ground_truth_scores_perfectly_and_a_scaled_copy_scores_its_known_error(nyu, tmp_path, capsys):
    root, pairs = nyu
    exact, scaled = tmp_path / "exact", tmp_path / "scaled"
    for rgb, depth in pairs:  # named after the RGB file, under the same folders
        name = rgb.rsplit(".", 1)[0]
        (exact / name).parent.mkdir(parents=True, exist_ok=True)
        (scaled / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(root / depth, exact / f"{name}.png")  # 16-bit millimetres, as predict writes them
        np.save(scaled / f"{name}.npy", read_depth_png(root / depth, 1000.0) * 1.1)  # float metres, 10 % too far
    # the ground truth's holes (0) are where nothing is scored: clipped, they change no number
    _score(root, exact, tmp_path / "exact.json", "invalid_predictions=clip")  # the score command's own steps
    perfect = json.loads((tmp_path / "exact.json").read_text())["test"]
    assert perfect["images"] == 2
    assert perfect["abs_rel"] == 0 and perfect["rmse"] == 0 and perfect["d1"] == 1
    _score(root, scaled, tmp_path / "scaled.json", "invalid_predictions=clip")
    off = json.loads((tmp_path / "scaled.json").read_text())["test"]
    assert off["abs_rel"] == pytest.approx(0.1, rel=1e-5) and off["sq_rel"] > 0
    assert off["log10"] == pytest.approx(math.log10(1.1), rel=1e-5) and off["d1"] == 1  # 1.1 < 1.25
    assert "0.1000 [0.1000, 0.1000]" in capsys.readouterr().out  # the printed table, with its interval
    # every image is off by the same 10 %: the interval over images is the point itself; per_image.csv
    # and the protocol card of the score's own run folder say so
    scored = json.loads((tmp_path / "scaled.json").read_text())
    low, high = scored["test_intervals"]["predictions/abs_rel"]
    assert low == pytest.approx(0.1, rel=1e-5) and high == pytest.approx(0.1, rel=1e-5)
    card, rows = read_per_image_csv(scored["per_image"])
    assert card == scored["protocol"] and card["dataset"] == "nyu_sync" and card["list"]["lines"] == 2
    assert [r["frame"] for r in rows] == [rgb.rsplit(".", 1)[0] for rgb, _ in pairs]
    assert np.mean([float(r["predictions/abs_rel"]) for r in rows]) == pytest.approx(off["abs_rel"], rel=1e-12)


@pytest.mark.slow  # a training run or a second process: not for every mutant
def test_a_missing_prediction_is_named_with_exit_code_2(nyu, tmp_path):
    root, pairs = nyu
    partial = tmp_path / "partial"
    name = pairs[0][0].rsplit(".", 1)[0]
    (partial / name).parent.mkdir(parents=True)
    shutil.copy(root / pairs[0][1], partial / f"{name}.png")
    proc = run_module(
        "depth_lightning.score", *_score_args(root, partial, tmp_path / "p.json"), cwd=tmp_path, check=False
    )
    missing = pairs[1][0].rsplit(".", 1)[0]
    assert proc.returncode == 2 and f"no prediction for 1 of 2 test frames, e.g. {partial / missing}" in proc.stderr
    _score(root, partial, tmp_path / "p.json", "allow_missing=true", "invalid_predictions=clip")
    assert json.loads((tmp_path / "p.json").read_text())["test"]["images"] == 1


def _predictions(nyu, folder, make, png_scale=None):
    """One prediction per test frame: ``make(ground truth in metres, holes filled)``, as ``.npy``, or as a
    16-bit PNG of ``png_scale`` units per metre."""
    root, pairs = nyu
    files = []
    for rgb, depth in pairs:
        name = rgb.rsplit(".", 1)[0]
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        truth = read_depth_png(root / depth, 1000.0)
        pred = make(np.where(truth > 0, truth, 2.0))
        files.append(folder / f"{name}.{'png' if png_scale else 'npy'}")
        if png_scale:
            write_depth_png(files[-1], pred, png_scale)
        else:
            np.save(files[-1], pred)
    return files


def _with_holes(depth):
    out = depth.copy()
    out.flat[::3] = np.nan  # a third NaN
    out.flat[1::20] = np.inf  # 5 % inf
    return out


@pytest.mark.parametrize(
    ("case", "make", "bad_pixels"),
    [
        ("nan_and_inf", _with_holes, lambda n: len(set(range(0, n, 3)) | set(range(1, n, 20)))),
        ("all_nan", lambda d: np.full_like(d, np.nan), lambda n: n),
        ("negated", lambda d: -d, lambda n: n),
    ],
)
def test_non_finite_and_non_positive_predictions_are_refused_by_file_or_scored_clipped(
    nyu, tmp_path, case, make, bad_pixels
):
    root, _ = nyu
    files = _predictions(nyu, tmp_path / case, make)
    with pytest.raises(DataError) as err:
        _score(root, tmp_path / case, tmp_path / "p.json")
    n = np.load(files[0]).size
    assert f"2 of 2 predictions hold NaN, inf, zero or negative depth: {files[0]} ({bad_pixels(n)} px)" in str(
        err.value
    )
    assert "invalid_predictions=clip" in str(err.value)
    scored = _score(root, tmp_path / case, tmp_path / "p.json", "invalid_predictions=clip", "check_units=false")
    card = scored["protocol"]["prediction"]
    assert card["invalid_predictions"] == "clip" and card["files_with_invalid_pixels"] == 2
    assert card["invalid_pixels"] == sum(bad_pixels(np.load(f).size) for f in files)
    assert all(math.isfinite(v) for v in scored["test"].values()), "clipped, every number is finite"
    # clipped means: NaN and -inf and any depth <= 0 scored as min_depth, +inf as the cap; the same numbers
    # as the predictions clipped by hand, which hold no invalid pixel
    low, cap = 1e-3, 10.0  # nyu_sync's data.protocol: min_depth, the headline cap
    _predictions(
        nyu,
        tmp_path / f"{case}_by_hand",
        lambda d: np.clip(np.nan_to_num(make(d), nan=low, posinf=cap, neginf=low), low, cap),
    )
    by_hand = _score(root, tmp_path / f"{case}_by_hand", tmp_path / "q.json", "check_units=false")
    assert by_hand["protocol"]["prediction"].get("files_with_invalid_pixels", 0) == 0
    for metric, value in by_hand["test"].items():
        assert scored["test"][metric] == pytest.approx(value, rel=1e-6, abs=1e-12), metric


@pytest.mark.parametrize("scale", ["0", "-1000", "abc", "true"])
def test_a_scale_that_is_not_positive_is_refused_by_name(nyu, tmp_path, scale):
    root, _ = nyu
    with pytest.raises(ConfigError, match="scale: .* must be a positive number of PNG units per metre"):
        _score(root, tmp_path, tmp_path / "p.json", f"scale={scale}")


def test_millimetre_pngs_read_with_scale_1_are_refused_naming_the_scale(nyu, tmp_path):
    root, _ = nyu
    folder = tmp_path / "mm"
    _predictions(nyu, folder, lambda d: d, png_scale=1000.0)
    with pytest.raises(DataError) as err:
        _score(root, folder, tmp_path / "p.json", "scale=1")
    assert "median depth is 1e+03 times the ground truth's" in str(err.value)
    assert "scale=1; e.g. scale=1000 would match" in str(err.value)
    assert _score(root, folder, tmp_path / "p.json")["test"]["abs_rel"] < 1e-3  # scale=1000, the default


def test_a_prediction_of_another_aspect_is_refused_and_one_of_another_size_is_resized_naming_the_file(
    nyu, tmp_path, caplog
):
    root, _ = nyu
    square = _predictions(nyu, tmp_path / "square", lambda d: d[:, : d.shape[0]])
    with pytest.raises(DataError) as err:
        _score(root, tmp_path / "square", tmp_path / "p.json")
    h, w = np.load(square[0]).shape
    assert (
        f"{square[0]}: a {h}x{w} prediction for a {h}x{read_depth_png(root / nyu[1][0][1], 1).shape[1]} frame"
        in str(err.value)
    )
    half = _predictions(nyu, tmp_path / "half", lambda d: d[::2, ::2])
    with caplog.at_level("WARNING"):
        scored = _score(root, tmp_path / "half", tmp_path / "p.json")
    H, W = read_depth_png(root / nyu[1][0][1], 1).shape
    assert (
        f"2 prediction(s) resized to their frame (bilinear in log depth): {half[0]} ({H // 2}x{W // 2} -> {H}x{W})"
        in caplog.text
    )
    assert scored["protocol"]["prediction"]["files_resized"] == 2
    # what is scored: the half-size map brought to the frame bilinearly in log depth (PyTorch's
    # align_corners=False rule, written here in NumPy), not in depth
    for how, folder in (("log", tmp_path / "by_hand_log"), ("linear", tmp_path / "by_hand_linear")):
        _predictions(nyu, folder, lambda d, how=how: _upsample_by_hand(d[::2, ::2], d.shape, how))
    by_hand = _score(root, tmp_path / "by_hand_log", tmp_path / "q.json")["test"]
    linear = _score(root, tmp_path / "by_hand_linear", tmp_path / "r.json")["test"]
    for metric in ("abs_rel", "rmse", "log10", "silog"):
        assert scored["test"][metric] == pytest.approx(by_hand[metric], rel=1e-5), metric
        assert scored["test"][metric] != pytest.approx(linear[metric], rel=1e-5), metric  # the test tells them apart


def _upsample_by_hand(small, size, how):
    """``small`` bilinearly to ``size`` in log depth or in depth (tests.helpers.bilinear_by_hand)."""
    values = np.log(small.astype(np.float64)) if how == "log" else small.astype(np.float64)
    out = bilinear_by_hand(values, size)
    return (np.exp(out) if how == "log" else out).astype(np.float32)


def test_kittis_png_convention_is_read_with_scale_256(nyu, tmp_path):
    root, _ = nyu
    folder = tmp_path / "kitti_style"
    _predictions(nyu, folder, lambda d: d, png_scale=256.0)  # metres x 256
    scored = _score(root, folder, tmp_path / "p.json", "scale=256")["test"]
    assert scored["abs_rel"] < 1 / 512 / 0.5 and scored["d1"] == 1  # within half a 1/256 m step of the truth
    misread = _score(root, folder, tmp_path / "q.json")["test"]  # read as millimetres: 0.256 x the depth
    assert misread["abs_rel"] == pytest.approx(1 - 0.256, abs=2e-3)


@pytest.mark.skipif(not REAL_NYU.is_dir(), reason=f"real NYU samples not present at {REAL_NYU}")
def test_silog_of_a_constant_factor_keeps_its_digits_on_the_real_frames(tmp_path):
    # pred = g x 1.1 saved as millimetre PNGs: the log error is ln 1.1 plus the rounding to 1 mm, so
    # mean(e^2) and mean(e)^2 agree to ~5 digits; float32 sums of them lost up to 2 % of silog
    root = tmp_path / "nyu"
    shutil.copytree(REAL_NYU, root)
    names = ("00000", "00050", "00100")
    lines = [f"rgb/rgb_{k}.jpg depth/sync_depth_{k}.png 518.8579\n" for k in names]
    (root / "test.txt").write_text("".join(lines))
    (root / "train.txt").write_text(lines[0])
    for k in names:
        write_depth_png(
            tmp_path / "pred" / "rgb" / f"rgb_{k}.png",
            read_depth_png(root / f"depth/sync_depth_{k}.png", 1000) * 1.1,
            1000,
        )
    scored = _score(root, tmp_path / "pred", tmp_path / "out.json", "invalid_predictions=clip")
    _, rows = read_per_image_csv(scored["per_image"])
    for k, row in zip(names, rows, strict=True):
        g = read_depth_png(root / f"depth/sync_depth_{k}.png", 1000)[45:471, 41:601]  # the decoded values
        p = read_depth_png(tmp_path / "pred" / "rgb" / f"rgb_{k}.png", 1000)[45:471, 41:601]
        valid = (g > 1e-3) & (g < 10)
        e = np.log(np.clip(p[valid], 1e-3, 10).astype(np.float64)) - np.log(g[valid].astype(np.float64))
        exact = 100 * np.sqrt(np.mean((e - e.mean()) ** 2))  # two passes in float64
        assert float(row["predictions/silog"]) == pytest.approx(exact, rel=1e-7), k


def test_to_size_resizes_in_log_depth_around_holes_and_linearly_for_relative_maps():
    from depth_lightning.evaluation.saved import to_size

    rng = np.random.default_rng(2)
    small = rng.uniform(0.5, 9.0, (6, 8)).astype(np.float32)
    small[2, 3] = 0  # a hole, and a NaN: no depth, and never mixed into their neighbours' depth
    small[4, 6] = np.nan
    valid = np.isfinite(small) & (small > 0)
    log_sum = bilinear_by_hand(np.log(np.where(valid, small, 1.0)) * valid, (12, 16))
    weight = bilinear_by_hand(valid.astype(np.float64), (12, 16))
    expected = np.where(weight > 0.5, np.exp(log_sum / np.maximum(weight, 1e-6)), 0.0)
    np.testing.assert_allclose(to_size(small, (12, 16)), expected, rtol=2e-6, atol=1e-6)
    assert (to_size(small, (12, 16)) == 0).sum() == (weight <= 0.5).sum() > 0
    relative = rng.normal(0, 1, (6, 8)).astype(np.float32)  # an affine-aligned map may hold any sign
    np.testing.assert_allclose(
        to_size(relative, (12, 16), log_depth=False), bilinear_by_hand(relative.astype(np.float64), (12, 16)), atol=1e-6
    )
    assert to_size(small, (6, 8)) is small  # at the frame's size: as it is


def test_score_settings_are_read_by_name():
    from omegaconf import OmegaConf

    from depth_lightning.evaluation.saved import score_settings

    cfg = OmegaConf.create({"scale": 256, "allow_missing": True, "invalid_predictions": "clip", "check_units": False})
    cfg.alignment = {"mode": "scale_shift", "min_pixels": 7}
    settings = score_settings(cfg)
    assert (settings.scale, settings.invalid_predictions, settings.allow_missing, settings.check_units) == (
        256.0, "clip", True, False
    )  # fmt: skip
    assert settings.alignment.mode == "scale_shift" and settings.alignment.min_pixels == 7
    plain = score_settings(OmegaConf.create({"scale": 1000, "allow_missing": False}))
    assert (plain.invalid_predictions, plain.check_units, plain.alignment.mode) == ("refuse", True, "none")
    with pytest.raises(ConfigError, match=r"^config error: invalid_predictions: 'drop' is not one of: refuse, clip$"):
        score_settings(OmegaConf.create({"scale": 1000, "allow_missing": False, "invalid_predictions": "drop"}))


def test_prediction_checks_count_refuse_and_name_exactly():
    from depth_lightning.evaluation.saved import PredictionChecks

    checks = PredictionChecks()
    truth = np.full((100, 200), 2.0, np.float32)
    truth[0, :10] = 0  # no ground truth there: not in the units' ratio
    pred = np.full((100, 200), 3.0, np.float32)
    pred[0, :10] = 50.0
    pred[1, :2] = 0.0  # zero depth: invalid
    pred[1, 2] = np.inf
    checks.check(pred, truth, "a.npy")
    assert checks.invalid == {"a.npy": 3} and checks.resized == {} and checks.ratios == [1.5]
    checks.check(np.full((50, 100), 1.0, np.float32), truth, "b.npy")  # half size: resized, no unit ratio
    assert checks.resized == {"b.npy": "50x100 -> 100x200"} and checks.ratios == [1.5]
    checks.check(np.full((100, 201), 1.0, np.float32), truth, "c.npy")  # aspect 0.5 % off: resized, not refused
    with pytest.raises(DataError) as err:
        checks.check(np.full((100, 203), 1.0, np.float32), truth, "d.npy")
    assert str(err.value) == (
        "d.npy: a 100x203 prediction for a 100x200 frame (aspect 2.030, the frame's 2.000); stretching it would "
        "misplace every pixel: save it at the frame's size (or its aspect)"
    )
    with pytest.raises(DataError) as err:
        checks.refuse_invalid("refuse", 4)
    assert str(err.value) == (
        "1 of 4 predictions hold NaN, inf, zero or negative depth: a.npy (3 px); fix them, or score them clipped to "
        "the depth range with invalid_predictions=clip"
    )
    checks.refuse_invalid("clip", 4)  # clipped: scored, counted on the card
    assert checks.describe("clip") == {
        "invalid_predictions": "clip", "files_with_invalid_pixels": 1, "invalid_pixels": 3, "files_resized": 2
    }  # fmt: skip
    affine = PredictionChecks(positive=False)  # under an affine alignment a negative value is a value
    affine.check(np.where(pred > 0, -pred, np.nan), truth, "e.npy")
    assert affine.invalid == {"e.npy": 3} and affine.ratios == []  # two NaN and -inf; negatives are values here
    with pytest.raises(DataError, match="hold NaN or inf: e.npy"):
        affine.refuse_invalid("refuse", 1)
    for ratio, refused in ((10.0, False), (0.1, False), (10.5, True), (0.095, True)):
        units = PredictionChecks(ratios=[ratio])
        if refused:
            with pytest.raises(DataError, match=f"median depth is {ratio:.3g} times the ground truth's"):
                units.refuse_units(Path("p"), 1000.0)
        else:
            units.refuse_units(Path("p"), 1000.0)
    PredictionChecks().refuse_units(Path("p"), 1000.0)  # no ratio (every prediction resized): nothing to refuse


def test_missing_predictions_are_named_and_left_out_on_the_card(nyu, tmp_path):
    root, pairs = nyu
    names = [rgb.rsplit(".", 1)[0] for rgb, _ in pairs]
    with pytest.raises(DataError) as err:
        (tmp_path / "empty").mkdir()
        _score(root, tmp_path / "empty", tmp_path / "p.json")
    assert str(err.value) == (
        f"predictions={tmp_path / 'empty'}: holds no prediction of any of the 2 test frames of nyu_sync (each is "
        f"<predictions>/<frame name>.npy|.png, e.g. {tmp_path / 'empty' / names[0]}.png); is it the right folder?"
    )
    partial = tmp_path / "partial"
    (partial / names[1]).parent.mkdir(parents=True)
    shutil.copy(root / pairs[1][1], partial / f"{names[1]}.png")
    with pytest.raises(DataError) as err:
        _score(root, partial, tmp_path / "p.json")
    assert str(err.value) == (
        f"predictions={partial}: no prediction for 1 of 2 test frames, e.g. {partial / names[0]}.png|.npy; "
        "allow_missing=true scores the others"
    )
    scored = _score(root, partial, tmp_path / "p.json", "allow_missing=true", "invalid_predictions=clip")
    card = scored["protocol"]
    assert (card["split"], card["frames_evaluated"], card["frames_left_out"]) == ("test", 1, 1)
    assert "bilinearly in log depth" in card["prediction"]["to_ground_truth"] and card["alignment"]["mode"] == "none"
    aligned = _score(root, partial, tmp_path / "q.json", "allow_missing=true", "invalid_predictions=clip",
                     "alignment=scale_shift")["protocol"]  # fmt: skip
    assert "linearly (a relative map)" in aligned["prediction"]["to_ground_truth"]
    assert aligned["alignment"]["mode"] == "scale_shift" and aligned["region"] == card["region"]


def test_a_saved_prediction_is_read_in_metres_or_refused_by_name(tmp_path):
    from depth_lightning.evaluation.saved import prediction_file, read_prediction

    np.save(tmp_path / "a.npy", np.full((1, 3, 4), 2.5, np.float64))  # (1, H, W): squeezed, float32
    write_depth_png(tmp_path / "b.png", np.full((3, 4), 2.5, np.float32), 256.0)
    (tmp_path / "c.npy").write_bytes(b"\x93NUMPY garbage")
    np.save(tmp_path / "d.npy", np.zeros((2, 3, 4)))
    got = read_prediction(tmp_path / "a.npy", 1000.0)
    assert got.dtype == np.float32 and got.shape == (3, 4) and (got == 2.5).all()
    assert (read_prediction(tmp_path / "b.png", 256.0) == 2.5).all()
    with pytest.raises(DataError, match=r"c.npy: unreadable \("):
        read_prediction(tmp_path / "c.npy", 1000.0)
    with pytest.raises(DataError, match=r"d.npy: expected an \(H, W\) depth map in metres, got shape \(2, 3, 4\)"):
        read_prediction(tmp_path / "d.npy", 1000.0)
    np.save(tmp_path / "b.npy", np.ones((3, 4)))
    assert prediction_file(tmp_path, "b") == tmp_path / "b.npy"  # .npy before .png
    assert prediction_file(tmp_path, "x") is None


def test_score_keeps_the_frames_index_the_region_and_names_only_the_first_of_many(tmp_path, caplog):
    """Five frames uncropped (``border=null``): the region (the Eigen crop) is where a prediction is scored,
    a frame scored alone keeps its own index and name, and long lists of files are cut to their first three."""
    import logging

    root = write_nyu_sync(tmp_path / "nyu", {"a": 5})
    (root / "test.txt").write_text((root / "train.txt").read_text())
    names = [f"a/rgb_{k:05d}" for k in range(5)]
    region = np.zeros((480, 640), bool)
    region[45:471, 41:601] = True  # data.protocol.region=eigen_nyu on the 480 x 640 frame
    preds = tmp_path / "preds"
    (preds / "a").mkdir(parents=True)
    truth = read_depth_png(root / "a" / "sync_depth_00004.png", 1000.0)
    np.save(preds / f"{names[4]}.npy", np.where(region, 1.1, 3.0) * np.where(truth > 0, truth, 2.0))
    extra = ("data.dataset.border=null", "invalid_predictions=clip")
    with pytest.raises(DataError) as err:
        _score(root, preds, tmp_path / "p.json", *extra)
    assert str(err.value) == (
        f"predictions={preds}: no prediction for 4 of 5 test frames, e.g. {preds / names[0]}.png|.npy, "
        f"{preds / names[1]}.png|.npy, {preds / names[2]}.png|.npy; allow_missing=true scores the others"
    )
    scored = _score(root, preds, tmp_path / "p.json", *extra, "allow_missing=true")
    assert scored["test"]["abs_rel"] == pytest.approx(0.1, rel=1e-5)  # the frame's border, 3x off, not scored
    assert scored["protocol"]["prediction"] == {
        "resolution": "as saved",
        "to_ground_truth": "resized to each frame bilinearly in log depth (depth_lightning.score), aligned as the "
        "card's alignment says, clipped to [min_depth, cap]; ground truth valid where min_depth < g < cap, "
        "finite, inside the region",
        "invalid_predictions": "clip", "files_with_invalid_pixels": 0, "invalid_pixels": 0, "files_resized": 0,
    }  # fmt: skip
    card, rows = read_per_image_csv(scored["per_image"])
    assert [r["frame"] for r in rows] == [names[4]] and card["frames_left_out"] == 4
    half = tmp_path / "half"  # four predictions at half the frame's size: resized, the first three named
    (half / "a").mkdir(parents=True)
    for name in names[1:]:
        np.save(half / f"{name}.npy", np.full((240, 320), 2.0, np.float32))
    with caplog.at_level(logging.WARNING):
        _score(root, half, tmp_path / "h.json", *extra, "allow_missing=true")
    shown = ", ".join(f"{half / n}.npy (240x320 -> 480x640)" for n in names[1:4])
    assert f"4 prediction(s) resized to their frame (bilinear in log depth): {shown}" in caplog.messages


def test_a_relative_map_is_resized_linearly_and_a_metric_one_in_log_depth_before_scoring():
    """_scorable, the step between a saved file and the evaluator: an affine alignment's map (any sign) is
    resized in its values, a metric map in log depth, each against bilinear_by_hand."""
    from depth_lightning.evaluation.alignment import Alignment
    from depth_lightning.evaluation.saved import _scorable
    from tests.helpers import bilinear_by_hand

    small = np.array([[-1.0, 2.0], [4.0, 8.0]], np.float32)
    relative = _scorable(small, (4, 4), Alignment("scale_shift"))
    np.testing.assert_allclose(relative, bilinear_by_hand(small.astype(np.float64), (4, 4)), rtol=1e-6)
    metric = _scorable(np.abs(small), (4, 4), Alignment())
    expected = np.exp(bilinear_by_hand(np.log(np.abs(small).astype(np.float64)), (4, 4)))
    np.testing.assert_allclose(metric, expected, rtol=1e-6)


def test_the_data_configs_protocol_is_the_one_scored(nyu, tmp_path):
    root, pairs = nyu
    folder = tmp_path / "p"
    for rgb, depth in pairs:
        (folder / rgb).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(root / depth, folder / f"{rgb.rsplit('.', 1)[0]}.png")
    scored = _score(root, folder, tmp_path / "s.json", "invalid_predictions=clip", "data.protocol.caps=[8.0,5.0]")
    assert scored["protocol"]["caps"] == [8.0, 5.0] and scored["test"]["cap5/abs_rel"] == 0  # both caps scored


def test_refusals_count_the_predictions_scored_and_name_the_folder(nyu, tmp_path):
    root, pairs = nyu
    name = pairs[1][0].rsplit(".", 1)[0]
    bad = tmp_path / "bad"
    (bad / name).parent.mkdir(parents=True)
    truth = read_depth_png(root / pairs[1][1], 1000.0)
    np.save(bad / f"{name}.npy", np.where(truth > 0, truth, np.nan))  # holes as NaN; the other frame missing
    with pytest.raises(DataError) as err:
        _score(root, bad, tmp_path / "b.json", "allow_missing=true")
    assert str(err.value).startswith(f"1 of 1 predictions hold NaN, inf, zero or negative depth: {bad / name}.npy (")
    np.save(bad / f"{name}.npy", np.where(truth > 0, truth, 2.0) * 1000)  # millimetres saved as metres
    with pytest.raises(DataError) as err:
        _score(root, bad, tmp_path / "b.json", "allow_missing=true")
    assert str(err.value).startswith(f"predictions={bad}: the predictions' median depth is 1e+03 times")
