"""The evaluation engine: one Evaluator owns every number from the batch to the table, and training's
test, ``evaluate`` and ``score`` drive it alike."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from depth_lightning.core.config import build
from depth_lightning.core.errors import DataError, NonFiniteError
from depth_lightning.evaluation.evaluator import Evaluator, evaluator_for
from depth_lightning.evaluation.metrics import METRIC_NAMES, DepthMetrics
from depth_lightning.evaluation.per_image import read_sums
from depth_lightning.evaluation.protocol import EvalProtocol
from tests.helpers import composed_for


def _batches(n=3, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        g = torch.from_numpy(rng.uniform(0.5, 60.0, (2, 24, 32))).float()
        g[0, :3] = 0  # invalid rows
        pred = g.clamp_min(1) * torch.from_numpy(rng.lognormal(0, 0.2, (2, 24, 32))).float()
        out.append(({"depth": g, "index": torch.tensor([2 * i, 2 * i + 1])}, pred[:, ::2, ::2]))
    return out


def test_the_evaluator_scores_each_prediction_under_every_cap_as_the_metric_does():
    protocol = EvalProtocol("full", caps=(80.0, 50.0))
    evaluator = Evaluator(protocol, predictions=["soft", "hard"], per_image=False)
    references = {cap: DepthMetrics(1e-3, cap) for cap in protocol.caps}
    for batch, pred in _batches():
        evaluator.process(batch, {"soft": pred, "hard": pred * 1.1})
        for metric in references.values():
            metric.update(pred, batch["depth"], ids=batch["index"])
    result = evaluator.evaluate()
    for cap, prefix in ((80.0, ""), (50.0, "cap50/")):
        expected = references[cap].compute()
        for name in METRIC_NAMES:
            assert result.values[f"{prefix}soft/{name}"] == float(expected[name]), (cap, name)
    assert result.values["abs_rel"] == result.values["soft/abs_rel"]  # the headline, bare
    assert result.values["hard/abs_rel"] != result.values["soft/abs_rel"]
    assert result.images == 6 and result.pixels("soft") == result.pixels("hard")
    assert result.pixels("cap50/soft") < result.pixels("soft")  # the far pixels are left out at 50 m
    evaluator.reset()  # forgets everything: the same batches give the same numbers again
    for batch, pred in _batches():
        evaluator.process(batch, {"soft": pred, "hard": pred * 1.1})
    assert evaluator.evaluate().values == result.values


def test_baselines_are_scored_on_the_predictions_pixels_at_their_resolution():
    maps = {"constant": np.full((24, 32), 5.0)}
    evaluator = Evaluator(EvalProtocol("full", caps=(80.0,)), predictions=["soft"], baselines=maps, per_image=False)
    for batch, pred in _batches():
        evaluator.process(batch, {"soft": pred})
    result = evaluator.evaluate()
    assert result.scored == ("soft", "constant") and result.pixels("constant") == result.pixels("soft")
    reference = DepthMetrics(1e-3, 80.0)  # a 5 m constant, brought to the 12x16 output, then upsampled
    for batch, pred in _batches():
        reference.update(torch.full_like(pred, 5.0), batch["depth"], ids=batch["index"])
    assert result.values["constant/abs_rel"] == pytest.approx(float(reference.compute()["abs_rel"]), rel=1e-12)


def test_an_evaluation_without_a_valid_pixel_names_the_split_and_the_dataset():
    evaluator = Evaluator(EvalProtocol("full", caps=(10.0,)), split="val", dataset="nyu_sync", predictions=["soft"])
    evaluator.process({"depth": torch.zeros(2, 4, 4)}, {"soft": torch.ones(2, 4, 4)})
    with pytest.raises(
        DataError, match=r"validation split of nyu_sync: no image holds enough valid .*2 image\(s\) empty"
    ):
        evaluator.evaluate()


@pytest.mark.slow
def test_training_evaluate_and_score_give_identical_per_image_rows_for_the_same_predictions(tiny_checkpoint, tmp_path):
    """The same checkpoint's predictions on the same 8 test frames, through the three entry points."""
    import lightning as L

    from depth_lightning.evaluate import evaluate
    from depth_lightning.inference.loading import checkpoint_record, load_model
    from depth_lightning.module import EvaluationModule
    from depth_lightning.score import score_and_record

    eight = ["+data.dataset.test_length=8", "baselines=false", "trainer.precision=32-true"]  # as the Trainer below
    module = EvaluationModule(load_model(tiny_checkpoint))
    data = {**checkpoint_record(tiny_checkpoint)["data"], "height": 64, "width": 96}
    data["dataset"] = {**data["dataset"], "test_length": 8}
    datamodule = build(data, "data")
    # 1. training's test: the module drives an Evaluator under the Trainer
    evaluator = evaluator_for(datamodule, "test", module.bins.num_bins, module.net.decoder)
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False)
    trained = module.test_with(trainer, datamodule, evaluator).record.sums
    # 2. evaluate
    evaluate(composed_for("evaluate", tmp_path / "eval", f"ckpt_path={tiny_checkpoint}", *eight))
    _, evaluated = read_sums(tmp_path / "eval")
    # 3. score: the model's soft depth, saved at each frame's size as another method would save it
    folder = tmp_path / "predictions"
    folder.mkdir()
    frames = datamodule.datasets["test"]
    with torch.no_grad():
        for batch in datamodule.test_dataloader():  # the batches the test saw: float32 results depend on them
            soft = module.bins.decode(module(batch["image"]))["soft"]
            full = F.interpolate(soft[:, None], size=batch["depth"].shape[-2:], mode="bilinear", align_corners=False)
            for i, depth in zip(batch["index"].tolist(), full[:, 0], strict=True):
                np.save(folder / f"{frames.frame_name(i)}.npy", depth.numpy())
    score_args = [f"predictions={folder}", "data=synthetic", "data.height=64", "data.width=96"]
    score_args.append("data.dataset.test_length=8")
    score_and_record(composed_for("score", tmp_path / "score", *score_args, f"output={tmp_path / 's.json'}"))
    _, scored = read_sums(tmp_path / "score")
    assert len(trained["soft"][0]) == 8
    for key in ("soft", "hard"):
        np.testing.assert_array_equal(trained[key][0], evaluated[key][0])
        np.testing.assert_array_equal(trained[key][1], evaluated[key][1])  # bit for bit
    np.testing.assert_array_equal(trained["soft"][0], scored["predictions"][0])
    np.testing.assert_array_equal(trained["soft"][1], scored["predictions"][1])


