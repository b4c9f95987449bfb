"""From config to objects: ``hydra.utils.instantiate`` with errors that name the config key.

Every group of ``conf/`` carries a ``_target_``; :func:`build` instantiates it after checking each
setting against the target's signature, so a misspelt or missing key fails at start-up, naming it.
Values are checked once, by the constructors, whose messages name their keys too.
"""

from __future__ import annotations

import hashlib
import inspect
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.types import RunMode
from hydra.utils import get_object, instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from depth_lightning.core.errors import ConfigError
from depth_lightning.core.resources import CONF_DIR


def plain(node: Any) -> Any:
    """A resolved plain-Python copy of a config node (dicts, lists, scalars)."""
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node


def accepted_arguments(obj: Any) -> list[str] | None:
    """The keyword arguments ``obj`` accepts; None when they cannot be known. The ``**kwargs`` of
    this package's classes go to their base class, whose arguments are followed; elsewhere a
    ``**kwargs`` may go anywhere (WandbLogger's go to ``wandb.init``)."""
    names: list[str] = []
    ours = inspect.isclass(obj) and obj.__module__.startswith("depth_lightning.")
    chain = [k.__init__ for k in obj.__mro__ if "__init__" in vars(k)] if ours else [obj]
    for fn in chain:
        params = inspect.signature(fn).parameters.values()
        names += [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self"]
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            return list(dict.fromkeys(names))
    return None


def check_arguments(node: Any, key: str) -> None:
    """Every setting of every ``_target_`` in ``node`` must be an argument of that target."""
    if isinstance(node, list):
        for i, item in enumerate(node):
            check_arguments(item, f"{key}[{i}]")
        return
    if not isinstance(node, Mapping):
        return
    target = node.get("_target_")
    if target is not None:
        try:
            obj = get_object(target)
        except Exception as err:
            raise ConfigError(f"config error: {key}._target_: {target!r} cannot be imported ({err})") from None
        params = accepted_arguments(obj)
        for name in (k for k in node if not str(k).startswith("_")):
            if params is not None and name not in params:
                raise ConfigError(
                    f"config error: {key}.{name}: not a setting of {target} (its settings: {', '.join(params)})"
                )
    for name, value in node.items():
        if not str(name).startswith("_"):
            check_arguments(value, f"{key}.{name}")


def build(node: Any, key: str, **kwargs: Any) -> Any:
    """Instantiate config ``node`` (found at ``key``) with ``kwargs``; errors name the key."""
    container = plain(node)
    check_arguments(container, key)
    try:
        return instantiate(container, **kwargs)
    except InstantiationException as err:
        cause = err.__cause__ or err
        if isinstance(cause, ConfigError):
            raise cause from None
        raise ConfigError(f"config error: {key}: {cause}") from None


def compose_config(*overrides: str, config_name: str = "train", output_dir: str = "unused") -> DictConfig:
    """A config of ``conf/`` composed as its entry point would, outside a Hydra run (for tests,
    benchmarks and notebooks); ``paths.output_dir`` is ``output_dir``."""
    register_resolvers()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(config_name, overrides=list(overrides), return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)  # for ${hydra:...} interpolations
    with open_dict(cfg):
        del cfg["hydra"]
        if "paths" in cfg:
            cfg.paths.output_dir = output_dir
    return cfg


def data_configs() -> list[str]:
    """The names ``data=`` accepts: the files of ``conf/data/``."""
    return sorted(p.stem for p in (Path(CONF_DIR) / "data").glob("*.yaml"))


def compose_data(name: str, overrides: list[str] | tuple[str, ...] = ()) -> DictConfig:
    """``conf/data/<name>.yaml`` as ``data=<name>`` composes it, with ``overrides`` of its keys
    (``dataset.root=...``), inside a Hydra run or outside one."""
    if name not in data_configs():
        raise ConfigError(
            f"config error: datasets: {name!r} is not a data config (conf/data/: {', '.join(data_configs())})"
        )
    register_resolvers()
    args = {"config_name": "benchmark_dataset", "overrides": [f"data={name}", *(f"data.{o}" for o in overrides)]}
    if GlobalHydra.instance().is_initialized():
        return compose(**args).data
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(**args).data


def default_groups(config_name: str) -> set[str]:
    """The config groups ``conf/<config_name>.yaml``'s defaults list chooses (``data``, ``debug``...)."""
    import yaml

    defaults = yaml.safe_load((Path(CONF_DIR) / f"{config_name}.yaml").read_text()).get("defaults") or []
    names = [next(iter(d)) for d in defaults if isinstance(d, dict)]
    return {n.removeprefix("optional ").removeprefix("override ").split("@")[0] for n in names}


def added_groups_as_choices(argv: list[str], config_name: str) -> list[str]:
    """``+group=option`` for a group the config's defaults already choose (``+debug=tiny``, as
    lightning-hydra-template's users add a debug config), read as ``group=option``, and said; Hydra
    would refuse it with "Multiple values for debug"."""
    groups, out = default_groups(config_name), [argv[0]]
    for arg in argv[1:]:
        key = arg[1:].split("=", 1)[0] if arg.startswith("+") and "=" in arg else None
        if key in groups:
            print(f"note: {arg}: {config_name}.yaml chooses {key} already; read as {arg[1:]}", file=sys.stderr)
            arg = arg[1:]
        out.append(arg)
    return out


def check_choice(value: Any, key: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"config error: {key}: {value!r} is not one of: {', '.join(allowed)}")


def cpu_has_native_bf16() -> bool:
    """Whether the CPU computes bf16 natively (AVX512-BF16 or AMX); AVX2-only CPUs emulate it, slowly."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def auto_precision() -> str:
    """``bf16-mixed`` where the hardware computes bf16 natively (CUDA, or a CPU with AVX512-BF16/AMX), else 32."""
    if torch.cuda.is_available():
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    return "bf16-mixed" if cpu_has_native_bf16() else "32-true"


def gpus_per_node(accelerator: str, devices: Any) -> int | None:
    """The GPUs a SLURM node must give a job: one per process on GPU accelerators, none on CPU."""
    if str(accelerator) in ("gpu", "cuda") and str(devices).isdigit():
        return int(devices)
    return None


# Overrides that say how to run a job, not what it computes: they never change its folder.
HOW_TO_RUN_KEYS = ("ckpt_path", "resume_or_fresh")


def job_key(overrides: Any) -> str:
    """A short stable key of a sweep job's overrides (order and resume switches ignored): the job's
    folder is ``<run_name>-<key>``, so re-running a sweep with a changed value list finds the
    folders of the jobs it already ran instead of numbering them anew."""
    kept = sorted(str(o) for o in overrides if str(o).lstrip("+~").split("=", 1)[0] not in HOW_TO_RUN_KEYS)
    return hashlib.sha1("\n".join(kept).encode()).hexdigest()[:8]


def run_group() -> str:
    """The W&B group: the sweep folder's name in a multirun (stable when the sweep is resumed into
    it), the run folder's name otherwise."""
    hydra_cfg = HydraConfig.get()
    folder = hydra_cfg.sweep.dir if hydra_cfg.mode == RunMode.MULTIRUN else hydra_cfg.run.dir
    return Path(str(folder)).name


