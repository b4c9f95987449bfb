"""``init_from``: a new run that starts from another model's weights (a training checkpoint, a model
folder, or a Hub repo id). The optimiser, schedule and run folder are the new run's own. When the new
run's bins differ from the source's (their count or depth range), the layers whose outputs are the bins
(the classifier and the 4x upsampling) start afresh and the run says so: a bin of the source means
another depth in the new run."""

from __future__ import annotations

import logging
from typing import Any

from depth_lightning.inference.loading import load_model
from depth_lightning.module import DepthModule
from depth_lightning.run.errors import CheckpointError

log = logging.getLogger(__name__)
# The layers whose outputs are the K bins (models/head.py): re-initialised when the bins change.
BIN_LAYERS = ("net.head.classifier.", "net.head.upsample.")
OWN_BINS = "net.bins."  # the bins themselves are always the run's own (its config's)


def bins_of(bins: Any) -> dict[str, Any]:
    """The bins' count and range: what a bin index means."""
    return {"num_bins": bins.num_bins, "d_min": bins.d_min, "d_max": bins.d_max}


def initialise_from(module: DepthModule, source: str) -> dict[str, Any]:
    """Copy ``source``'s weights into ``module`` (the bins' layers only when the bins agree); returns
    what was done, for the run's record."""
    donor = load_model(source, key="init_from")
    theirs = {f"net.{k}": v for k, v in donor.state_dict().items()}
    ours = {k: v for k, v in module.state_dict().items() if not k.startswith(OWN_BINS)}
    same_bins = bins_of(donor.bins) == bins_of(module.bins)
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
            f"missing {missing[:3]}, shapes {shapes[:3]}"
        )
    module.load_state_dict({k: theirs[k] for k in wanted}, strict=False)
    info = {
        "source": str(source),
        "copied": len(wanted),
        "bins": bins_of(module.bins),
        "source_bins": bins_of(donor.bins),
    }
    if kept:
        info["reinitialised"] = sorted({k.rsplit(".", 1)[0] for k in kept})
        log.warning(
            "init_from=%s: its bins %s differ from this run's %s: the classifier and upsampling (%s) start afresh; "
            "every other layer starts from its weights",
            source, bins_of(donor.bins), bins_of(module.bins), ", ".join(info["reinitialised"]),
        )  # fmt: skip
    else:
        log.info("init_from=%s: every weight copied (%d tensors)", source, len(wanted))
    return info
