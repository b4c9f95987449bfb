"""The name of every logged number, formatted and parsed here only.

A key is ``[split/][cap<c>/][prediction/]metric``: ``val/abs_rel`` (the headline prediction under the
headline cap, bare), ``test/soft/d1``, ``test/cap50/hard/rmse``, ``constant/abs_rel`` (inside a split's
values, without the split). A *scope* is a key without its metric (``cap50/soft``): what one
prediction scored under one cap, the per-image record's unit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SPLITS = ("train", "val", "test")
_CAP = re.compile(r"^cap(\d+(?:\.\d+)?(?:e[+-]?\d+)?)$")


@dataclass(frozen=True)
class MetricKey:
    """One logged number (or, with ``metric=None``, a scope).

    Args:
        metric: ``abs_rel``, ``d1``..., ``pixel_acc``, ``ause_rmse``, ``pixels``, ``scale``, ``loss``.
        prediction: ``soft``, ``hard``, a baseline (``constant``), ``predictions`` (another method's
            maps); None: the headline prediction, reported bare.
        cap: the maximum depth the number was scored under; None: the protocol's first (headline) cap.
        split: ``train``, ``val`` or ``test``; None inside one split's values.
    """

    metric: str | None
    prediction: str | None = None
    cap: float | None = None
    split: str | None = None

    def __str__(self) -> str:
        parts = [self.split, None if self.cap is None else f"cap{self.cap:g}", self.prediction, self.metric]
        return "/".join(p for p in parts if p is not None)

    def of(self, metric: str) -> str:
        """The key of ``metric`` in this scope: ``MetricKey.parse("cap50/soft", scope=True).of("rmse")``."""
        return str(MetricKey(metric, self.prediction, self.cap, self.split))

    @property
    def scope(self) -> MetricKey:
        """The prediction and cap this number belongs to (``cap50/soft`` of ``cap50/soft/rmse``)."""
        return MetricKey(None, self.prediction, self.cap)

    @classmethod
    def parse(cls, key: str, scope: bool = False) -> MetricKey:
        """The key ``str`` formats; ``scope``: ``key`` names no metric (``cap50/soft``, ``soft``)."""
        parts = key.split("/")
        split = parts.pop(0) if len(parts) > 1 and parts[0] in SPLITS else None
        cap = None
        if parts and (found := _CAP.match(parts[0])):
            cap, parts = float(found.group(1)), parts[1:]
        if scope:
            parts = [*parts, None]
        if len(parts) == 1:
            parts = [None, *parts]
        if len(parts) != 2 or not parts[1 if not scope else 0] or any(p == "" for p in parts):
            raise ValueError(f"{key!r} is not a metric key ([split/][cap<c>/][prediction/]metric)")
        return cls(parts[1], parts[0], cap, split)


def cap_of(caps: tuple[float, ...], index: int) -> float | None:
    """How cap ``index`` of a protocol appears in keys: None for the headline (first) cap."""
    return None if index == 0 else caps[index]