def test_a_non_finite_or_non_positive_prediction_is_refused_naming_the_images():
    evaluator = Evaluator(EvalProtocol(caps=[10.0]), split="test", dataset="nyu", predictions=["soft"])
    depth = torch.full((3, 4, 4), 2.0)
    pred = depth.clone()
    pred[1, 0, :2] = float("nan")
    pred[2, 3, 3] = -1.0
    named = r"nyu test: the 'soft' predictions .* in image\(s\) 5 \(2 px\), 6 \(1 px\)"
    with pytest.raises(NonFiniteError, match=named):
        evaluator.process({"depth": depth, "index": torch.tensor([4, 5, 6])}, {"soft": pred})


def test_a_metric_key_is_formatted_and_parsed_in_one_place():
    from depth_lightning.evaluation.keys import MetricKey

    for key, parts in {
        "val/abs_rel": MetricKey("abs_rel", split="val"),
        "test/cap50/hard/rmse": MetricKey("rmse", "hard", 50.0, "test"),
        "cap80/soft/d1": MetricKey("d1", "soft", 80.0),
        "constant/abs_rel": MetricKey("abs_rel", "constant"),
        "pixel_acc": MetricKey("pixel_acc"),
        "test/cap0.5/soft/d1": MetricKey("d1", "soft", 0.5, "test"),
    }.items():
        assert MetricKey.parse(key) == parts and str(parts) == key
    scope = MetricKey.parse("cap50/soft", scope=True)
    assert scope == MetricKey(None, "soft", 50.0) and scope.of("rmse") == "cap50/soft/rmse"
    assert MetricKey.parse("soft", scope=True).of("d1") == "soft/d1"
    assert MetricKey.parse("test/cap50/hard/rmse").scope == scope.__class__(None, "hard", 50.0)
    assert MetricKey.parse("val/rmse").split == "val" and MetricKey.parse("val", scope=True).prediction == "val"
    assert MetricKey.parse("test/cap50/hard/rmse").of("d1") == "test/cap50/hard/d1"  # of() keeps the split
    for bad in ("", "val/", "a/b/c", "test/cap50/a/b/c", "/abs_rel", "soft/"):
        with pytest.raises(ValueError, match="is not a metric key"):
            MetricKey.parse(bad)


