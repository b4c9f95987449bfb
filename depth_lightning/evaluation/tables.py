"""Plain-text tables for the console: one row per name, one column per metric."""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def format_table(
    rows: Mapping[str, Mapping[str, float]],
    columns: Sequence[str],
    first: str = "",
    intervals: Mapping[str, Mapping[str, Sequence[float] | None]] | None = None,
) -> str:
    """``rows[name][column]`` as aligned text; a missing value prints as ``nan``; with ``intervals``
    (``[name][column] -> (low, high)``) each cell reads ``0.1390 [0.1342, 0.1441]``."""
    width = max([16, len(first), *(len(str(n)) + 2 for n in rows)])
    cell = 28 if intervals else 10

    def text(name: str, column: str) -> str:
        value = f"{rows[name].get(column, float('nan')):.4f}"
        bounds = (intervals or {}).get(name, {}).get(column)
        return f"{value} [{bounds[0]:.4f}, {bounds[1]:.4f}]" if bounds else value

    lines = [f"{first:{width}s}" + "".join(f"{c:>{cell}s}" for c in columns)]
    for name in rows:
        lines.append(f"{name:{width}s}" + "".join(f"{text(name, c):>{cell}s}" for c in columns))
    return "\n".join(lines)
