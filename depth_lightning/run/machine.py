"""The machine a run or a benchmark ran on: numbers are quoted per class of machine."""

from __future__ import annotations

import os
import platform
import socket
from typing import Any

import torch

from depth_lightning.core.config import auto_precision, cpu_has_native_bf16


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe_machine() -> dict[str, Any]:
    """CPU model, cores, vector capability, native bf16, ``precision``: bf16 autocast where the hardware
    computes bf16 natively, else float32 (what ``trainer.precision=auto`` trains in is measured, and
    recorded apart: ``metrics.json``'s ``speed``), versions, GPU."""
    precision = auto_precision()
    return {
        "host": socket.gethostname(),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "capability": torch.backends.cpu.get_cpu_capability(),
        "native_bf16": cpu_has_native_bf16(),
        "precision": precision,
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }


def machine_class(info: dict[str, Any]) -> str:
    """A short name for a results file: the GPU, or the CPU's capability and native bf16 (``avx2``,
    ``avx512-bf16``)."""
    if info.get("gpu"):
        return info["gpu"].lower().replace(" ", "-")
    return f"{info['capability'].lower()}{'-bf16' if info['native_bf16'] else ''}"
