"""A pack knows what it holds: ``prepare pack`` writes its card (``pack.json``), a run on ``data.format=packed``
is refused at setup when the pack holds another dataset or other sample settings, the run's protocol card
records the pack's, a folder holding a pack is replaced only with ``overwrite=true``, and a missing or
truncated chunk or a broken index is named as a damaged pack with the command that rebuilds it."""

import json

import pytest

from depth_lightning.core.config import build, compose_config
from depth_lightning.core.errors import DataError
from depth_lightning.prepare import main as prepare
from tests.helpers import train_here

SMALL = ["data.dataset.train_length=8", "data.dataset.val_length=4", "data.dataset.test_length=4"]
TINY = ["debug=tiny", "logger=csv", "trainer.max_steps=2", "budget.mode=steps", "trainer.limit_val_batches=1"]


@pytest.fixture(scope="module")
def pack(tmp_path_factory):
    out = tmp_path_factory.mktemp("pack") / "synthetic"
    assert prepare(["pack", "data=synthetic", *SMALL, f"output={out}"]) == 0
    return out


def packed(pack, *data):
    return build(compose_config(*data, "data.format=packed", f"data.packed={pack}").data, "data")


def test_the_card_says_what_the_pack_holds_and_a_run_records_it(pack, tmp_path):
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
        with pytest.raises(DataError, match=expected + r".*prepare pack data=<dataset>"):
            packed(copy, "data=synthetic", *SMALL).build("test")
