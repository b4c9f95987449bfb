"""The deployable network's settings as data: a closed list of names, each with its type and, where it
names a choice, the allowed values. ``config.json`` of a model folder and a checkpoint's saved network
config are read through :func:`network_settings`; nothing in them is imported or called.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from depth_lightning.models.backbone import BACKBONES
from depth_lightning.models.bins import DECODERS
from depth_lightning.models.head import UPSAMPLE_MODES

NORMALIZATIONS = ("imagenet", "none")
# Where the network was named by ``_target_`` in the configs and checkpoints of depth_lightning <= 0.1.0.
NETWORK_TARGETS = ("depth_lightning.models.DepthNet", "depth_lightning.models.network.DepthNet")
# Training-only settings of ``model.net`` (models/builder.py): how the weights start and what trains.
# Checkpoints hold them; the deployable network has no use for them.
TRAINING_SETTINGS = ("pretrained", "freeze_bn", "freeze_backbone")


@dataclass(frozen=True)
class Setting:
    """One setting: what it must be (``accepts``), said in words, and its canonical form."""

    describe: str
    accepts: Callable[[Any], bool]
    convert: Callable[[Any], Any] = lambda v: v


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _choice(allowed: tuple[str, ...]) -> Setting:
    return Setting(f"one of {', '.join(allowed)}", lambda v: v in allowed)


BOOLEAN = Setting("true or false", lambda v: isinstance(v, bool))
SETTINGS: dict[str, Setting] = {
    "backbone": _choice(BACKBONES),
    "num_bins": Setting("an integer >= 2", lambda v: _is_int(v) and v >= 2),
    "d_min": Setting("a positive number (metres)", lambda v: _is_number(v) and v > 0, float),
    "d_max": Setting("a positive number (metres)", lambda v: _is_number(v) and v > 0, float),
    "dilated": BOOLEAN,
    "fusion": BOOLEAN,
    "taps": Setting(
        "a list of tap names (layer2, layer3.mid, ...)",
        lambda v: isinstance(v, (list, tuple)) and all(isinstance(t, str) for t in v),
        list,
    ),
    "dropout": Setting("a number in [0, 1)", lambda v: _is_number(v) and 0 <= v < 1, float),
    "upsample": _choice(UPSAMPLE_MODES),
    "normalize": _choice(NORMALIZATIONS),
    "input_size": Setting(
        "[height, width] in pixels",
        lambda v: isinstance(v, (list, tuple)) and len(v) == 2 and all(_is_int(x) and x > 0 for x in v),
        list,
    ),
    "decoder": _choice(DECODERS),
    "channels_last": BOOLEAN,
}


class SettingsError(ValueError):
    """A network setting that is unknown, or of the wrong type; the message names it."""


def network_settings(raw: Any, where: str, ignore: tuple[str, ...] = ()) -> dict[str, Any]:
    """``raw`` checked as the network's settings (names from :data:`SETTINGS`, values of their type),
    in canonical form; keys in ``ignore`` are dropped. A ``_target_`` other than the network's own
    (older layouts named it) is refused: ``where`` names the field in every message."""
    if not isinstance(raw, Mapping):
        raise SettingsError(f"{where}: expected the network's settings (a mapping), got {type(raw).__name__}")
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key in ignore:
            continue
        if key == "_target_":
            if value not in NETWORK_TARGETS:
                raise SettingsError(
                    f"{where}._target_={value!r}: not the network; a model's config is data, never code"
                )
            continue
        setting = SETTINGS.get(key)
        if setting is None:
            raise SettingsError(f"{where}.{key}: not a setting of the network (its settings: {', '.join(SETTINGS)})")
        if not setting.accepts(value):
            raise SettingsError(f"{where}.{key}={value!r}: expected {setting.describe}")
        out[key] = setting.convert(value)
    return out
