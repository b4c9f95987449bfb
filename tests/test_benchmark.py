"""python -m depth_lightning.benchmark over the real samples laid out as their datasets (NYU, KITTI, TUM
RGB-D, SUN RGB-D, Middlebury): one table with intervals and cards, the missing datasets named, for a
checkpoint and for another method's saved maps; the zero-shot configs find their datasets' layouts."""

import csv
import json
import shutil

import numpy as np
import pytest

from depth_lightning.benchmark import benchmark
from depth_lightning.core.config import build, compose_data, data_configs, plain
from depth_lightning.core.errors import ConfigError
from depth_lightning.evaluation.per_image import read_per_image_csv
from tests.datasets import write_tum
from tests.helpers import SHARED, composed_for

REAL = SHARED / "realdata"
pytestmark = pytest.mark.skipif(not (REAL / "other").is_dir(), reason=f"real samples not present at {REAL}")
FRAMES = {"nyu_sync": 3, "kitti": 3, "tum": 1, "sun_rgbd": 1, "middlebury": 1}


@pytest.fixture(scope="module")
def layout(tmp_path_factory):
    """The real samples laid out as each dataset publishes them; ``{dataset: [overrides]}``."""
    base = tmp_path_factory.mktemp("datasets")
    nyu = base / "nyu"
    shutil.copytree(REAL / "nyu" / "sync" / "metric3d_nyu_demo", nyu)
    lines = "".join(f"rgb/rgb_{k}.jpg depth/sync_depth_{k}.png 518.8579\n" for k in ("00000", "00050", "00100"))
    (nyu / "test.txt").write_text(lines)
    drive, gt = "2011_09_26/2011_09_26_drive_0001_sync", "2011_09_26_drive_0001_sync/proj_depth/groundtruth/image_02"
    kitti_list = base / "kitti_test.txt"
    kitti_list.write_text(
        "".join(f"{drive}/image_02/data/{k:010d}.png {gt}/{k:010d}.png 721.5377\n" for k in (5, 50, 100))
    )
    write_tum(
        base / "tum", REAL / "other" / "tum_rgbd" / "TUM_color.png", REAL / "other" / "tum_rgbd" / "TUM_depth.png"
    )
    sun = base / "sun" / "kv1" / "b3dodata" / "img_0063"
    for sub, name, suffix in (("image", "SUN_color.jpg", ".jpg"), ("depth", "SUN_depth.png", ".png")):
        (sun / sub).mkdir(parents=True)
        shutil.copy(REAL / "other" / "sun_rgbd" / name, sun / sub / f"img_0063{suffix}")
    middlebury = base / "middlebury"
    shutil.copytree(REAL / "other" / "middlebury2014", middlebury)
    return {
        "nyu_sync": [f"dataset.root={nyu}", *(f"dataset.{s}_list={nyu / 'test.txt'}" for s in ("test", "train"))],
        "kitti": [
            f"dataset.root={REAL / 'kitti' / 'raw'}", "dataset.gt=annotated",
            f"dataset.annotated_root={REAL / 'kitti' / 'data_depth_annotated'}",
            f"dataset.test_list={kitti_list}", f"dataset.train_list={kitti_list}",
        ],
        "tum": [f"dataset.root={base / 'tum'}"],
        "sun_rgbd": [f"dataset.root={base / 'sun'}"],
        "middlebury": [f"dataset.root={middlebury}"],
    }  # fmt: skip


def _run(tmp_path, layout, *extra):
    args = [f"+overrides.{name}=[{','.join(repr(x) for x in o)}]" for name, o in layout.items()]
    names = ",".join([*layout, "diode"])
    return benchmark(composed_for("benchmark", tmp_path / "run", f"datasets=[{names}]", *args, *extra))


def test_a_checkpoint_is_benchmarked_on_every_present_dataset_with_intervals_and_cards(
    tiny_checkpoint, tmp_path, layout
):
    summary = _run(tmp_path, layout, f"ckpt_path={tiny_checkpoint}", "wandb=true")
    out = tmp_path / "run"
    assert [r["dataset"] for r in summary["rows"]] == list(FRAMES)
    assert list(summary["missing"]) == ["diode"] and "data/diode does not exist" in summary["missing"]["diode"]
    text = (out / "benchmark.md").read_text()
    assert "Not evaluated:\n\n- diode: not found" in text
    with (out / "benchmark.csv").open() as f:
        table = {r["dataset"]: r for r in csv.DictReader(f)}
    for name, frames in FRAMES.items():
        card, rows = read_per_image_csv(out / name / "per_image.csv")
        assert card["dataset"] == name and card["frames_evaluated"] == frames == len(rows)
        assert card["alignment"]["mode"] == "none"
        row = table[name]
        # the table's numbers are the mean of the per-image column (per-image aggregation), inside their interval
        for metric in ("d1", "abs_rel", "silog"):
            mean = np.mean([float(r[f"soft/{metric}"]) for r in rows])
            assert float(row[metric]) == pytest.approx(mean, rel=1e-12)
            assert float(row[f"{metric}_low"]) <= float(row[metric]) <= float(row[f"{metric}_high"])
        assert f"| {name} | {card.get('protocol_name', 'default')} | none | {frames} | {float(row['d1']):.4f} [" in text
    # each protocol as its config says: SUN RGB-D is ZoeDepth's eigen crop in pixels, up to 8 m
    sun, _ = read_per_image_csv(out / "sun_rgbd" / "per_image.csv")
    assert sun["protocol_name"] == "zoedepth" and sun["region"]["box"] == [45, 471, 41, 601] and sun["caps"] == [8.0]
    assert "bit" in sun["ground_truth"] or "png_bitshift" in sun["ground_truth"]
    tum, _ = read_per_image_csv(out / "tum" / "per_image.csv")
    assert tum["list"]["found_by"] == "*/rgb.txt" and "scale=5000.0" in tum["ground_truth"]
    assert (out / "benchmark_d1.png").stat().st_size > 1000
    from tests.wandb_reader import logged

    history = logged(next((out / "wandb").glob("offline-run-*")))["history"]
    assert history[0]["benchmark/table/_type"] == "table-file" and history[0]["benchmark/table/nrows"] == len(FRAMES)


