"""Config schemas: a misspelt key or an impossible value fails at start-up, naming it.

Hydra composes ``conf/``; :func:`validate` then merges each section into its dataclass schema
(unknown keys and wrong types raise) and checks the values no type can express.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from depth_lightning.data.datamodule import DATASETS
from depth_lightning.data.kitti import PIXEL_RULES
from depth_lightning.models.backbone import BACKBONES
from depth_lightning.models.bins import DECODERS
from depth_lightning.models.head import UPSAMPLE_MODES
from depth_lightning.models.network import NORMALIZATIONS, input_normalization
from depth_lightning.protocol import EvalProtocol


class ConfigError(ValueError):
    """A configuration value that cannot work; the message names the key."""


@dataclass
class OptimizerConfig:
    name: str = "sgd"
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 4e-4
    nesterov: bool = False
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    # One kernel for the whole update (CPU and CUDA): same arithmetic, 2.5-3x faster on the CPU.
    fused: bool = True


@dataclass
class SchedulerConfig:
    name: str = "multistep"  # multistep | cosine | constant
    milestones: list[int] = field(default_factory=lambda: [30000, 40000])
    gamma: float = 0.1
    warmup_steps: int = 0
    total_steps: int = 50000  # for cosine
    min_lr_ratio: float = 0.0


@dataclass
class ModelConfig:
    backbone: str = "resnet152"
    pretrained: str = "imagenet"
    dilated: bool = True
    fusion: bool = True
    taps: list[str] = field(default_factory=lambda: ["layer2", "layer3.mid", "layer3", "layer4"])
    reduce_channels: int | None = None
    dropout: float = 0.5
    num_bins: int = 200
    d_min: float = 0.5
    d_max: float = 10.0
    upsample: str = "learned"
    decoder: str = "soft"
    sync_bn: bool = False
    compile: bool = False
    channels_last: bool = False
    normalize: str = "auto"
    freeze_bn: bool = False
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)


@dataclass
class EvalConfig:
    region: str = "full"
    min_depth: float = 1e-3
    caps: list[float] = field(default_factory=lambda: [10.0])
    aggregation: str = "per_image"


@dataclass
class AugmentConfig:
    color: list[float] | None = None
    scale: list[float] | None = None
    flip: bool = False
    rotate: float | None = None
    divide_depth_by_scale: bool = True


@dataclass
class DataConfig:
    name: str = "synthetic"
    scene: str = "indoor"
    root: str | None = None
    height: int = 120
    width: int = 160
    depth_min: float = 0.5
    depth_max: float = 10.0
    train_length: int = 2000
    val_length: int = 64
    test_length: int = 64
    batch_size: int = 8
    eval_batch_size: int = 8
    num_workers: int = 1
    seed: int = 0
    cache: bool = True
    flip: bool = True
    baseline_frames: int = 256
    eval: EvalConfig = field(default_factory=EvalConfig)
    # real datasets (conf/data/nyu*.yaml, kitti.yaml)
    labelled_mat: str | None = None
    splits_mat: str | None = None
    train_list: str | None = None
    val_list: str | None = None
    test_list: str | None = None
    val_fraction: float = 0.05
    val_max_frames: int | None = None
    target: str = "filled"
    fill: str = "none"
    border: list[int] | None = None
    gt: str = "velodyne"
    velodyne_pixel: str = "round"
    annotated_root: str | None = None
    frame_size: list[int] | None = None
    image_ext: str = ".png"
    skip_bad_samples: bool = False
    augment: AugmentConfig | None = None


SCHEMAS: dict[str, type] = {"model": ModelConfig, "data": DataConfig}


def _check(ok: bool, key: str, msg: str) -> None:
    if not ok:
        raise ConfigError(f"config error: {key}: {msg}")


def _choice(value: Any, key: str, allowed: tuple[str, ...]) -> None:
    _check(value in allowed, key, f"{value!r} is not one of: {', '.join(allowed)}")


def validate(cfg: DictConfig) -> DictConfig:
    """Check ``cfg`` against the schemas and return it with the schema defaults filled in."""
    for section, schema in SCHEMAS.items():
        if section not in cfg:
            raise ConfigError(f"config error: the '{section}' section is missing (pick one, e.g. {section}=...)")
        try:
            merged = OmegaConf.merge(OmegaConf.structured(schema), cfg[section])
        except OmegaConfBaseException as err:
            key = getattr(err, "full_key", None) or ""
            raise ConfigError(f"config error: {section}.{key}: {err.msg if hasattr(err, 'msg') else err}") from None
        with open_dict(cfg):
            cfg[section] = merged
    m, d = cfg.model, cfg.data
    _choice(m.backbone, "model.backbone", BACKBONES)
    _choice(m.upsample, "model.upsample", UPSAMPLE_MODES)
    _choice(m.decoder, "model.decoder", DECODERS)
    _check(m.num_bins >= 2, "model.num_bins", f"needs at least 2 bins, got {m.num_bins}")
    _check(0 < m.d_min < m.d_max, "model.d_min/d_max", f"need 0 < d_min < d_max, got {m.d_min}, {m.d_max}")
    _check(0 <= m.dropout < 1, "model.dropout", f"must be in [0, 1), got {m.dropout}")
    _choice(m.optimizer.name, "model.optimizer.name", ("sgd", "adamw"))
    _check(m.optimizer.lr > 0, "model.optimizer.lr", f"must be > 0, got {m.optimizer.lr}")
    _choice(m.scheduler.name, "model.scheduler.name", ("multistep", "cosine", "constant"))
    _check(
        list(m.scheduler.milestones) == sorted(m.scheduler.milestones),
        "model.scheduler.milestones",
        "must be increasing",
    )
    _check(d.height >= 32 and d.width >= 32, "data.height/width", f"must be >= 32, got {d.height}x{d.width}")
    _check(d.batch_size >= 1 and d.eval_batch_size >= 1, "data.batch_size", "must be >= 1")
    _check(d.num_workers >= 0, "data.num_workers", "must be >= 0")
    _choice(cfg.get("nonfinite", "stop"), "nonfinite", ("stop", "skip", "off"))
    _check(isinstance(cfg.get("keep_freed_memory", True), bool), "keep_freed_memory", "must be true or false")
    _choice(cfg.get("test_checkpoint", "last"), "test_checkpoint", ("last", "best"))
    _choice(m.normalize, "model.normalize", ("auto", *NORMALIZATIONS))
    with open_dict(cfg):  # recorded resolved, so a checkpoint rebuilds the same network
        m.normalize = input_normalization(m.normalize, m.pretrained)
    _choice(d.name, "data.name", DATASETS)
    _choice(d.target, "data.target", ("filled", "raw"))
    _choice(d.fill, "data.fill", ("colorization", "none"))
    _choice(d.gt, "data.gt", ("velodyne", "annotated"))
    _choice(d.velodyne_pixel, "data.velodyne_pixel", PIXEL_RULES)
    _check(0 < d.val_fraction < 1, "data.val_fraction", f"must be in (0, 1), got {d.val_fraction}")
    _check(
        d.val_list is None or d.test_list is None or str(d.val_list) != str(d.test_list),
        "data.val_list",
        "is the test list: choosing a checkpoint on the test set biases the test numbers; set val_list=null "
        "to validate on scenes held out of the training list",
    )
    try:
        EvalProtocol(**d.eval)
    except ValueError as err:
        raise ConfigError(f"config error: {err}") from None
    return cfg


def auto_precision() -> str:
    """``bf16-mixed`` where the hardware computes bf16 natively (CUDA, or a CPU with AVX512-BF16/AMX), else 32."""
    import torch

    if torch.cuda.is_available():
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    try:
        native = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        native = False
    return "bf16-mixed" if native else "32-true"


def gpus_per_node(accelerator: str, devices: Any) -> int | None:
    """The GPUs a SLURM node must give a job: one per process on GPU accelerators, none on CPU."""
    if str(accelerator) in ("gpu", "cuda") and str(devices).isdigit():
        return int(devices)
    return None


def register_resolvers() -> None:
    for name, fn in (("auto_precision", auto_precision), ("gpus_per_node", gpus_per_node)):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)


register_resolvers()
