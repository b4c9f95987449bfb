"""The evaluation protocol: regions on the original frame, applied once; caps; the same pixels for
the model, both decoders and the baselines."""

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from depth_lightning.data.frames import collate_skipping_bad
from depth_lightning.data.io import read_depth_png
from depth_lightning.data.kitti import KITTIEigen, velodyne_depth
from depth_lightning.evaluation.evaluator import Evaluator
from depth_lightning.evaluation.keys import MetricKey, cap_of
from depth_lightning.evaluation.metrics import DepthMetrics
from depth_lightning.evaluation.protocol import EvalProtocol, region_mask
from tests.datasets import project_scan, write_kitti
from tests.helpers import SHARED, built, composed

REAL = SHARED / "realdata" / "kitti"
needs_real = pytest.mark.skipif(not REAL.is_dir(), reason=f"real KITTI samples not present at {REAL}")


def by_hand(rows: slice, cols: slice, shape=(375, 1242)) -> np.ndarray:
    mask = np.zeros(shape, bool)
    mask[rows, cols] = True
    return mask


@pytest.mark.parametrize(
    ("region", "expected", "pixels"),
    [
        # int(0.40810811 * 375) = 153, int(0.99189189 * 375) = 371, int(0.03594771 * 1242) = 44, ... = 1197
        ("garg", by_hand(slice(153, 371), slice(44, 1197)), 218 * 1153),
        # int(0.3324324 * 375) = 124, int(0.91351351 * 375) = 342
        ("eigen", by_hand(slice(124, 342), slice(44, 1197)), 218 * 1153),
        # Sec. 4.2: the lower 256 x 1242 crop
        ("paper", by_hand(slice(375 - 256, 375), slice(0, 1242)), 256 * 1242),
        ("full", by_hand(slice(0, 375), slice(0, 1242)), 375 * 1242),
    ],
)
def test_kitti_regions_equal_masks_written_by_hand(region, expected, pixels):
    mask = region_mask(region, 375, 1242)
    assert mask.sum() == expected.sum() == pixels
    np.testing.assert_array_equal(mask, expected)


def test_nyu_region_is_the_eigen_crop_and_names_are_checked():
    nyu = region_mask("eigen_nyu", 480, 640)
    np.testing.assert_array_equal(nyu, by_hand(slice(45, 471), slice(41, 601), (480, 640)))
    with pytest.raises(ValueError, match="data.protocol.region='kitti'.*garg"):
        region_mask("kitti", 10, 10)
    with pytest.raises(ValueError, match="every cap"):
        EvalProtocol(caps=(0.0005,))


def test_a_region_is_cut_once_to_the_part_of_the_frame_a_dataset_keeps():
    p = EvalProtocol("garg", caps=(80.0, 50.0))
    box = (5, 375, 9, 1233)  # a bottom-centre 370x1224 crop of a 375x1242 frame
    np.testing.assert_array_equal(p.mask((375, 1242), box), region_mask("garg", 375, 1242)[5:, 9:1233])
    keys = [str(MetricKey("abs_rel", "soft", cap_of(p.caps, i))) for i in range(len(p.caps))]
    assert keys == ["soft/abs_rel", "cap50/soft/abs_rel"]  # the headline cap bare, the others named


# the regions of the table above, by hand; the ground truth by tests.datasets' own projection
HAND_REGIONS = {"garg": by_hand(slice(153, 371), slice(44, 1197)), "paper": by_hand(slice(119, 375), slice(0, 1242))}


def _reference_depth(scan) -> np.ndarray:
    return project_scan(np.fromfile(scan, np.float32).reshape(-1, 4))


@pytest.fixture(scope="module")
def kitti(tmp_path_factory):
    return write_kitti(tmp_path_factory.mktemp("kitti"))