def _save_scaled_truth(layout, folder, factor):
    """Another method's saved maps: each test frame's ground truth x ``factor`` as .npy, named as score expects."""
    for name, overrides in layout.items():
        dm = build(plain(compose_data(name, overrides)), "data")
        dm.setup("test")
        ds = dm.datasets["test"]
        for i in range(len(ds)):
            depth = ds.load(i)[1]
            path = folder / name / f"{ds.frame_name(i)}.npy"
            path.parent.mkdir(parents=True, exist_ok=True)
            np.save(path, np.where(depth > 0, depth * factor, 1.0).astype(np.float32))


def test_saved_predictions_are_benchmarked_per_dataset_and_aligned(tmp_path, layout):
    _save_scaled_truth(layout, tmp_path / "pred", 1.3)
    summary = _run(tmp_path, layout, f"predictions={tmp_path / 'pred'}", "alignment.mode=median")
    assert [r["dataset"] for r in summary["rows"]] == list(FRAMES)
    for row in summary["rows"]:
        assert row["alignment"] == "median" and row["abs_rel"] < 1e-6 and row["d1"] == 1, row["dataset"]
        _, rows = read_per_image_csv(tmp_path / "run" / row["dataset"] / "per_image.csv")
        assert all(float(r["predictions/scale"]) == pytest.approx(1 / 1.3, rel=1e-6) for r in rows)
    saved = json.loads((tmp_path / "run" / "benchmark.json").read_text())
    assert saved["missing"]["diode"].startswith("not found")


def test_benchmark_settings_are_refused_by_name(tmp_path):
    cfg = composed_for("benchmark", tmp_path / "r")
    assert set(cfg.roots) == set(cfg.protocols) == set(data_configs())  # roots.<any>= works without a +
    with pytest.raises(ConfigError, match=r"give ckpt_path=<checkpoint> or predictions="):
        benchmark(composed_for("benchmark", tmp_path / "r"))
    with pytest.raises(ConfigError, match=r"datasets: \['nyuv2'\] — each must be a data config"):
        benchmark(composed_for("benchmark", tmp_path / "r", f"predictions={tmp_path}", "datasets=[nyuv2]"))
    with pytest.raises(ConfigError, match=r"roots.eth3d: not one of datasets=\['tum'\]"):
        benchmark(
            composed_for("benchmark", tmp_path / "r", f"predictions={tmp_path}", "datasets=[tum]", "roots.eth3d=/x")
        )
    with pytest.raises(
        ConfigError, match=r"data.protocol='marigold' is not one of this dataset's protocols \(kinect\)"
    ):
        benchmark(
            composed_for(
                "benchmark",
                tmp_path / "r",
                f"predictions={tmp_path}",
                "datasets=[tum]",
                f"roots.tum={tmp_path}",
                "protocols.tum=marigold",
            )
        )


def test_evaluate_scores_a_checkpoint_on_a_zero_shot_dataset_aligned(tiny_checkpoint, tmp_path, layout, caplog):
    from depth_lightning.evaluate import evaluate

    out = tmp_path / "eval.json"
    root = layout["tum"][0].split("=", 1)[1]
    evaluate(
        composed_for(
            "evaluate", tmp_path / "run", f"ckpt_path={tiny_checkpoint}", "data=tum", f"data.dataset.root={root}",
            "alignment.mode=median", f"output={out}",
        )
    )  # fmt: skip
    assert "the baselines are not scored" in caplog.text  # TUM has no training list to fit them on
    card, rows = read_per_image_csv(tmp_path / "run" / "per_image.csv")
    assert card["dataset"] == "tum" and card["alignment"]["mode"] == "median" and len(rows) == 1
    # the fitted scale of each decoder is in the CSV; median scaling has no shift
    assert float(rows[0]["soft/scale"]) > 0 and float(rows[0]["hard/scale"]) > 0 and rows[0]["soft/shift"] == "0.0"
    metrics = json.loads(out.read_text())["test"]
    assert metrics["soft/d1"] == pytest.approx(float(rows[0]["soft/d1"]), rel=1e-12)
