"""Data loading: one DataLoader worker's samples/s on files in the datasets' own formats, and the
synthetic renderer's frames/s."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import torch

from benchmarks.timing import measure
from depth_lightning.data.frames import collate_skipping_bad
from depth_lightning.data.kitti import KITTIEigen
from depth_lightning.data.nyu import NYUSync
from depth_lightning.data.packed import PackedFrames, pack_split
from depth_lightning.data.synthetic import SyntheticScenes
from depth_lightning.data.transforms import PaperAugmentation
from depth_lightning.run.speed import keep_freed_memory
from tests.datasets import write_kitti, write_nyu_sync

PAPER_AUGMENTATION = {"color": [0.9, 1.1], "scale": [1.3, 1.5], "flip": True, "rotate": 5.0}


class HandWritten:
    """The paper's augmentation applied as before the albumentations pipeline: its OpenCV warps called
    directly (the samples are the same, bit for bit)."""

    def __init__(self, augment: PaperAugmentation) -> None:
        self.augment = augment

    def set_seed(self, seed: int) -> None:
        self.augment.set_seed(seed)

    def draw(self) -> dict[str, Any]:
        return self.augment.draw()

    def host(self, rgb: Any, depth: Any, p: dict[str, Any]) -> dict[str, Any]:
        image, depth = self.augment.apply(rgb, depth, p)
        return {"image": image, "depth": depth}


def loading(frames: int) -> dict[str, Any]:
    """NYU sync (480x640 JPEG + 16-bit PNG) -> 240x320 with the paper's augmentation, and KITTI raw
    (375x1242 PNG + a Velodyne scan projected) -> 188x620, one thread, samples/s: from the loose files,
    from their packed copy (``prepare pack``: decoded arrays in LitData chunks), and from the packed
    copy with ``data.augment_on=device``: ``*_device_host``, what the loader does (read, draw the
    parameters, collate batches of 8), and ``*_device``, that and the batch's augmentation on this
    CPU as the device."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    augment = PaperAugmentation(**PAPER_AUGMENTATION)
    out: dict[str, Any] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            root = write_nyu_sync(Path(tmp) / "nyu", {"scene": frames})
            nyu = NYUSync(
                root, root / "train.txt", None, border=[45, 471, 41, 601], input_size=(240, 320), augment=augment
            )
            # side by side, interleaved (the first pass over the files warms caches): the albumentations
            # pipeline and the paper's warps called directly; the better of two passes each
            rates: dict[str, list[float]] = {"nyu_sync": [], "nyu_sync_handwritten": []}
            for _ in range(2):
                for key, pipeline in (("nyu_sync", augment), ("nyu_sync_handwritten", HandWritten(augment))):
                    nyu.augment = pipeline
                    rates[key].append(frames / measure(lambda: [nyu[(0, i)] for i in range(frames)])["median"])
            nyu.augment = augment
            out.update({key: max(values) for key, values in rates.items()})
            nyu_packed = packed_copy(nyu, Path(tmp) / "nyu_packed", (240, 320), augment)
            out["nyu_sync_packed"] = frames / measure(lambda: [nyu_packed[(0, i)] for i in range(frames)])["median"]
            out.update(on_device("nyu_sync", nyu_packed, frames))
            k = write_kitti(Path(tmp) / "kitti", frames=(0, 1, 2, 3))
            kitti = KITTIEigen(k["raw"], k["monodepth2"], None, input_size=(188, 620), augment=augment)
            out["kitti_velodyne"] = 4 / measure(lambda: [kitti[(0, i)] for i in range(4)])["median"]
            kitti_packed = packed_copy(kitti, Path(tmp) / "kitti_packed", (188, 620), augment)
            out["kitti_velodyne_packed"] = 4 / measure(lambda: [kitti_packed[(0, i)] for i in range(4)])["median"]
            out.update(on_device("kitti_velodyne", kitti_packed, 4))
    finally:
        torch.set_num_threads(threads)
    return out


def frame_check(frames: int = 1000) -> dict[str, float]:
    """Training setup's frame check (``data/frame_check.py``: every frame's sizes from the headers, the
    unit of 8 frames) on an NYU-sync folder of ``frames`` frames (480x640) written here, against one
    epoch of loading the same frames (one loader core, the paper's augmentation, 240x320; timed on 64
    and scaled): a lower bound of a training epoch, which also runs the network."""
    from depth_lightning.data.frame_check import check_frames

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            root = write_nyu_sync(Path(tmp) / "nyu", {f"scene_{k:02d}": frames // 10 for k in range(10)})
            augment = PaperAugmentation(**PAPER_AUGMENTATION)
            nyu = NYUSync(
                root, root / "train.txt", None, border=[45, 471, 41, 601], input_size=(240, 320), augment=augment
            )
            check_s = measure(lambda: check_frames(nyu, (0.4, 9.0), "nyu_sync"))["median"]
            sample = min(64, len(nyu))
            epoch_s = measure(lambda: [nyu[(0, i)] for i in range(sample)])["median"] * len(nyu) / sample
    finally:
        torch.set_num_threads(threads)
    return {"frames": len(nyu), "check_s": check_s, "epoch_loading_s": epoch_s, "share": check_s / epoch_s}


def on_device(name: str, packed: PackedFrames, frames: int, batch: int = 8) -> dict[str, float]:
    """Samples/s of ``packed`` with ``augment_on=device``: the loader's part alone, and with the batch
    augmented on this CPU (``frames`` repeated to whole batches)."""
    packed.augment_on = "device"
    keep_freed_memory()  # as the training process, where the batch is augmented, sets its allocator
    keys = [(0, i % frames) for i in range(max(batch, frames))]
    batches = [keys[i : i + batch] for i in range(0, len(keys) - batch + 1, batch)]
    n = batch * len(batches)

    def host() -> list[dict[str, Any]]:
        return [collate_skipping_bad([packed[k] for k in b]) for b in batches]

    def host_and_device() -> None:
        for b in host():
            packed.augment.apply_batch(b["image"], b["depth"], b["augment"])

    try:
        return {
            f"{name}_device_host": n / measure(host)["median"],
            f"{name}_device": n / measure(host_and_device)["median"],
        }
    finally:
        packed.augment_on = "host"


def packed_copy(dataset, folder: Path, size: tuple[int, int], augment: PaperAugmentation) -> PackedFrames:
    """``dataset`` packed as ``prepare pack`` packs it, read back with the same pipeline."""
    pack_split(dataset, str(folder / "train"))
    return PackedFrames(str(folder), split="train", input_size=size, augment=augment)


def render() -> dict[str, float]:
    """Frames/s of the synthetic renderer (NumPy, one core; fresh frames: no cache)."""
    out = {}
    seeds = iter(range(10**6))
    for scene, h, w, n in (("indoor", 240, 320, 12), ("indoor", 120, 160, 24), ("outdoor", 188, 620, 6)):

        def frames(scene: str = scene, h: int = h, w: int = w, n: int = n) -> None:
            ds = SyntheticScenes(scene=scene, train_length=n, input_size=(h, w), seed=next(seeds))
            for i in range(n):
                ds.load(i)

        out[f"{scene}_{h}x{w}"] = n / measure(frames)["median"]
    return out
