"""DDP with 2 CPU processes (gloo): exact evaluation, training, failures that end the job."""

import json

import pytest
import torch

from depth_lightning.evaluate import evaluate
from tests.datasets import write_nyu_sync
from tests.helpers import composed_for, run_module

TINY = ["debug=tiny", "logger=csv", "baselines=false"]
DDP = ["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2"]  # CPU: Lightning uses gloo


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    """A 2-process training run on synthetic data."""
    work = tmp_path_factory.mktemp("ddp")
    run_module(
        "depth_lightning.train",
        *TINY,
        *DDP,
        "trainer.max_steps=4",
        "test=true",
        f"hydra.run.dir={work / 'run'}",
        cwd=work,
        timeout=600,
    )
    return work / "run"


@pytest.mark.slow
def test_two_process_training_completes_in_one_folder(ddp_run):
    results = json.loads((ddp_run / "metrics.json").read_text())
    assert results["status"] == "completed" and results["world_size"] == 2
    assert (ddp_run / "checkpoints" / "last.ckpt").is_file()
    assert not list(ddp_run.parent.glob("run?*")), "every rank must use the one run folder"


@pytest.mark.slow
def test_two_process_evaluation_equals_single_process_on_7_images(ddp_run, tmp_path):
    ckpt = ddp_run / "checkpoints" / "last.ckpt"
    seven = ["+data.dataset.test_length=7", "+data.eval_batch_size=2"]
    one, two = tmp_path / "one.json", tmp_path / "two.json"
    # in this process, on one thread as each of the 2 DDP processes (OMP_NUM_THREADS=1 below): the
    # network's float32 output depends on the thread count (~1e-7); the evaluation's reduction must not
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        evaluate(
            composed_for(
                "evaluate", tmp_path / "e1", f"ckpt_path={ckpt}", f"output={one}", "trainer.accelerator=cpu", *seven
            )
        )
    finally:
        torch.set_num_threads(threads)
    run_module(
        "depth_lightning.evaluate",
        f"ckpt_path={ckpt}",
        f"output={two}",
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        "+trainer.strategy=ddp",
        *seven,
        f"hydra.run.dir={tmp_path / 'e2'}",
        cwd=tmp_path,
        timeout=600,
        env={"OMP_NUM_THREADS": "1"},
    )
    single, double = json.loads(one.read_text()), json.loads(two.read_text())
    assert single["images"] == double["images"] == 7
    for key, value in single["test"].items():
        if key.startswith(("soft/", "hard/")):
            assert double["test"][key] == value, key  # bit for bit, float64, AUSE included
    assert double["test_intervals"] == single["test_intervals"]
    assert (tmp_path / "e1" / "per_image.csv").read_text() == (tmp_path / "e2" / "per_image.csv").read_text()


@pytest.mark.slow
def test_an_exception_on_one_rank_ends_the_job_with_its_traceback(tmp_path):
    root = write_nyu_sync(tmp_path / "nyu", {"a": 4}, size=(48, 64))
    # the test list's last frame is corrupt: only rank 1 (second half of the unpadded shard) reads it. Its
    # header is whole (setup's frame check reads headers and passes it); the image data is cut short.
    broken = root / "a" / "rgb_00003.jpg"
    broken.write_bytes(broken.read_bytes()[: len(broken.read_bytes()) // 2])
    (root / "val.txt").write_text((root / "train.txt").read_text())
    proc = run_module(
        "depth_lightning.train",
        *TINY,
        *DDP,
        "data=nyu_sync",
        f"data.dataset.root={root}",
        f"data.dataset.train_list={root}/train.txt",
        f"data.dataset.val_list={root}/val.txt",
        "data.dataset.fill=none",
        "data.height=48",
        "data.width=64",
        "data.dataset.border=null",
        "data.augment=null",
        "trainer.max_steps=2",
        "data.batch_size=1",
        "data.eval_batch_size=1",
        f"hydra.run.dir={tmp_path / 'run'}",
        cwd=tmp_path,
        check=False,
        timeout=300,
    )
    assert proc.returncode != 0
    assert "rgb_00003.jpg: corrupt" in proc.stderr


def _read_an_epoch_on_one_rank(rank: int, world: int, port: int, overrides: list, out: str) -> None:
    """One DDP rank (gloo): the datamodule's training loader, two epochs, the keys it reads."""
    import torch.distributed as dist

    from depth_lightning.core.config import build, compose_config

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        loader, keys = build(compose_config(*overrides).data, "data").train_dataloader(), []
        for epoch in (0, 1):
            loader.sampler.set_epoch(epoch)
            keys += [[epoch, int(i)] for batch in loader for i in batch["index"]]
        with open(f"{out}.{rank}", "w") as f:
            json.dump(keys, f)
    finally:
        dist.destroy_process_group()


def test_two_ranks_read_each_packed_training_sample_once_an_epoch(tmp_path):
    """12 synthetic frames packed as LitData chunks, read by 2 DDP processes (gloo) with a loader
    worker each: every training sample once an epoch, across the ranks, in a new order each epoch."""
    import socket

    import torch.multiprocessing as mp

    from depth_lightning.prepare import main as prepare

    data = ["data=synthetic", "data.height=64", "data.width=96", "data.dataset.train_length=12", "data.batch_size=2"]
    data += ["data.num_workers=1"]
    assert prepare(["pack", *data, "splits=train", f"output={tmp_path / 'packed'}"]) == 0
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    packed = [*data, "data.format=packed", f"data.packed={tmp_path / 'packed'}"]
    mp.spawn(_read_an_epoch_on_one_rank, args=(2, port, packed, str(tmp_path / "keys")), nprocs=2)
    ranks = [json.loads((tmp_path / f"keys.{r}").read_text()) for r in (0, 1)]
    assert [len(keys) for keys in ranks] == [12, 12]  # 6 a rank an epoch
    for epoch in (0, 1):
        seen = sorted(i for keys in ranks for e, i in keys if e == epoch)
        assert seen == list(range(12)), epoch
    assert [i for e, i in ranks[0] if e == 0] != [i for e, i in ranks[0] if e == 1]
