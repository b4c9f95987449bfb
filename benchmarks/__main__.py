"""``make bench`` (``python -m benchmarks [--quick]``): the suite's performance, measured side by side.

Measures in the precision the suite itself picks on this machine (bf16 where the CPU computes it
natively, else float32), so a run takes about the same time on every class of machine: about 10
minutes in full, 2 with ``--quick`` (the suite's overhead, the evaluation step, data loading).
Writes ``benchmarks/results/<machine class>-<date>[-quick].json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import torch

from benchmarks import data, evaluation, machine, report, timing, training
from depth_lightning.run.machine import describe_machine, machine_class
from depth_lightning.run.speed import keep_freed_memory

RESULTS = Path(__file__).resolve().parent / "results"


def run(quick: bool) -> dict[str, Any]:
    keep_freed_memory()  # as the suite's entry points do
    info = describe_machine()
    bf16 = info["native_bf16"]
    precision = info["precision"]
    timing.BUDGET["min_run_time"] = 0.5 if quick else 2.0
    out: dict[str, Any] = {"machine": info, "date": datetime.now().isoformat(timespec="seconds"), "quick": quick}
    out["section_s"] = {}
    started = time.perf_counter()

    def section(name: str, fn: Callable[[], Any]) -> None:
        t = time.perf_counter()
        out[name] = fn()
        out["section_s"][name] = time.perf_counter() - t
        print(f"[bench] {name}: {out['section_s'][name]:.0f} s", flush=True)

    section("peak_conv", lambda: machine.peak_conv(bf16))
    # Without native bf16 every step is several times slower: fewer rounds keep the run near 10 minutes.
    rounds = 1 if quick else 3 if bf16 else 2
    out["sizing"] = {"overhead_rounds": rounds, "bins_timed": bf16 and not quick}
    section("overhead", lambda: training.overhead(precision, rounds=rounds))
    section(
        "evaluation", lambda: {"small": evaluation.evaluation("small", 8 if quick else 12, 2 if quick else 3, bf16)}
    )
    section("data_loading", lambda: data.loading(8 if quick else 16))
    if not quick:
        section(
            "overhead_guard_off",
            lambda: {**training.overhead(precision, max(1, rounds - 1), "off"), "label": "non-finite guard off"},
        )
        section("conv_kinds", lambda: machine.conv_kinds(bf16))
        section("bare_resnet152", lambda: training.bare_resnet152(bf16))
        with tempfile.TemporaryDirectory() as tmp:
            from tests.datasets import write_nyu_sync

            root = write_nyu_sync(Path(tmp), {"scene": 40})
            section("paper_step", lambda: training.paper_step(root, precision, steps=3))
        section("precision", lambda: training.precision_modes(bf16))
        # memory counted on every machine; seconds per image only where bf16 is native (emulated bf16
        # ResNet-152 steps at K = 1000 alone would take most of the 10 minutes)
        section("bins_cost", lambda: training.bins_cost((50, 200, 1000), bf16=bf16, timed=bf16))
        section("render", data.render)
        section("frame_check", lambda: data.frame_check(1000))
        step, loading = out["paper_step"], out["data_loading"]
        s_per_image = step["s_per_optimiser_step"]["median"] / 8
        out["feeding"] = {
            kind: report.cores_to_feed(step["flops_per_image"], loading[key], s_per_image)
            for kind, key in (
                ("loose files", "nyu_sync"),
                ("packed chunks", "nyu_sync_packed"),
                ("packed, augmentation on the device", "nyu_sync_device_host"),
            )
        }
        small = out["overhead"]["flops_per_step"] / 8
        out["gpu_plan"] = report.gpu_plan(
            {
                "paper (ResNet-152, K=200, 240x320)": out["paper_step"]["flops_per_image"],
                "small (ResNet-18, K=80)": small,
            }
        )
    out["wall_s"] = time.perf_counter() - started
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="about 2 minutes: overhead, evaluation, data loading")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    torch.set_num_threads(torch.get_num_threads())
    result = run(args.quick)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"{machine_class(result['machine'])}-{datetime.now():%Y-%m-%d}{'-quick' if args.quick else ''}"
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2))
    text = report.markdown(result)
    stem.with_suffix(".md").write_text(text)
    print(text)
    print(f"written: {stem}.json, {stem}.md")


if __name__ == "__main__":
    main()
