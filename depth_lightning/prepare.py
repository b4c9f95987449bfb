"""``python -m depth_lightning.prepare nyu|kitti <root>``: colorization-filled depth beside the raw maps;
``python -m depth_lightning.prepare pack data=<dataset> [data.*=...] output=<folder or URL>``: the
dataset's splits as LitData chunks (:mod:`depth_lightning.data.packed`).

NYU (sync layout): every ``sync_depth_XXXXX.png`` (or those of ``--list``) gets
``sync_depth_XXXXX_filled.png`` (uint16 mm). KITTI raw: every frame of ``--list`` gets its projected
Velodyne depth filled, in ``<drive>/proj_depth/filled/image_0c/<frame>.png`` (uint16, m x 256).
Parallel (``--workers``; 1: in this process), resumable (finished files are skipped), atomic (write, then rename).
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing as mp
import sys
import time
from pathlib import Path

from tqdm import tqdm

from depth_lightning.core.errors import USER_ERRORS, ConfigError, DataError
from depth_lightning.data.fill import fill_depth_colorization
from depth_lightning.data.io import read_depth_png, read_rgb, write_depth_png
from depth_lightning.data.kitti import PIXEL_RULES, KITTIEigen, filled_velodyne_path, velodyne_depth
from depth_lightning.data.nyu import filled_path, parse_list

Job = tuple[str, Path, Path, Path, str]  # (dataset, rgb, raw depth, output, Velodyne pixel rule)


def nyu_jobs(root: Path, list_file: Path | None) -> list[Job]:
    if list_file is not None:
        pairs = [(root / p[0].lstrip("/"), root / p[1].lstrip("/")) for p in parse_list(list_file)]
    else:
        pairs = [
            (d.with_name(d.name.replace("sync_depth_", "rgb_")).with_suffix(".jpg"), d)
            for d in sorted(root.rglob("sync_depth_*.png"))
            if not d.stem.endswith("_filled")
        ]
    return [("nyu", rgb, depth, filled_path(depth), "") for rgb, depth in pairs]


def kitti_jobs(root: Path, list_file: Path, pixel_rule: str) -> list[Job]:
    # every listed frame with a scan, read as the training split reads it (no validation held out)
    ds = KITTIEigen(str(root), str(list_file), str(list_file), gt="velodyne", input_size=(32, 32), split="train")
    return [("kitti", s["image"], s["depth"][2], filled_velodyne_path(s["image"]), pixel_rule) for s in ds.samples]


def _run(job: Job) -> tuple[str, str, float]:
    kind, rgb_path, depth_path, out, pixel_rule = job
    if out.is_file():
        return "skipped", str(out), 0.0
    start = time.perf_counter()
    try:
        rgb = read_rgb(rgb_path)
        if kind == "nyu":
            depth = read_depth_png(depth_path, 1000.0)
        else:
            camera = int(rgb_path.parent.parent.name[-1])
            depth = velodyne_depth(depth_path.parent.parent.parent.parent, depth_path, camera, pixel_rule)
        filled = fill_depth_colorization(rgb, depth)
        out.parent.mkdir(parents=True, exist_ok=True)
        write_depth_png(out, filled, 1000.0 if kind == "nyu" else 256.0)
    except (DataError, ValueError) as err:
        return "failed", str(err), 0.0
    return "written", str(out), time.perf_counter() - start


def fill(jobs: list[Job], workers: int, name: str) -> tuple[dict[str, int], list[float], list[str]]:
    """Run the jobs on ``workers`` processes (one: in this process): counts by outcome, seconds per
    written frame, failures."""
    counts = {"written": 0, "skipped": 0, "failed": 0}
    seconds: list[float] = []
    failures: list[str] = []
    with contextlib.ExitStack() as stack:
        if workers > 1:
            outcomes = stack.enter_context(mp.get_context("spawn").Pool(workers)).imap_unordered(_run, jobs)
        else:
            outcomes = map(_run, jobs)
        for status, what, dt in tqdm(outcomes, total=len(jobs), desc=f"fill {name}"):
            counts[status] += 1
            if status == "written":
                seconds.append(dt)
            elif status == "failed":
                failures.append(what)
    return counts, seconds, failures


def pack(argv: list[str]) -> int:
    """``pack data=<dataset> [data.<key>=<value> ...] output=<folder> [splits=train,val,test] [workers=N]
    [compression=zstd] [overwrite=true]``: the splits as the datamodule builds them, written as LitData
    chunks, and ``pack.json``, the pack's card (what it holds); a folder holding a pack is replaced only
    with ``overwrite=true``."""
    from depth_lightning.core.config import build, compose_config
    from depth_lightning.data.packed import pack_card, pack_split, refuse_to_replace, write_pack_card

    parser = argparse.ArgumentParser(prog="python -m depth_lightning.prepare pack", description=pack.__doc__)
    parser.add_argument("settings", nargs="*", help="data=<dataset>, data.<key>=<value>, output=, splits=, workers=")
    settings = parser.parse_args(argv).settings
    keys = ("output", "splits", "workers", "compression", "overwrite")
    options = dict(a.split("=", 1) for a in settings if a.split("=", 1)[0] in keys)
    overrides = [a for a in settings if a.split("=", 1)[0] not in options]
    if "output" not in options:
        raise ConfigError(
            "config error: prepare pack needs output=<folder or URL> (and data=<dataset> with its settings)"
        )
    check_compression(options.get("compression"))
    overwrite = options.get("overwrite", "false").lower()
    if overwrite not in ("true", "false"):
        raise ConfigError(f"config error: overwrite={options['overwrite']!r}: true or false")
    refuse_to_replace(options["output"], overwrite == "true")
    cfg = compose_config(*overrides, config_name="check")
    datamodule = build(cfg.data, "data")
    if datamodule.format == "packed":
        raise ConfigError("config error: data.format=packed: pack the dataset's own files (data.format=loose)")
    packed = {}
    for split in options.get("splits", "train,val,test").split(","):
        dataset = datamodule.build(split)  # validation held out of the training list as training holds it out
        out = pack_split(
            dataset,
            f"{options['output'].rstrip('/')}/{split}",
            int(options.get("workers", 1)),
            options.get("compression"),
        )
        packed[split] = dataset
        print(f"{split}: {len(dataset)} frames packed at {out}")
    write_pack_card(options["output"], pack_card(datamodule, packed))  # last: a pack without one is unfinished
    return 0


def check_compression(compression: str | None) -> None:
    """LitData's compressions are those whose package is installed: name the setting before packing."""
    from litdata.streaming.compression import _COMPRESSORS

    if compression is not None and compression not in _COMPRESSORS:
        raise ConfigError(
            f"config error: compression={compression!r} is not available here (available: "
            f"{', '.join(k for k in _COMPRESSORS if ':' not in k) or 'none'}); zstd and zstd:<level> need the "
            "zstd package (pip install zstd), or leave compression out"
        )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["pack"]:
        try:
            return pack(argv[1:])
        except USER_ERRORS as err:  # one line and exit code 2, as every entry point
            print(f"error: {err}", file=sys.stderr)
            return 2
    parser = argparse.ArgumentParser(prog="python -m depth_lightning.prepare", description=__doc__.split("\n")[0])
    parser.add_argument("dataset", choices=["nyu", "kitti"])
    parser.add_argument("root", type=Path)
    parser.add_argument("--list", type=Path, default=None, help="split list (required for kitti)")
    parser.add_argument("--workers", type=int, default=max(1, mp.cpu_count() - 0))
    parser.add_argument(
        "--velodyne-pixel",
        choices=PIXEL_RULES,
        default="round",
        help="kitti: where a LiDAR point lands (round: as the official depth maps; data.velodyne_pixel)",
    )
    args = parser.parse_args(argv)
    if not args.root.is_dir():
        parser.error(f"{args.root} is not a folder")
    if args.dataset == "kitti" and args.list is None:
        parser.error("kitti needs --list <split list> (e.g. the Eigen train split)")
    try:
        if args.dataset == "nyu":
            jobs = nyu_jobs(args.root, args.list)
        else:
            jobs = kitti_jobs(args.root, args.list, args.velodyne_pixel)
    except USER_ERRORS as err:  # one line and exit code 2, as every entry point
        parser.error(str(err))
    counts, seconds, failures = fill(jobs, args.workers, args.dataset)
    mean = sum(seconds) / len(seconds) if seconds else float("nan")
    print(
        f"{len(jobs)} frames: {counts['written']} written, {counts['skipped']} already done, "
        f"{counts['failed']} failed; {mean:.2f} s per frame per worker"
    )
    for f in failures:
        print("  failed:", f, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
