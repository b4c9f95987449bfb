"""``trainer.precision=auto``: the precision a run trains in, chosen by measurement where the answer
depends on the machine, and the GPU switches a well-tuned ResNet training script sets.

- CUDA: bf16 autocast where the GPU has it, else float16 (no measurement: tensor cores win).
- A CPU without native bf16 (AVX2 only) emulates it several times slower: float32, no measurement.
- A CPU with native bf16: AMX makes bf16 faster; AVX512-BF16 without AMX makes it slower (the small
  configuration's step 1.41x slower on a 2-core Xeon of that class). A few optimiser steps of the run's
  own model, at its batch and input size, are timed in float32 and in bf16 autocast on a copy of it (the
  run's weights and random state untouched), and the faster trains. The result is cached per machine
  (CPU model, capability, threads), torch version and network settings, so later runs pay nothing.

An explicit ``trainer.precision=`` is always obeyed; a resumed run keeps the precision it started in.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import logging
import statistics
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from depth_lightning.core.files import write_json
from depth_lightning.run.machine import describe_machine

log = logging.getLogger(__name__)
CANDIDATES = ("32-true", "bf16-mixed")
AUTOCAST = {"32-true": None, "bf16-mixed": torch.bfloat16}


def float32_matmul(tf32: bool) -> dict[str, Any]:
    """TF32 for float32 matmuls and convolutions on GPUs that have it (Ampere on), as the field's training
    scripts set it: 10-bit mantissas inside the tensor cores, float32 range and accumulation. What was set
    goes on the run's card."""
    torch.backends.cuda.matmul.allow_tf32 = bool(tf32)
    torch.backends.cudnn.allow_tf32 = bool(tf32)
    return {"tf32": bool(tf32), "float32_matmul_precision": torch.get_float32_matmul_precision()}


def step_time(module: torch.nn.Module, precision: str, batch: int, size: tuple[int, int], steps: int) -> float:
    """Median seconds of an optimiser step of a copy of ``module`` (a DepthModule: its loss and optimiser)
    in ``precision``, on random frames of ``batch`` x ``size``; the first step is a warm-up."""
    with torch.random.fork_rng():
        model = copy.deepcopy(module).train()
        optimizer = model.configure_optimizers()["optimizer"]
        image = torch.rand(batch, 3, *size)
        depth = torch.empty(batch, *size).uniform_(model.bins.d_min, model.bins.d_max)
        times = []
        for _ in range(steps + 1):
            started = time.perf_counter()
            dtype = AUTOCAST[precision]
            with torch.autocast("cpu", dtype=dtype) if dtype is not None else contextlib.nullcontext():
                loss = model.loss(model(image), depth)[0]
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            times.append(time.perf_counter() - started)
    return statistics.median(times[1:])


def cache_key(module: torch.nn.Module, batch: int, size: tuple[int, int]) -> tuple[str, dict[str, Any]]:
    """What the measured times depend on: the machine, torch, the network, the batch, its size."""
    machine = describe_machine()
    what = {
        "cpu": machine["cpu"], "capability": machine["capability"], "threads": torch.get_num_threads(),
        "torch": torch.__version__, "network": module.net.settings, "batch": batch, "input_size": list(size),
        "optimizer": (module.hparams.get("optimizer") or {}).get("_target_"),
    }  # fmt: skip
    return hashlib.sha1(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()[:16], what


def _read(cache: Path) -> dict[str, Any]:
    try:
        found = json.loads(cache.read_text())
        return found if isinstance(found, dict) else {}
    except (OSError, json.JSONDecodeError):
        return {}  # no cache yet, or one to write anew


def choose_precision(
    module: torch.nn.Module,
    batch: int,
    size: tuple[int, int],
    cache: str | Path | None,
    steps: int = 3,
    timer: Callable[[str], float] | None = None,
) -> dict[str, Any]:
    """The precision ``auto`` trains ``module`` in on this machine, and why: ``{"precision", "reason",
    "seconds" (per candidate, when measured), "cached"}``. ``timer``: seconds of a step in a precision
    (default: :func:`step_time`)."""
    if torch.cuda.is_available():
        bf16 = torch.cuda.is_bf16_supported()
        return {"precision": "bf16-mixed" if bf16 else "16-mixed", "reason": "CUDA: tensor cores", "cached": False}
    if not describe_machine()["native_bf16"]:
        return {"precision": "32-true", "reason": "this CPU emulates bf16 (no AVX512-BF16 or AMX)", "cached": False}
    key, what = cache_key(module, batch, size)
    path = Path(cache) if cache else None
    known = _read(path) if path else {}
    if key in known:
        return {**known[key], "cached": True}
    timer = timer or (lambda p: step_time(module, p, batch, size, steps))
    seconds = {p: timer(p) for p in CANDIDATES}
    fastest = min(CANDIDATES, key=seconds.__getitem__)
    ratio = seconds["bf16-mixed"] / seconds["32-true"]
    reason = f"bf16 {ratio:.2f}x {'slower' if ratio > 1 else 'faster'} than fp32 here ({steps} steps each)"
    found = {"precision": fastest, "reason": reason, "seconds": seconds, "measured": what}
    if path is not None:
        try:
            write_json(path, {**_read(path), key: found})
        except OSError as err:  # a read-only home: measured again next time, said once
            log.warning("precision auto: the measurement could not be cached at %s (%s)", path, err)
    return {**found, "cached": False}


def resolve_precision(
    requested: Any, module: torch.nn.Module, data: Mapping[str, Any], cache: str | None, resumed: str | None
) -> dict[str, Any]:
    """``trainer.precision``: obeyed when given; ``auto``: the precision a resumed run started in, else
    :func:`choose_precision` for the run's batch and input size. Logged in one line."""
    if str(requested) != "auto":
        return {"precision": str(requested), "reason": "trainer.precision, as given", "cached": False}
    if resumed:
        return {"precision": resumed, "reason": "the precision the resumed run started in", "cached": False}
    size = (int(data["height"]), int(data["width"]))
    chosen = choose_precision(module, int(data["batch_size"]), size, cache)
    seconds = chosen.get("seconds")
    measured = ", ".join(f"{p} {s:.3f} s/step" for p, s in seconds.items()) if seconds else ""
    log.info(
        "precision auto: %s%s: training in %s%s",
        chosen["reason"], f" [{measured}]" if measured else "", chosen["precision"],
        " (cached from an earlier run)" if chosen["cached"] else "",
    )  # fmt: skip
    return chosen
