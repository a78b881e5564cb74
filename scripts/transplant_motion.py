"""Start a new model from a trained one's motion networks (the bundled model's third stage).

    .venv/bin/python scripts/transplant_motion.py --checkpoint runs/sprites-64-ft/checkpoint.pth.tar \
        --config configs/sprites-64-fullres.yaml --out runs/stage3-init.pth.tar

Builds the model of ``--config`` (fresh weights, seeded) and copies into it the keypoint detector
and the generator's dense-motion network of ``--checkpoint``; the generator's encoder and decoder
and the discriminator stay new. The result is written in the original checkpoint layout (no
``format`` header), so ``fomm train --checkpoint`` fine-tunes from it with a fresh schedule.

Why: keypoints and dense motion take thousands of iterations to learn, and do not depend on how
the generator encodes and decodes images, so a generator of another shape can reuse them.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from fomm.checkpoint import load_checkpoint
from fomm.models.registry import load_config
from fomm.files import atomic_torch_save
from fomm.models import build_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, required=True, help="trained model to take the motion from")
    parser.add_argument("--config", type=Path, required=True, help="config of the new model")
    parser.add_argument("--out", type=Path, required=True, help="where to write the new starting checkpoint")
    parser.add_argument("--seed", type=int, default=0, help="seed of the new networks' initial weights")
    args = parser.parse_args()

    trained = load_checkpoint(args.checkpoint)
    torch.manual_seed(args.seed)
    model = build_model(load_config(args.config))
    if model.generator.dense_motion_network is None or trained.generator.dense_motion_network is None:
        raise SystemExit("both models need a dense-motion network (generator_params.dense_motion_params)")
    try:
        model.kp_detector.load_state_dict(trained.kp_detector.state_dict())
        model.generator.dense_motion_network.load_state_dict(trained.generator.dense_motion_network.state_dict())
    except RuntimeError as error:
        raise SystemExit(f"the keypoint or dense-motion network of {args.checkpoint} does not fit {args.config} "
                         f"(num_kp, kp_detector_params and dense_motion_params must match):\n{error}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_torch_save({name: getattr(model, name).state_dict() for name in model.built_networks()} | {"epoch": 0}, args.out)
    print(f"wrote {args.out}: keypoint detector and dense motion from {args.checkpoint}, "
          f"the rest new (seed {args.seed})")


if __name__ == "__main__":
    main()
