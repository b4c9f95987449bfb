"""The results file: GPU planning from the counted FLOPs, and the Markdown summary of a run."""

from __future__ import annotations

from typing import Any

GPUS = {
    "V100 (125 TFLOP/s fp16 tensor)": 125e12,
    "A100 (312 TFLOP/s bf16)": 312e12,
    "H100 SXM (989 TFLOP/s bf16)": 989e12,
}
UTILISATION = 0.35
# Whether a machine can feed its model: one H100 or H200 (989 TFLOP/s dense bf16 each) at these
# model-FLOP utilisations consumes peak x MFU / (training FLOPs per image) images per second.
FEEDING = {"H100 / H200 (989 TFLOP/s bf16)": 989e12}
FEEDING_MFU = (0.20, 0.40)


def cores_to_feed(flops_per_image: float, samples_per_core: float, s_per_image_here: float | None = None) -> dict:
    """Loader cores (each giving ``samples_per_core``) that keep the paper step fed: on this machine
    (one image per ``s_per_image_here`` seconds) and on one H100/H200 at 20 % and 40 % MFU."""
    need: dict[str, float] = {}
    if s_per_image_here:
        need["this machine's measured paper step"] = 1 / s_per_image_here / samples_per_core
    for gpu, peak in FEEDING.items():
        for mfu in FEEDING_MFU:
            need[f"{gpu} at {mfu:.0%} MFU"] = peak * mfu / flops_per_image / samples_per_core
    return need


def feeding_table(feeding: dict[str, dict[str, float]]) -> list[str]:
    """The summary's table of :func:`cores_to_feed`, a column per way of loading (loose files, packed
    chunks, packed chunks with the augmentation on the device)."""
    kinds = list(feeding)
    lines = ["", "Loader cores that feed the paper step (NYU, the paper's augmentation):", ""]
    lines += [f"| consumer | {' | '.join(kinds)} |", "| --- |" + " ---: |" * len(kinds)]
    for consumer in feeding[kinds[0]]:
        lines.append(f"| {consumer} | " + " | ".join(f"{feeding[k][consumer]:.1f}" for k in kinds) + " |")
    return lines


def gpu_plan(flops_per_image: dict[str, float]) -> list[dict[str, Any]]:
    """Estimates: training FLOPs per image / (peak x utilisation); NYU epoch = 24k images, the
    paper's schedule = 50k steps x 8 images."""
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


def _gf(x: float) -> str:
    return f"{x / 1e9:.0f}"


