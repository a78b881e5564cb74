"""Re-seed keypoints that sit on top of others as copies of the keypoints that leave the most error.

    .venv/bin/python scripts/reseed_keypoints.py --checkpoint runs/cross-2/checkpoint.pth.tar \
        --dataset data/sprites-x --out runs/reseeded-init.pth.tar

Unsupervised keypoints can collapse: six of the bundled sprites model's ten keypoints sit on the
torso, a pixel or two apart, and none stays on a leg for half the frames (`scripts/keypoint_parts.py`),
so both legs move by the affine map of one keypoint between them. Training does not undo this by itself:
keypoints that sit together get the same gradient.

What this does, on a FOMM checkpoint and the training videos of ``--dataset``:

* A keypoint is *redundant* when it moves like an earlier, kept keypoint: their *motion
  distance*, the mean over the frames read of the distance between their positions plus
  ``--reach`` times the Frobenius distance between their jacobians (the gap their affine maps
  open at that distance from the keypoint), is below ``--radius`` (in the [-1, 1] frame
  coordinates). Two keypoints at one place with different jacobians carry two motions; they stay.
* Each keypoint's *error share*: self-reconstruction of every frame from its video's first frame,
  each pixel's L1 error shared among the keypoints by a softmax of minus its squared distance to
  them (scale ``--sigma``), summed. A part that no keypoint covers leaves its error with the
  nearest keypoints.
* Each redundant slot, in turn, becomes a copy of the kept keypoint with the most error share per
  copy: its heatmap and jacobian filters, its dense-motion input channels (heatmap and deformed
  source) and its mask channel. The output barely changes at the start (the copy shares its
  original's pixels through the mask's softmax); a small perturbation of the copied heatmap filter
  (``--noise`` times its standard deviation) lets training pull the two apart.

With ``--grow-config`` the keypoints are also *added*: that config must be the checkpoint's with
a larger ``num_kp`` (nothing else may differ); the trained keypoints keep their slots and every new
slot is filled like a redundant one.

The result is written in the original checkpoint layout with epoch 0, so ``fomm train
--checkpoint`` fine-tunes from it with a fresh schedule (with ``--grow-config`` as its config). No
labels are used.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch import Tensor

from fomm.checkpoint import load_checkpoint
from fomm.data.datasets import dataset_folder, list_videos
from fomm.data.frames import to_float
from fomm.data.video import read_video
from fomm.errors import UserError
from fomm.files import atomic_torch_save
from fomm.geometry import coordinate_grid
from fomm.models import build_model
from fomm.models.fomm.keypoints import Keypoints
from fomm.models.fomm.model import FommModel
from fomm.models.registry import load_config

#: Parameters with one row (or input group) per keypoint: the only ones growing may widen.
PER_KEYPOINT = ("kp_detector.kp.weight", "kp_detector.kp.bias", "kp_detector.jacobian.weight",
                "kp_detector.jacobian.bias", "generator.dense_motion_network.hourglass.encoder.down_blocks.0.conv.weight",
                "generator.dense_motion_network.mask.weight", "generator.dense_motion_network.mask.bias",
                "generator.dense_motion_network.occlusion.weight")


@torch.no_grad()
def keypoint_statistics(model: FommModel, videos: list[Tensor], sigma: float, reach: float) -> tuple[Tensor, Tensor]:
    """Mean pairwise motion distance ``(K, K)`` and error share ``(K,)`` over ``videos`` (each
    ``(T, C, H, W)`` in [0, 1]), reconstructing every frame from its video's first frame."""
    num_kp = model.config.model_params.common_params.num_kp
    distance_sum, frames = torch.zeros(num_kp, num_kp), 0
    error_share = torch.zeros(num_kp)
    for video in videos:
        driving = model.kp_detector(video)
        first = Keypoints(value=driving.value[:1].expand_as(driving.value),
                          jacobian=None if driving.jacobian is None else driving.jacobian[:1].expand_as(driving.jacobian))
        rendered = model.generator(video[:1].expand_as(video), first, driving).prediction
        error = (rendered - video).abs().mean(dim=1)                                   # (T, H, W)
        grid = coordinate_grid(*error.shape[1:])                                       # (H, W, 2)
        squared = (grid - driving.value[..., None, None, :]).pow(2).sum(-1)            # (T, K, H, W)
        # A softmax of the log-gaussian, not normalised gaussians: far from every keypoint those
        # underflow to 0 / 0.
        weights = torch.softmax(-squared / (2 * sigma ** 2), dim=1)
        error_share += (weights * error[:, None]).sum(dim=(0, 2, 3))
        distance = torch.cdist(driving.value, driving.value)                              # (T, K, K)
        if driving.jacobian is not None:
            jacobians = driving.jacobian.flatten(2)
            distance = distance + reach * torch.cdist(jacobians, jacobians)
        distance_sum += distance.sum(dim=0)
        frames += len(video)
    return distance_sum / frames, error_share


