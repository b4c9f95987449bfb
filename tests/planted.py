"""A callable a hostile model file names by ``_target_``: calling it (with any arguments) writes the file
that ``$DL_PLANTED`` names. Tests plant it in model files and assert that no loading path ever calls it."""

import os
from pathlib import Path

TARGET = "tests.planted.plant"


def plant(*args, **kwargs):
    Path(os.environ["DL_PLANTED"]).write_text("code from a model file ran")
    return object()
