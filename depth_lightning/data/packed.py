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
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from depth_lightning.core import __version__
from depth_lightning.core.errors import DataError
from depth_lightning.core.files import write_json
from depth_lightning.data.frames import FrameDataset

NO_BOX = (-1, -1, -1, -1)
CARD = "pack.json"  # the pack's identity, beside its splits
# dataset settings that say where files are, not what a sample is: a pack is read wherever it was copied
LOCATION_SUFFIXES = ("root", "list", "_dir")
HOW_TO_READ = ("cache",)  # settings of how a reader works, not of what it gives
REBUILD = "rebuild it with python -m depth_lightning.prepare pack data=<dataset> [data.*=...] output=<folder>"
log = logging.getLogger(__name__)


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def dataset_identity(datamodule: Any) -> dict[str, Any]:
    """What makes the samples of ``datamodule``'s dataset what they are: its config name, its reader and
    the reader's settings but for locations (``root``, lists: their contents are hashed per split)."""
    partial = datamodule.dataset
    reader = getattr(partial, "func", partial)
    settings = {k: v for k, v in sorted((getattr(partial, "keywords", None) or {}).items())}
    return {
        "dataset": datamodule.name,
        "reader": f"{reader.__module__}.{reader.__qualname__}",
        "settings": _jsonable(
            {k: v for k, v in settings.items() if not k.endswith(LOCATION_SUFFIXES) and k not in HOW_TO_READ}
        ),
    }


def pack_card(datamodule: Any, splits: dict[str, FrameDataset]) -> dict[str, Any]:
    """``pack.json``: the dataset's identity, where it was read from, how validation was held out, and
    each packed split's frame count and source (list hash, ground truth); the suite's version."""

    keywords = getattr(datamodule.dataset, "keywords", None) or {}
    return {
        "library": "depth_lightning",
        "version": __version__,
        **dataset_identity(datamodule),
        "root": None if keywords.get("root") is None else str(keywords["root"]),
        "hold_out": {
            "val_fraction": datamodule.val_fraction,
            "val_max_frames": datamodule.val_max_frames,
            "seed": datamodule.seed,
        },  # fmt: skip
        "splits": {name: {"frames": len(ds), "source": _jsonable(ds.source())} for name, ds in splits.items()},
    }


def write_pack_card(output: str, card: dict[str, Any]) -> None:
    """``pack.json`` beside the splits (a local folder; a URL's card is written by copying the folder)."""
    folder = _local(output)
    if folder is not None:
        write_json(folder / CARD, card)


def _local(packed: str) -> Path | None:
    return None if "://" in str(packed) else Path(str(packed).removeprefix("local:"))


def refuse_to_replace(output: str, overwrite: bool) -> None:
    """``prepare pack`` into a folder that holds a pack (its card or a split's index) only with ``overwrite``."""
    folder = _local(output)
    if folder is None or overwrite or not folder.is_dir():
        return
    held = [p for p in (folder / CARD, *(folder / s / "index.json" for s in ("train", "val", "test"))) if p.is_file()]
    if held:
        what = json.loads(held[0].read_text()).get("dataset", "?") if held[0].name == CARD else "?"
        raise DataError(
            f"output={output!r} holds a pack already (of {what!r}: {held[0]}); add overwrite=true to replace it, "
            "or choose another folder"
        )


def read_pack_card(packed: str) -> dict[str, Any]:
    """The card of the pack at ``packed`` (a folder, ``local:``, or a URL fsspec reads)."""
    folder = _local(packed)
    where = str(folder / CARD) if folder is not None else f"{str(packed).rstrip('/')}/{CARD}"
    try:
        if folder is not None:
            text = (folder / CARD).read_text()
        else:
            import fsspec

            with fsspec.open(where, "r") as f:
                text = f.read()
    except (OSError, ImportError, ValueError) as err:
        raise DataError(
            f"data.packed={packed!r}: no pack card at {where} ({type(err).__name__}): not a pack of this version, "
            f"or not a pack; {REBUILD}"
        ) from None
    try:
        card = json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(f"data.packed={packed!r}: a damaged pack: {where} is not JSON ({err}); {REBUILD}") from None
    if not isinstance(card, dict) or card.get("library") != "depth_lightning":
        raise DataError(f"data.packed={packed!r}: {where} is not a depth_lightning pack card; {REBUILD}")
    return card


def check_pack(card: dict[str, Any], datamodule: Any, packed: str) -> None:
    """Refuse a pack of another dataset, another reader or other sample settings than the run's ``data=``,
    naming both; a validation held out with other settings is said, and the pack's is used."""
    ours = dataset_identity(datamodule)
    if (card.get("dataset"), card.get("reader")) != (ours["dataset"], ours["reader"]):
        raise DataError(
            f"data.packed={packed!r} holds {card.get('dataset')!r} ({card.get('reader')}), but this run's data is "
            f"{ours['dataset']!r} ({ours['reader']}): its bins, protocol and samples would be another dataset's; "
            f"pack this dataset (python -m depth_lightning.prepare pack data={ours['dataset']} ... output=<folder>) "
            "or choose the pack's data="
        )
    theirs = card.get("settings") or {}
    differ = sorted(k for k in set(theirs) | set(ours["settings"]) if theirs.get(k) != ours["settings"].get(k))
    if differ:
        shown = "; ".join(f"data.dataset.{k}: pack {theirs.get(k)!r}, run {ours['settings'].get(k)!r}" for k in differ)
        raise DataError(
            f"data.packed={packed!r} was packed with other sample settings than this run's ({shown}); {REBUILD} "
            "with the run's settings, or give the pack's"
        )
    hold = card.get("hold_out") or {}
    wanted = {"val_fraction": datamodule.val_fraction, "val_max_frames": datamodule.val_max_frames,
              "seed": datamodule.seed}  # fmt: skip
    if hold and hold != wanted:
        log.warning("data.packed=%s: its validation was held out with %s, not this run's %s; the pack's split is used",
                    packed, hold, wanted)  # fmt: skip


