"""Why a mutant that ``make mutation`` reports as surviving is accepted. Each rule is a regular expression
over the mutant's diff (its ``-`` and ``+`` lines, the mutant's name on the first line) and the reason the
change shows in no number or file a result reports (``equivalent``), or why it is left (``accepted``). The
results file gives every survivor its rule, or says that it is a gap in the tests. A rule is written
after reading the mutants it covers, never to raise a score."""

from __future__ import annotations

import re

# (name, pattern over the diff, reason); the first match wins
RULES: list[tuple[str, str, str]] = [
    (
        "gathered-lists",
        r"^\+.*(dist_reduce_fx=None|add_state\(\"\w+\", \[\], \))",
        "equivalent: torchmetrics gathers a list state rank by rank and flattens the lists with or without 'cat'; "
        "the rows are sorted by image id after (tests/test_metrics.py gathers through a real gloo group)",
    ),
    (
        "one-device",
        r"^\+.*(device=None|\.to\(None\)|device=s\.device\)|bool, \)|dtype=torch\.float64, \)(\.reshape| \* 2)|"
        r"self\.mode, None\))",
        "equivalent on one device: the tensor is made where it would have been moved (the gpu-marked tests run "
        "the device paths)",
    ),
    ("bilinear-corners", r"^\+.*(align_corners=None|mode=\"bilinear\", \))", "equivalent: align_corners=None is False"),
    (
        "zip-strict",
        r"^\+.*(strict=(None|False)|zip\([^()]*(\([^()]*\))?, \))",
        "equivalent: the zipped sequences have one length by construction",
    ),
    (
        "sort-order",
        r"^\+.*(stable=False|argsort\(\w+, \))",
        "equivalent: the ids are unique (or sorted along the last axis, the default)",
    ),
    ("float-literal", r"^\+.*float\(\"(NAN|INF)\"\)", "equivalent: Python reads NAN and INF as nan and inf"),
    (
        "always-applied",
        r"^\+.*\bp=2\.0|^\+.*\bp=1\.0, \)|^\+.*\}, \)\(image=|^\+.*\"mask\"\}, seed=seed",
        "equivalent: albumentations applies a transform of p >= 1 (and a Compose's default p is 1) always",
    ),
    (
        "inferred-dtype",
        r"^\+.*(dtype=None|astype\(None\)|finfo\(None\)|, \)(\)|\.| for|$|\[|\.reshape|\.double|,$)|allow_pickle=None|"
        r"zeros\(0, \)|float\(\"inf\"\), \)|np\.ones\(PROBE, None\)|np\.asarray\(depth, \))",
        "equivalent: the dtype (or default) used instead is the one written for every input this code receives "
        "(float32 stays float32, integer ids and boxes int64, pickles refused by default)",
    ),
    (
        "same-size-resize",
        r"^\+.*shape\[(\+2|-3):\]|^\+.*shape\[:3\]",
        "equivalent: the maps have exactly the dimensions the slice reads (or are resized to the size they have: "
        "the identity)",
    ),
    ("last-axis", r"^\+.*\.sum\(\+1\)", "equivalent: on a 2-D tensor axis 1 is the last axis"),
    (
        "l1-weights-scaled",
        r"^\+.*\b2 / g\b",
        "equivalent: a weighted-L1 minimiser does not move when every weight is scaled by one constant",
    ),
    ("centred-sum", r"^\+.*\(y \+ my\)", "equivalent: the centred x sums to 0, so sum(dx (y + my)) = sum(dx (y - my))"),
    (
        "median-index",
        r"^\+.*clamp_max\(v\.shape\[-1\] \+ 1\)",
        "equivalent: half the total weight is reached at the last index at the latest",
    ),
    (
        "zero-weight",
        r"^\+.*torch\.where\(zero, [12]\.0",
        "equivalent: these entries carry weight 0 in the weighted median (and are never its first half-weight index)",
    ),
    (
        "l1-ties",
        r"^\+.*cost\[i\] <= best\[0\]",
        "accepted: on a tie both anchors reach the same weighted-L1 minimum; the first is kept for determinism",
    ),
    (
        "first-anchor",
        r"^\+.*range\(1, x\.numel\(\)",
        "equivalent: an optimum passes through two pixels, so every optimum is found from another anchor too",
    ),
    (
        "subsample-edge",
        r"^\+.*max\(h, w\) >= max_resolution|^\+.*\(self\.max_resolution or 1\)|^\+.*torch\.ones\((h \* w|1|2), ",
        "equivalent: a subsample at the frame's own size picks every pixel, and a mask of every pixel broadcasts "
        "alike whatever its leading axis",
    ),
    (
        "empty-output-size",
        r"^\+.*output_size.* = \"\"",
        "equivalent: process() sets the output size before anything reads it",
    ),
    (
        "reader-cache",
        r"^\+.*(self\._last\[1\] == index|self\._frames is (None and|not None or)|self\._pid == os\.getpid|"
        r"state\[\"(XX_\w+XX|_[A-Z]+)\"\])",
        "equivalent in what is read: the packed reader is reopened or the sample read again, the same bytes",
    ),
    (
        "list-line",
        r"^\+.*(line <= 0|line < 1|\"line\": -2)",
        "equivalent: list lines count from 1, so a frame without one is the only value below 1",
    ),
    (
        "pack-writer-pool",
        r"x__write_chunks.*\n(.*\n)*^\+.*(pool|imap|workers > 2|chunksize|samples = None)|"
        r"^\+def pack_split\(.*workers: int = 2",
        "accepted: the worker pool only parallelises decoding (a default of 2 workers would use it); its output is "
        "checked equal to one worker's by the slow test_packing_on_several_workers_writes_the_samples_one_worker_"
        "writes_in_order",
    ),
    (
        "compression",
        r"^\+.*(compression=None|\"256mb\"|chunk_bytes=\"256MB\", \)|workers, None\))",
        "accepted: LitData's compression needs zstd, not installed here (packing with it is refused by name); "
        "LitData reads its size setting in either case",
    ),
    (
        "url-paths",
        r"\"XX://XX\"|\"://\" in self\.url|\"://\" not in self\.url\) or True|folder is not None\) and False|"
        r"^\+\s+folder = None|rstrip\('XX/XX'\)|lstrip\('/'\)|rstrip\(None\)|TemporaryDirectory\(prefix=|"
        r"fsspec\.open\(where, \)",
        "equivalent or accepted: a pack at a URL is read by LitData from remote storage this machine cannot reach; "
        "fsspec reads a local path as a URL alike; a temporary folder's name is not seen",
    ),
    (
        "own-attributes",
        r"getattr\(partial, \"(func|keywords)\", (None)?\)|getattr\(datamodule\.dataset, \"keywords\", \)",
        "equivalent: a functools.partial (as every dataset setting is) always has func and keywords",
    ),
    (
        "sorted-json",
        r"sort_keys=(None|False)|json\.dumps\(dataset\.source\(\), \)",
        "equivalent: the source card is read back as a mapping, its keys' order never compared",
    ),
    (
        "packed-sample-fields",
        r"crop_box_of\(None, depth\.shape|depth\.shape\[:3\]|cropped\(None, ",
        "equivalent: every dataset's crop box depends on the frame's size, not its index",
    ),
    (
        "name-check",
        r"^\+.*region_mask\(self\.region, [12], [12]\)",
        "equivalent: the call only checks the region's name; any frame size does",
    ),
    (
        "exact-boundary",
        r"^\+.*(>= ASPECT_TOLERANCE|weight >= 0\.5|r\.random\(\) <= 0\.5|scale <= 0 else)",
        "accepted: differs only where a float lands exactly on the threshold (a PFM's scale is never 0)",
    ),
    (
        "unit-check-pixels",
        r"^\+.*both = np\.isfinite\(pred\)|^\+.*if self\.ratios else 2\.0",
        "accepted: the unit check compares a median ratio with units 10x apart (mm, 1/256 m, m); which positive "
        "pixels enter it, or the ratio of no pixel (1 or 2), never crosses that",
    ),
    (
        "masked-stand-in",
        r"^\+.*where\(valid, (depth|g), 2\.0\)|^\+\s+valid = \(g > self\.min_depth\)",
        "equivalent: the stand-in value of an invalid pixel is weighted 0 or masked out; a truth inside the range "
        "is finite and positive",
    ),
    (
        "defaults-written",
        r"^\+.*protocol_of\(datamodule\), dataset=|^\+.*integers\(images, size=|reshape\(len\(values\), -2\)|"
        r"pairs\[:, 1:3\]|np\.ones\(\(2, images\)\)|F\.interpolate\(index, \*\*shape\)|h5py\.File\(path, \)|"
        r"divide=None\)$|torch\.autocast\(device_type=logits\.device\.type, (enabled=True)?\)|log_depth=None\)",
        "equivalent: the argument left out or changed is its default or changes nothing read (the split 'test', "
        "log_depth=None as False, "
        "numpy's integers(0, n), nearest interpolation, h5py's read mode, the first row of equal rows, a mask's "
        "divide=None as False, autocast's float32 softmax)",
    ),
    (
        "one-view",
        r"^\+.*(one = None|\(one\) and False)",
        "equivalent: the mean of one view's probabilities is that view's",
    ),
    (
        "non-finite-stand-in",
        r"^\+.*nan_to_num\(pred, ",
        "equivalent: a non-finite prediction (refused, or clipped with invalid_predictions=clip) ends clipped "
        "into [min_depth, cap] whatever finite stand-in it gets first",
    ),
    (
        "guards",
        r"^\+.*(np\.clip\(out\[\"image\"\]|depth >= 0\), depth, 0\.0|f\.read\((None|9)\)|"
        r"errstate\(|split\(\"=\", 2\)|rsplit\(\"=\", 1\)|"
        r"INTER_LINEAR\) \* p\[\"colour\"\], None, 1|unit_rgb\(rgb\), p, None\)|"
        r"dtype=np\.float32 if \(divide\)|clamp_\(None, 1\)|grid_sample\(image\.double\(\), grid, \*\*warp\)|"
        r"!= PROBE and done)",
        "equivalent: a guard the inputs never reach (albumentations clips float images itself, colour factors "
        "and unit RGB are never negative, a 0 stays 0, the header fits in the bytes read, numpy's warnings only, "
        "calibration values hold no '=', OpenCV's default is linear, float32 depth stays float32, a geometric "
        "transform resizes image and depth alike)",
    ),
    (
        "depth-target",
        r"^\+.*(additional_targets=None|\*self\.extra\], p=1\.0|A\.Compose\(\[t\], p=1\.0\)|image=probe\[1\])",
        "equivalent here (albumentations 2.0.8): PaperTransform declares the depth target itself and the Compose "
        "moves 'depth' with every geometric extra (test_extras_apply_as_described passes without "
        "additional_targets); the extras' probe is decided by the image's size, which no transform changes apart "
        "from a mask's, and a grayscale probe passes the same transforms",
    ),
    (
        "one-frame-size",
        r"^\+.*frames\.load\(1\)\[1\]\.shape",
        "accepted: the card records the size of one frame of the split (they share it, KITTI's but for a few "
        "pixels); the first is as good as the second",
    ),
    (
        "message-text",
        r"^\+.*(Error\(None\)|\"XX[^\"]*XX\"|'XX[^']*XX'|\"[^\"a-z]*[A-Z]{4,}[^\"a-z]*\"|log\.warning\(\"XX|'NONE')|"
        r"^\+\s+None\s*$|^\+.*join\(.*\[:\d+\]\)|^\+.*refuse_units\(None, ",
        "accepted: the text of a message (its facts, the setting, file and numbers, are pinned where a test "
        "checks the message; this one is checked by type)",
    ),
]


def why(diff: str) -> tuple[str, str] | None:
    """``(rule, reason)`` for a surviving mutant with this diff (its name on the first line), or None: a gap."""
    return next(((name, reason) for name, pattern, reason in RULES if re.search(pattern, diff, re.M)), None)