def test_evaluator_for_builds_the_splits_evaluator_from_the_datamodule():
    from depth_lightning.core.config import build, compose_config
    from depth_lightning.evaluation.alignment import Alignment
    from depth_lightning.evaluation.evaluator import evaluator_for

    datamodule = build(compose_config("data=synthetic", "data.protocol.caps=[10.0,5.0]").data, "data")
    maps = {"constant": np.full((4, 6), 3.0, np.float32)}
    test = evaluator_for(datamodule, "test", 12, "hard", maps, Alignment("median"), "bf16-mixed")
    assert (test.split, test.dataset, test.headline, test.precision) == ("test", datamodule.name, "hard", "bf16-mixed")
    assert test.protocol is datamodule.protocol and test.protocol.caps == (10.0, 5.0) and test.per_image
    assert test.pixel_acc is not None and test.pixel_acc.num_classes == 12 and test.alignment.mode == "median"
    assert list(test.baselines) == ["constant"] and test.predictions == ("soft", "hard")
    val = evaluator_for(datamodule, "val")
    assert (val.split, val.headline, val.per_image, val.pixel_acc, val.baselines) == ("val", "soft", False, None, {})
    assert not val.alignment.active and val.precision is None
    bare = evaluator_for(None, "test")  # no datamodule: the default protocol
    assert bare.protocol == EvalProtocol() and bare.dataset == "the data"


def test_a_split_with_nothing_to_score_says_which_and_why():
    from depth_lightning.core.errors import DataError

    ev = Evaluator(EvalProtocol(min_pixels=3), split="val", dataset="nyu_sync", predictions=["soft"])
    depth = torch.zeros(2, 4, 4)
    depth[1, 0, :2] = 2.0  # the second image holds two valid pixels, fewer than 3
    ev.process({"depth": depth}, {"soft": torch.full((2, 4, 4), 2.0)})
    with pytest.raises(DataError) as err:
        ev.evaluate()
    assert str(err.value) == (
        "validation split of nyu_sync: no image holds enough valid ground-truth pixels (1 image(s) empty under "
        "0.001 < depth < 10.0 and its region, 1 with fewer than 3 valid pixels (min_pixels)): there is nothing "
        "to score; check its depth files, their unit, and data.protocol"
    )
    ev = Evaluator(EvalProtocol(), split="other", dataset="x", predictions=["soft"])
    ev.process({"depth": torch.zeros(1, 2, 2)}, {"soft": torch.ones(1, 2, 2)})
    with pytest.raises(DataError, match=r"^other split of x: no image .*\(1 image\(s\) empty under .* region\)"):
        ev.evaluate()


