"""Packed datasets (LitData chunks written by ``prepare pack``): every split of NYU-sync and KITTI built
from the real samples gives bit for bit the samples of the loose files (augmented training samples
included), through a folder and LitData's ``local:`` URL; a run on packed data trains and tests exactly
as one on the loose files."""

import shutil

import pytest
import torch

from depth_lightning.core.config import build, compose_config
from depth_lightning.core.errors import DataError
from depth_lightning.prepare import main as prepare
from tests.helpers import SHARED, per_test_under_mutation, train_here

REAL = SHARED / "realdata"
NYU = REAL / "nyu" / "sync" / "metric3d_nyu_demo"
pytestmark = pytest.mark.skipif(not NYU.is_dir(), reason=f"real NYU samples not present at {NYU}")
TINY = ["debug=tiny", "logger=csv", "trainer.max_steps=2", "budget.mode=steps", "data.val_fraction=0.5"]


@pytest.fixture(scope=per_test_under_mutation)
def nyu(tmp_path_factory):
    """The real NYU frames in two scenes (validation holds one out), and their packed copy."""
    root = tmp_path_factory.mktemp("packed") / "nyu"
    lines = []
    for scene, k in (("office_0001", "00000"), ("office_0001", "00050"), ("kitchen_0002", "00100")):
        (root / scene).mkdir(parents=True, exist_ok=True)
        shutil.copy(NYU / "rgb" / f"rgb_{k}.jpg", root / scene / f"rgb_{k}.jpg")
        shutil.copy(NYU / "depth" / f"sync_depth_{k}.png", root / scene / f"sync_depth_{k}.png")
        lines.append(f"{scene}/rgb_{k}.jpg {scene}/sync_depth_{k}.png 518.8579\n")
    (root / "train.txt").write_text("".join(lines))
    (root / "test.txt").write_text(lines[2])
    data = [
        "data=nyu_sync", f"data.dataset.root={root}", f"data.dataset.train_list={root / 'train.txt'}",
        f"data.dataset.test_list={root / 'test.txt'}", "data.dataset.fill=none", "data.val_fraction=0.5",
    ]  # fmt: skip
    assert prepare(["pack", *data, f"output={root.parent / 'packed'}"]) == 0
    return data, root.parent / "packed"


def _items_equal(a, b):
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], torch.Tensor):
            assert torch.equal(a[key], b[key]), key
        else:
            assert a[key] == b[key], key


@pytest.mark.parametrize("url", [False, True])
def test_every_packed_split_gives_the_loose_samples_bit_for_bit(nyu, url):
    data, packed = nyu
    source = f"local:{packed}" if url else str(packed)
    loose = build(compose_config(*data, "data.height=240", "data.width=320").data, "data")
    chunks = build(
        compose_config(*data, "data.height=240", "data.width=320", "data.format=packed", f"data.packed={source}").data,
        "data",
    )
    for split in ("train", "val", "test"):
        a, b = loose.build(split), chunks.build(split)
        assert len(a) == len(b) > 0, split
        for i in range(len(a)):
            keys = [(epoch, i) for epoch in (0, 1)] if split == "train" else [i]  # augmented with the seed
            for key in keys:
                _items_equal(a[key], b[key])
            assert a.frame_name(i) == b.frame_name(i) and a.list_line(i) == b.list_line(i)
        card = b.source()
        assert card["list"] == a.source()["list"] and card["packed"]["url"].endswith(f"/{split}")


def test_kittis_test_split_packs_bit_for_bit(tmp_path):
    drive, gt = "2011_09_26/2011_09_26_drive_0001_sync", "2011_09_26_drive_0001_sync/proj_depth/groundtruth/image_02"
    listing = tmp_path / "test.txt"
    listing.write_text(
        "".join(f"{drive}/image_02/data/{k:010d}.png {gt}/{k:010d}.png 721.5377\n" for k in (5, 50, 100))
    )
    data = [
        "data=kitti", f"data.dataset.root={REAL / 'kitti' / 'raw'}", "data.dataset.gt=annotated",
        f"data.dataset.annotated_root={REAL / 'kitti' / 'data_depth_annotated'}", f"data.dataset.test_list={listing}",
        f"data.dataset.train_list={listing}",
    ]  # fmt: skip
    assert prepare(["pack", *data, "splits=test", f"output={tmp_path / 'packed'}"]) == 0
    loose = build(compose_config(*data).data, "data").build("test")
    packed = build(
        compose_config(*data, "data.format=packed", f"data.packed={tmp_path / 'packed'}").data, "data"
    ).build("test")
    assert len(loose) == len(packed) == 3
    for i in range(3):
        _items_equal(loose[i], packed[i])


