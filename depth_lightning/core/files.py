"""Writing files so that a reader, or a run killed mid-write, never sees half of one."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from depth_lightning.core.errors import ConfigError


def _read_umask() -> int:
    mask = os.umask(0o022)  # the only way to read it is to set it: done once, at import
    os.umask(mask)
    return mask


UMASK = _read_umask()


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
        os.chmod(tmp, 0o666 & ~UMASK)  # as open() would: some writers (safetensors) create files 0600
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(path: str | Path, data: dict[str, Any]) -> None:
    """``data`` as indented JSON, atomically."""
    text = json.dumps(data, indent=2, sort_keys=True)
    save_atomic(path, lambda p: p.write_text(text))


def check_writable(path: str | Path, key: str, folder: bool = False) -> Path:
    """Refuse, naming ``key``, an output ``path`` (a file, or a ``folder``) that cannot be written: checked
    before a model is loaded or a dataset read, so that no work is lost to it."""
    path = Path(path)
    if folder and path.exists() and not path.is_dir():
        raise ConfigError(f"config error: {key}={str(path)!r} is a file; it should name a folder")
    if not folder and path.is_dir():
        raise ConfigError(f"config error: {key}={str(path)!r} is a folder; it should name a file")
    where = path if folder else path.parent
    try:
        where.mkdir(parents=True, exist_ok=True)
        probe = where / f".write-probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise ConfigError(f"config error: {key}={str(path)!r} cannot be written ({err}); choose another path") from None
    return path