@pytest.mark.parametrize("region", ["garg", "paper"])
def test_kitti_evaluation_counts_each_valid_pixel_of_the_region_once(kitti, region):
    """Whole frames (the paper's input), ground truth at the frame's own size, the region of the
    original frame: a metric over the dataset's items scores exactly the pixels counted by hand."""
    protocol = EvalProtocol(region, caps=(80.0,))
    ds = KITTIEigen(kitti["raw"], None, kitti["monodepth2"], split="test", input_size=(94, 310), protocol=protocol)
    item = ds[0]
    gt = _reference_depth(ds.samples[0]["depth"][2])
    assert item["depth"].shape == (375, 1242)
    np.testing.assert_allclose(item["depth"].numpy(), gt, rtol=1e-6)
    expected = int(((gt > 1e-3) & (gt < 80) & HAND_REGIONS[region]).sum())
    metric = DepthMetrics(1e-3, 80.0)
    metric.update(torch.full((1, 94, 310), 10.0), item["depth"][None], item["eval_mask"][None])
    assert int(metric.images()[1][:, 0].sum()) == expected and expected > 1000


@pytest.mark.slow  # a model over KITTI frames: not for every mutant (the regions are pinned by the tests above)
def test_model_both_decoders_and_baselines_are_scored_on_the_same_pixels(kitti):
    from depth_lightning.evaluation.baselines import evaluate_with_baselines, fit_baselines

    cfg, datamodule, module, _ = built(
        "data=kitti",
        f"data.dataset.root={kitti['raw']}",
        f"data.dataset.train_list={kitti['monodepth2']}",
        f"data.dataset.val_list={kitti['bts']}",  # the fixture has one drive: nothing to hold out
        f"data.dataset.test_list={kitti['monodepth2']}",
        "data.dataset.fill=none",
        "data.height=64",
        "data.width=208",
        "data.protocol.region=paper",
    )
    baselines = fit_baselines(datamodule.training_depth_sample())
    assert baselines["constant"].shape == (64, 208)  # the input size, not the 375x1242 ground truth
    test = datamodule.build("test")
    loader = DataLoader(test, batch_size=1, collate_fn=collate_skipping_bad)
    table = evaluate_with_baselines(module, loader, baselines, datamodule.protocol, "kitti")
    expected = 0
    for i in range(len(test)):
        gt = _reference_depth(test.samples[i]["depth"][2])
        expected += int(((gt > 1e-3) & (gt < 80) & HAND_REGIONS["paper"]).sum())
    assert {name: row["pixels"] for name, row in table.items()} == dict.fromkeys(table, expected)


@pytest.mark.parametrize(
    ("overrides", "region"),
    [(["data=kitti"], "garg"), (["+experiment=kitti_paper"], "paper"), (["+experiment=kitti_ablation"], "paper")],
)
def test_every_kitti_evaluation_reports_both_caps(overrides, region):
    from depth_lightning.core.config import build
    from depth_lightning.evaluation.evaluator import Evaluator

    protocol = build(composed(*overrides).data.protocol, "data.protocol")
    assert protocol.caps == (80.0, 50.0) and protocol.region == region
    # an evaluation under it reports the headline cap bare and the 50 m cap by name, each on its own pixels
    evaluator = Evaluator(protocol, predictions=["soft"], per_image=False)
    truth = torch.tensor([[[20.0, 60.0, 65.0, 70.0]]])  # metres: one pixel inside 50 m, three beyond; x 1.1 < 80
    evaluator.process({"depth": truth}, {"soft": truth * 1.1})
    values = evaluator.evaluate().values
    assert values["soft/abs_rel"] == pytest.approx(0.1) and values["cap50/soft/abs_rel"] == pytest.approx(0.1)
    assert values["soft/rmse"] == pytest.approx(np.sqrt(np.mean((truth.numpy() * 0.1) ** 2)), rel=1e-6)
    assert values["cap50/soft/rmse"] == pytest.approx(2.0, rel=1e-6)  # the 20 m pixel alone, 22 m predicted


def test_velodyne_pixel_rule_moves_points_one_pixel_up_left(kitti, tmp_path):
    from depth_lightning.data.kitti import velodyne_projection

    date = kitti["raw"] / "2011_09_26"
    m, _, _ = velodyne_projection(str(date))
    # a point that projects to (u, v) = (600.3, 200.2) at 15 m
    target = np.array([600.3 * 15, 200.2 * 15, 15.0])
    point = np.linalg.solve(m[:, :3], target - m[:, 3])
    scan = tmp_path / "one.bin"
    np.array([[*point, 1.0]], np.float32).tofile(scan)
    rounded = velodyne_depth(date, scan)
    minus_one = velodyne_depth(date, scan, pixel_rule="round_minus_one")
    assert list(zip(*np.nonzero(rounded), strict=True)) == [(200, 600)]
    assert list(zip(*np.nonzero(minus_one), strict=True)) == [(199, 599)]
    with pytest.raises(ValueError, match="data.dataset.velodyne_pixel"):
        velodyne_depth(date, scan, pixel_rule="floor")


