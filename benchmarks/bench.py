"""``make bench``: every performance number of the suite, measured side by side in one run.

Writes ``benchmarks/results/<machine>-<date>.json`` and ``.md``. Ratios are computed between
measurements taken in the same run; each time is the median of several repeats, with its spread.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
SCRATCH = Path(tempfile.gettempdir()) / "depth_lightning_bench"


def timed(fn: Callable[[], Any], repeats: int = 5, warmup: int = 1) -> dict[str, float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return {"median": statistics.median(times), "min": min(times), "max": max(times), "n": repeats}


def build(**overrides: Any):
    """A DepthModule from the composed default config plus ``key=value`` overrides."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import open_dict

    from depth_lightning.config import validate
    from depth_lightning.module import DepthModule, module_config

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=[f"{k}={v}" for k, v in overrides.items()])
    with open_dict(cfg):
        cfg.paths.output_dir = str(SCRATCH)
    cfg = validate(cfg)
    return DepthModule(module_config(cfg)), cfg


def batches(cfg: Any, n: int, batch: int) -> list[dict[str, torch.Tensor]]:
    from depth_lightning.data import SyntheticScenes

    ds = SyntheticScenes(n * batch, cfg.data.height, cfg.data.width, seed=5)
    items = [ds[i] for i in range(n * batch)]
    return [
        {
            k: torch.stack([torch.as_tensor(it[k]) for it in items[j * batch : (j + 1) * batch]])
            for k in ("image", "depth", "index")
        }
        for j in range(n)
    ]


# ----------------------------------------------------------------------------- machine limits
def peak_conv(dtype: torch.dtype) -> dict[str, float]:
    """FLOP/s of a 256-channel 3x3 convolution at 60x80, forward and backward, in both memory
    layouts; ``best`` is the machine's reference for the efficiency ratios."""
    out = {}
    for layout in ("nchw", "channels_last"):
        fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
        x = torch.randn(1, 256, 60, 80).contiguous(memory_format=fmt).requires_grad_()
        w = torch.randn(256, 256, 3, 3).contiguous(memory_format=fmt).requires_grad_()
        flops = 3 * 2 * 256 * 256 * 9 * 60 * 80  # forward + two backward convolutions

        def step(x=x, w=w):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
                y = F.conv2d(x, w, padding=1)
            y.sum().backward()

        out[layout] = flops / timed(step, repeats=7, warmup=2)["min"]
    out["best"] = max(out.values())
    return out


def conv_kinds(dtype: torch.dtype) -> dict[str, float]:
    """FLOP/s (fwd+bwd, channels_last, batch 1, 30x40) of the convolutions ResNet-152 is made of at
    240x320: they, not the suite, set how close a training step can come to the peak."""
    shapes = {
        "3x3 256->256": (256, 256, 3),
        "1x1 1024->256": (1024, 256, 1),
        "1x1 256->1024": (256, 1024, 1),
        "3x3 4608->200 (head)": (4608, 200, 3),
    }
    out = {}
    for name, (cin, cout, k) in shapes.items():
        x = torch.randn(1, cin, 30, 40).contiguous(memory_format=torch.channels_last).requires_grad_()
        w = torch.randn(cout, cin, k, k).contiguous(memory_format=torch.channels_last).requires_grad_()

        def step(x=x, w=w, k=k):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
                y = F.conv2d(x, w, padding=k // 2)
            y.sum().backward()

        out[name] = 3 * 2 * cin * cout * k * k * 30 * 40 / timed(step, repeats=5, warmup=2)["min"]
    return out


def bare_resnet152(precision: str, channels_last: bool = True) -> dict[str, Any]:
    """torchvision's ResNet-152, dilated like ours, without head: forward, a scalar loss, backward,
    SGD step at 240x320, batch 1, hand-written. The reference the suite's step is compared with."""
    import torchvision

    net = torchvision.models.resnet152(replace_stride_with_dilation=[False, True, True])
    net.fc, net.avgpool = torch.nn.Identity(), torch.nn.Identity()
    x = torch.randn(1, 3, 240, 320)
    if channels_last:
        net, x = net.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9, weight_decay=4e-4)
    bf16 = precision.startswith("bf16")

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            y = net(x)
        y.float().mean().backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    with FlopCounterMode(display=False) as counter:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            y = net(x)
        y.float().mean().backward()
    opt.zero_grad(set_to_none=True)
    t = timed(step, repeats=3, warmup=1)
    flops = int(counter.get_total_flops())
    return {
        "s_per_image": t["median"],
        "spread": [t["min"], t["max"]],
        "flops": flops,
        "flops_per_s": flops / t["median"],
    }


