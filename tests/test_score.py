"""Scoring saved depth maps of any method under the suite's protocol (python -m depth_lightning.score)."""

import json
import math
import shutil

import numpy as np
import pytest

from depth_lightning.data.io import read_depth_png
from depth_lightning.evaluation.per_image import read_per_image_csv
from depth_lightning.score import score_and_record
from tests.datasets import write_nyu_sync
from tests.helpers import composed_for, run_module


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
    _score(root, exact, tmp_path / "exact.json")  # the score command's own steps
    perfect = json.loads((tmp_path / "exact.json").read_text())["test"]
    assert perfect["images"] == 2
    assert perfect["abs_rel"] == 0 and perfect["rmse"] == 0 and perfect["d1"] == 1
    _score(root, scaled, tmp_path / "scaled.json")
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
    _score(root, partial, tmp_path / "p.json", "allow_missing=true")
    assert json.loads((tmp_path / "p.json").read_text())["test"]["images"] == 1