@needs_real
def test_real_scan_matches_the_official_depth_map_with_plain_rounding():
    """Drive 0001 frame 5: with plain rounding more projected points agree with the official
    annotated map, and closer, than one pixel up-left of it."""
    date = REAL / "raw" / "2011_09_26"
    scan = date / "2011_09_26_drive_0001_sync" / "velodyne_points" / "data" / "0000000005.bin"
    official = read_depth_png(
        REAL / "data_depth_annotated/train/2011_09_26_drive_0001_sync/proj_depth/groundtruth/image_02/0000000005.png",
        256.0,
    )
    agree = {}
    for rule in ("round", "round_minus_one"):
        d = velodyne_depth(date, scan, pixel_rule=rule)
        both = (d > 0) & (official > 0)
        rel = np.abs(d[both] - official[both]) / official[both]
        agree[rule] = (int((rel < 0.005).sum()), float(np.median(rel)))
    print(f"\nwithin 0.5 % of the official map (pixels, median rel): {agree}")
    assert agree["round"][0] > 1.1 * agree["round_minus_one"][0]
    assert agree["round"][1] < agree["round_minus_one"][1]


def test_kitti_trains_on_filled_maps_and_says_how_to_make_them(kitti, tmp_path):
    from depth_lightning.core.errors import DataError
    from depth_lightning.data.kitti import filled_velodyne_path

    ds = KITTIEigen(kitti["raw"], kitti["monodepth2"], None, input_size=(94, 310), fill="colorization")
    with pytest.raises(DataError, match="python -m depth_lightning.prepare kitti"):
        ds[0]
    filled = filled_velodyne_path(ds.samples[0]["image"])
    filled.parent.mkdir(parents=True, exist_ok=True)
    try:
        Image.fromarray(np.full((375, 1242), 7 * 256, np.uint16)).save(filled)
        np.testing.assert_allclose(ds[0]["depth"].numpy(), 7.0)  # no augmentation: the filled map, resized
    finally:
        filled.unlink()


def test_kitti_frames_without_a_scan_are_counted_and_left_out(kitti, tmp_path, caplog):
    import logging
    import shutil

    raw = tmp_path / "raw"
    shutil.copytree(kitti["raw"], raw)
    (raw / "2011_09_26/2011_09_26_drive_0001_sync/velodyne_points/data/0000000001.bin").unlink()
    with caplog.at_level(logging.INFO):
        for train in (True, False):
            lists = (kitti["monodepth2"], None) if train else (None, kitti["monodepth2"])
            ds = KITTIEigen(raw, *lists, split="train" if train else "test", input_size=(94, 310))
            assert ds.listed == 4 and len(ds) == 3
            assert all(s["image"].stem != "0000000001" for s in ds.samples)
    assert "4 frames listed, 3 with ground truth" in caplog.text


def test_frames_of_different_sizes_in_one_evaluation_batch_are_a_clear_error():
    from depth_lightning.core.errors import DataError

    items = [
        {"image": torch.zeros(3, 8, 8), "depth": torch.zeros(375, 1242), "index": 0},
        {"image": torch.zeros(3, 8, 8), "depth": torch.zeros(370, 1224), "index": 1},
    ]
    with pytest.raises(DataError, match="data.eval_batch_size=1"):
        collate_skipping_bad(items)
    assert collate_skipping_bad(items[:1])["depth"].shape == (1, 375, 1242)


@pytest.mark.parametrize(
    ("region", "size", "box"),
    [
        ("garg", (375, 1242), [153, 371, 44, 1197]),
        ("eigen", (375, 1242), [124, 342, 44, 1197]),
        ("paper", (375, 1242), [119, 375, 0, 1242]),
        ("paper", (200, 300), [0, 200, 0, 300]),  # a frame lower than 256 rows: all of it
        ("full", (10, 20), [0, 10, 0, 20]),
        ("eigen_nyu", (480, 640), [45, 471, 41, 601]),
        ("eigen_nyu", (240, 320), [22, 236, 20, 300]),  # scaled: round(45/2)=22, round(471/2)=236, ...
    ],
)
def test_region_boxes_are_the_published_crops(region, size, box):
    from depth_lightning.evaluation.protocol import region_box

    assert region_box(region, *size) == box


