"""Where the package's own configs are: inside the package when installed from a wheel, else the
checkout's ``conf/``. A leaf module, so that reading a model need not import Hydra's machinery."""

from __future__ import annotations

from pathlib import Path


def _conf_dir() -> Path:
    installed = Path(__file__).resolve().parent.parent / "conf"
    return installed if installed.is_dir() else installed.parent.parent / "conf"


CONF_DIR = str(_conf_dir())
