"""A pack knows what it holds: ``prepare pack`` writes its card (``pack.json``), a run on ``data.format=packed``
is refused at setup when the pack holds another dataset or other sample settings, the run's protocol card
records the pack's, a folder holding a pack is replaced only with ``overwrite=true``, and a missing or
truncated chunk or a broken index is named as a damaged pack with the command that rebuilds it."""

import json
import shutil

import pytest

from depth_lightning.core.config import build, compose_config
from depth_lightning.core.errors import DataError
from depth_lightning.prepare import main as prepare
from tests.helpers import per_test_under_mutation, train_here

SMALL = ["data.dataset.train_length=8", "data.dataset.val_length=4", "data.dataset.test_length=4"]
TINY = ["debug=tiny", "logger=csv", "trainer.max_steps=2", "budget.mode=steps", "trainer.limit_val_batches=1"]


@pytest.fixture(scope=per_test_under_mutation)
def pack(tmp_path_factory):
    out = tmp_path_factory.mktemp("pack") / "synthetic"
    assert prepare(["pack", "data=synthetic", *SMALL, f"output={out}"]) == 0
    return out


def packed(pack, *data):
    return build(compose_config(*data, "data.format=packed", f"data.packed={pack}").data, "data")


@pytest.mark.slow  # a training run: not for every mutant (the card itself is checked in full below)
def test_a_run_on_a_pack_records_its_card(pack, tmp_path):
    card = json.loads((pack / "pack.json").read_text())
    assert (card["dataset"], card["reader"]) == ("synthetic", "depth_lightning.data.synthetic.SyntheticScenes")
    assert card["settings"]["train_length"] == 8 and card["splits"]["test"]["frames"] == 4
    results = train_here(tmp_path / "run", "data=synthetic", *SMALL, *TINY, "test=true", "data.format=packed",
                         f"data.packed={pack}")  # fmt: skip
    assert results["status"] == "completed"
    assert results["protocol"]["packed"]["card"]["dataset"] == "synthetic"
    assert results["protocol"]["packed"]["card"]["settings"] == card["settings"]


def test_a_pack_of_another_dataset_is_refused_at_setup_naming_both(pack, tmp_path):
    with pytest.raises(DataError, match=r"holds 'synthetic' .* this run's data is 'synthetic_outdoor'"):
        train_here(tmp_path / "run", "data=synthetic_outdoor", *SMALL, *TINY, "data.format=packed",
                   f"data.packed={pack}")  # fmt: skip
    status = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert status["status"] == "failed" and status.get("global_step", 0) == 0
    with pytest.raises(DataError, match=r"data.dataset.train_length: pack 8, run 2000"):
        packed(pack, "data=synthetic").build("train")  # the same dataset, other samples
    packed(pack, "data=synthetic", *SMALL, "data.dataset.cache=false").build("train")  # how it reads: no matter


def test_a_folder_holding_a_pack_is_replaced_only_with_overwrite(pack, tmp_path, capsys):
    out = tmp_path / "copy"
    assert prepare(["pack", "data=synthetic", *SMALL, "splits=test", f"output={out}"]) == 0
    before = (out / "test" / "index.json").read_bytes()
    assert prepare(["pack", "data=synthetic_outdoor", *SMALL, "splits=test", f"output={out}"]) == 2
    err = capsys.readouterr().err
    assert "holds a pack already (of 'synthetic'" in err and "overwrite=true" in err
    assert (out / "test" / "index.json").read_bytes() == before
    assert prepare(["pack", "data=synthetic_outdoor", *SMALL, "splits=test", f"output={out}", "overwrite=true"]) == 0
    assert json.loads((out / "pack.json").read_text())["dataset"] == "synthetic_outdoor"
    with pytest.raises(DataError, match=r"holds no train split \(it holds test\)"):
        packed(out, "data=synthetic_outdoor", *SMALL).build("train")


def test_a_damaged_pack_is_named_with_the_command_that_rebuilds_it(pack, tmp_path):
    import shutil

    for damage in ("missing", "truncated", "index", "card"):
        copy = tmp_path / damage
        shutil.copytree(pack, copy)
        chunk = next((copy / "test").glob("chunk-*.bin"))
        if damage == "missing":
            chunk.unlink()
            expected = rf"a damaged pack: {chunk} is missing"
        elif damage == "truncated":
            chunk.write_bytes(chunk.read_bytes()[:100])
            expected = rf"a damaged pack: {chunk} holds 100 bytes"
        elif damage == "index":
            index = copy / "test" / "index.json"
            index.write_text(index.read_text()[:40])
            expected = rf"a damaged pack: {index} is unreadable"
        else:
            (copy / "pack.json").write_text("{")
            expected = r"a damaged pack: .*pack.json is not JSON"
        with pytest.raises(DataError, match=rf"^data.packed='{copy}'.*" + expected + r".*prepare pack data=<dataset>"):
            packed(copy, "data=synthetic", *SMALL).build("test")


