"""Resume after SIGKILL, atomic checkpoints, the non-finite guard, checkpoint mismatches."""

import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from depth_lightning.core.errors import CheckpointError, NonFiniteError
from tests.helpers import ROOT, train_here, user_env

# 16 frames at batch 4: 4 steps per epoch, last.ckpt at every epoch end; deterministic float32
RESUMABLE = [
    "debug=tiny",
    "logger=csv",
    "baselines=false",
    "trainer.precision=32-true",
    "trainer.deterministic=true",
    "data.dataset.train_length=16",
    "checkpoint_every=4",
    "trainer.max_steps=20",
    "model.net.dropout=0.5",
]


def _weights(path):
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


@pytest.mark.slow
def test_resume_after_sigkill_is_bit_identical(tmp_path):
    train_here(tmp_path / "whole", *RESUMABLE)  # the uninterrupted run, in this process
    reference = _weights(tmp_path / "whole" / "checkpoints" / "last.ckpt")

    run_dir = tmp_path / "killed"
    last = run_dir / "checkpoints" / "last.ckpt"
    # as many threads as this process: float32 results depend on the thread count in their last bits
    threads = str(torch.get_num_threads())
    env = {**user_env(), "WANDB_MODE": "offline", "DEPTH_LIGHTNING_LOGS": str(tmp_path), "OMP_NUM_THREADS": threads}
    proc = subprocess.Popen(
        [sys.executable, "-m", "depth_lightning.train", *RESUMABLE, f"hydra.run.dir={run_dir}"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 300
    step = 0
    while time.time() < deadline and proc.poll() is None:
        if last.is_file():
            try:
                step = torch.load(last, map_location="cpu", weights_only=True)["global_step"]
            except Exception:
                step = 0
            if step >= 8:
                break
        time.sleep(0.2)
    assert proc.poll() is None, "the run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert 8 <= step < 20
    train_here(run_dir, *RESUMABLE, "ckpt_path=last")
    resumed = _weights(last)
    assert torch.load(last, map_location="cpu", weights_only=True)["global_step"] == 20
    assert resumed.keys() == reference.keys()
    for key in reference:
        assert torch.equal(resumed[key], reference[key]), key


def test_kill_during_a_save_leaves_the_previous_checkpoint_loadable(tmp_path):
    path = tmp_path / "last.ckpt"
    script = textwrap.dedent(f"""
        import os, signal, torch
        from depth_lightning.run.faults import AtomicCheckpointIO
        io = AtomicCheckpointIO()
        io.save_checkpoint({{"step": 1, "w": torch.ones(1000)}}, {str(path)!r})
        real_save = torch.save
        def dying_save(obj, f, *a, **k):
            with open(f, "wb") as fh:
                fh.write(b"half a checkpoint")
                fh.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        torch.save = dying_save
        io.save_checkpoint({{"step": 2, "w": torch.zeros(1000)}}, {str(path)!r})
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True)
    assert proc.returncode == -signal.SIGKILL
    ckpt = torch.load(path, weights_only=True)
    assert ckpt["step"] == 1 and torch.equal(ckpt["w"], torch.ones(1000))


def test_a_nan_stops_the_run_naming_step_and_samples(tmp_path):
    with pytest.raises(NonFiniteError) as err:
        train_here(tmp_path / "run", "debug=tiny", "logger=csv", "baselines=false", "model.optimizer.lr=1e38")
    assert "at optimiser step" in str(err.value) and "batch sample ids [" in str(err.value)


def test_skip_mode_skips_a_nan_batch_and_trains_on(tmp_path):
    import lightning as L

    from depth_lightning.run.faults import NonFiniteGuard
    from depth_lightning.run.setup import build_module
    from tests.helpers import composed

    module = build_module(composed("debug=tiny"))
    guard = NonFiniteGuard("skip")
    g = torch.Generator().manual_seed(0)
    batches = []
    for i in range(4):
        image = torch.rand(2, 3, 64, 96, generator=g)
        if i == 1:
            image[0, :, :4, :4] = float("nan")  # one poisoned sample
        batches.append(
            {
                "image": image,
                "depth": torch.rand(2, 64, 96, generator=g) * 5 + 1,
                "index": torch.tensor([2 * i, 2 * i + 1]),
            }
        )
    before = {k: v.clone() for k, v in module.state_dict().items()}
    trainer = L.Trainer(
        max_steps=4,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        limit_val_batches=0,
        callbacks=[guard],
    )
    trainer.fit(module, train_dataloaders=torch.utils.data.DataLoader(batches, batch_size=None))
    assert guard.skipped_steps == 1
    after = module.state_dict()
    assert all(torch.isfinite(v).all() for v in after.values() if v.is_floating_point())
    assert not torch.equal(after["net.head.classifier.0.weight"], before["net.head.classifier.0.weight"])


def test_checkpoint_of_another_model_configuration_names_the_keys(tiny_checkpoint, tmp_path):
    with pytest.raises(CheckpointError) as err:
        train_here(
            tmp_path / "run", "debug=tiny", "logger=csv", "model.net.num_bins=33", f"ckpt_path={tiny_checkpoint}"
        )
    assert "different model configuration" in str(err.value) and "net.head.classifier.0.weight" in str(err.value)


def test_missing_last_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        train_here(tmp_path / "run", "debug=tiny", "logger=csv", "ckpt_path=last")
    assert "does not exist" in str(err.value) and "resume_or_fresh=true" in str(err.value)
    fresh = ["baselines=false", "ckpt_path=last", "resume_or_fresh=true", "trainer.max_steps=2"]
    train_here(tmp_path / "run", "debug=tiny", "logger=csv", *fresh)
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()


def test_atomic_writes_leave_the_previous_file_whole_when_a_writer_fails_or_is_killed(tmp_path):
    """metrics.json, per_image.csv, panels and predictions go through save_atomic / write_json."""
    import json
    import subprocess
    import sys
    import time

    from depth_lightning.core.files import save_atomic, write_json
    from depth_lightning.run.folder import remove_debris

    target = tmp_path / "metrics.json"
    write_json(target, {"status": "completed", "step": 1})
    before = target.read_bytes()

    def half_then_crash(path):
        path.write_text('{"status": "runn')
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        save_atomic(target, half_then_crash)
    assert target.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["metrics.json"]
    # killed mid-write (SIGKILL: no cleanup runs): the file is the old one, the debris is removed later
    script = (
        "import sys, time; from depth_lightning.core.files import save_atomic\n"
        "def slow(p):\n"
        "    p.write_text('{\"half\": '); sys.stdout.write('writing\\n'); sys.stdout.flush(); time.sleep(60)\n"
        f"save_atomic({str(target)!r}, slow)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "writing\n"
    proc.kill()
    proc.wait()
    time.sleep(0.1)
    assert json.loads(target.read_text()) == {"status": "completed", "step": 1}
    assert [p.name for p in remove_debris(tmp_path)] == [".metrics.json.tmp.json"]
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_a_run_resumed_mid_epoch_trains_on_the_rest_of_that_epoch(tmp_path, monkeypatch):
    """4 batches an epoch, a checkpoint every 2 steps; the run dies reading its 7th batch, in the middle
    of the second epoch, and the resumed run reads that epoch's last two batches, then the third
    epoch: the keys (epoch, index) the two runs read are the uninterrupted run's, and so are the weights."""
    from depth_lightning.data.frames import FrameDataset

    read, die_at = [], [None]
    original = FrameDataset.__getitem__

    class Killed(Exception):
        pass

    def recording(self, key):
        if isinstance(key, tuple):  # training keys (epoch, index); evaluation reads by index
            if len(read) == die_at[0]:
                raise Killed
            read.append(key)
        return original(self, key)

    monkeypatch.setattr(FrameDataset, "__getitem__", recording)
    mid_epoch = [*RESUMABLE[:-2], "checkpoint_every=2", "trainer.limit_train_batches=1.0", "trainer.max_steps=12"]
    train_here(tmp_path / "whole", *mid_epoch)
    whole, read[:], die_at[0] = list(read), [], 24
    with pytest.raises(Killed):
        train_here(tmp_path / "killed", *mid_epoch)
    first, read[:], die_at[0] = list(read), [], None
    assert [k[0] for k in first] == [0] * 16 + [1] * 8
    train_here(tmp_path / "killed", *mid_epoch, "ckpt_path=last")
    assert first + read == whole  # the rest of epoch 1, not its first samples again
    reference, resumed = (_weights(tmp_path / r / "checkpoints" / "last.ckpt") for r in ("whole", "killed"))
    for key in reference:
        assert torch.equal(resumed[key], reference[key]), key
