"""Why a mutant that ``make mutation`` reports as surviving is accepted: each rule is a regular expression
matched against the mutant's diff (its ``-`` and ``+`` lines) and the reason it changes no number a
result reports. The results file names, for every survivor, the rule it falls under, or says it is a
gap in the tests; a rule is only written after reading the mutants it covers."""

from __future__ import annotations

import re

# (pattern over the diff, reason); the first match wins
RULES: list[tuple[str, str]] = [
    (
        r"\+.*dist_reduce_fx=(None|\s*\))|\+.*self\.add_state\(\"\w+\", \[\], \)",
        "equivalent: torchmetrics gathers a list state rank by rank and flattens the lists with or without "
        "'cat'; the rows are then sorted by image id (tests/test_metrics.py gathers through a real gloo group)",
    ),
    (
        r"\+.*(device=None|\.to\(None\)|, device=s\.device\)|device=device\)\s*$)",
        "equivalent on one device: the tensor is made on the device it would have been moved to (CPU here; "
        "the gpu-marked tests run the device paths)",
    ),
    (r"\+.*align_corners=None|\+.*mode=\"bilinear\", \)", "equivalent: align_corners=None is False for bilinear"),
    (r"\+.*strict=(None|False)|\+.*zip\([^)]*, \)", "equivalent: the zipped sequences have one length by construction"),
    (r"\+.*(stable=False|argsort\(ids, \))", "equivalent: image ids are unique, any sort orders them alike"),
    (r"\+.*float\(\"(NAN|INF)\"\)", "equivalent: Python reads NAN and INF as nan and inf"),
    (r"\+.*\bp=2\.0", "equivalent: albumentations applies a transform of p >= 1 always"),
    (
        r"\+.*(dtype=None|, \)\s*$|\(\),\s*\)|dtype=None\))",
        "equivalent: the dtype inferred is the one written for every input this code receives (float32 "
        "arrays stay float32, float64 stay float64)",
    ),
]


def why(diff: str) -> str | None:
    """The reason a surviving mutant with this diff is accepted, or None: a gap in the tests."""
    return next((reason for pattern, reason in RULES if re.search(pattern, diff, re.M)), None)