def test_an_evaluation_of_named_frames_names_what_it_left_out_and_cards_it(tmp_path, caplog):
    """Frames without a valid pixel (more than ten: the list is cut) and below ``min_pixels`` named by
    the dataset, each scored image named with its list line, the card's counts, precision and alignment,
    the AUSE of each decoder, and the interval settings passed through."""
    import logging

    from depth_lightning.core.config import compose_config
    from depth_lightning.evaluation.alignment import Alignment
    from tests.datasets import write_nyu_sync

    root = write_nyu_sync(tmp_path / "nyu", {"a": 14}, size=(24, 32))
    lines = (root / "train.txt").read_text()
    (root / "all.txt").write_text(lines)
    data = compose_config("data=nyu_sync", f"data.dataset.root={root}", f"data.dataset.train_list={root / 'all.txt'}",
                          f"data.dataset.test_list={root / 'all.txt'}", "data.dataset.fill=none").data  # fmt: skip
    frames = build(data, "data").build("test")
    protocol = EvalProtocol("full", caps=(10.0,), min_pixels=3)
    depth = torch.zeros(14, 6, 8)
    depth[11, 0, :2] = 2.0  # two valid pixels: fewer than 3
    depth[12:] = torch.linspace(1.0, 9.0, 48).reshape(6, 8)
    pred = depth.clamp_min(1.0) * 1.1
    uncertainty = torch.rand(14, 6, 8, generator=torch.Generator().manual_seed(0))
    evaluator = Evaluator(protocol, predictions=["soft", "hard"], precision="bf16-mixed")
    evaluator.process(
        {"depth": depth, "index": torch.arange(14)}, {"soft": pred, "hard": pred, "uncertainty": uncertainty}
    )
    with caplog.at_level(logging.WARNING):
        result = evaluator.evaluate(frames, unscored=("x", "y"))
    empty = [frames.describe(i) for i in range(11)]
    assert (result.split, result.dataset, result.images) == ("test", "the data", 2)
    assert result.empty_frames == empty and result.sparse_frames == [frames.describe(11)]
    cut = f"test: 11 frame(s) without a valid ground-truth pixel, left out of the metrics: {'; '.join(empty[:10])} ..."
    assert cut in caplog.messages
    sparse = (
        f"test: 1 frame(s) with fewer than 3 valid ground-truth pixels, left out of the metrics: {frames.describe(11)}"
    )
    assert sparse in caplog.messages
    assert result.record.frames[12] == frames.frame_name(12) and result.record.lines[13] == frames.list_line(13) == 14
    card = result.card
    assert (card["frames_evaluated"], card["frames_left_out"], card["frames_below_min_pixels"]) == (2, 14, 1)
    assert (card["min_pixels"], card["precision"]) == (3, "bf16-mixed")
    assert card["alignment"] == Alignment().card()
    evaluator.reset()
    evaluator.process({"depth": depth, "index": torch.arange(14)}, {"soft": pred, "hard": pred})
    told = evaluator.evaluate(frames, prediction={"how": "given"}).card
    assert told["prediction"] == {"how": "given"} and told["frames_left_out"] == 12
    for decoder in ("soft", "hard"):
        ause = result.record.ause(decoder)
        assert set(ause) == {"ause_abs_rel", "ause_rmse"}
        assert {k: result.values[f"{decoder}/{k}"] for k in ause} == ause
    method = {"resamples": 50, "seed": 7, "level": 0.8}
    assert result.intervals(method) == result.record.intervals(50, 7, 0.8) != result.record.intervals(50, 8, 0.8)
    assert result.intervals(method) != result.record.intervals(50, 7, 0.95)

    bare = Evaluator(protocol, predictions=["soft"], per_image=False)  # validation: no card, no curves, no bins
    bare.process({"depth": depth, "index": torch.arange(14)}, {"soft": pred, "uncertainty": uncertainty})
    plain = bare.evaluate(frames)
    assert plain.card is None and not any("ause" in k for k in plain.values) and "pixel_acc" not in plain.values
    assert plain.record.bin_hits is None and result.record.bin_hits is None  # no bins: nothing to count