@pytest.mark.slow  # a training run or a second process: not for every mutant
def test_a_run_on_packed_data_trains_and_tests_as_on_the_loose_files(nyu, tmp_path):
    data, packed = nyu
    loose = train_here(tmp_path / "loose", *data, *TINY, "test=true")
    chunks = train_here(tmp_path / "packed", *data, *TINY, "test=true", "data.format=packed", f"data.packed={packed}")
    assert chunks["status"] == "completed" and chunks["test"] == loose["test"] and chunks["val"] == loose["val"]
    assert chunks["protocol"]["packed"]["url"] == f"{packed}/test"


def test_packed_settings_and_a_missing_copy_are_named(nyu, tmp_path, capsys):
    data, _ = nyu
    with pytest.raises(Exception, match=r"data.format='packed', data.packed=None"):
        build(compose_config(*data, "data.format=packed").data, "data")
    datamodule = build(compose_config(*data, "data.format=packed", f"data.packed={tmp_path}").data, "data")
    with pytest.raises(DataError, match=r"no pack card at .*pack.json.*prepare pack"):
        datamodule.build("test")
    assert prepare(["pack", *data]) == 2  # output= is required: refused before anything is read
    assert capsys.readouterr().err.strip() == (
        "error: config error: prepare pack needs output=<folder or URL> (and data=<dataset> with its settings)"
    )
    assert prepare(["pack", *data, f"output={tmp_path / 'gz'}", "compression=gzip"]) == 2
    assert "compression='gzip' is not available here" in capsys.readouterr().err
    assert not (tmp_path / "gz").exists()  # refused before anything is written
    with pytest.raises(Exception, match=r"data.augment_on='gpu'; allowed: host .* or device"):
        build(compose_config(*data, "data.augment_on=gpu").data, "data")


@pytest.mark.slow
def test_two_processes_evaluate_a_packed_split_as_one_does(nyu, tiny_checkpoint, tmp_path):
    """Each packed test frame scored once across 2 DDP processes (gloo), the numbers as one process's."""
    import json

    from depth_lightning.evaluate import evaluate
    from tests.helpers import composed_for, run_module

    data, _ = nyu
    root = data[1].split("=", 1)[1]
    packed = tmp_path / "packed"
    three = [*data[:3], f"data.dataset.test_list={root}/train.txt", *data[4:]]  # all 3 frames as the test split
    assert prepare(["pack", *three, "splits=test", f"output={packed}"]) == 0
    args = [f"ckpt_path={tiny_checkpoint}", *three, "data.format=packed", f"data.packed={packed}", "baselines=false"]
    outs = {d: tmp_path / f"{d}.json" for d in (1, 2)}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each DDP process (OMP_NUM_THREADS=1): the network's output depends on it
    try:
        evaluate(composed_for("evaluate", tmp_path / "e1", *args, f"output={outs[1]}", "trainer.accelerator=cpu"))
    finally:
        torch.set_num_threads(threads)
    run_module(
        "depth_lightning.evaluate", *args, f"output={outs[2]}", "trainer.accelerator=cpu", "trainer.devices=2",
        "+trainer.strategy=ddp", f"hydra.run.dir={tmp_path / 'e2'}", cwd=tmp_path, timeout=600,
        env={"OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    one, two = (json.loads(outs[d].read_text()) for d in (1, 2))
    assert one["images"] == two["images"] == 3 and two["world_size"] == 2
    assert {k: v for k, v in two["test"].items() if k.startswith("soft/")} == {
        k: v for k, v in one["test"].items() if k.startswith("soft/")
    }
    assert (tmp_path / "e1" / "per_image.csv").read_text() == (tmp_path / "e2" / "per_image.csv").read_text()


def test_device_augmentation_gives_the_hosts_training_batch_from_packed_chunks(nyu):
    """data.augment_on=device: the loader hands over the packed frames and each sample's parameters,
    and the datamodule's batch hook augments them: RGB within 1e-5 of the host path, depth equal but
    for near-tie pixels, and the parameters gone from the batch."""
    data, packed = nyu
    size = ["data.height=240", "data.width=320", "data.format=packed", f"data.packed={packed}", "data.num_workers=0"]
    host = build(compose_config(*data, *size).data, "data")
    device = build(compose_config(*data, *size, "data.augment_on=device").data, "data")
    for dm in (host, device):
        dm.setup("fit")
    expected = next(iter(host.train_dataloader()))
    handed = next(iter(device.train_dataloader()))
    assert set(handed["augment"]) == {"flip", "scale", "angle", "colour"}
    got = device.on_after_batch_transfer(handed, 0)
    assert "augment" not in got and torch.equal(got["index"], expected["index"])
    assert (got["image"] - expected["image"]).abs().max() < 1e-5
    assert (got["depth"] != expected["depth"]).float().mean() < 1e-4


def test_a_packs_card_names_the_root_its_frames_came_from(nyu):
    import json

    data, packed = nyu
    card = json.loads((packed / "pack.json").read_text())
    root = next(a.split("=", 1)[1] for a in data if a.startswith("data.dataset.root="))
    assert (card["dataset"], card["root"]) == ("nyu_sync", root)  # where it was packed from, not a setting of it
    assert "root" not in card["settings"] and card["settings"]["fill"] == "none"