def test_the_protocol_card_says_everything_that_made_a_number_and_compares_by_it():
    from depth_lightning.evaluation.metrics import DEFINITIONS
    from depth_lightning.evaluation.protocol import REGIONS, card_differences, protocol_key

    source = {"list": {"file": "/here/test.txt", "lines": 3, "sha256": "ab"}, "ground_truth": "raw"}
    card = EvalProtocol("garg", 1e-3, (80.0, 50.0)).card("kitti", "test", source, (375, 1242), (94, 310))
    assert card == {
        "dataset": "kitti",
        "split": "test",
        "list": {"file": "/here/test.txt", "lines": 3, "sha256": "ab"},
        "ground_truth": "raw",
        "region": {"name": "garg", "what": REGIONS["garg"], "box": [153, 371, 44, 1197], "original_frame": [375, 1242]},
        "depth_range": [1e-3, 80.0],
        "caps": [80.0, 50.0],
        "prediction": {
            "resolution": [94, 310],
            "to_ground_truth": "depth upsampled bilinearly to each frame's ground-truth resolution, clipped to "
            "[min_depth, cap]; ground truth valid where min_depth < g < cap, finite, inside the region",
        },
        "aggregation": "per_image",
        "metrics": DEFINITIONS,
    }
    assert EvalProtocol().card("x", "val", {}, (4, 4), None)["prediction"]["resolution"] is None
    # where a file lies and how many frames were counted do not make a result another protocol's
    moved = {**card, "list": {**card["list"], "file": "/elsewhere/test.txt"}, "frames_evaluated": 7}
    assert protocol_key(moved) == protocol_key(card) and card_differences(moved, card) == []
    other = EvalProtocol("paper", 1e-3, (80.0, 50.0)).card("kitti", "test", source, (375, 1242), (94, 310))
    differences = card_differences(card, other)
    assert protocol_key(other) != protocol_key(card) and len(differences) == 1
    assert differences[0].startswith("region: {'box': [153, 371, 44, 1197], 'name': 'garg'")
    assert card_differences({"a": 1}, {"b": 2}) == ["a: 1 != None", "b: None != 2"]


def test_protocol_settings_are_normalised_and_checked_by_name():
    p = EvalProtocol("garg", 0.0, [80, 50])  # min_depth 0 is allowed; caps from a list become floats
    assert p.caps == (80.0, 50.0) and all(type(c) is float for c in p.caps)
    with pytest.raises(ValueError, match=r"^data.protocol.caps must hold at least one maximum depth$"):
        EvalProtocol(caps=())
    with pytest.raises(
        ValueError, match=r"^data.protocol: need 0 <= min_depth < every cap, got min_depth=10.0 and caps=\(10.0,\)"
    ):
        EvalProtocol(min_depth=10.0, caps=(10.0,))
    with pytest.raises(ValueError, match=r"^data.protocol.aggregation='mean' is unknown"):
        EvalProtocol(aggregation="mean")
    with pytest.raises(ValueError, match=r"region='x' is unknown; allowed: full, eigen_nyu, eigen_nyu_pixels, garg"):
        EvalProtocol("x")
    # ZoeDepth's eigen crop on DIODE, iBims, SUN RGB-D, Hypersim: NYU's pixel indices on any frame
    expected = np.zeros((768, 1024), dtype=bool)
    expected[45:471, 41:601] = True
    np.testing.assert_array_equal(region_mask("eigen_nyu_pixels", 768, 1024), expected)
    assert region_mask("eigen_nyu", 768, 1024).sum() > expected.sum()  # the scaled crop is another region
    assert region_mask("garg", 375, 1242).dtype == bool