def markdown(r: dict[str, Any]) -> str:
    m = r["machine"]
    lines = [
        f"# Benchmarks: {m['cpu']} ({m['capability']}, native bf16: {'yes' if m['native_bf16'] else 'no'}), "
        f"{m['cores']} cores, {r['date']}",
        "",
        f"torch {m['torch']}, {m['threads']} threads, precision {m['precision']} "
        "(native; what trainer.precision=auto trains in: the precision rows)"
        f"{', --quick' if r['quick'] else ''}. Times are medians of repeats; ratios come from one run.",
        "",
        "| measure | value | target |",
        "| --- | ---: | --- |",
    ]
    peak = r["peak_conv"]
    lines.append(
        f"| peak 3x3 conv, fwd+bwd, {m['precision']}, NCHW / NHWC | {_gf(peak['nchw'])} / {_gf(peak['nhwc'])} "
        "GFLOP/s | |"
    )
    for name, o in r.items():
        if name.startswith("overhead"):
            label = f", {o['label']}" if o.get("label") else ""
            lines.append(
                f"| suite / plain loop, time per optimiser step (small config{label}) | {o['ratio']:.3f} "
                f"({o['suite']['median'] * 1e3:.0f} vs {o['plain']['median'] * 1e3:.0f} ms) | <= 1.03 |"
            )
    if "paper_step" in r:
        p, bare = r["paper_step"], r["bare_resnet152"]
        lines += [
            f"| paper config through the suite (NYU loader, batch 1 x 8) vs the best conv | "
            f"{p['flops_per_s'] / peak['best']:.2f} ({_gf(p['flops_per_s'])} GFLOP/s, "
            f"{p['s_per_optimiser_step']['median']:.1f} s per step of 8) | |",
            f"| bare torchvision ResNet-152 (dilated, hand-written step) vs the best conv | "
            f"{bare['flops_per_s'] / peak['best']:.2f} ({_gf(bare['flops_per_s'])} GFLOP/s) | |",
            f"| paper config through the suite / bare ResNet-152, FLOP/s | "
            f"{p['flops_per_s'] / bare['flops_per_s']:.2f} | |",
        ]
    if "frame_check" in r:
        c = r["frame_check"]
        lines.append(
            f"| training setup's frame check, {c['frames']} NYU-sync frames (sizes from headers, the unit of 8) "
            f"vs one epoch of loading them (one core) | {c['check_s']:.2f} s vs {c['epoch_loading_s']:.0f} s: "
            f"{100 * c['share']:.2f} % | < 5 % |"
        )
    for name, e in r.get("evaluation", {}).items():
        lines.append(
            f"| NYU protocol through the test step, {name} model, 240x320, both decoders | {e['images_per_s']:.2f} "
            f"images/s, metrics {100 * e['metrics_share']:.1f} % | |"
        )
    if "data_loading" in r:
        d = r["data_loading"]
        lines.append(
            f"| one DataLoader worker: NYU sync (JPEG + PNG, augmentation, 240x320) / KITTI (PNG, Velodyne, 188x620) "
            f"| {d['nyu_sync']:.0f} / {d['kitti_velodyne']:.0f} samples/s | NYU >= 100 |"
        )
        if "nyu_sync_handwritten" in d:
            lines.append(
                "| NYU sync, the augmentation through albumentations (PaperTransform) / its warps called directly "
                f"| {d['nyu_sync']:.0f} / {d['nyu_sync_handwritten']:.0f} samples/s "
                f"({d['nyu_sync'] / d['nyu_sync_handwritten']:.3f}x) | >= 1.00x |"
            )
        if "nyu_sync_packed" in d:
            lines.append(
                f"| the same from packed chunks (prepare pack), CPU augmentation: NYU / KITTI | "
                f"{d['nyu_sync_packed']:.0f} / {d['kitti_velodyne_packed']:.0f} samples/s "
                f"({d['nyu_sync_packed'] / d['nyu_sync']:.1f}x / "
                f"{d['kitti_velodyne_packed'] / d['kitti_velodyne']:.1f}x) "
                "| NYU >= 100 per core |"
            )
        if "nyu_sync_device" in d:
            lines.append(
                "| the same, augmentation on the device (data.augment_on=device, this CPU as the device): "
                "NYU / KITTI, the loader's part alone | "
                f"{d['nyu_sync_device']:.0f} / {d['kitti_velodyne_device']:.0f} samples/s, "
                f"{d['nyu_sync_device_host']:.0f} / {d['kitti_velodyne_device_host']:.0f} | NYU >= 200 per core |"
            )
    modes = r.get("precision", {})
    for k, v in modes.items():
        lines.append(f"| small config step, {k} | {v * 1e3:.0f} ms | |" if isinstance(v, float) else f"| {k} | {v} | |")
    if isinstance(modes.get("fp32"), float):  # what trainer.precision=auto measures and picks (run/precision.py)
        bf16 = modes.get("bf16")
        choice = "bf16-mixed" if isinstance(bf16, float) and bf16 < modes["fp32"] else "32-true"
        lines.append(f"| trainer.precision=auto picks here (the faster of fp32 and bf16, channels_last) | {choice} | |")
    if "conv_kinds" in r:
        lines += ["", "Convolutions of ResNet-152 at 240x320 (batch 1, 30x40 maps, NHWC, fwd+bwd), GFLOP/s:", ""]
        lines += ["| convolution | GFLOP/s |", "| --- | ---: |"]
        lines += [f"| {name} | {_gf(v)} |" for name, v in r["conv_kinds"].items()]
    if "bins_cost" in r:
        bins = {(b["bins"], b["upsample"]): b for b in r["bins_cost"]}
        lines += [
            "",
            "Paper configuration (ResNet-152, 240x320, batch 1): training memory in this machine's precision",
            f"({r['machine']['precision']}) = weights, gradients and momentum + the tensors autograd saves for",
            "backward (counted exactly); seconds per image only where bf16 is native (— elsewhere: emulated",
            "bf16 ResNet-152 steps would take most of the run).",
            "",
            "| bins | upsample | activations (MB) | weights+grads+momentum (MB) | total (MB) | vs K=200 | s / image |",
            "| ---: | --- | ---: | ---: | ---: | ---: | ---: |",
        ]
        for (k, up), b in sorted(bins.items(), key=lambda kv: (kv[0][1], kv[0][0])):
            ref = bins.get((200, up), {}).get("total_mb")
            ratio = f"{b['total_mb'] / ref:.2f}" if ref else "—"
            s = f"{b['s_per_image']:.2f}" if "s_per_image" in b else "—"
            mb = f"{b['activations_mb']:.0f} | {b['weights_grads_momentum_mb']:.0f} | {b['total_mb']:.0f}"
            lines.append(f"| {k} | {up} | {mb} | {ratio} | {s} |")
    if "gpu_plan" in r:
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
    if "feeding" in r:
        lines += feeding_table(r["feeding"])
    if "render" in r:
        lines += [
            "",
            "Synthetic renderer, one core: " + ", ".join(f"{k} {v:.1f} frames/s" for k, v in r["render"].items()),
        ]
    lines += ["", "Time of each section (s): " + ", ".join(f"{k} {v:.0f}" for k, v in r["section_s"].items())]
    lines += ["", f"Wall time of the whole benchmark: {r['wall_s'] / 60:.1f} min."]
    return "\n".join(lines) + "\n"
