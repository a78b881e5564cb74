"""Where a model's reconstruction error comes from: still background or moving subject.

For each checkpoint, on the test videos of a dataset (reconstruction protocol: frame 0 is the
source, every frame drives with its own keypoints), prints the L1 of

* the generated frames (what `fomm evaluate` reports as L1),
* the *deformed source*: the source image warped by the dense motion, before the generator,
* the trivial baseline: frame 0 repeated (`L1_first_frame` in `fomm evaluate`),

each split into the part from still pixels (where frame 0 already matches the driving frame to
within 0.02) and from moving ones; the two parts add up to the whole. Then the mean of the
occlusion map, resized to the image: the share of each output pixel that comes from the warped
source when the generator blends (``generator_params.output_blend: occlusion``; otherwise it only
masks the features). The last column is the *self-reconstruction* L1: every frame driven by itself
(no motion at all), the error the generator makes when it only has to copy its input.

    python benchmarks/generator_blur.py --dataset data/unseen-4242            # the bundled model
    python benchmarks/generator_blur.py --dataset DATA --checkpoint a.pt --checkpoint b.pt
    python benchmarks/generator_blur.py --dataset DATA --checkpoint a.pt --output-blend occlusion

``--output-blend`` evaluates the checkpoints' weights with ``generator_params.output_blend`` set
as given (the option adds no parameters, so any checkpoint with an occlusion map loads with it).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import torch

from fomm.assets import BUNDLED_CHECKPOINT
from fomm.checkpoint import load_checkpoint, read_checkpoint
from fomm.data.video import read_video
from fomm.evaluation.protocol import dataset_split
from fomm.geometry import resize_map
from fomm.models import FommModel

STILL_THRESHOLD = 0.02  # mean |frame - frame 0| over the channels, in [0, 1] units


@dataclass
class Errors:
    """Sums over videos of the mean per-pixel L1, split by still / moving pixels."""

    generated: tuple[float, float] = (0.0, 0.0)
    deformed: tuple[float, float] = (0.0, 0.0)
    baseline: tuple[float, float] = (0.0, 0.0)
    self_reconstruction: float = 0.0
    visible: float = 0.0
    still_fraction: float = 0.0
    videos: int = 0


def _split(error: torch.Tensor, still: torch.Tensor) -> tuple[float, float]:
    return float((error * still).mean()), float((error * ~still).mean())


def _add(total: tuple[float, float], part: tuple[float, float]) -> tuple[float, float]:
    return total[0] + part[0], total[1] + part[1]


@torch.inference_mode()
def measure(model: FommModel, videos: list[Path]) -> Errors:
    height, width, _ = model.frame_shape
    errors = Errors()
    for path in videos:
        frames = torch.from_numpy(read_video(path, (height, width, 3))).permute(0, 3, 1, 2).float() / 255
        source = frames[:1].expand(len(frames), -1, -1, -1)
        kp_driving = model.kp_detector(frames)
        kp_source = model.kp_detector(frames[:1]).expand(len(frames))  # the source, detected once
        output = model.generator(source, kp_source, kp_driving)
        baseline = (frames[:1] - frames).abs().mean(1)
        still = baseline <= STILL_THRESHOLD
        errors.generated = _add(errors.generated, _split((output.prediction - frames).abs().mean(1), still))
        errors.deformed = _add(errors.deformed, _split((output.deformed - frames).abs().mean(1), still))
        errors.baseline = _add(errors.baseline, _split(baseline, still))
        copied = model.generator(frames, kp_driving, kp_driving).prediction
        errors.self_reconstruction += float((copied - frames).abs().mean())
        if output.occlusion_map is not None:
            errors.visible += float(resize_map(output.occlusion_map, height, width).mean())
        errors.still_fraction += float(still.float().mean())
        errors.videos += 1
    return errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", type=Path, required=True, help="a dataset folder with test/ videos")
    parser.add_argument("--checkpoint", type=Path, action="append", help="default: the bundled model")
    parser.add_argument("--videos", type=int, default=20, help="test videos (the first N by name)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output-blend", choices=["decoded", "occlusion"],
                        help="override the checkpoints' generator_params.output_blend")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    # The test videos as `fomm evaluate` lists them (the frame shape only configures the listing;
    # each model resizes frames to its own on reading).
    videos = dataset_split(args.dataset, (64, 64, 3), "test").paths[:args.videos]
    print(f"{len(videos)} test videos of {args.dataset}; still pixels: |frame - frame 0| <= {STILL_THRESHOLD}\n")
    print("| checkpoint | still px | generated L1 (still + moving) | deformed source L1 (still + moving) "
          "| repeat frame 0 L1 (still + moving) | mean occlusion map | self-reconstruction L1 |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for checkpoint in args.checkpoint or [BUNDLED_CHECKPOINT]:
        config = None  # the checkpoint's own
        if args.output_blend is not None:
            config = read_checkpoint(checkpoint).config.model_copy(deep=True)
            config.model_params.generator_params.output_blend = args.output_blend
        model = load_checkpoint(checkpoint, config=config, device="cpu").eval()
        errors = measure(model, videos)
        n = errors.videos

        def cell(pair: tuple[float, float]) -> str:
            return f"{(pair[0] + pair[1]) / n:.4f} ({pair[0] / n:.4f} + {pair[1] / n:.4f})"

        label = checkpoint.name if checkpoint == BUNDLED_CHECKPOINT else str(checkpoint)
        if args.output_blend is not None:
            label += f" (output_blend: {args.output_blend})"
        print(f"| {label} | {errors.still_fraction / n:.1%} | {cell(errors.generated)} "
              f"| {cell(errors.deformed)} | {cell(errors.baseline)} | {errors.visible / n:.3f} "
              f"| {errors.self_reconstruction / n:.4f} |")


if __name__ == "__main__":
    main()