def test_the_box_region_keeps_its_pixels_cut_to_the_frame_and_is_checked_by_value():
    p = EvalProtocol("box", box=[2, 5, 1, 4])
    expected = np.zeros((6, 7), dtype=bool)
    expected[2:5, 1:4] = True  # rows top:bottom, columns left:right: an edge row and column excluded
    np.testing.assert_array_equal(p.mask((6, 7)), expected)
    assert p.box == (2, 5, 1, 4) and all(type(v) is int for v in p.box)
    wide = EvalProtocol("box", box=[4, 9, 5, 20])  # beyond the frame: cut to it
    np.testing.assert_array_equal(wide.mask((6, 7)), np.pad(np.ones((2, 2), bool), ((4, 0), (5, 0))))
    from depth_lightning.evaluation.protocol import region_box

    assert region_box("box", 6, 7, (2, 5, 1, 4)) == [2, 5, 1, 4] and region_box("box", 6, 7) == [0, 6, 0, 7]
    for box in ([0, 0, 0, 5], [3, 2, 0, 5], [0, 5, 4, 4], [-1, 5, 0, 5], [0, 5, -1, 5], [0, 5, 0]):
        with pytest.raises(ValueError, match=r"region=box takes box=\[top, bottom, left, right\] with top < bottom"):
            EvalProtocol("box", box=box)
    with pytest.raises(ValueError, match="other regions take none"):
        EvalProtocol("full", box=[0, 5, 0, 5])
    with pytest.raises(ValueError, match="region=box takes box="):
        EvalProtocol("box")
    assert EvalProtocol("box", box=[0, 1, 0, 1]).box == (0, 1, 0, 1)  # the smallest box: one pixel


def test_a_zero_shot_protocols_card_entries_and_their_effect_on_the_numbers():
    base = EvalProtocol("full", 0.5, (10.0,))
    card = base.card("d", "test", {}, (4, 4), (4, 4))
    assert not {"min_pixels", "protocol_name", "follows", "truth_in_range", "fit_max_resolution"} & set(card)
    zero = EvalProtocol(
        "full", 0.5, (10.0,), truth_in_range=False, fit_max_resolution=512, follows="Marigold", name="marigold",
        min_pixels=3,
    )  # fmt: skip
    card = zero.card("d", "test", {}, (4, 4), (4, 4))
    assert card["min_pixels"] == 3 and card["protocol_name"] == "marigold" and card["follows"] == "Marigold"
    assert card["fit_max_resolution"] == 512 and card["truth_in_range"].startswith("no: only the dataset's mask")
    # truth_in_range=false: ground truth beyond the range is scored (against the clipped prediction)
    truth = torch.tensor([[[0.2, 2.0, 4.0, 12.0]]])
    scored = {}
    for keep in (True, False):
        ev = Evaluator(EvalProtocol("full", 0.5, (10.0,), truth_in_range=keep), predictions=["p"], per_image=False)
        ev.process({"depth": truth}, {"p": torch.full((1, 1, 4), 3.0)})
        scored[keep] = ev.evaluate().values
    assert scored[True]["abs_rel"] == pytest.approx((1 / 2 + 1 / 4) / 2)  # 2 m and 4 m only
    assert scored[False]["abs_rel"] == pytest.approx((2.8 / 0.2 + 1 / 2 + 1 / 4 + 9 / 12) / 4)  # all four
    # min_pixels: a frame with fewer valid pixels is left out of the means and named
    ev = Evaluator(EvalProtocol("full", 0.5, (10.0,), min_pixels=3), predictions=["p"], per_image=False)
    two = torch.tensor([[[2.0, 4.0, 0.0, 0.0]], [[2.0, 4.0, 8.0, 0.0]]])
    ev.process({"depth": two}, {"p": torch.full((2, 1, 4), 3.0)})
    result = ev.evaluate()
    assert result.images == 1 and result.sparse_frames == ["sample 0"]
    assert result.values["abs_rel"] == pytest.approx((1 / 2 + 1 / 4 + 5 / 8) / 3)
    for bad in (0, 1.5, True, "2"):
        with pytest.raises(ValueError, match=r"data.protocol.min_pixels=.* must be an integer >= 1"):
            EvalProtocol(min_pixels=bad)


def test_the_card_gives_a_box_regions_box_and_a_min_pixels_above_one():
    card = EvalProtocol("box", caps=(10.0,), box=(2, 20, 3, 30), min_pixels=2).card("d", "test", {}, (24, 32), (12, 16))
    assert card["region"]["box"] == [2, 20, 3, 30] and card["region"]["original_frame"] == [24, 32]
    assert card["min_pixels"] == 2 and card["prediction"]["resolution"] == [12, 16]
    assert "min_pixels" not in EvalProtocol("full", caps=(10.0,)).card("d", "test", {}, (24, 32), None)
