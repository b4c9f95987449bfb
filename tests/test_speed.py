"""The glibc thresholds of depth_lightning.run.speed: freed tensors stay in the process."""

from __future__ import annotations

import ctypes.util
import platform
import subprocess
import sys

import pytest


def _has_glibc() -> bool:
    return platform.libc_ver()[0] == "glibc" and bool(ctypes.util.find_library("c"))


# Rounds of 20 tensors of 1 to 30 MB, written and freed: the pattern of a training step's activations.
# glibc adapts its thresholds to what was freed before, so the run starts from its documented static
# defaults (128 KiB), where it is deterministic. Prints minor page faults per round before and after
# keep_freed_memory().
SCRIPT = """
import ctypes, resource, torch
from depth_lightning.run.speed import M_MMAP_THRESHOLD, M_TRIM_THRESHOLD, keep_freed_memory

libc = ctypes.CDLL("libc.so.6")
libc.mallopt(M_MMAP_THRESHOLD, 128 * 1024)
libc.mallopt(M_TRIM_THRESHOLD, 128 * 1024)

def faults_per_round():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(5):
        blocks = [torch.empty(((i * 7) % 30 + 1) * 2**18).fill_(1.0) for i in range(20)]
        del blocks
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 5

faults_per_round()  # first touch of the heap
plain = faults_per_round()
applied = keep_freed_memory(True)
faults_per_round()
print(applied, plain, faults_per_round())
"""


def _faults(enabled: bool) -> tuple[str, float, float]:
    script = SCRIPT.replace("keep_freed_memory(True)", f"keep_freed_memory({enabled})")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    applied, plain, kept = out.split()
    return applied, float(plain), float(kept)


def test_freed_tensors_are_not_faulted_in_again():
    if not _has_glibc():
        pytest.skip("no glibc mallopt on this system: keep_freed_memory is a no-op here")
    applied, plain, kept = _faults(True)
    assert applied == "True"
    # 290 MB per round is 74,000 pages of 4 KiB; the plain allocator gives most back and faults them in again
    assert plain > 20_000
    assert kept < 0.05 * plain


def test_disabled_leaves_the_allocator_as_it_was():
    if not _has_glibc():
        pytest.skip("no glibc mallopt on this system: keep_freed_memory is a no-op here")
    applied, plain, kept = _faults(False)
    assert applied == "False"
    assert plain > 20_000 and kept > 0.5 * plain, "still faulting freed memory in again: nothing was changed"
