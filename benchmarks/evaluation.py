"""Evaluation throughput: the NYU protocol through the suite's own test step."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch

from benchmarks.timing import summary
from benchmarks.training import module_and_config
from depth_lightning.evaluation.evaluator import Evaluator
from depth_lightning.evaluation.metrics import DepthMetrics
from depth_lightning.evaluation.protocol import EvalProtocol


def evaluation(model: str, images: int, rounds: int, bf16: bool) -> dict[str, Any]:
    """Images/s of the NYU protocol through the test step (240x320 input): forward, loss, both
    decoders, upsampling to the 426x560 Eigen box of the 480x640 frame, the depth metrics of both
    decoders and the pixel accuracy; and the share of the metrics (preparing the ground truth and
    every metric update) in it."""
    module, _ = module_and_config(f"model={model}", "data.height=240", "data.width=320")
    evaluator = Evaluator(EvalProtocol("full", caps=(10.0,)), num_bins=module.bins.num_bins)
    module.evaluate_with(test=evaluator)
    module.eval()
    spent = [0.0]

    def timing(fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed_fn(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            out = fn(*args, **kwargs)
            spent[0] += time.perf_counter() - start
            return out

        return timed_fn

    depth_metrics = [m for m in evaluator.modules() if isinstance(m, DepthMetrics)]
    for metric in [*depth_metrics, evaluator.pixel_acc]:
        metric.update = timing(metric.update)
        if hasattr(metric, "prepare"):
            metric.prepare = timing(metric.prepare)
    batches = [
        {"image": torch.rand(1, 3, 240, 320), "depth": torch.rand(1, 426, 560) * 9 + 0.5, "index": torch.tensor([i])}
        for i in range(images)
    ]

    def one_pass() -> None:
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            for i, batch in enumerate(batches):
                module.test_step(batch, i)

    one_pass()  # warm-up
    per_image, shares = [], []
    for _ in range(rounds):
        spent[0] = 0.0
        start = time.perf_counter()
        one_pass()
        total = time.perf_counter() - start
        per_image.append(total / len(batches))
        shares.append(spent[0] / total)
    t, s = summary(per_image), summary(shares)
    return {"images_per_s": 1 / t["median"], "s_per_image": t, "metrics_share": s["median"], "share": s}