def test_the_card_in_full_and_a_packed_split_read_back_sample_by_sample(pack):
    import pickle

    import numpy as np

    from depth_lightning import __version__

    card = json.loads((pack / "pack.json").read_text())
    loose = build(compose_config("data=synthetic", *SMALL).data, "data")
    assert set(card) == {"library", "version", "dataset", "reader", "settings", "root", "hold_out", "splits"}
    assert (card["library"], card["version"], card["root"]) == ("depth_lightning", __version__, None)
    assert card["hold_out"] == {"val_fraction": loose.val_fraction, "val_max_frames": loose.val_max_frames, "seed": 0}
    for split in ("train", "val", "test"):
        ds = loose.build(split)
        assert card["splits"][split] == {"frames": len(ds), "source": json.loads(json.dumps(ds.source()))}
    frames = packed(pack, "data=synthetic", *SMALL).build("test")
    again = pickle.loads(pickle.dumps(frames))  # as a loader's worker process receives it
    ours = loose.build("test")
    for i in range(len(ours)):
        for ds in (frames, again):
            rgb, depth = ds.load(i)
            expected = ours.load(i)
            assert np.array_equal(rgb, expected[0]) and np.array_equal(depth, expected[1])
            assert rgb.dtype == np.uint8 and depth.dtype == np.float32
            assert ds.list_line(i) is None and ds.frame_name(i) == ours.frame_name(i)  # synthetic frames: no list
            assert ds.describe(i) == f"{ds.url} sample {i}: {ours.describe(i)}"
            assert ds.crop_box_of(i, depth.shape) == ours.crop_box_of(i, depth.shape)


def test_a_pack_is_checked_against_the_runs_data_setting_by_setting(pack, caplog):
    from depth_lightning.data.packed import check_pack, read_pack_card

    card = read_pack_card(f"local:{pack}")  # LitData's local: prefix reads the same folder
    assert card == json.loads((pack / "pack.json").read_text())
    run = build(compose_config("data=synthetic", *SMALL).data, "data")
    with caplog.at_level("WARNING"):
        check_pack(card, run, "p")  # the same data: nothing to say
    assert caplog.records == []
    other = {**card, "reader": "elsewhere.Reader"}
    with pytest.raises(DataError) as err:
        check_pack(other, run, "p")
    assert str(err.value).startswith(
        "data.packed='p' holds 'synthetic' (elsewhere.Reader), but this run's data is 'synthetic' "
        "(depth_lightning.data.synthetic.SyntheticScenes): its bins, protocol and samples would be another dataset's"
    ) and str(err.value).endswith("or choose the pack's data=")
    extra = {**card, "settings": {**card["settings"], "only_in_pack": 1}}
    with pytest.raises(DataError, match=r"\(data.dataset.only_in_pack: pack 1, run None\); .* or give the pack's$"):
        check_pack(extra, run, "p")
    fewer = {**card, "settings": {k: v for k, v in card["settings"].items() if k != "train_length"}}
    with pytest.raises(DataError, match=r"data.dataset.train_length: pack None, run 8\)"):
        check_pack(fewer, run, "p")
    two = {**card, "settings": {**card["settings"], "train_length": 9, "only_in_pack": 1}}
    with pytest.raises(
        DataError, match=r"\(data.dataset.only_in_pack: pack 1, run None; data.dataset.train_length: pack 9, run 8\)"
    ):
        check_pack(two, run, "p")
    with caplog.at_level("WARNING"):
        check_pack({**card, "hold_out": {**card["hold_out"], "seed": 7}}, run, "p")
    wanted = {"val_fraction": run.val_fraction, "val_max_frames": run.val_max_frames, "seed": 0}
    held = {**card["hold_out"], "seed": 7}
    assert caplog.messages == [
        f"data.packed=p: its validation was held out with {held}, not this run's {wanted}; the pack's split is used"
    ]


