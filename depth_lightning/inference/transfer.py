"""``init_from``: a new run that starts from another model's weights (a training checkpoint, a model
folder, or a Hub repo id). The optimiser, schedule and run folder are the new run's own. When the new
run's bins differ from the source's (their count or depth range), the layers whose outputs are the bins
(the classifier and the 4x upsampling) start afresh and the run says so: a bin of the source means
another depth in the new run."""

from __future__ import annotations

import logging
from typing import Any

from depth_lightning.core.errors import CheckpointError
from depth_lightning.inference.loading import load_model
from depth_lightning.models.network import DepthNet

log = logging.getLogger(__name__)
# The layers whose outputs are the K bins (models/head.py): re-initialised when the bins change.
BIN_LAYERS = ("head.classifier.", "head.upsample.")
OWN_BINS = "bins."  # the bins themselves are always the run's own (its config's)


def bins_of(bins: Any) -> dict[str, Any]:
    """The bins' count and range: what a bin index means."""
    return {"num_bins": bins.num_bins, "d_min": bins.d_min, "d_max": bins.d_max}


def initialise_from(net: DepthNet, source: str) -> dict[str, Any]:
    """Copy ``source``'s weights into ``net``, a training run's network (the bins' layers only when the
    bins agree); returns what was done, for the run's record (layers named as the checkpoint names them,
    ``net.head.classifier.0``)."""
    donor = load_model(source, key="init_from")
    theirs = donor.state_dict()
    ours = {k: v for k, v in net.state_dict().items() if not k.startswith(OWN_BINS)}
    same_bins = bins_of(donor.bins) == bins_of(net.bins)
    kept = [k for k in ours if not same_bins and k.startswith(BIN_LAYERS)]
    wanted = [k for k in ours if k not in kept]
    missing = [k for k in wanted if k not in theirs]
    shapes = [
        f"{k} {tuple(theirs[k].shape)} vs {tuple(ours[k].shape)}"
        for k in wanted
        if k in theirs and theirs[k].shape != ours[k].shape
    ]
    if missing or shapes:
        raise CheckpointError(
            f"init_from={source!r}: its network is not this run's (model.net must match it but for the bins): "
            f"missing {[f'net.{k}' for k in missing[:3]]}, shapes {[f'net.{k}' for k in shapes[:3]]}"
        )
    net.load_state_dict({k: theirs[k] for k in wanted}, strict=False)
    info = {
        "source": str(source),
        "copied": len(wanted),
        "bins": bins_of(net.bins),
        "source_bins": bins_of(donor.bins),
    }
    if kept:
        info["reinitialised"] = sorted({"net." + k.rsplit(".", 1)[0] for k in kept})
        log.warning(
            "init_from=%s: its bins %s differ from this run's %s: the classifier and upsampling (%s) start afresh; "
            "every other layer starts from its weights",
            source, bins_of(donor.bins), bins_of(net.bins), ", ".join(info["reinitialised"]),
        )  # fmt: skip
    else:
        log.info("init_from=%s: every weight copied (%d tensors)", source, len(wanted))
    return info
