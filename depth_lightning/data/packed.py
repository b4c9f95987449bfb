"""Packed datasets: every split's frames decoded once and written as LitData chunks, so that training
reads arrays instead of decoding JPEG and PNG files.

``python -m depth_lightning.prepare pack data=<dataset> output=<folder or URL>`` writes
``<output>/<split>/`` (LitData's ``index.json`` and ``chunk-*.bin``) for the train, val and test splits
exactly as the datamodule builds them (validation held out of the training list with its settings):
each sample holds the RGB (uint8) and depth (float32 metres) that the dataset's ``load`` returned, the
crop box, frame name, list line and a description, and the split's protocol-card source. With
``data.format=packed data.packed=<output>`` the datamodule reads them through LitData's
``StreamingDataset`` (its URL support included: a local folder, ``local:``, ``s3://...``), random
access by global index: the suite's own samplers order, shard (DDP) and resume the epoch as for loose
files, and each sample is bit for bit what the loose files give.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from depth_lightning.data.frames import FrameDataset
from depth_lightning.run.errors import DataError

NO_BOX = (-1, -1, -1, -1)


class _Sample:
    """What LitData's ``optimize`` calls for each index of a split (picklable: its workers get a copy)."""

    def __init__(self, dataset: FrameDataset) -> None:
        self.dataset = dataset
        self.source = json.dumps(dataset.source(), sort_keys=True)

    def __call__(self, index: int) -> dict[str, Any]:
        rgb, depth = self.dataset.load(index)
        box = self.dataset.crop_box_of(index, depth.shape[:2])
        line = self.dataset.list_line(index)
        return {
            "index": index,
            "rgb": np.ascontiguousarray(rgb, dtype=np.uint8),
            "depth": np.ascontiguousarray(depth, dtype=np.float32),
            "box": np.asarray(box if box is not None else NO_BOX, dtype=np.int64),
            "name": self.dataset.frame_name(index),
            "line": -1 if line is None else int(line),
            "describe": self.dataset.describe(index),
            "source": self.source,
        }


def pack_split(dataset: FrameDataset, output: str, workers: int = 1, compression: str | None = None) -> str:
    """Write every frame of ``dataset`` as LitData chunks at ``output``; returns it."""
    from litdata import optimize

    if len(dataset) == 0:
        raise DataError(f"{output}: the {dataset.split} split has no frame to pack")
    optimize(
        fn=_Sample(dataset),
        inputs=list(range(len(dataset))),
        output_dir=str(output),
        chunk_bytes="256MB",
        num_workers=max(1, workers),
        compression=compression,
        mode="overwrite",
        verbose=False,
    )
    return str(output)


class PackedFrames(FrameDataset):
    """One split of a packed dataset, ``<packed>/<split>`` (a folder or a URL LitData reads).

    Args:
        packed: what ``prepare pack`` wrote (its ``output``).
    """

    def __init__(self, packed: str, **kw: Any) -> None:
        super().__init__(**kw)
        from litdata import StreamingDataset

        self.url = f"{str(packed).rstrip('/')}/{self.split}"
        local = Path(self.url.removeprefix("local:"))
        if "://" not in self.url and not (local / "index.json").is_file():
            raise DataError(
                f"data.packed={packed!r}: no packed {self.split} split at {local} (index.json); write it with "
                "python -m depth_lightning.prepare pack data=<dataset> output=<folder>"
            )
        self.index_file = local / "index.json" if "://" not in self.url else None
        self._frames, self._pid = StreamingDataset(self.url), os.getpid()
        self._last: tuple[int, dict[str, Any]] | None = None
        self._sample(0)  # opens LitData's chunk index
        # every sample of the split: the suite's samplers shard it across ranks (LitData's own length is a
        # rank's share under DDP; its indexing is global)
        self.size = len(self._frames.cache)
        self._first: dict[str, Any] | None = None

    def __len__(self) -> int:
        return self.size

    def _sample(self, index: int) -> dict[str, Any]:
        """Sample ``index``, read once for the several things an item takes from it (image, depth, box)."""
        if self._last is not None and self._last[0] == index:
            return self._last[1]
        # LitData's reader keeps threads and open chunks: each process (DataLoader worker, DDP rank) opens its own
        if self._frames is None or self._pid != os.getpid():
            from litdata import StreamingDataset

            self._frames, self._pid = StreamingDataset(self.url), os.getpid()
        self._last = (index, self._frames[index])
        return self._last[1]

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_frames"], state["_pid"], state["_last"] = None, None, None
        return state

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        sample = self._sample(index)
        return sample["rgb"], sample["depth"]

    def crop_box_of(self, index: int, shape: tuple[int, int]) -> tuple[int, int, int, int] | None:
        box = tuple(int(v) for v in self._sample(index)["box"])
        return None if box == NO_BOX else box

    def describe(self, index: int) -> str:
        return f"{self.url} sample {index}: {self._sample(index)['describe']}"

    def frame_name(self, index: int) -> str:
        return str(self._sample(index)["name"])

    def list_line(self, index: int) -> int | None:
        line = int(self._sample(index)["line"])
        return None if line < 0 else line

    def source(self) -> dict[str, Any]:
        """The packed split's source card, with where the chunks are and a hash of their index."""
        if self._first is None:
            self._first = json.loads(self._sample(0)["source"])
        packed = {"url": self.url, "samples": len(self)}
        if self.index_file is not None:
            packed["index_sha256"] = hashlib.sha256(self.index_file.read_bytes()).hexdigest()[:16]
        return {**self._first, "packed": packed}