def register_resolvers() -> None:
    """The resolvers ``conf/`` uses (``${job_key:...}``, ``${run_group:}``...), registered once per process:
    by every entry point (:func:`depth_lightning.run.command.command`), :func:`compose_config`, and the
    SLURM launcher's workers, before any config is resolved."""
    resolvers = (
        ("auto_precision", auto_precision),
        ("gpus_per_node", gpus_per_node),
        ("job_key", job_key),
        ("run_group", run_group),
    )
    for name, fn in resolvers:
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)


# torch's messages for invalid optimiser settings, and the key each one is about
_OPTIMIZER_KEYS = {
    "learning rate": "lr",
    "momentum": "momentum",
    "weight_decay": "weight_decay",
    "epsilon": "eps",
    "beta": "betas",
    "dampening": "dampening",
}


def check_optimizer_settings(optimizer: Mapping[str, Any], scheduler: Mapping[str, Any] | None) -> None:
    """The ``_partial_`` optimiser and schedule of ``model``, built once on a stand-in parameter, so that an
    invalid setting is named by its key when the run starts, not by torch when training starts."""
    try:
        built = instantiate(dict(optimizer))(params=[torch.nn.Parameter(torch.zeros(1))])
    except (ValueError, TypeError) as err:
        key = next((k for words, k in _OPTIMIZER_KEYS.items() if words in str(err)), None)
        where = f"model.optimizer.{key}={optimizer.get(key)!r}" if key else "model.optimizer"
        raise ConfigError(f"config error: {where}: {err}") from None
    if scheduler is not None:
        try:
            instantiate(dict(scheduler))(optimizer=built)
        except (ValueError, TypeError) as err:
            raise ConfigError(f"config error: model.scheduler: {err}") from None
