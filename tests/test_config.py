import pytest

from depth_lightning.core.errors import ConfigError
from depth_lightning.run.setup import build_module
from tests.helpers import built, composed


@pytest.mark.parametrize("data", ["synthetic", "synthetic_outdoor"])
@pytest.mark.parametrize("model", ["small", "paper"])
@pytest.mark.parametrize("trainer", ["default", "cpu", "gpu", "ddp"])
def test_every_group_option_builds(data, model, trainer):
    import torch

    on_this_machine = [] if torch.cuda.is_available() else ["trainer.accelerator=cpu"]
    cfg, datamodule, module, trainer_ = built(
        f"data={data}",
        f"model={model}",
        f"trainer={trainer}",
        "model.net.pretrained=none",
        "model.net.backbone=resnet18",
        *on_this_machine,
    )
    assert (module.bins.d_min, module.bins.d_max) == datamodule.depth_range
    assert list(module.hparams.input_size) == [cfg.data.height, cfg.data.width]
    assert trainer_.max_steps == cfg.trainer.max_steps > 0


@pytest.mark.parametrize(
    ("logger", "built"),
    [
        ("wandb", ["WandbLogger"]),
        ("csv", ["ContinuingCSVLogger"]),
        ("tensorboard", ["WandbLogger", "ContinuingCSVLogger", "TensorBoardLogger"]),  # beside the default ones
        ("none", []),
        ("default", ["WandbLogger", "ContinuingCSVLogger"]),
    ],
)
def test_each_logger_option_builds_its_loggers_and_what_they_log_reads_back(logger, built, tmp_path, monkeypatch):
    from depth_lightning.core.config import compose_config
    from depth_lightning.run.lifecycle import finish_wandb
    from depth_lightning.run.setup import build_trainer

    monkeypatch.setenv("WANDB_MODE", "offline")
    cfg = compose_config(
        f"logger={logger}", "trainer.accelerator=cpu", "trainer.precision=32-true", output_dir=str(tmp_path)
    )
    trainer = build_trainer(cfg)
    assert [type(lg).__name__ for lg in trainer.loggers] == built
    for lg in trainer.loggers:
        lg.log_metrics({"val/abs_rel": 0.125}, step=3)
        lg.save()
        lg.finalize("success")
    finish_wandb()
    if "ContinuingCSVLogger" in built:
        import csv

        rows = list(csv.DictReader(open(tmp_path / "csv" / "metrics.csv")))
        assert [(r["step"], r["val/abs_rel"]) for r in rows] == [("3", "0.125")]
    if "TensorBoardLogger" in built:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        events = EventAccumulator(str(next(tmp_path.rglob("events.out.tfevents.*")).parent))
        events.Reload()
        assert [(e.step, e.value) for e in events.Scalars("val/abs_rel")] == [(3, 0.125)]
    if "WandbLogger" in built:
        from tests.wandb_reader import logged

        history = logged(next(tmp_path.rglob("offline-run-*")))["history"]
        assert any(row.get("val/abs_rel") == 0.125 for row in history)
    if not built:
        assert not any(tmp_path.iterdir()), "logger=none writes nothing"


def test_paper_numbers_are_the_papers():
    cfg = composed("model=paper")
    n, o, s = cfg.model.net, cfg.model.optimizer, cfg.model.scheduler
    assert (n.backbone, n.num_bins, n.dropout, n.dilated, n.fusion) == ("resnet152", 200, 0.5, True, True)
    assert (o._target_, o.lr, o.momentum, o.weight_decay) == ("torch.optim.SGD", 1e-3, 0.9, 4e-4)
    assert list(s.milestones) == [30000, 40000] and s.gamma == 0.1


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["+model.net.bakbone=x"], "model.net.bakbone: not a setting of the network"),
        (["model.net.dropout=1.5"], "model.net.dropout"),
        (["data.depth_min=20"], "d_min"),
        (["data.protocol.region=center"], "data.protocol.region"),
        (["+data.protocol.crop=garg"], "data.protocol.crop"),
        (["model.net.num_bins=abc"], "num_bins"),
        (["+trainer.max_stepz=3"], "trainer.max_stepz"),
        (["data.height=16"], "data.height"),
        (["model.decoder=median"], "model.decoder"),
        (["model.net.num_bins=1"], "model.net.num_bins"),
        (["model.net.backbone=resnet9"], "model.net.backbone"),
    ],
)
def test_a_bad_setting_is_named(overrides, message):
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        built(*overrides)


