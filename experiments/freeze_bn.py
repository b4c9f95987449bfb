"""Fine-tuning at batch 1 with the backbone's BatchNorm statistics trained or frozen (``model.freeze_bn``).

    python -m experiments.freeze_bn [--out DIR] [--seeds 0 1] [--steps 150]

The paper fine-tunes an ImageNet ResNet at batch 1 (gradients averaged over 8, Sec. 3.4). No
ImageNet weights are reachable here, so the stand-in for them is a ResNet-18 trained first on the
indoor synthetic scenes; it is then fine-tuned with the paper's recipe (SGD, batch 1 x 8) on the
outdoor scenes, a different domain, once with each setting and seed. Prints the validation metrics.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import torch


def _train(out: Path, *overrides: str) -> dict:
    env = {**os.environ, "WANDB_MODE": "offline", "DEPTH_LIGHTNING_LOGS": str(out)}
    subprocess.run(
        [sys.executable, "-m", "depth_lightning.train", *overrides, "logger=csv", f"hydra.run.dir={out}"],
        check=True,
        env=env,
    )
    return json.loads((out / "metrics.json").read_text())


def pretrain(out: Path, steps: int) -> Path:
    """A ResNet-18 trained on the indoor scenes; its trunk saved as a torchvision state_dict."""
    weights = out / "resnet18_indoor.pth"
    if not weights.is_file():
        _train(out / "pretrain", f"trainer.max_steps={steps}", "baselines=false", "data.dataset.train_length=1600")
        state = torch.load(out / "pretrain" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
        prefix = "net.backbone."
        trunk = {k[len(prefix) :]: v for k, v in state["state_dict"].items() if k.startswith(prefix)}
        torch.save(trunk, weights)
    return weights


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.freeze_bn", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("logs/freeze_bn"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--steps", type=int, default=150, help="optimiser steps of fine-tuning (x 8 images)")
    parser.add_argument("--pretrain-steps", type=int, default=400)
    args = parser.parse_args(argv)
    weights = pretrain(args.out, args.pretrain_steps)
    rows = []
    for freeze in (False, True):
        for seed in args.seeds:
            results = _train(
                args.out / f"freeze_bn-{str(freeze).lower()}-seed{seed}",
                "model=paper",  # SGD, lr 1e-3, momentum 0.9, weight decay 4e-4, dropout 0.5
                "model.net.backbone=resnet18",
                f"model.net.pretrained={weights.resolve()}",
                "model.net.normalize=none",  # the stand-in weights were trained on RGB in [0, 1]
                f"model.net.freeze_bn={str(freeze).lower()}",
                "model.net.num_bins=80",
                "model.net.upsample=bilinear",
                "~model.scheduler",  # a constant learning rate
                "data=synthetic_outdoor",
                "data.batch_size=1",
                f"data.dataset.train_length={8 * args.steps}",  # one epoch, validated at its end
                "trainer.accumulate_grad_batches=8",
                f"trainer.max_steps={args.steps}",
                "trainer.max_time=null",
                f"seed={seed}",
                "baselines=false",
            )
            rows.append((freeze, seed, results["val"]))
    print(f"\nfine-tuning {args.steps} steps of batch 1 x 8 (SGD, lr 1e-3), validation of the outdoor scenes:")
    print(f"{'freeze_bn':>10} {'seed':>5} {'soft abs_rel':>13} {'soft d1':>8} {'soft rmse':>10} {'pixel acc':>10}")
    for freeze, seed, val in rows:
        print(
            f"{str(freeze):>10} {seed:>5} {val['soft/abs_rel']:>13.4f} {val['soft/d1']:>8.4f} "
            f"{val['soft/rmse']:>10.4f} {val['pixel_acc']:>10.4f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