# ----------------------------------------------------------------------------- training steps
def step_flops(module, batch: dict[str, torch.Tensor]) -> int:
    with FlopCounterMode(display=False) as counter:
        loss = module._loss(module(batch["image"]), batch["depth"])[0]
        loss.backward()
    module.zero_grad(set_to_none=True)
    return int(counter.get_total_flops())


def hand_step(module, opt: torch.optim.Optimizer, batch: dict[str, torch.Tensor], precision: str) -> None:
    """The suite's forward, loss, backward and optimiser step, written by hand."""
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision.startswith("bf16")):
        loss = module._loss(module(batch["image"]), batch["depth"])[0]
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)


def plain_loop(module, data: list[dict[str, torch.Tensor]], precision: str) -> list[float]:
    """The same forward, loss, backward and step as the suite, by hand; seconds per step."""
    opt = module.configure_optimizers()["optimizer"]
    module.train()
    times = []
    for batch in data:
        start = time.perf_counter()
        hand_step(module, opt, batch, precision)
        times.append(time.perf_counter() - start)
    return times


def lightning_loop(module, data: Any, precision: str, accumulate: int = 1, max_steps: int | None = None) -> list[float]:
    """The suite's Trainer (metrics, logging at their default cadence, checkpoints off) on a list of
    batches or a DataLoader; seconds per optimiser step."""
    import lightning as L
    from lightning.pytorch.loggers import CSVLogger

    stamps: list[float] = []

    class Stamp(L.Callback):
        def on_train_batch_end(self, trainer, *args):
            if (trainer.fit_loop.epoch_loop.batch_progress.current.completed % accumulate) == 0:
                stamps.append(time.perf_counter())

    trainer = L.Trainer(
        accelerator="cpu",
        precision=precision,
        max_steps=max_steps or len(data) // accumulate,
        logger=CSVLogger(str(SCRATCH)),
        callbacks=[Stamp()],
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


def overhead(precision: str, **overrides: Any) -> dict[str, Any]:
    """Suite vs plain loop on identical batches, interleaved repeats."""
    module, cfg = build(**overrides)
    data = batches(cfg, 24, cfg.data.batch_size)
    suite, plain = [], []
    for _ in range(3):
        suite += lightning_loop(module, data, precision)[4:]
        plain += plain_loop(module, data, precision)[4:]
    s, p = statistics.median(suite), statistics.median(plain)
    flops = step_flops(module, data[0])
    return {
        "suite_s_per_step": s,
        "plain_s_per_step": p,
        "ratio": s / p,
        "suite_spread": [min(suite), max(suite)],
        "plain_spread": [min(plain), max(plain)],
        "flops_per_step": flops,
        "suite_flops_per_s": flops / s,
    }


def nyu_sync_tree(root: Path, frames: int) -> Path:
    """NYU "sync" frames in the dataset's own format (480x640 JPEG + 16-bit PNG, a list file),
    written by the test suite's fixture writer."""
    sys.path.insert(0, str(ROOT / "tests"))
    from datasets import write_nyu_sync

    return write_nyu_sync(root, {"scene": frames})


def paper_step(root: Path, precision: str, channels_last: bool = True, steps: int = 5) -> dict[str, Any]:
    """ResNet-152, K = 200, 240x320, batch 1 accumulated over 8, through the suite's Trainer, with
    NYU sync frames read, augmented and resized by the suite's loader (one worker) as in training.
    The first optimiser step is warm-up; the others are timed."""
    from depth_lightning.data import DepthDataModule

    module, cfg = build(
        model="paper",
        data="nyu_sync",
        **{
            "data.root": root,
            "data.train_list": root / "train.txt",
            "data.test_list": root / "test.txt",
            "data.fill": "none",
            "data.num_workers": 1,
            "model.pretrained": "none",
            "model.channels_last": channels_last,
        },
    )
    loader = DepthDataModule(cfg.data).train_dataloader()
    times = lightning_loop(module, loader, precision, accumulate=8, max_steps=steps)
    batch = next(iter(torch.utils.data.DataLoader(loader.dataset, batch_size=1, collate_fn=loader.collate_fn)))
    per_image = step_flops(module, batch)
    t = statistics.median(times)
    return {
        "s_per_optimiser_step": t,
        "spread": [min(times), max(times)],
        "flops_per_image": per_image,
        "flops_per_s": 8 * per_image / t,
        "steps_timed": len(times),
    }


# ----------------------------------------------------------------------------- bins vs memory
def training_memory(module, batch: dict[str, torch.Tensor]) -> dict[str, float]:
    """Training memory of one step, counted exactly rather than sampled: weights, gradients and
    SGD momentum (3 x parameters) plus every tensor autograd saves for the backward pass (unique
    storages), the quantity that sets peak memory on a GPU."""
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        s = t.untyped_storage()
        storages[s.data_ptr()] = s.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = module._loss(module(batch["image"]), batch["depth"])[0]
    params = sum(p.numel() * p.element_size() for p in module.parameters())
    start = time.perf_counter()
    loss.backward()
    module.zero_grad(set_to_none=True)
    return {
        "activations_mb": sum(storages.values()) / 2**20,
        "weights_grads_momentum_mb": 3 * params / 2**20,
        "total_mb": (sum(storages.values()) + 3 * params) / 2**20,
        "backward_s": time.perf_counter() - start,
    }


def bins_cost() -> list[dict[str, Any]]:
    """Paper configuration (ResNet-152, 240x320, batch 1, bf16) at every bin count and upsampling."""
    rows = []
    for up in ("bilinear", "learned"):
        for k in (50, 100, 200, 500, 1000):
            module, cfg = build(
                model="paper",
                **{
                    "model.pretrained": "none",
                    "model.num_bins": k,
                    "model.upsample": up,
                    "data.height": 240,
                    "data.width": 320,
                },
            )
            data = batches(cfg, 3, 1)
            opt = module.configure_optimizers()["optimizer"]
            t = timed(lambda m=module, o=opt, b=data[0]: hand_step(m, o, b, "bf16-mixed"), repeats=2, warmup=1)
            rows.append({"bins": k, "upsample": up, "s_per_image": t["median"], **training_memory(module, data[1])})
    return rows


# ----------------------------------------------------------------------------- precision, compile
def precision_modes() -> dict[str, Any]:
    results: dict[str, Any] = {}
    for name, kw, prec in (
        ("fp32", {}, "32-true"),
        ("bf16", {}, "bf16-mixed"),
        ("bf16+channels_last", {"model.channels_last": True}, "bf16-mixed"),
    ):
        module, cfg = build(**kw)
        data = batches(cfg, 12, cfg.data.batch_size)
        results[name] = statistics.median(plain_loop(module, data, prec)[3:])
    try:
        module, cfg = build(**{"model.compile": True})
        data = batches(cfg, 12, cfg.data.batch_size)
        start = time.perf_counter()
        times = plain_loop(module, data, "bf16-mixed")
        results["bf16+compile"] = statistics.median(times[3:])
        results["compile_first_step_s"] = times[0]
        results["compile_total_s"] = time.perf_counter() - start
    except Exception as err:  # reported, not hidden
        results["bf16+compile"] = f"failed: {type(err).__name__}: {str(err)[:200]}"
    return results


# ----------------------------------------------------------------------------- evaluation protocol
def evaluation(model: str = "small", images: int = 12) -> dict[str, Any]:
    """Images/s of the NYU protocol through the suite's own test step (240x320 input): forward, loss,
    both decoders, upsampling to the 426x560 Eigen box of the 480x640 frame, the depth metrics of
    both decoders and the pixel-accuracy counts; and the share of the metrics (preparing the ground
    truth's terms and every metric update) in it."""
    module, cfg = build(model=model, **{"model.pretrained": "none", "data.height": 240, "data.width": 320})
    module.eval()
    spent = [0.0]

    def timing(fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed_fn(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            out = fn(*args, **kwargs)
            spent[0] += time.perf_counter() - start
            return out

        return timed_fn

    for metric in module.metrics.values():
        metric.prepare = timing(metric.prepare)
    for metric in [*module.metrics.values(), *module.pixel_counts.values()]:
        metric.update = timing(metric.update)
    batches = [
        {"image": torch.rand(1, 3, 240, 320), "depth": torch.rand(1, 426, 560) * 9 + 0.5, "index": torch.tensor([i])}
        for i in range(images)
    ]

    def one_pass() -> None:
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            for i, batch in enumerate(batches):
                module.test_step(batch, i)

    one_pass()  # warm-up
    totals, shares = [], []
    for _ in range(3):
        spent[0] = 0.0
        start = time.perf_counter()
        one_pass()
        total = time.perf_counter() - start
        totals.append(total / len(batches))
        shares.append(spent[0] / total)
    return {
        "images_per_s": 1 / statistics.median(totals),
        "s_per_image_spread": [min(totals), max(totals)],
        "metrics_share": statistics.median(shares),
        "metrics_share_spread": [min(shares), max(shares)],
    }


# ----------------------------------------------------------------------------- data loading
def data_loading() -> dict[str, Any]:
    """Samples/s of one DataLoader worker's work (decode, augment, resize) on files in the datasets'
    formats written here: NYU sync (480x640 JPEG + 16-bit PNG) -> 240x320 with the paper's
    augmentation, and KITTI raw (375x1242 PNG + Velodyne scan projected) -> 188x620."""
    from omegaconf import OmegaConf

    from depth_lightning.data.kitti import KITTIEigen
    from depth_lightning.data.nyu import NYUSync

    torch.set_num_threads(1)
    augment = OmegaConf.create({"color": [0.9, 1.1], "scale": [1.3, 1.5], "flip": True, "rotate": 5.0})
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = nyu_sync_tree(Path(tmp) / "nyu", 16)
        nyu = NYUSync(
            str(root),
            str(root / "train.txt"),
            border=[45, 471, 41, 601],
            input_size=(240, 320),
            train=True,
            augment=augment,
        )
        t = timed(lambda: [nyu[(0, i)] for i in range(16)], repeats=3)
        out["nyu_sync_train_per_worker"] = 16 / t["median"]
        from datasets import write_kitti  # the test suite's writer of a KITTI raw tree

        k = write_kitti(Path(tmp) / "kitti", frames=(0, 1, 2, 3))
        kitti = KITTIEigen(
            str(k["raw"]),
            str(k["monodepth2"]),
            gt="velodyne",
            frame_size=[370, 1224],
            input_size=(188, 620),
            train=True,
            augment=augment,
        )
        t = timed(lambda: [kitti[(0, i)] for i in range(4)], repeats=3)
        out["kitti_velodyne_train_per_worker"] = 4 / t["median"]
    torch.set_num_threads(os.cpu_count() or 1)
    return out


# ----------------------------------------------------------------------------- GPU planning
GPUS = {
    "V100 (125 TFLOP/s fp16 tensor)": 125e12,
    "A100 (312 TFLOP/s bf16)": 312e12,
    "H100 SXM (989 TFLOP/s bf16)": 989e12,
}
UTILISATION = 0.35


def gpu_plan(flops_per_image: dict[str, float]) -> list[dict[str, Any]]:
    """Estimates: training FLOPs per image / (peak x utilisation); NYU epoch = 24k images,
    the paper's schedule = 50k steps x 8 images."""
    rows = []
    for config, f in flops_per_image.items():
        for gpu, peak in GPUS.items():
            s_img = f / (peak * UTILISATION)
            rows.append(
                {
                    "config": config,
                    "gpu": gpu,
                    "train_tflops_per_image": f / 1e12,
                    "epoch_24k_min": 24_000 * s_img / 60,
                    "schedule_50k_x8_h": 400_000 * s_img / 3600,
                }
            )
    return rows


def main() -> None:
    from depth_lightning.allocator import keep_freed_memory

    keep_freed_memory()  # as the suite's entry points do
    torch.set_num_threads(os.cpu_count() or 1)
    started = time.perf_counter()
    out: dict[str, Any] = {
        "machine": socket.gethostname(),
        "date": datetime.now().isoformat(timespec="seconds"),
        "cpu": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }

    def section(name: str, fn: Callable[[], Any]) -> None:
        t = time.perf_counter()
        out[name] = fn()
        print(f"[bench] {name}: {time.perf_counter() - t:.0f} s", flush=True)

    section("peak_conv_flops", lambda: {"fp32": peak_conv(torch.float32), "bf16": peak_conv(torch.bfloat16)})
    section("conv_kinds", lambda: {"bf16": conv_kinds(torch.bfloat16), "fp32": conv_kinds(torch.float32)})
    section("bare_resnet152", lambda: {"bf16": bare_resnet152("bf16-mixed"), "fp32": bare_resnet152("32-true")})
    section("suite_overhead", lambda: overhead("bf16-mixed"))
    section("suite_overhead_guard_off", lambda: overhead("bf16-mixed", nonfinite="off"))
    with tempfile.TemporaryDirectory() as tmp:
        nyu = nyu_sync_tree(Path(tmp), 40)
        section("paper_step", lambda: paper_step(nyu, "bf16-mixed"))
        section("paper_step_fp32", lambda: paper_step(nyu, "32-true"))
        section("paper_step_nchw", lambda: paper_step(nyu, "bf16-mixed", channels_last=False))
    section("precision", precision_modes)
    section("bins_cost", bins_cost)
    section("evaluation", lambda: {"small": evaluation("small"), "paper": evaluation("paper", images=4)})
    section("data_loading", data_loading)
    from benchmarks.synthetic_render import main as render

    section("synthetic_render", render)
    small_train = out["suite_overhead"]["flops_per_step"] / 8
    paper_train = out["paper_step"]["flops_per_image"]  # forward + backward, counted
    out["gpu_plan"] = gpu_plan(
        {"paper (ResNet-152, K=200, 240x320)": paper_train, "small (ResNet-18, K=80, 120x160)": small_train}
    )
    peak, bare = out["peak_conv_flops"], out["bare_resnet152"]
    out["efficiency"] = {
        "paper_bf16_vs_peak": out["paper_step"]["flops_per_s"] / peak["bf16"]["best"],
        "paper_fp32_vs_peak": out["paper_step_fp32"]["flops_per_s"] / peak["fp32"]["best"],
        "bare_bf16_vs_peak": bare["bf16"]["flops_per_s"] / peak["bf16"]["best"],
        "bare_fp32_vs_peak": bare["fp32"]["flops_per_s"] / peak["fp32"]["best"],
        "paper_vs_bare_bf16": out["paper_step"]["flops_per_s"] / bare["bf16"]["flops_per_s"],
        "paper_vs_bare_fp32": out["paper_step_fp32"]["flops_per_s"] / bare["fp32"]["flops_per_s"],
        "small_bf16_vs_peak": out["suite_overhead"]["suite_flops_per_s"] / peak["bf16"]["best"],
    }
    out["wall_s"] = time.perf_counter() - started
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = RESULTS / f"{out['machine']}-{datetime.now():%Y-%m-%d}"
    stem.with_suffix(".json").write_text(json.dumps(out, indent=2))
    stem.with_suffix(".md").write_text(markdown(out))
    print(markdown(out))


def markdown(r: dict[str, Any]) -> str:
    o, p, p32, pn = r["suite_overhead"], r["paper_step"], r["paper_step_fp32"], r["paper_step_nchw"]
    og = r["suite_overhead_guard_off"]
    peak, bare, eff = r["peak_conv_flops"], r["bare_resnet152"], r["efficiency"]
    ev = r["evaluation"]
    bins = {(b["bins"], b["upsample"]): b for b in r["bins_cost"]}
    ref = {up: bins.get((200, up), {}).get("total_mb") for up in ("bilinear", "learned")}

    def gf(x: float) -> str:
        return f"{x / 1e9:.0f}"

    lines = [
        f"# Benchmarks: {r['machine']}, {r['date']} ({r['threads']} threads, torch {r['torch']})",
        "",
        "| measure | value | target |",
        "| --- | ---: | --- |",
        f"| suite / plain loop, time per optimiser step (small, bf16) | {o['ratio']:.3f} "
        f"({o['suite_s_per_step'] * 1e3:.1f} vs {o['plain_s_per_step'] * 1e3:.1f} ms) | <= 1.03 |",
        f"| the same with the non-finite guard off (`nonfinite=off`) | {og['ratio']:.3f} "
        f"({og['suite_s_per_step'] * 1e3:.1f} vs {og['plain_s_per_step'] * 1e3:.1f} ms) | <= 1.03 |",
        f"| peak 3x3 conv GFLOP/s (fwd+bwd), fp32 NCHW / channels_last | {gf(peak['fp32']['nchw'])} / "
        f"{gf(peak['fp32']['channels_last'])} | |",
        f"| peak 3x3 conv GFLOP/s (fwd+bwd), bf16 NCHW / channels_last | {gf(peak['bf16']['nchw'])} / "
        f"{gf(peak['bf16']['channels_last'])} | |",
        f"| paper config through the suite (NYU loader), bf16 + channels_last, vs best bf16 conv "
        f"| {eff['paper_bf16_vs_peak']:.2f} ({gf(p['flops_per_s'])} GFLOP/s, {p['s_per_optimiser_step']:.1f} s "
        f"per step of 8) | >= 0.80 |",
        f"| paper config through the suite (NYU loader), fp32 + channels_last, vs best fp32 conv "
        f"| {eff['paper_fp32_vs_peak']:.2f} ({gf(p32['flops_per_s'])} GFLOP/s, "
        f"{p32['s_per_optimiser_step']:.1f} s per step of 8) | >= 0.80 |",
        f"| bare torchvision ResNet-152 (dilated, hand-written step), bf16 / fp32, vs best conv "
        f"| {eff['bare_bf16_vs_peak']:.2f} / {eff['bare_fp32_vs_peak']:.2f} ({gf(bare['bf16']['flops_per_s'])} / "
        f"{gf(bare['fp32']['flops_per_s'])} GFLOP/s) | |",
        f"| paper config through the suite / bare ResNet-152, FLOP/s, bf16 / fp32 "
        f"| {eff['paper_vs_bare_bf16']:.2f} / {eff['paper_vs_bare_fp32']:.2f} | |",
        f"| paper config, bf16 NCHW (channels_last off) | {gf(pn['flops_per_s'])} GFLOP/s, "
        f"{pn['s_per_optimiser_step']:.1f} s per step of 8 | |",
        f"| small config through the suite, bf16, vs best bf16 conv | {eff['small_bf16_vs_peak']:.2f} | |",
    ]
    models = (("paper", "paper model (ResNet-152, K = 200)"), ("small", "small CPU model (ResNet-18, K = 80)"))
    for name, label in models:
        e = ev[name]
        lines.append(
            f"| NYU protocol through the test step, {label}, 240x320, both decoders | {e['images_per_s']:.2f} "
            f"images/s, metrics {100 * e['metrics_share']:.1f} % (spread {100 * min(e['metrics_share_spread']):.1f}-"
            f"{100 * max(e['metrics_share_spread']):.1f}) | metrics <= 5 % |"
        )
    for k, v in r["precision"].items():
        row = f"| step time, {k} (small) | {v * 1e3:.0f} ms | |" if isinstance(v, float) else f"| {k} | {v} | |"
        lines.append(row)
    lines += [
        "",
        "Convolutions of ResNet-152 at 240x320 (batch 1, 30x40 maps, channels_last, fwd+bwd), GFLOP/s:",
        "",
        "| convolution | bf16 | fp32 |",
        "| --- | ---: | ---: |",
    ]
    for name in r["conv_kinds"]["bf16"]:
        lines.append(f"| {name} | {gf(r['conv_kinds']['bf16'][name])} | {gf(r['conv_kinds']['fp32'][name])} |")
    lines += [
        "",
        "Paper configuration (ResNet-152, 240x320, batch 1, bf16): training memory = weights, gradients and",
        "momentum + the tensors autograd saves for backward (counted exactly); step time.",
        "",
        "| bins | upsample | activations (MB) | weights+grads+momentum (MB) | total (MB) | vs K=200 | s / image |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for (k, up), b in sorted(bins.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        ratio = f"{b['total_mb'] / ref[up]:.2f}" if ref.get(up) else "—"
        lines.append(
            f"| {k} | {up} | {b['activations_mb']:.0f} | {b['weights_grads_momentum_mb']:.0f} | {b['total_mb']:.0f} "
            f"| {ratio} | {b['s_per_image']:.2f} |"
        )
    lines += [
        "",
        f"GPU planning (estimate: training FLOPs per image / (peak x {UTILISATION:.0%} utilisation)):",
        "",
        "| config | GPU | TFLOP / image | NYU epoch (24k images) | 50k steps x 8 images |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    for g in r["gpu_plan"]:
        lines.append(
            f"| {g['config']} | {g['gpu']} | {g['train_tflops_per_image']:.3f} | {g['epoch_24k_min']:.1f} min "
            f"| {g['schedule_50k_x8_h']:.2f} h |"
        )
    if "data_loading" in r:
        d = r["data_loading"]
        lines += [
            "",
            f"Data loading, one worker: NYU sync {d['nyu_sync_train_per_worker']:.0f} samples/s (target >= 100), "
            f"KITTI with Velodyne projection {d['kitti_velodyne_train_per_worker']:.1f} samples/s.",
        ]
    lines += [
        "",
        "Synthetic renderer, one core: "
        + ", ".join(f"{k} {v['median']:.1f} frames/s" for k, v in r["synthetic_render"].items()),
        "",
        f"Wall time of the whole benchmark: {r['wall_s'] / 60:.1f} min.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