@pytest.mark.parametrize("model", ["small", "paper"])
def test_fused_optimizer_takes_the_same_step_as_the_loop(model):
    import torch

    steps = {}
    for fused in (True, False):
        torch.manual_seed(0)
        cfg = composed(
            f"model={model}",
            "model.net.pretrained=none",
            "model.net.backbone=resnet18",
            f"model.optimizer.fused={fused}",
        )
        module = build_module(cfg)
        opt = module.configure_optimizers()["optimizer"]
        assert opt.defaults["fused"] is fused
        for p in module.parameters():
            p.grad = torch.randn_like(p)
        opt.step()
        opt.step()  # the second step uses the momentum / moment buffers
        steps[fused] = torch.cat([p.detach().flatten() for p in module.parameters()])
    torch.testing.assert_close(steps[True], steps[False], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("data", "variable"), [("nyu", "NYU_ROOT"), ("nyu_sync", "NYU_SYNC_ROOT"), ("kitti", "KITTI_ROOT")]
)
def test_the_dataset_roots_come_from_their_environment_variables(data, variable, monkeypatch, tmp_path):
    from depth_lightning.core.config import compose_config

    monkeypatch.delenv(variable, raising=False)
    default = compose_config(f"data={data}").data.dataset.root
    monkeypatch.setenv(variable, str(tmp_path / "here"))
    assert compose_config(f"data={data}").data.dataset.root == str(tmp_path / "here") != default
    given = compose_config(f"data={data}", "data.dataset.root=/given").data.dataset.root
    assert given == "/given", "the command line wins over the environment"


def test_the_command_line_is_read_as_the_user_means_it(tmp_path, monkeypatch, capsys):
    from depth_lightning.run.command import command_line

    # +group=option for a chosen group, and the multirun flag moved after the overrides
    argv = ["train", "+debug=tiny", "-m", "seed=1,2", "+experiment=synthetic_ablation"]
    assert command_line(argv, "train") == ["train", "debug=tiny", "seed=1,2", "+experiment=synthetic_ablation", "-m"]
    # ckpt_path=last finds the newest run of its task that has a last.ckpt (only for a command that resumes)
    monkeypatch.setenv("DEPTH_LIGHTNING_LOGS", str(tmp_path))
    for stamp in ("2026-01-01_00-00-00", "2026-02-01_00-00-00", "2026-03-01_00-00-00"):
        (tmp_path / "train" / "runs" / stamp).mkdir(parents=True)
    for stamp in ("2026-01-01_00-00-00", "2026-02-01_00-00-00"):  # the newest folder has no checkpoint
        (tmp_path / "train" / "runs" / stamp / "checkpoints").mkdir()
        (tmp_path / "train" / "runs" / stamp / "checkpoints" / "last.ckpt").write_bytes(b"")
    newest = tmp_path / "train" / "runs" / "2026-02-01_00-00-00"
    assert command_line(["train", "ckpt_path=last"], "train", resumes=True) == [
        "train", "ckpt_path=last", f"hydra.run.dir={newest}"
    ]  # fmt: skip
    assert "resuming the newest run of task 'train'" in capsys.readouterr().out
    assert command_line(["train", "ckpt_path=last"], "train") == ["train", "ckpt_path=last"]
    given = ["train", "ckpt_path=last", "hydra.run.dir=elsewhere"]
    assert command_line(given, "train", resumes=True) == given  # the user named the folder
