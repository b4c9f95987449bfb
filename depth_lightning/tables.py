"""Plain-text tables for the console: one row per name, one column per metric."""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def format_table(rows: Mapping[str, Mapping[str, float]], columns: Sequence[str], first: str = "") -> str:
    """``rows[name][column]`` as aligned text; a missing value prints as ``nan``."""
    width = max([16, len(first), *(len(str(n)) + 2 for n in rows)])
    lines = [f"{first:{width}s}" + "".join(f"{c:>10s}" for c in columns)]
    for name, values in rows.items():
        lines.append(f"{name:{width}s}" + "".join(f"{values.get(c, float('nan')):10.4f}" for c in columns))
    return "\n".join(lines)
