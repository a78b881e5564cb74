"""A learned keypoint transfer through a frozen FOMM model: how much of the oracle half it closes.

    .venv/bin/python scripts/learned_transfer.py train --checkpoint C --dataset data/sprites-64-2k-x \\
        --steps 3000 --out transfer.pt
    .venv/bin/python scripts/learned_transfer.py evaluate --checkpoint C --transfer transfer.pt \\
        --dataset data/val-1001 --out eval-transfer/

The paper's relative motion moves every source keypoint by the driving keypoint's displacement,
``A(0) + B(t) - B(0)``, which lands off the truth where the two figures' proportions differ. The
*oracle half* of issue 23's bar (docs/bundled-model.md) is what that costs in pixels.
:class:`PointTransfer` is a small network that sees the whole keypoint sets (source, initial
driving and current driving, values and jacobians, each set centred on its mean point) and adds a
correction to the relative transfer. Its last layer starts at zero, so before training it *is* the
relative transfer, to the last bit. With ``--image-channels C`` it also sees the images: a small
CNN's features of the source image at each source keypoint and of the driving video's first frame at
each of its keypoints, where a figure's limb lengths are drawn more exactly than a few keypoints
carry them (measured through the shipped model: no better than the keypoints alone).

``train`` fits it through the frozen model on the dataset's training cross pairs (``fomm
make-dataset --train-cross-pairs N``): the rendered frame against the truth frame, L1. The
model's weights do not change, so its oracle (its own keypoints of the truth frames) does not
either. ``evaluate`` writes two ``fomm evaluate --cross-identity`` folders, ``relative/`` (the
model as ``fomm animate`` runs it) and ``learned/``, readable by ``scripts/compare_cross_identity.py``,
and prints both against the relative one's oracle.

An experiment, not a product: it is FOMM-only (it needs jacobians) and its figures are in
docs/bundled-model.md, "Where the oracle half lives".
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from fomm.checkpoint import load_checkpoint
from fomm.data.synthetic.writer import TRAIN_CROSS_FOLDER, list_cross_pairs
from fomm.errors import UserError
from fomm.evaluation.cross_identity import ModelAnimation, evaluate_cross_identity
from fomm.evaluation.protocol import read_frames
from fomm.models.family import MotionModel
from fomm.models.fomm.keypoints import Keypoints, relative_keypoints

#: A keypoint as the network sees it: x, y, then the jacobian's four entries row by row.
POINT_SIZE = 6


def as_points(keypoints: Keypoints) -> Tensor:
    """``(B, K, 6)``: values ``(B, K, 2)`` then flattened jacobians ``(B, K, 4)``."""
    return torch.cat([keypoints.value, keypoints.jacobian.flatten(2)], dim=-1)


def as_keypoints(points: Tensor) -> Keypoints:
    """The inverse of :func:`as_points`."""
    return Keypoints(value=points[..., :2].contiguous(), jacobian=points[..., 2:].unflatten(-1, (2, 2)).contiguous())


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


class PointTransfer(nn.Module):
    """Relative transfer plus a learned correction from the whole keypoint sets (and, with
    ``image_channels > 0``, from the images at those keypoints).

    ``forward(source, initial, driving, source_image=None, initial_image=None)``: ``(B, K, 6)``
    point sets (:func:`as_points`; positions (x, y) in [-1, 1]) and, when it sees images, the source
    image and the driving video's first frame ``(B, 3, H, W)`` in [0, 1]; returns the ``(B, K, 6)``
    description to render.
    """

    def __init__(self, num_kp: int, hidden: int = 512, depth: int = 3, image_channels: int = 0) -> None:
        super().__init__()
        self.image_channels = image_channels
        self.image_features = ImageFeatures(image_channels) if image_channels else None
        layers: list[nn.Module] = []
        width = num_kp * (4 * POINT_SIZE + 2 * image_channels)
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.GELU()]
            width = hidden
        self.body = nn.Sequential(*layers)
        self.correction = nn.Linear(hidden, num_kp * POINT_SIZE)
        nn.init.zeros_(self.correction.weight)  # starts as the relative transfer itself
        nn.init.zeros_(self.correction.bias)

    def forward(self, source: Tensor, initial: Tensor, driving: Tensor, source_image: Tensor | None = None,
                initial_image: Tensor | None = None) -> Tensor:
        relative = as_points(relative_keypoints(as_keypoints(source), as_keypoints(driving), as_keypoints(initial)))
        # Each set centred on its own mean point: what differs between figures is shape, not place.
        source_centre = source[..., :2].mean(dim=1, keepdim=True)
        driving_centre = initial[..., :2].mean(dim=1, keepdim=True)
        features = [_centred(source, source_centre), _centred(initial, driving_centre),
                    _centred(driving, driving_centre), _centred(relative, source_centre)]
        if self.image_features is not None:
            if source_image is None or initial_image is None:
                raise ValueError("this transfer sees the images: pass source_image and initial_image")
            features += [self.image_features(source_image, source[..., :2]),
                         self.image_features(initial_image, initial[..., :2])]
        features = torch.cat(features, dim=-1)
        return relative + self.correction(self.body(features.flatten(1))).view_as(relative)


def _centred(points: Tensor, centre: Tensor) -> Tensor:
    return torch.cat([points[..., :2] - centre, points[..., 2:]], dim=-1)


class LearnedAnimation:
    """An :class:`~fomm.evaluation.cross_identity.Animation`: the model, with ``transfer`` instead of
    relative motion."""

    def __init__(self, model: MotionModel, transfer: PointTransfer) -> None:
        self.model, self.transfer = model, transfer

    @torch.inference_mode()
    def __call__(self, source: Tensor, driving: Tensor) -> Tensor:
        frames = len(driving)
        source_keypoints = self.model.describe(source[None])
        driving_points = as_points(self.model.describe(driving))
        moved = self.transfer(as_points(source_keypoints).expand(frames, -1, -1),
                              driving_points[:1].expand(frames, -1, -1), driving_points,
                              source[None].expand(frames, -1, -1, -1), driving[:1].expand(frames, -1, -1, -1))
        rendered = self.model.render(self.model.encode_source(source[None]), source_keypoints, as_keypoints(moved))
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
    transfer = PointTransfer(model.config.model_params.common_params.num_kp, image_channels=image_channels)
    optimizer = torch.optim.AdamW(transfer.parameters(), lr=learning_rate, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=learning_rate, total_steps=steps, pct_start=0.1)
    pairs, frames = data.truths.shape[:2]
    losses, running = [], []
    for step in range(steps):
        chosen = torch.randint(0, pairs, (batch_size,))
        source, initial_image, truth, source_points, initial, driving = data.batch(
            chosen, torch.randint(1, frames, (batch_size,)))
        moved = transfer(source_points, initial, driving, source, initial_image)
        prediction = model.render(model.encode_source(source), as_keypoints(source_points), as_keypoints(moved)).prediction
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


def _load(args: argparse.Namespace) -> MotionModel:
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
    saved = torch.load(path, weights_only=True)
    transfer = PointTransfer(saved["num_kp"], image_channels=saved.get("image_channels", 0))
    transfer.load_state_dict(saved["state_dict"])
    return transfer.eval()


def _evaluate(args: argparse.Namespace) -> None:
    model = _load(args)
    transfer = load_transfer(args.transfer)
    results = {}
    for name, animation, label in (("relative", ModelAnimation(model), "relative"),
                                   ("learned", LearnedAnimation(model, transfer), str(args.transfer))):
        results[name] = evaluate_cross_identity(animation, args.dataset, model.frame_shape, settings={"transfer": label})
        results[name].write(args.out / name)
    oracle = results["relative"].value("L1_moving_oracle")
    print("transfer,l1_moving,moving_vs_repeat,moving_vs_relative_oracle")
    for name, result in results.items():
        moving = result.value("L1_moving")
        print(f"{name},{moving:.4f},{moving / result.value('L1_moving_repeat_source'):.3f},{moving / oracle:.3f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("train", "evaluate"):
        command = commands.add_parser(name)
        command.add_argument("--checkpoint", type=Path, required=True)
        command.add_argument("--config", type=Path, default=None)
        command.add_argument("--dataset", type=Path, required=True)
        command.add_argument("--out", type=Path, required=True)
    commands.choices["train"].add_argument("--steps", type=int, default=3000)
    commands.choices["train"].add_argument("--batch-size", type=int, default=16)
    commands.choices["train"].add_argument("--seed", type=int, default=0)
    commands.choices["train"].add_argument("--image-channels", type=int, default=0,
                                           help="also see the images through a CNN of this width (0: keypoints only)")
    commands.choices["evaluate"].add_argument("--transfer", type=Path, required=True)
    args = parser.parse_args()
    try:
        (_train if args.command == "train" else _evaluate)(args)
    except UserError as error:  # a missing dataset or one without cross pairs, a checkpoint of another family
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
