"""Train and measure a learned keypoint transfer through a frozen FOMM model.

    .venv/bin/python scripts/learned_transfer.py train --checkpoint C --dataset data/sprites-64-2k-x \\
        --steps 3000 --out transfer.pt
    .venv/bin/python scripts/learned_transfer.py evaluate --checkpoint C --transfer transfer.pt \\
        --dataset data/val-1001 --out eval-transfer/
    .venv/bin/python scripts/learned_transfer.py attach --checkpoint C --transfer transfer.pt --out C-learned.pt

The paper's relative motion moves every source keypoint by the driving keypoint's displacement,
``A(0) + B(t) - B(0)``, which lands off the truth where the two figures' proportions differ. The
*oracle half* of issue 23's bar (docs/bundled-model.md) is what that costs in pixels. The network
that corrects it, :class:`fomm.models.fomm.PointTransfer`, lives in the package: a checkpoint that
carries one animates with ``--motion learned`` (its default). This script trains it and measures it.
With ``--image-channels C`` (an experiment: measured no better than the keypoints alone, and not
something a checkpoint can carry) it also sees the images: a small CNN's features of the source
image at each source keypoint and of the driving video's first frame at each of its keypoints.

``train`` fits it through the frozen model on the dataset's training cross pairs (``fomm
make-dataset --train-cross-pairs N``): the rendered frame against the truth frame, L1. The
model's weights do not change, so its oracle (its own keypoints of the truth frames) does not
either. ``evaluate`` writes two ``fomm evaluate --cross-identity`` folders, ``relative/`` (the
model's relative motion) and ``learned/``, readable by ``scripts/compare_cross_identity.py``, and
prints both against the relative one's oracle. ``attach`` writes a checkpoint of the model with
the transfer inside (``model_params.point_transfer_params`` and its ``point_transfer`` weights), in
the precision of the model's weights: what ``fomm animate`` and ``fomm evaluate`` read.

FOMM-only (it needs jacobians); its figures are in docs/bundled-model.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from fomm.checkpoint import load_checkpoint, save_checkpoint
from fomm.config import PointTransferParams
from fomm.data.synthetic.writer import TRAIN_CROSS_FOLDER, list_cross_pairs
from fomm.errors import UserError
from fomm.evaluation.cross_identity import ModelAnimation, evaluate_cross_identity
from fomm.evaluation.protocol import read_frames
from fomm.models.family import MotionModel
from fomm.models.fomm import FommModel, Keypoints, PointTransfer
from fomm.models.fomm.point_transfer import as_keypoints, as_points


class ImageFeatures(nn.Module):
    """A small CNN read at keypoints: ``forward(image (B, 3, H, W), points (B, K, 2))`` gives
    ``(B, K, C)``, the feature map (at a quarter of the resolution) sampled bilinearly at each point
    (x, y in [-1, 1], -1 and 1 the centres of the edge pixels, as FOMM's coordinate grid)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, channels, 3, padding=1), nn.GELU(),
            nn.Conv2d(channels, channels, 3, stride=2, padding=1), nn.GELU(),
            nn.Conv2d(channels, channels, 3, stride=2, padding=1), nn.GELU(),
            nn.Conv2d(channels, channels, 3, padding=1))

    def forward(self, image: Tensor, points: Tensor) -> Tensor:
        features = self.body(image)
        sampled = F.grid_sample(features, points[:, :, None, :], mode="bilinear", align_corners=True)
        return sampled[..., 0].transpose(1, 2)


class ImagePointTransfer(PointTransfer):
    """The experiment: :class:`PointTransfer` that also reads ``image_channels`` features of the
    source image at the source keypoints and of the driving video's first frame at its keypoints.
    ``forward(source, driving, initial, source_image, initial_image)``, images ``(B, 3, H, W)`` in
    [0, 1]."""

    def __init__(self, num_kp: int, image_channels: int) -> None:
        super().__init__(num_kp, PointTransferParams(), extra_features=2 * image_channels)
        self.image_channels = image_channels
        self.image_features = ImageFeatures(image_channels)

    def forward(self, source: Keypoints, driving: Keypoints, initial: Keypoints,  # type: ignore[override]
                source_image: Optional[Tensor] = None, initial_image: Optional[Tensor] = None) -> Keypoints:
        if source_image is None or initial_image is None:
            raise ValueError("this transfer sees the images: pass source_image and initial_image")
        extra = torch.cat([self.image_features(source_image, source.value),
                           self.image_features(initial_image, initial.value)], dim=-1)
        return super().forward(source, driving, initial, extra=extra)


