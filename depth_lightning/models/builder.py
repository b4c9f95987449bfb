"""Training's builder of the network: ``model.net`` (the network's settings and the training-only
``pretrained``, ``freeze_bn``, ``freeze_backbone``) -> a :class:`DepthNet` whose trunk starts from
ImageNet (or a ``state_dict`` file) and whose frozen parts are frozen. Loading a trained model never
comes here: its weights come from its own files (:mod:`depth_lightning.models.storage`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from depth_lightning.core.errors import ConfigError
from depth_lightning.models.backbone import torchvision_state_dict
from depth_lightning.models.bins import DECODERS
from depth_lightning.models.network import DepthNet, freeze_batchnorm_statistics
from depth_lightning.models.settings import TRAINING_SETTINGS, SettingsError, network_settings


def build_network(
    net: Mapping[str, Any], input_size: Sequence[int], decoder: str = "soft", channels_last: bool = False
) -> DepthNet:
    """The network of ``model.net`` at ``input_size`` with the headline ``decoder``, ready to train.

    ``pretrained``: ``none``, ``imagenet`` (torchvision's weights, from its cache) or a ``state_dict``
    file, loaded into the trunk. ``normalize: auto``: ImageNet's statistics when the trunk starts from
    pretrained weights. ``freeze_bn`` (``true``, ``false``, ``auto``: when pretrained) and
    ``freeze_backbone``: see ``conf/model/paper.yaml``."""
    if decoder not in DECODERS:
        raise ConfigError(f"config error: model.decoder={decoder!r} is unknown; allowed: {', '.join(DECODERS)}")
    training = {k: net[k] for k in TRAINING_SETTINGS if k in net}
    pretrained = training.get("pretrained", "none")
    from_pretrained = pretrained not in (None, "none")
    freeze_bn, freeze_backbone = training.get("freeze_bn", "auto"), training.get("freeze_backbone", False)
    if freeze_bn not in (True, False, "auto"):
        raise ConfigError(f"config error: model.net.freeze_bn={freeze_bn!r}: true, false or auto")
    if not isinstance(freeze_backbone, bool):
        raise ConfigError(f"config error: model.net.freeze_backbone={freeze_backbone!r}: true or false")
    settings = {k: v for k, v in net.items() if k not in TRAINING_SETTINGS}
    if settings.get("normalize", "auto") == "auto":
        settings["normalize"] = "imagenet" if from_pretrained else "none"
    settings.update(input_size=list(input_size), decoder=decoder, channels_last=channels_last)
    try:
        settings = network_settings(settings, "model.net")
    except SettingsError as err:
        raise ConfigError(f"config error: {err}") from None
    model = DepthNet(**settings)
    if from_pretrained:
        model.backbone.load_torchvision_state_dict(torchvision_state_dict(model.backbone.name, str(pretrained)))
    if freeze_bn is True or (freeze_bn == "auto" and from_pretrained) or freeze_backbone:
        freeze_batchnorm_statistics(model.backbone)
    if freeze_backbone:  # fine-tuning on a small dataset: only the fusion head learns
        model.backbone.requires_grad_(False)
    return model
