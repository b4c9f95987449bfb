"""Training steps: the suite against a hand-written loop, the paper configuration with its data
loader, a bare torchvision ResNet-152 as the reference, precision and layout, memory against K."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.timing import measure, summary
from depth_lightning.core.config import build, compose_config
from depth_lightning.data import SyntheticScenes
from depth_lightning.run.setup import build_module

SCRATCH = Path(tempfile.gettempdir()) / "depth_lightning_bench"


def module_and_config(*overrides: str) -> tuple[Any, Any]:
    """The main job's LightningModule for ``overrides`` (no pretrained weights: none on this machine)."""
    cfg = compose_config("model.net.pretrained=none", *overrides, output_dir=str(SCRATCH))
    return build_module(cfg), cfg


def batches(cfg: Any, n: int, batch: int) -> list[dict[str, torch.Tensor]]:
    """``n`` batches of synthetic frames at the config's input size."""
    ds = SyntheticScenes(train_length=n * batch, input_size=(cfg.data.height, cfg.data.width), seed=5)
    items = [ds[i] for i in range(n * batch)]
    return [
        {
            k: torch.stack([torch.as_tensor(it[k]) for it in items[j * batch : (j + 1) * batch]])
            for k in ("image", "depth")
        }
        for j in range(n)
    ]


def step_flops(module: Any, batch: dict[str, torch.Tensor]) -> int:
    """FLOPs of one forward and backward pass of ``batch``, counted."""
    with FlopCounterMode(display=False) as counter:
        module.loss(module(batch["image"]), batch["depth"])[0].backward()
    module.zero_grad(set_to_none=True)
    return int(counter.get_total_flops())


def hand_step(module: Any, opt: torch.optim.Optimizer, batch: dict[str, torch.Tensor], bf16: bool) -> None:
    """The suite's forward, loss, backward and optimiser step, written by hand."""
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        loss = module.loss(module(batch["image"]), batch["depth"])[0]
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)


def plain_loop(module: Any, data: list[dict[str, torch.Tensor]], bf16: bool) -> list[float]:
    """Seconds per step of :func:`hand_step` over ``data``."""
    opt = module.configure_optimizers()["optimizer"]
    module.train()
    times = []
    for batch in data:
        start = time.perf_counter()
        hand_step(module, opt, batch, bf16)
        times.append(time.perf_counter() - start)
    return times


def trainer_loop(module: Any, data: Any, precision: str, accumulate: int = 1, steps: int | None = None, **kw: Any):
    """Seconds per optimiser step through the suite's Trainer: its non-finite guard, metrics, CSV
    logging at the default cadence (checkpoints off), on a list of batches or a DataLoader."""
    import lightning as L
    from lightning.pytorch.loggers import CSVLogger

    from depth_lightning.run.faults import NonFiniteGuard

    stamps: list[float] = []

    class Stamp(L.Callback):
        def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
            if trainer.fit_loop.epoch_loop.batch_progress.current.completed % accumulate == 0:
                stamps.append(time.perf_counter())

    trainer = L.Trainer(
        accelerator="cpu",
        precision=precision,
        max_steps=steps or len(data) // accumulate,
        logger=CSVLogger(str(SCRATCH)),
        callbacks=[Stamp(), NonFiniteGuard(kw.pop("nonfinite", "stop"))],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        accumulate_grad_batches=accumulate,
        log_every_n_steps=20,
    )
    if isinstance(data, list):
        data = torch.utils.data.DataLoader(data, batch_size=None)
    trainer.fit(module, train_dataloaders=data)
    return [b - a for a, b in zip(stamps, stamps[1:], strict=False)]


def overhead(precision: str, rounds: int, nonfinite: str = "stop") -> dict[str, Any]:
    """The suite's step against the hand-written one on identical batches, interleaved rounds."""
    module, cfg = module_and_config()
    data = batches(cfg, 16, cfg.data.batch_size)
    suite, plain = [], []
    for _ in range(rounds):
        suite += trainer_loop(module, data, precision, nonfinite=nonfinite)[3:]
        plain += plain_loop(module, data, precision.startswith("bf16"))[3:]
    s, p = summary(suite), summary(plain)
    flops = step_flops(module, data[0])
    return {"suite": s, "plain": p, "ratio": s["median"] / p["median"], "flops_per_step": flops}


