"""Scoring saved depth maps of any method under the suite's protocol (python -m depth_lightning.score)."""

import json
import math
import shutil

import numpy as np
import pytest

from depth_lightning.core.errors import ConfigError, DataError
from depth_lightning.data.io import read_depth_png, write_depth_png
from depth_lightning.evaluation.per_image import read_per_image_csv
from depth_lightning.score import score_and_record
from tests.datasets import write_nyu_sync
from tests.helpers import SHARED, composed_for, run_module

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