def build_transfer(num_kp: int, image_channels: int = 0) -> PointTransfer:
    """The package's transfer (``image_channels`` 0, what checkpoints carry) or the experiment's."""
    if image_channels:
        return ImagePointTransfer(num_kp, image_channels)
    return PointTransfer(num_kp, PointTransferParams())


def with_transfer(model: FommModel, transfer: PointTransfer) -> FommModel:
    """``model`` carrying ``transfer`` (keypoints only), in place: ``--motion learned`` runs it."""
    if isinstance(transfer, ImagePointTransfer):
        raise UserError("a transfer that sees the images is an experiment of this script: a checkpoint carries "
                        "keypoint-only transfers (train without --image-channels)")
    model.config.model_params.point_transfer_params = PointTransferParams()
    model.point_transfer = transfer.to(model.device)
    return model


class ImageAnimation:
    """An :class:`~fomm.evaluation.cross_identity.Animation`: the model, with an
    :class:`ImagePointTransfer` instead of relative motion."""

    def __init__(self, model: MotionModel, transfer: ImagePointTransfer) -> None:
        self.model, self.transfer = model, transfer

    @torch.inference_mode()
    def __call__(self, source: Tensor, driving: Tensor) -> Tensor:
        frames = len(driving)
        source_keypoints = self.model.describe(source[None])
        driving_keypoints = self.model.describe(driving)
        moved = self.transfer(source_keypoints.expand(frames), driving_keypoints, driving_keypoints[:1].expand(frames),
                              source[None].expand(frames, -1, -1, -1), driving[:1].expand(frames, -1, -1, -1))
        rendered = self.model.render(self.model.encode_source(source[None]), source_keypoints, moved)
        return rendered.prediction.float().clamp(0, 1)


# --------------------------------------------------------------------------------------------
# training


