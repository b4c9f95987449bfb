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
        r"^\+.*(device=None|\.to\(None\)|device=s\.device\)|bool, \)|dtype=torch\.float64, \)\.reshape)",
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
        r"^\+.*\bp=2\.0|^\+.*\bp=1\.0, \)|^\+.*\}, \)\(image=",
        "equivalent: albumentations applies a transform of p >= 1 (and a Compose's default p is 1) always",
    ),
    (
        "inferred-dtype",
        r"^\+.*(dtype=None|astype\(None\)|finfo\(None\)|, \)(\)|\.| for|$|\[|\.reshape|\.double)|allow_pickle=None)",
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
        r"x__write_chunks.*\n(.*\n)*^\+.*(pool|imap|workers > 2|chunksize)",
        "accepted: the worker pool only parallelises decoding; its output is checked equal to one worker's by "
        "the slow test_packing_on_several_workers_writes_the_samples_one_worker_writes_in_order",
    ),
    (
        "compression",
        r"^\+.*(compression=None|\"256mb\"|chunk_bytes=\"256MB\", \))",
        "accepted: LitData's compression needs zstd, not installed here (packing with it is refused by name); "
        "LitData reads its size setting in either case",
    ),
    (
        "url-paths",
        r"\"XX://XX\"|\"://\" in self\.url|\"://\" not in self\.url\) or True|folder is not None\) and False|"
        r"^\+\s+folder = None|rstrip\('XX/XX'\)|lstrip\('/'\)|TemporaryDirectory\(prefix=|fsspec\.open\(where, \)",
        "equivalent or accepted: a pack at a URL is read by LitData from remote storage this machine cannot reach; "
        "fsspec reads a local path as a URL alike; a temporary folder's name is not seen",
    ),
    (
        "own-attributes",
        r"getattr\(partial, \"(func|keywords)\", (None)?\)",
        "equivalent: a functools.partial always has func and keywords",
    ),
    (
        "sorted-json",
        r"sort_keys=(None|False)|json\.dumps\(dataset\.source\(\), \)",
        "equivalent: the source card is read back as a mapping, its keys' order never compared",
    ),
    (
        "packed-sample-fields",
        r"crop_box_of\(None, depth\.shape|depth\.shape\[:3\]",
        "equivalent: every dataset's crop box depends on the frame's size, not its index",
    ),
    (
        "message-text",
        r"^\+.*(Error\(None\)|\"XX[^\"]*XX\"|'XX[^']*XX'|\"[^\"a-z]*[A-Z]{4,}[^\"a-z]*\"|log\.warning\(\"XX)",
        "accepted: the text of a message (its facts, the setting, file and numbers, are pinned where a test "
        "checks the message; this one is checked by type)",
    ),
]


def why(diff: str) -> tuple[str, str] | None:
    """``(rule, reason)`` for a surviving mutant with this diff (its name on the first line), or None: a gap."""
    return next(((name, reason) for name, pattern, reason in RULES if re.search(pattern, diff, re.M)), None)
