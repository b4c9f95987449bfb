"""Writing files so that a reader, or a run killed mid-write, never sees half of one."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any


def save_atomic(path: str | Path, write: Callable[[Path], object]) -> None:
    """``write`` a temporary file beside ``path``, flush it to disk, then rename it over ``path``.

    A process killed at any point leaves either the previous file or the new one, never a mix; a
    ``write`` that raises leaves no temporary file behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{path.suffix}")  # the suffix: writers that append one (np.save)
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(path: str | Path, data: dict[str, Any]) -> None:
    """``data`` as indented JSON, atomically."""
    text = json.dumps(data, indent=2, sort_keys=True)
    save_atomic(path, lambda p: p.write_text(text))