def redundant_keypoints(distance: Tensor, radius: float) -> list[int]:
    """Keypoints within ``radius`` of an earlier keypoint that is itself kept."""
    redundant: list[int] = []
    for k in range(len(distance)):
        if any(distance[k, j] < radius for j in range(k) if j not in redundant):
            redundant.append(k)
    return redundant


def assign_copies(error_share: Tensor, slots: list[int]) -> list[tuple[int, int]]:
    """``(slot, original)`` pairs: each slot to fill (redundant, or added beyond
    ``len(error_share)``) copies the kept keypoint with the most error share per copy (a keypoint
    that already has copies shares its error with them)."""
    kept = [k for k in range(len(error_share)) if k not in slots]
    if not kept:
        return []
    copies = {k: 1 for k in kept}
    pairs = []
    for slot in slots:
        original = max(kept, key=lambda k: float(error_share[k]) / copies[k])
        copies[original] += 1
        pairs.append((slot, original))
    return pairs


def grown(model: FommModel, config_path: Path) -> FommModel:
    """The model of ``config_path`` (more keypoints, nothing else different) with ``model``'s
    weights: per-keypoint parameters get them in their leading slots (the keypoints keep their
    numbers; the dense motion's background group stays first), every other parameter exactly."""
    larger = build_model(load_config(config_path))
    if not isinstance(larger, FommModel):
        raise SystemExit(f"{config_path}: growing needs a FOMM config")
    old_kp = model.config.model_params.common_params.num_kp
    new_kp = larger.config.model_params.common_params.num_kp
    if new_kp <= old_kp:
        raise SystemExit(f"{config_path}: num_kp {new_kp} must be above the checkpoint's {old_kp} to grow")
    for network in model.built_networks():
        source, target = getattr(model, network).state_dict(), getattr(larger, network).state_dict()
        if source.keys() != target.keys():
            raise SystemExit(f"{config_path}: the {network} differs from the checkpoint's in more than num_kp")
        for name, value in source.items():
            slot = target[name]
            if value.shape == slot.shape:
                slot.copy_(value)
            elif f"{network}.{name}" in PER_KEYPOINT and all(a <= b for a, b in zip(value.shape, slot.shape)):
                slot[tuple(slice(0, size) for size in value.shape)] = value
            else:
                raise SystemExit(f"{config_path}: {network}.{name} has shape {tuple(slot.shape)} against the "
                                 f"checkpoint's {tuple(value.shape)}; only num_kp may differ")
    return larger