def test_a_pack_card_is_read_from_a_url_or_named_where_it_is_missing():
    import fsspec

    from depth_lightning.data.packed import read_pack_card

    fs = fsspec.filesystem("memory")
    fs.pipe("/packs/a/pack.json", json.dumps({"library": "depth_lightning", "dataset": "x"}).encode())
    assert read_pack_card("memory://packs/a/")["dataset"] == "x"
    with pytest.raises(
        DataError,
        match=r"^data.packed='memory://packs/b': no pack card at memory://packs/b/pack.json \(FileNotFoundError\)",
    ):
        read_pack_card("memory://packs/b")
    fs.pipe("/packs/c/pack.json", b'{"library": "other"}')
    with pytest.raises(DataError, match=r"memory://packs/c/pack.json is not a depth_lightning pack card"):
        read_pack_card("memory://packs/c")
    fs.pipe("/packs/d/pack.json", b"{not json")
    with pytest.raises(DataError, match=r"a damaged pack: memory://packs/d/pack.json is not JSON"):
        read_pack_card("memory://packs/d")


def test_an_empty_split_is_not_packed(tmp_path):
    from depth_lightning.data.packed import pack_split

    class Empty:
        split = "val"

        def __len__(self):
            return 0

    with pytest.raises(DataError, match=r"^.*out: the val split has no frame to pack$"):
        pack_split(Empty(), str(tmp_path / "out"))


def test_a_packed_splits_source_says_where_its_chunks_are_and_hashes_their_index(pack):
    import hashlib

    frames = build(compose_config("data=synthetic", *SMALL, "data.format=packed", f"data.packed={pack}/").data,
                   "data").build("test")  # fmt: skip
    loose = build(compose_config("data=synthetic", *SMALL).data, "data").build("test")
    card = json.loads((pack / "pack.json").read_text())
    index = (pack / "test" / "index.json").read_bytes()
    assert frames.url == f"{pack}/test"  # a trailing / of data.packed does not double
    assert frames.source() == {
        **json.loads(json.dumps(loose.source())),
        "packed": {"url": f"{pack}/test", "samples": 4, "index_sha256": hashlib.sha256(index).hexdigest()[:16],
                   "card": {k: v for k, v in card.items() if k != "splits"}},
    }  # fmt: skip


def test_a_split_packed_to_a_url_is_the_split_packed_to_a_folder(pack, tmp_path):
    import uuid

    import fsspec

    from depth_lightning.data.packed import pack_split

    frames = build(compose_config("data=synthetic", *SMALL).data, "data").build("test")
    where = f"/packs-{uuid.uuid4().hex}/synthetic/test"  # fsspec's memory store outlives a test: a path of its own
    assert pack_split(frames, f"memory:/{where}") == f"memory:/{where}"
    assert pack_split(frames, f"local:{tmp_path / 'here'}") == str(tmp_path / "here")  # LitData's local: prefix
    fs = fsspec.filesystem("memory")
    written = {p.rsplit("/", 1)[1]: fs.cat_file(p) for p in fs.ls(where, detail=False)}
    assert _split_files(written) == _split_files({p.name: p.read_bytes() for p in (pack / "test").iterdir()})
    assert _split_files(written) == _split_files({p.name: p.read_bytes() for p in (tmp_path / "here").iterdir()})
    assert set(written) == {"index.json", "chunk-0-0.bin"}


def _split_files(files: dict[str, bytes]) -> dict[str, object]:
    """A packed split's files, its index without the time it was written."""
    index = json.loads(files["index.json"])
    index.pop("updated_at")
    return {**files, "index.json": index}


@pytest.mark.slow  # worker processes start in seconds each
def test_packing_on_several_workers_writes_the_samples_one_worker_writes_in_order(pack, tmp_path):
    out = tmp_path / "two"
    assert prepare(["pack", "data=synthetic", *SMALL, "splits=test", f"output={out}", "workers=2"]) == 0
    files = [{p.name: p.read_bytes() for p in (folder / "test").iterdir()} for folder in (out, pack)]
    assert _split_files(files[0]) == _split_files(files[1])  # the same samples, in the same order


def test_a_folder_holding_any_part_of_a_pack_is_named_and_kept(pack, tmp_path):
    from depth_lightning.data.packed import refuse_to_replace

    for part in ("train/index.json", "val/index.json", "test/index.json", "pack.json"):
        folder = tmp_path / part.replace("/", "_")
        (folder / part).parent.mkdir(parents=True)
        (folder / part).write_text(json.dumps({"dataset": "nyu_sync"}))
        with pytest.raises(DataError) as err:
            refuse_to_replace(str(folder), overwrite=False)
        what = "nyu_sync" if part == "pack.json" else "?"  # a split's index names no dataset
        assert str(err.value) == (
            f"output={str(folder)!r} holds a pack already (of {what!r}: {folder / part}); add overwrite=true to "
            "replace it, or choose another folder"
        )
        refuse_to_replace(str(folder), overwrite=True)
        assert (folder / part).is_file()  # refused or allowed: nothing is touched yet
    refuse_to_replace(str(tmp_path / "absent"), overwrite=False)  # nothing there: nothing to refuse