def bare_resnet152(bf16: bool) -> dict[str, Any]:
    """torchvision's ResNet-152, dilated like ours, without head: forward, a scalar loss, backward,
    SGD step at 240x320, batch 1, channels_last, hand-written. The reference for the suite's step."""
    import torchvision

    net = torchvision.models.resnet152(replace_stride_with_dilation=[False, True, True])
    net.fc, net.avgpool = torch.nn.Identity(), torch.nn.Identity()
    net = net.to(memory_format=torch.channels_last)
    x = torch.randn(1, 3, 240, 320).contiguous(memory_format=torch.channels_last)
    opt = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9, weight_decay=4e-4)

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            y = net(x)
        y.float().mean().backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    with FlopCounterMode(display=False) as counter:
        step()
    t = measure(step)
    flops = int(counter.get_total_flops())
    return {"s_per_image": t, "flops": flops, "flops_per_s": flops / t["median"]}


def paper_step(root: Path, precision: str, steps: int) -> dict[str, Any]:
    """ResNet-152, K = 200, 240x320, batch 1 accumulated over 8, through the suite's Trainer, with
    NYU sync frames read, augmented and resized by the suite's loader (one worker) as in training.
    The first optimiser step is warm-up; the others are timed."""
    module, cfg = module_and_config(
        "model=paper",
        "data=nyu_sync",
        f"data.dataset.root={root}",
        f"data.dataset.train_list={root / 'train.txt'}",
        f"data.dataset.val_list={root / 'train.txt'}",
        f"data.dataset.test_list={root / 'test.txt'}",
        "data.dataset.fill=none",
        "data.num_workers=1",
    )
    datamodule = build(cfg.data, "data")
    loader = datamodule.train_dataloader()
    times = trainer_loop(module, loader, precision, accumulate=8, steps=steps)
    per_image = step_flops(module, next(iter(loader)))
    t = summary(times)
    return {"s_per_optimiser_step": t, "flops_per_image": per_image, "flops_per_s": 8 * per_image / t["median"]}


def precision_modes(native_bf16: bool) -> dict[str, Any]:
    """Step time of the small configuration in float32, bf16 (where native), channels_last off,
    and torch.compile."""
    modes = [("fp32", "32-true", []), ("fp32 NCHW", "32-true", ["model.channels_last=false"])]
    if native_bf16:
        modes += [("bf16", "bf16-mixed", []), ("bf16 NCHW", "bf16-mixed", ["model.channels_last=false"])]
    results: dict[str, Any] = {}
    for name, precision, overrides in modes:
        module, cfg = module_and_config(*overrides)
        data = batches(cfg, 8, cfg.data.batch_size)
        results[name] = summary(plain_loop(module, data, precision.startswith("bf16"))[2:])["median"]
    try:
        module, cfg = module_and_config("model.compile=true")
        data = batches(cfg, 8, cfg.data.batch_size)
        times = plain_loop(module, data, native_bf16)
        results["compiled"] = summary(times[2:])["median"]
        results["compile_first_step_s"] = times[0]
    except Exception as err:  # reported, not hidden
        results["compiled"] = f"failed: {type(err).__name__}: {str(err)[:200]}"
    return results


def training_memory(module: Any, batch: dict[str, torch.Tensor], bf16: bool) -> dict[str, float]:
    """Training memory of one step, counted exactly rather than sampled: weights, gradients and
    SGD momentum (3 x parameters) plus every tensor autograd saves for the backward pass (unique
    storages), the quantity that sets peak memory on a GPU."""
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        s = t.untyped_storage()
        storages[s.data_ptr()] = s.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = module.loss(module(batch["image"]), batch["depth"])[0]
    params = sum(p.numel() * p.element_size() for p in module.parameters())
    loss.backward()
    module.zero_grad(set_to_none=True)
    return {
        "activations_mb": sum(storages.values()) / 2**20,
        "weights_grads_momentum_mb": 3 * params / 2**20,
        "total_mb": (sum(storages.values()) + 3 * params) / 2**20,
    }


def bins_cost(bins: tuple[int, ...], bf16: bool, timed: bool) -> list[dict[str, Any]]:
    """The paper configuration (ResNet-152, 240x320, batch 1) at every bin count and upsampling:
    training memory (counted) and, unless ``timed`` is False, seconds per image."""
    rows = []
    for up in ("bilinear", "learned"):
        for k in bins:
            module, cfg = module_and_config(
                "model=paper",
                f"model.net.num_bins={k}",
                f"model.net.upsample={up}",
                "data.height=240",
                "data.width=320",
            )
            data = batches(cfg, 2, 1)
            row: dict[str, Any] = {"bins": k, "upsample": up, **training_memory(module, data[1], bf16)}
            if timed:
                opt = module.configure_optimizers()["optimizer"]
                row["s_per_image"] = measure(lambda m=module, o=opt, b=data[0]: hand_step(m, o, b, bf16))["median"]
            rows.append(row)
    return rows
