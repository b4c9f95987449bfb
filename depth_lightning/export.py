"""``python -m depth_lightning.export ckpt_path=... output=model.onnx [uncertainty=true]``: the model as
an ONNX graph with its decoding inside (:mod:`depth_lightning.inference.onnx`);
``format=space output=<folder>``: a Hugging Face Space of the demo page (``app.py``) around that folder;
``format=hub output=<folder>``: the model as a folder to share (``DepthNet.save_pretrained``:
safetensors weights, ``config.json`` of the network's settings, a model card with the run's test
numbers), loadable with ``DepthEstimator.from_pretrained`` and uploadable to the Hugging Face Hub as it is.
Only the deployable network is loaded; nothing the checkpoint names is imported or called."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from depth_lightning.core.config import check_choice
from depth_lightning.core.errors import CheckpointError, ConfigError
from depth_lightning.core.files import check_writable, save_atomic
from depth_lightning.inference.loading import load_model
from depth_lightning.inference.model_card import model_card
from depth_lightning.inference.onnx import export_onnx
from depth_lightning.models.storage import CARD, CONFIG, WEIGHTS, read_config
from depth_lightning.run.command import command

FORMATS = ("onnx", "hub", "space")
OWN_FILES = (WEIGHTS, CONFIG, CARD)
SPACE_FILES = ("app.py", "requirements.txt", "README.md", "model")
APP = '''"""A Hugging Face Space: the depth_lightning demo page of the model in ./model (python app.py starts it)."""

import os
from pathlib import Path

from depth_lightning.demo import launch

here = Path(__file__).resolve().parent
examples = sorted(str(p) for p in (here / "examples").glob("*") if p.is_file()) or None
# Spaces serve on 0.0.0.0:7860; GRADIO_SERVER_NAME / GRADIO_SERVER_PORT choose elsewhere
launch(here / "model", host=os.environ.get("GRADIO_SERVER_NAME", "0.0.0.0"),
       port=int(os.environ.get("GRADIO_SERVER_PORT", "7860")), examples=examples)
'''


def check_folder(folder: Path, overwrite: bool) -> None:
    """Refuse a non-empty ``output`` folder unless it is a model folder of the suite holding only its own
    files and ``overwrite=true``: a user's files are never replaced, nor uploaded beside the model."""
    if not folder.is_dir():
        return
    present = sorted(p.name for p in folder.iterdir())
    if not present:
        return
    others = [name for name in present if name not in OWN_FILES]
    if others:
        raise ConfigError(
            f"config error: output={str(folder)!r} holds files that are not a model folder's "
            f"({', '.join(others[:5])}); give an empty or new folder"
        )
    try:
        read_config(folder / CONFIG)
    except CheckpointError:
        raise ConfigError(
            f"config error: output={str(folder)!r} holds {', '.join(present)} that are not a depth_lightning model's; "
            "give an empty or new folder"
        ) from None
    if not overwrite:
        raise ConfigError(
            f"config error: output={str(folder)!r} holds a model folder already; add overwrite=true to replace it"
        )


def export_hub(cfg: DictConfig) -> Path:
    """The model folder: written beside ``output`` first, then its files moved in, so that a failure
    leaves the previous folder (or none) whole."""
    folder = Path(cfg.output)
    check_folder(folder, bool(cfg.get("overwrite", False)))
    check_writable(folder, "output", folder=True)
    model = load_model(cfg.ckpt_path)
    card = model_card(model.settings, Path(cfg.ckpt_path), cfg.get("license"))
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        model.save_pretrained(staging, card=card)
        for name in OWN_FILES:
            (staging / name).replace(folder / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    print(f"wrote {folder} ({', '.join(OWN_FILES)}); load it with DepthEstimator.from_pretrained({str(folder)!r})")
    return folder


def export_space(cfg: DictConfig) -> Path:
    """A folder that runs as a Hugging Face Space as it is: ``app.py`` (the demo page), ``requirements.txt``,
    ``README.md`` with the Space's front matter, and the model folder in ``model/``."""
    folder = Path(cfg.output)
    if folder.is_dir() and any(folder.iterdir()):
        present = sorted(p.name for p in folder.iterdir())
        if not cfg.get("overwrite", False) or set(present) - set(SPACE_FILES):
            raise ConfigError(
                f"config error: output={str(folder)!r} is not empty ({', '.join(present[:5])}); give a new folder "
                "(overwrite=true replaces a Space folder of the suite's own files)"
            )
    check_writable(folder, "output", folder=True)
    model = export_hub(OmegaConf.merge(cfg, {"output": str(folder / "model"), "overwrite": True}))
    title = f"depth_lightning {Path(str(cfg.ckpt_path)).stem}"
    readme = (
        f"---\ntitle: {title}\nemoji: 📏\ncolorFrom: indigo\ncolorTo: gray\nsdk: gradio\napp_file: app.py\n"
        "pinned: false\n---\n\n"
        "Monocular depth as classification over log-depth bins with soft-weighted-sum inference (Li, Dai, He), "
        "served by depth_lightning's demo page. The model and its card are in `model/`.\n"
    )
    for name, text in (("app.py", APP), ("README.md", readme), ("requirements.txt", "depth_lightning[demo]\n")):
        save_atomic(folder / name, lambda p, t=text: p.write_text(t))
    print(f"wrote {folder} (app.py, requirements.txt, README.md, {model.name}/); python app.py in it starts the page")
    return folder


def export(cfg: DictConfig) -> Path:
    """The model ``cfg.ckpt_path`` as ``cfg.format`` at ``cfg.output`` (checked writable first)."""
    fmt = cfg.get("format", "onnx")
    check_choice(fmt, "format", FORMATS)
    if fmt == "hub":
        return export_hub(cfg)
    if fmt == "space":
        return export_space(cfg)
    check_writable(cfg.output, "output")
    path = export_onnx(load_model(cfg.ckpt_path), cfg.output, uncertainty=cfg.uncertainty)
    print(
        f"wrote {path} (inputs: image (B,3,H,W) in [0,1]; outputs: depth in metres"
        f"{', uncertainty' if cfg.uncertainty else ''})"
    )
    return Path(path)


main = command("export", export)

if __name__ == "__main__":
    main()
