from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import open_dict

from depth_lightning.config import ConfigError, validate

CONF = str(Path(__file__).resolve().parent.parent / "conf")


def composed(*overrides: str):
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose("train", overrides=list(overrides), return_hydra_config=True)
        HydraConfig.instance().set_config(cfg)
        with open_dict(cfg):
            del cfg["hydra"]
        return cfg


@pytest.mark.parametrize("data", ["synthetic", "synthetic_outdoor"])
@pytest.mark.parametrize("model", ["small", "paper"])
@pytest.mark.parametrize("trainer", ["default", "cpu", "gpu", "ddp"])
def test_every_group_option_composes_and_validates(data, model, trainer):
    cfg = validate(composed(f"data={data}", f"model={model}", f"trainer={trainer}"))
    assert cfg.model.d_max == cfg.data.depth_max
    assert cfg.trainer.max_steps > 0 and cfg.trainer.accelerator


@pytest.mark.parametrize("logger", ["wandb", "csv", "tensorboard", "none", "default"])
def test_logger_options(logger):
    cfg = composed(f"logger={logger}")
    assert logger == "none" or cfg.logger


def test_paper_numbers_are_the_papers():
    cfg = validate(composed("model=paper"))
    m = cfg.model
    assert (m.backbone, m.num_bins, m.dropout, m.dilated, m.fusion) == ("resnet152", 200, 0.5, True, True)
    assert (m.optimizer.name, m.optimizer.lr, m.optimizer.momentum, m.optimizer.weight_decay) == (
        "sgd",
        1e-3,
        0.9,
        4e-4,
    )
    assert list(m.scheduler.milestones) == [30000, 40000] and m.scheduler.gamma == 0.1


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["+model.bakbone=x"], "bakbone"),
        (["model.dropout=1.5"], "model.dropout"),
        (["data.depth_min=20"], "d_min"),
        (["data.eval.region=center"], "data.eval.region"),
        (["+data.eval.crop=garg"], "data.eval.crop"),
        (["model.num_bins=abc"], "num_bins"),
    ],
)
def test_validation_names_the_key(overrides, message):
    with pytest.raises(ConfigError, match=message):
        validate(composed(*overrides))


@pytest.mark.parametrize("model", ["small", "paper"])
def test_fused_optimizer_takes_the_same_step_as_the_loop(model):
    import torch

    from depth_lightning.module import DepthModule, module_config

    cfg = validate(composed(f"model={model}", "model.pretrained=none", "model.backbone=resnet18"))
    steps = {}
    for fused in (True, False):
        with open_dict(cfg):
            cfg.model.optimizer.fused = fused
        torch.manual_seed(0)
        module = DepthModule(module_config(cfg))
        opt = module.configure_optimizers()["optimizer"]
        assert opt.defaults["fused"] is (True if fused else None)
        for p in module.parameters():
            p.grad = torch.randn_like(p)
        opt.step()
        opt.step()  # the second step uses the momentum / moment buffers
        steps[fused] = torch.cat([p.detach().flatten() for p in module.parameters()])
    torch.testing.assert_close(steps[True], steps[False], rtol=1e-5, atol=1e-6)