def check_chunks(index_file: Path, packed: str) -> None:
    """Every chunk ``index.json`` lists is there, whole: a damaged pack is named, not met mid-epoch."""
    try:
        index = json.loads(index_file.read_text())
        chunks = index["chunks"]
        compressed = (index.get("config") or {}).get("compression") is not None
    except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError) as err:
        raise DataError(
            f"data.packed={packed!r}: a damaged pack: {index_file} is unreadable ({err}); {REBUILD}"
        ) from None
    for chunk in chunks:
        path = index_file.parent / chunk["filename"]
        if not path.is_file():
            raise DataError(f"data.packed={packed!r}: a damaged pack: {path} is missing; {REBUILD}")
        if not compressed and path.stat().st_size != chunk["chunk_bytes"]:
            raise DataError(
                f"data.packed={packed!r}: a damaged pack: {path} holds {path.stat().st_size} bytes, its index says "
                f"{chunk['chunk_bytes']} (truncated?); {REBUILD}"
            )


class _Sample:
    """One frame of a split as a packed sample (picklable: the packing workers get a copy)."""

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
    """Write every frame of ``dataset``, in the split's order, as LitData chunks at ``output`` (a folder,
    ``local:<folder>`` or a URL); returns it. The chunks and ``index.json`` are LitData's ``BinaryWriter``'s,
    what its ``optimize`` writes; ``workers`` > 1 read and decode the frames in that many processes while
    this one writes them in order (``optimize``'s own workers write their chunks in the order they finish,
    so sample ``i`` of the pack would not be frame ``i`` of the list). A URL is written to a local folder
    first, then copied there (fsspec)."""
    if len(dataset) == 0:
        raise DataError(f"{output}: the {dataset.split} split has no frame to pack")
    if "://" not in str(output):
        return _write_chunks(dataset, Path(str(output).removeprefix("local:")), workers, compression)
    import tempfile

    import fsspec

    with tempfile.TemporaryDirectory(prefix="depth_lightning-pack-") as local:
        _write_chunks(dataset, Path(local), workers, compression)
        fs, path = fsspec.core.url_to_fs(str(output))
        fs.makedirs(path, exist_ok=True)
        for file in sorted(Path(local).iterdir()):
            fs.put_file(str(file), f"{path.rstrip('/')}/{file.name}")
    return str(output)


def _write_chunks(dataset: FrameDataset, output: Path, workers: int, compression: str | None) -> str:
    import multiprocessing as mp
    from contextlib import ExitStack

    from litdata.streaming.writer import BinaryWriter

    if output.exists():  # a split written again replaces the old one
        for old in output.iterdir():
            old.unlink()
    output.mkdir(parents=True, exist_ok=True)
    sample = _Sample(dataset)
    writer = BinaryWriter(str(output), chunk_bytes="256MB", compression=compression)
    with ExitStack() as stack:
        samples = map(sample, range(len(dataset)))
        if workers > 1:  # imap keeps the order; spawn, as the loaders' workers (no forked OpenMP threads)
            pool = stack.enter_context(mp.get_context("spawn").Pool(workers))
            samples = pool.imap(sample, range(len(dataset)), chunksize=4)
        for index, item in enumerate(samples):
            writer.add_item(index, item)
    writer.done()
    writer.merge()
    return str(output)


class PackedFrames(FrameDataset):
    """One split of a packed dataset, ``<packed>/<split>`` (a folder or a URL LitData reads).

    Args:
        packed: what ``prepare pack`` wrote (its ``output``).
    """

    def __init__(self, packed: str, card: dict[str, Any] | None = None, **kw: Any) -> None:
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
        if self.index_file is not None:
            check_chunks(self.index_file, packed)
        self.card = card  # the pack's card (pack.json), as the datamodule read and checked it
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
        sample = self._frames[index]
        if int(sample["index"]) != index:  # packs written by LitData's optimize on several workers: out of order
            raise DataError(
                f"data.packed: a damaged pack: sample {index} of {self.url} holds frame {int(sample['index'])} of "
                f"its split (written out of order); {REBUILD}"
            )
        self._last = (index, sample)
        return sample

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
        packed: dict[str, Any] = {"url": self.url, "samples": len(self)}
        if self.index_file is not None:
            packed["index_sha256"] = hashlib.sha256(self.index_file.read_bytes()).hexdigest()[:16]
        if self.card is not None:
            packed["card"] = {k: v for k, v in self.card.items() if k != "splits"}
        return {**self._first, "packed": packed}