def test_a_zero_prediction_is_refused_as_non_positive_and_a_baseline_map_is_area_averaged():
    evaluator = Evaluator(EvalProtocol("full", caps=(10.0,)), split="val", dataset="nyu_sync", predictions=["soft"])
    pred = torch.full((2, 4, 4), 2.0)
    pred[1, 0, 0] = 0.0
    with pytest.raises(NonFiniteError) as refused:
        evaluator.process({"depth": torch.ones(2, 4, 4)}, {"soft": pred})
    assert str(refused.value) == (
        "nyu_sync val: the 'soft' predictions hold NaN, inf or non-positive depth in image(s) 1 (1 px) "
        "(index in the split's list); nothing of this split is reported"
    )
    fine = torch.arange(1.0, 17.0).reshape(4, 4)  # predicted at half its resolution: each 2x2 block's mean
    evaluator = Evaluator(EvalProtocol("full", caps=(100.0,)), predictions=["soft"], baselines={"b": fine.numpy()})
    truth = torch.full((1, 4, 4), 5.0)
    evaluator.process({"depth": truth}, {"soft": torch.full((1, 2, 2), 5.0)})
    means = F.avg_pool2d(fine[None, None], 2)[0, 0]
    expected = DepthMetrics(1e-3, 100.0)
    expected.update(F.interpolate(means[None, None], size=(4, 4), mode="bilinear", align_corners=False)[0], truth)
    assert evaluator.evaluate().values["b/abs_rel"] == pytest.approx(float(expected.compute()["abs_rel"]), rel=1e-6)


def test_the_card_counts_min_pixels_above_one_and_gives_the_resolution_and_the_fits_limit(tmp_path):
    """What the card says as settings change: min_pixels above 1 only, the predictions' resolution, an
    alignment fitted under the protocol's limit; no fit record without an alignment; the pooled aggregation."""
    from depth_lightning.core.config import compose_config
    from depth_lightning.evaluation.alignment import Alignment

    frames = build(compose_config("data=synthetic", "data.dataset.test_length=4").data, "data").build("test")
    depth = torch.linspace(1.0, 9.0, 4 * 6 * 8).reshape(4, 6, 8)
    for min_pixels, alignment, aggregation in ((1, None, "per_image"), (2, Alignment("scale", min_pixels=2), "pooled")):
        protocol = EvalProtocol("full", caps=(10.0,), min_pixels=min_pixels, fit_max_resolution=4,
                                aggregation=aggregation)  # fmt: skip
        evaluator = Evaluator(protocol, predictions=["soft"], alignment=alignment)
        evaluator.process({"depth": depth, "index": torch.arange(4)}, {"soft": depth[:, ::2, ::2] * 1.1})
        result = evaluator.evaluate(frames)
        assert result.card["prediction"]["resolution"] == [3, 4] and result.record.aggregation == aggregation
        assert ("min_pixels" in result.card) == (min_pixels > 1)
        if alignment is None:
            assert result.record.fits == {} and result.card["alignment"] == {
                "mode": "none",
                "what": "metric predictions, scored as they are",
            }
        else:
            assert result.card["min_pixels"] == 2 and result.card["frames_below_min_pixels"] == 0
            assert "longer side <= 4" in result.card["alignment"]["fitted_on"]  # the protocol's limit


def test_exactly_ten_frames_left_out_are_all_named(caplog):
    import logging

    evaluator = Evaluator(EvalProtocol("full", caps=(10.0,)), split="val", predictions=["soft"])
    depth = torch.zeros(11, 2, 2)
    depth[10] = 2.0
    evaluator.process({"depth": depth}, {"soft": torch.full((11, 2, 2), 2.0)})
    with caplog.at_level(logging.WARNING):
        evaluator.evaluate()
    named = "; ".join(f"sample {i}" for i in range(10))
    assert caplog.messages == [f"val: 10 frame(s) without a valid ground-truth pixel, left out of the metrics: {named}"]