def copy_keypoint(model: FommModel, slot: int, original: int, noise: float, rng: torch.Generator) -> None:
    """Make keypoint ``slot`` a perturbed copy of keypoint ``original``, in place."""
    detector, motion = model.kp_detector, model.generator.dense_motion_network
    with torch.no_grad():
        weight = detector.kp.weight
        perturbation = torch.randn(weight[original].shape, generator=rng) * noise * weight[original].std()
        weight[slot] = weight[original] + perturbation
        detector.kp.bias[slot] = detector.kp.bias[original]
        if detector.jacobian is not None and detector.num_jacobian_maps > 1:
            rows_slot, rows_original = slice(4 * slot, 4 * slot + 4), slice(4 * original, 4 * original + 4)
            detector.jacobian.weight[rows_slot] = detector.jacobian.weight[rows_original]
            detector.jacobian.bias[rows_slot] = detector.jacobian.bias[rows_original]
        # The dense motion's input is (K + 1) groups of [heatmap, deformed source channels],
        # group 0 the background. The hourglass reads it first, and hands it on at the tail of its
        # output (after its decoder's channels) to the mask (one channel per group) and occlusion.
        first = motion.hourglass.encoder.down_blocks[0].conv.weight
        group = first.shape[1] // (len(detector.kp.bias) + 1)
        heads = [motion.mask.weight] + ([motion.occlusion.weight] if motion.occlusion is not None else [])
        for weight, offset in [(first, 0)] + [(head, head.shape[1] - first.shape[1]) for head in heads]:
            to, since = offset + group * (slot + 1), offset + group * (original + 1)
            weight[:, to:to + group] = weight[:, since:since + group]
        motion.mask.weight[slot + 1] = motion.mask.weight[original + 1]
        motion.mask.bias[slot + 1] = motion.mask.bias[original + 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, required=True, help="trained FOMM model")
    parser.add_argument("--config", type=Path, default=None, help="its config (for an original .pth.tar)")
    parser.add_argument("--dataset", type=Path, required=True, help="dataset whose train/ videos are read")
    parser.add_argument("--out", type=Path, required=True, help="where to write the new starting checkpoint")
    parser.add_argument("--grow-config", type=Path, default=None,
                        help="config of a model with more keypoints (num_kp) to fill with copies too")
    parser.add_argument("--videos", type=int, default=16, help="how many training videos to read")
    parser.add_argument("--radius", type=float, default=0.08, help="redundant below this motion distance")
    parser.add_argument("--reach", type=float, default=0.1,
                        help="distance from a keypoint at which jacobian differences are counted")
    parser.add_argument("--sigma", type=float, default=0.1, help="scale of the error's sharing by distance")
    parser.add_argument("--noise", type=float, default=0.02, help="perturbation of a copied heatmap filter")
    parser.add_argument("--seed", type=int, default=0, help="seed of the perturbation")
    args = parser.parse_args()

    try:
        model = load_checkpoint(args.checkpoint, args.config)
        if not isinstance(model, FommModel) or model.generator.dense_motion_network is None:
            raise SystemExit(f"{args.checkpoint}: re-seeding needs a FOMM model with a dense-motion network")
        if model.kp_detector.graph is not None:
            # The graph's attention mixes keypoints by their index; a copied slot would need its rows too.
            raise SystemExit(f"{args.checkpoint}: re-seeding does not handle keypoints refined by a graph (graph_params)")
        shape = model.config.dataset_params.frame_shape
        paths = list_videos(dataset_folder(args.dataset) / "train")[:args.videos]
        if not paths:
            raise SystemExit(f"{args.dataset}: no training videos in {args.dataset / 'train'}")
        videos = [to_float(read_video(path, shape)) for path in paths]
    except UserError as error:
        raise SystemExit(f"error: {error}") from None

    distance, error_share = keypoint_statistics(model, videos, args.sigma, args.reach)
    redundant = redundant_keypoints(distance, args.radius)
    slots = list(redundant)
    if args.grow_config is not None:
        model = grown(model, args.grow_config)
        slots += list(range(len(distance), model.config.model_params.common_params.num_kp))
    pairs = assign_copies(error_share, slots)
    total = float(error_share.sum())
    print(f"{len(videos)} training videos of {args.dataset}; keypoint, the one moving most like it (motion distance), error share:")
    for k in range(len(distance)):
        nearest = min((j for j in range(len(distance)) if j != k), key=lambda j: float(distance[k, j]))
        print(f"  {k:2d}  {nearest:2d} ({float(distance[k, nearest]):.3f})  {float(error_share[k]) / total:6.1%}"
              + ("  redundant" if k in redundant else ""))
    rng = torch.Generator().manual_seed(args.seed)
    for slot, original in pairs:
        copy_keypoint(model, slot, original, args.noise, rng)
        print(f"keypoint {slot} <- a copy of keypoint {original}")
    if not pairs:
        print("no keypoint is redundant and none is added: the checkpoint's weights are written unchanged")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_torch_save({name: getattr(model, name).state_dict() for name in model.built_networks()} | {"epoch": 0},
                      args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
