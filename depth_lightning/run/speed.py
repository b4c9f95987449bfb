"""Switches that run the same computation faster; each changes speed, not results.

- :func:`keep_freed_memory`: glibc keeps freed host memory in the process, so a training step does not
  page-fault its tensors anew (``keep_freed_memory``).

Elsewhere, for the same purpose: NHWC tensors (``model.channels_last``, ``models/network.py``),
``torch.compile`` (``model.compile``, ``module.py``), fused optimizer kernels (the optimizers' own
``fused`` argument in ``conf/model``) and the cheap CPU dropout mask (``models/packed_dropout.py``).

On glibc: PyTorch's CPU allocator is the C library's ``malloc``. glibc serves large blocks with
``mmap`` and returns them to the kernel on ``free`` (and trims the heap's top the same way), so every
step pays a page fault for every 4 KiB of every large activation, gradient and bf16 weight copy it
allocates: about 57,000 faults and 7 % of a ResNet-152 step at 240x320 on the machine of
benchmarks/results. Raising the mmap and trim thresholds makes freed blocks stay in the heap for the
next step, as the CUDA caching allocator does on a GPU. The process keeps its peak footprint.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

# mallopt parameters, from glibc's malloc.h
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
# glibc's cap for the mmap threshold on 64-bit systems (HEAP_MAX_SIZE / 2): blocks above it are
# always mmapped; the largest per-step tensors of the paper configuration are below it.
MMAP_THRESHOLD_MAX = 32 * 2**20
TRIM_THRESHOLD = 2**31 - 1  # an int in C: 2 GiB of free heap top before any is given back


def keep_freed_memory(enabled: bool = True) -> bool:
    """Apply the thresholds above; True if they took effect (Linux with glibc), False elsewhere."""
    if not enabled or not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and other C libraries have no mallopt
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