def test_chunk_sizes_are_checked_unless_the_chunks_are_compressed(tmp_path):
    from depth_lightning.data.packed import check_chunks

    (tmp_path / "chunk-0-0.bin").write_bytes(b"x" * 10)
    index = {"chunks": [{"filename": "chunk-0-0.bin", "chunk_bytes": 12}], "config": {"compression": None}}
    (tmp_path / "index.json").write_text(json.dumps(index))
    with pytest.raises(DataError) as err:
        check_chunks(tmp_path / "index.json", "p")
    assert str(err.value).startswith(
        f"data.packed='p': a damaged pack: {tmp_path / 'chunk-0-0.bin'} holds 10 bytes, its index says 12 (truncated?)"
    )
    index["config"]["compression"] = "zstd"  # a compressed chunk's size is not the index's (uncompressed) one
    (tmp_path / "index.json").write_text(json.dumps(index))
    check_chunks(tmp_path / "index.json", "p")


def test_a_pack_whose_samples_are_out_of_order_is_named_damaged(pack, tmp_path):
    from litdata.streaming.writer import BinaryWriter

    from depth_lightning.data.packed import _Sample

    frames = build(compose_config("data=synthetic", *SMALL).data, "data").build("test")
    out = tmp_path / "shuffled"
    for split in ("train", "val", "test"):  # the card and the other splits as they were
        if split != "test":
            shutil.copytree(pack / split, out / split)
    shutil.copy(pack / "pack.json", out / "pack.json")
    writer = BinaryWriter(str(out / "test"), chunk_bytes="256MB")
    sample = _Sample(frames)
    for position, frame in enumerate((1, 0, 2, 3)):  # as optimize's workers wrote them: in the order they finished
        writer.add_item(position, sample(frame))
    writer.done()
    writer.merge()
    with pytest.raises(DataError) as err:
        packed(out, "data=synthetic", *SMALL).build("test").load(0)
    assert str(err.value).startswith(
        f"data.packed: a damaged pack: sample 0 of {out}/test holds frame 1 of its split (written out of order); "
        "rebuild it with python -m depth_lightning.prepare pack"
    )


def test_a_missing_split_of_a_pack_says_how_to_write_it(pack, tmp_path):
    shutil.copytree(pack, tmp_path / "p")
    shutil.rmtree(tmp_path / "p" / "val")
    with pytest.raises(DataError) as err:
        packed(tmp_path / "p", "data=synthetic", *SMALL).build("val")
    assert str(err.value) == (
        f"data.packed='{tmp_path / 'p'}': no packed val split at {tmp_path / 'p' / 'val'} (index.json); write it "
        "with python -m depth_lightning.prepare pack data=<dataset> output=<folder>"
    )


def test_a_packed_split_opens_its_reader_once_a_process_and_reads_a_sample_once_an_item(pack, monkeypatch):
    """LitData's reader is opened once per process (a pickled copy, as a loader's worker receives it, opens
    its own) and an item's image, depth, box and name come from one read of its sample."""
    import pickle

    import litdata

    opened, reads = [], []

    class Counted(litdata.StreamingDataset):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            opened.append(self)

        def __getitem__(self, index):
            reads.append(index)
            return super().__getitem__(index)

    monkeypatch.setattr(litdata, "StreamingDataset", Counted)
    frames = packed(pack, "data=synthetic", *SMALL).build("test")
    assert len(opened) == 1 and reads == [0]  # the index opened, sample 0 read once
    reads.clear()
    for i in (2, 2, 3):
        frames.load(i), frames.crop_box_of(i, (1, 1)), frames.describe(i), frames.frame_name(i), frames.list_line(i)
    assert len(opened) == 1 and reads == [2, 3]
    copy = pickle.loads(pickle.dumps(frames))
    assert copy.__dict__.get("_frames") is None and copy.__dict__.get("_last") is None
    copy.load(3)
    assert len(opened) == 2 and reads == [2, 3, 3]  # the copy opened its own reader and read its own sample


def test_a_pack_written_twice_to_one_url_is_replaced_and_a_card_without_a_dataset_is_named(pack, tmp_path):
    import uuid

    from depth_lightning.data.packed import pack_split, refuse_to_replace

    frames = build(compose_config("data=synthetic", *SMALL).data, "data").build("test")
    url = f"memory://packs-{uuid.uuid4().hex}/test"
    assert pack_split(frames, url) == pack_split(frames, url) == url  # the folder exists the second time
    (tmp_path / "pack.json").write_text("{}")
    with pytest.raises(DataError, match=r"holds a pack already \(of '\?': "):
        refuse_to_replace(str(tmp_path), overwrite=False)