class TrainingPairs:
    """The training cross pairs, described once by the frozen model: source images and the driving
    videos' first frames ``(N, 3, H, W)`` and truth frames ``(N, T, 3, H, W)`` as uint8, source
    points ``(N, K, 6)``, driving points ``(N, T, K, 6)``."""

    def __init__(self, model: MotionModel, dataset: Path) -> None:
        shape = model.frame_shape
        sources, initials, truths, source_points, driving_points = [], [], [], [], []
        with torch.inference_mode():
            for pair in list_cross_pairs(dataset, TRAIN_CROSS_FOLDER):
                truth = read_frames(pair.truth, shape)
                source = read_frames(pair.source, shape)[:1]
                driving = read_frames(pair.driving, shape)[:len(truth)]
                sources.append(_to_bytes(source[0]))
                initials.append(_to_bytes(driving[0]))
                truths.append(_to_bytes(truth))
                source_points.append(as_points(model.describe(source))[0])
                driving_points.append(as_points(model.describe(driving)))
        self.sources, self.initials, self.truths = torch.stack(sources), torch.stack(initials), torch.stack(truths)
        self.source_points, self.driving_points = torch.stack(source_points), torch.stack(driving_points)

    def batch(self, pairs: Tensor, frames: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
        """Source images, the driving videos' first frames, truth frames (float in [0, 1]), source,
        initial and driving points of ``pairs`` at ``frames`` (``(B,)`` each)."""
        return (self.sources[pairs].float() / 255, self.initials[pairs].float() / 255,
                self.truths[pairs, frames].float() / 255,
                self.source_points[pairs], self.driving_points[pairs, 0], self.driving_points[pairs, frames])


def _to_bytes(frames: Tensor) -> Tensor:
    return (frames * 255).round().to(torch.uint8)


def train(model: MotionModel, dataset: Path, steps: int, batch_size: int = 16, learning_rate: float = 3e-4,
          seed: int = 0, log_every: int = 250, image_channels: int = 0) -> tuple[PointTransfer, list[float]]:
    """Fit a :class:`PointTransfer` through ``model``, frozen in place (its parameters stop
    requiring gradients; one-cycle schedule, AdamW).
    Returns it and the mean loss of each ``log_every`` steps."""
    torch.manual_seed(seed)
    model.requires_grad_(False).eval()
    data = TrainingPairs(model, dataset)
    transfer = build_transfer(model.config.model_params.common_params.num_kp, image_channels)
    optimizer = torch.optim.AdamW(transfer.parameters(), lr=learning_rate, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=learning_rate, total_steps=steps, pct_start=0.1)
    pairs, frames = data.truths.shape[:2]
    losses, running = [], []
    for step in range(steps):
        chosen = torch.randint(0, pairs, (batch_size,))
        source, initial_image, truth, source_points, initial, driving = data.batch(
            chosen, torch.randint(1, frames, (batch_size,)))
        images = (source, initial_image) if image_channels else ()
        moved = transfer(as_keypoints(source_points), as_keypoints(driving), as_keypoints(initial), *images)
        prediction = model.render(model.encode_source(source), as_keypoints(source_points), moved).prediction
        loss = (prediction - truth).abs().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        running.append(loss.item())
        if (step + 1) % log_every == 0 or step + 1 == steps:
            losses.append(float(np.mean(running)))
            print(f"step {step + 1}: L1 {losses[-1]:.5f}", flush=True)
            running = []
    return transfer.eval(), losses


# --------------------------------------------------------------------------------------------
# the command line


def _load(args: argparse.Namespace) -> FommModel:
    model = load_checkpoint(args.checkpoint, args.config)
    if model.family != "fomm":
        raise UserError(f"{args.checkpoint} is a {model.family} model: the learned transfer needs FOMM's "
                        "keypoints with jacobians")
    return model


def _train(args: argparse.Namespace) -> None:
    model = _load(args)
    transfer, _ = train(model, args.dataset, args.steps, batch_size=args.batch_size, seed=args.seed,
                        image_channels=args.image_channels)
    torch.save({"num_kp": model.config.model_params.common_params.num_kp, "image_channels": args.image_channels,
                "state_dict": transfer.state_dict(), "steps": args.steps, "checkpoint": str(args.checkpoint)}, args.out)
    print(f"wrote {args.out}")


def load_transfer(path: Path) -> PointTransfer:
    """A transfer as ``train`` saved it (its weights in fp32 or fp16), in fp32 and in eval mode."""
    if not path.is_file():
        raise UserError(f"--transfer {path}: file not found")
    saved = torch.load(path, weights_only=True)
    transfer = build_transfer(saved["num_kp"], saved.get("image_channels", 0))
    transfer.load_state_dict(saved["state_dict"])
    return transfer.eval()


def _learned_animation(model: FommModel, transfer_path: Optional[Path]) -> tuple[object, str]:
    """The animation with the transfer of ``transfer_path``, or the checkpoint's own (None), and
    its label."""
    if transfer_path is None:
        if model.point_transfer is None:
            raise UserError("the checkpoint carries no point transfer: name one with --transfer")
        return ModelAnimation(model, motion="learned"), "the checkpoint's"
    transfer = load_transfer(transfer_path)
    if isinstance(transfer, ImagePointTransfer):
        return ImageAnimation(model, transfer), str(transfer_path)
    return ModelAnimation(with_transfer(model, transfer), motion="learned"), str(transfer_path)


def _evaluate(args: argparse.Namespace) -> None:
    model = _load(args)
    learned, learned_label = _learned_animation(model, args.transfer)
    results = {}
    for name, animation, label in (("relative", ModelAnimation(model, motion="relative"), "relative"),
                                   ("learned", learned, learned_label)):
        results[name] = evaluate_cross_identity(animation, args.dataset, model.frame_shape,
                                                settings={"transfer": label})
        results[name].write(args.out / name)
    oracle = results["relative"].value("L1_moving_oracle")
    print("transfer,l1_moving,moving_vs_repeat,moving_vs_relative_oracle")
    for name, result in results.items():
        moving = result.value("L1_moving")
        print(f"{name},{moving:.4f},{moving / result.value('L1_moving_repeat_source'):.3f},{moving / oracle:.3f}")


def _attach(args: argparse.Namespace) -> None:
    model = with_transfer(_load(args), load_transfer(args.transfer))
    save_checkpoint(args.out, model)
    print(f"wrote {args.out}: {args.checkpoint} with the point transfer of {args.transfer} (fp32)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("train", "evaluate", "attach"):
        command = commands.add_parser(name)
        command.add_argument("--checkpoint", type=Path, required=True)
        command.add_argument("--config", type=Path, default=None)
        if name != "attach":
            command.add_argument("--dataset", type=Path, required=True)
        command.add_argument("--out", type=Path, required=True)
    commands.choices["train"].add_argument("--steps", type=int, default=3000)
    commands.choices["train"].add_argument("--batch-size", type=int, default=16)
    commands.choices["train"].add_argument("--seed", type=int, default=0)
    commands.choices["train"].add_argument("--image-channels", type=int, default=0,
                                           help="also see the images through a CNN of this width (0: keypoints only)")
    commands.choices["evaluate"].add_argument("--transfer", type=Path, default=None,
                                              help="the transfer file `train` wrote (default: the checkpoint's own)")
    commands.choices["attach"].add_argument("--transfer", type=Path, required=True)
    args = parser.parse_args()
    try:
        {"train": _train, "evaluate": _evaluate, "attach": _attach}[args.command](args)
    except UserError as error:  # a missing dataset or one without cross pairs, a checkpoint of another family
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
