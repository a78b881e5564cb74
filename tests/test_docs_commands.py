"""Every ``fomm`` command line in README.md and docs/*.md works as written.

Commands are collected from fenced code blocks marked ``bash``, ``sh`` or ``console`` (usage
synopses with placeholders live in ``text`` blocks). Each one is

* parsed by the real command-line parser, with any packaged config it names resolved, so a flag
  that no longer exists fails here whatever the command needs; and
* run for real, in document order, in a scratch folder that holds the things a reader is assumed
  to have made by then (their own media, a dataset, a training run's checkpoint: all made here
  from what ships with the package), unless it is listed in ``NOT_RUN`` with the reason.

A command added to the docs is run by default; ``NOT_RUN`` entries that no longer appear in any
doc fail the test, so the list cannot go stale.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.cli_runner import run_fomm

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
SHELL_BLOCK = re.compile(r"^```(?:bash|sh|shell|console)\s*$(.*?)^```", re.M | re.S)

# The exact command (as collected: continuation lines joined, trailing comment dropped) -> why it
# is only parsed, not run.
_PUBLISHED = "needs a published checkpoint, which the user downloads"
_HOURS = "trains for hours; tests/test_train.py runs `fomm train` end to end with --max-steps"
_TORCHRUN = "needs several GPUs; the slow test in tests/test_train.py runs torchrun on two CPU processes"
_MADE = ("the workspace's dataset is made by this command with --videos 8 (200 videos take a minute); "
         "the training and evaluation commands after it run on that")
_VARIANTS = "trains 64 runs (1 h 40 min on 2 busy cores); tests/test_experiments.py runs it with a tiny budget"
_CROSS_SPLIT = ("a 24-video split with 12 cross pairs takes half a minute; docs/evaluation.md's `make-dataset "
                "--cross-pairs` runs on a smaller one")
_TWO_MODELS = ("needs two trained models and the 12-pair split; tests/test_compare_cross_identity.py runs the "
               "comparison on evaluations written by the evaluation's own writer")
NOT_RUN: dict[str, str] = {
    "fomm animate --checkpoint vox-cpk.pth.tar --config vox-256 --source face.jpg --driving talking.mp4 "
    "--out result.mp4 --adapt-scale --find-best-frame --audio --side-by-side panels.mp4 --gif result.gif": _PUBLISHED,
    "fomm make-dataset sprites --out data/sprites-64 --videos 200 --frames 32 --size 64": _MADE,
    "fomm animate --checkpoint vox-cpk.pth.tar --config vox-256 --source face.jpg --driving talking.mp4 "
    "--out fomm.mp4": _PUBLISHED,
    "fomm animate --checkpoint vox.pth.tar --source face.jpg --driving talking.mp4 --out tpsmm.mp4 --motion avd":
        _PUBLISHED,
    "fomm animate --checkpoint vox256.pth --config mraa-vox256 --source face.jpg --driving talking.mp4 "
    "--out mraa.mp4": _PUBLISHED,
    "fomm train --config configs/sprites-64.yaml --log-dir runs/sprites": _HOURS,
    "torchrun --nproc_per_node 4 -m fomm.cli train --config configs/vox-256.yaml --log-dir runs/vox": _TORCHRUN,
    "fomm train --config tpsmm-vox-256 --log-dir runs/tpsmm": _HOURS + " (tests/test_family_training.py trains TPSMM "
                                                                       "and MRAA with --max-steps)",
    "fomm train --config tpsmm-sprites-64 --log-dir runs/tpsmm-sprites --device cpu --threads 2":
        "trains 40 epochs of TPSMM (an hour); tests/test_family_training.py trains TPSMM and MRAA with --max-steps",
    "fomm train-avd --checkpoint runs/tpsmm-sprites/checkpoint.pth.tar --log-dir runs/tpsmm-sprites-avd":
        "needs the TPSMM run above; tests/test_family_training.py runs `fomm train-avd` on a small trained model",
    "fomm train-avd --checkpoint runs/tpsmm/checkpoint.pth.tar":
        "needs the TPSMM run above; tests/test_family_training.py runs `fomm train-avd` on a small trained model",
    "fomm export --checkpoint runs/sprites/checkpoint.pth.tar --out onnx/":
        "exports for 20 s (every export traces with symbolic shapes); tests/test_export.py runs the same "
        "command on a checkpoint, and tests/test_families.py on the other families'",
    "fomm experiment variants --dataset sprites --budget 400":
        "trains the model variants (an hour); tests/test_experiments.py runs it with a tiny budget",
    "fomm make-dataset sprites --out data/sprites-64 --videos 200 --frames 32 --size 64 --seed 0": _MADE,
    "fomm train --config configs/sprites-64.yaml --log-dir runs/sprites-64 --device cpu --threads 1": _HOURS,
    "fomm train --config sprites-64-stage2.yaml --checkpoint stage1.pth.tar --log-dir runs/sprites-64-ft "
    "--threads 2": _HOURS + " (and the files of the stages before it)",
    "fomm train --config configs/sprites-64-fullres.yaml --checkpoint runs/sprites-64-stage3-init.pth.tar "
    "--log-dir runs/sprites-64-stage3 --device cpu --threads 2": _HOURS + " (and the files of the stages before it)",
    "fomm make-dataset sprites --out data/sprites-64-landmarks --videos 200 --frames 32 --size 64 --seed 1":
        "200 videos take a minute; `fomm train-landmarks` runs below on the workspace's dataset",
    "fomm train-landmarks --dataset data/sprites-64-landmarks --out landmarks.pt --threads 1":
        "five minutes on 200 videos; docs/evaluation.md's `fomm train-landmarks` runs on the workspace's dataset",
    "fomm train --config configs/my.yaml --log-dir runs/my --device auto --threads 1":
        "configs/my.yaml is the user's own config for their own videos",
    "fomm train --config configs/my.yaml --checkpoint runs/my/checkpoint.pth.tar":
        "resumes the user's own run above",
    "fomm train --config vox-256 --checkpoint vox-cpk.pth.tar --log-dir runs/ft": _PUBLISHED,
    "fomm benchmark curve --dataset sprites --budget 2000 --every 250 --out runs/bq --mixed-precision auto":
        "trains 2,000 iterations (8 minutes); tests/test_experiments.py runs `benchmark curve` with a tiny budget",
    "fomm benchmark quality --dataset sprites --budget 1500 --seeds 5 --variants a,b,c,d,e,g --out runs/bq "
    "--mixed-precision bf16":
        "trains 30 runs (about 3 hours on 2 cores); tests/test_experiments.py runs it with a tiny budget and 2 seeds",
    "fomm make-dataset sprites --out data/unseen-4242 --videos 100 --frames 32 --size 64 --seed 4242 --format mp4":
        "100 videos take half a minute; `fomm make-dataset` runs on the workspace's dataset",
    "fomm train --config configs/sprites-64-blend.yaml --checkpoint stage3.pth.tar --log-dir runs/sprites-64-stage4 "
    "--device cpu --threads 1": _HOURS + " (and the files of the stages before it)",
    "fomm make-dataset sprites --out data/unseen-7 --videos 100 --frames 32 --size 64 --seed 7 --format mp4":
        "100 videos take half a minute; `fomm make-dataset` runs on the workspace's dataset",
    "fomm evaluate --checkpoint candidates/sprites-64-stage4.pt "
    "--dataset data/unseen-7 --embedding none --out eval-unseen-7/":
        "two minutes on the 100-video split above; tests/test_demo.py evaluates the bundled model on a small "
        "unseen split",
    "fomm evaluate --checkpoint candidates/sprites-64-stage4.pt "
    "--dataset data/unseen-4242 --embedding none --out eval-unseen/":
        "two minutes on the 100-video split above; `fomm evaluate` runs on the workspace's dataset",
    "fomm make-dataset sprites --out data/val-1001 --videos 24 --frames 32 --size 64 --seed 1001 --test-fraction 0.5 "
    "--cross-pairs 12": _CROSS_SPLIT,
    "fomm make-dataset sprites --out data/test-2002 --videos 24 --frames 32 --size 64 --seed 2002 --test-fraction 0.5 "
    "--cross-pairs 12": _CROSS_SPLIT,
    "fomm make-dataset sprites --out data/test-3003 --videos 24 --frames 32 --size 64 --seed 3003 --test-fraction 0.5 "
    "--cross-pairs 12": _CROSS_SPLIT,
    "fomm make-dataset sprites --out data/test-8008 --videos 24 --frames 32 --size 64 --seed 8008 --test-fraction 0.5 "
    "--cross-pairs 12": _CROSS_SPLIT,
    "fomm make-dataset sprites --out data/test-9009 --videos 24 --frames 32 --size 64 --seed 9009 --test-fraction 0.5 "
    "--cross-pairs 12": _CROSS_SPLIT,
    "fomm evaluate --checkpoint candidates/sprites-64-stage4.pt --cross-identity "
    "--dataset data/test-2002 --landmarks landmarks.pt --out eval-cross-2002/":
        "needs the split above; docs/evaluation.md's `evaluate --cross-identity` runs on a smaller one",
    "fomm train --config decoded.yaml --checkpoint bundled-weights.pth.tar --log-dir runs/decoded --device cpu "
    "--threads 1": _HOURS + " (and the files of the lines before it)",
    "fomm evaluate --cross-identity --checkpoint runs/decoded/checkpoint.pth.tar --dataset data/val-1001 --out eval-5a/":
        "needs the training run above; docs/evaluation.md's `evaluate --cross-identity` runs on a smaller split",
    "fomm evaluate --cross-identity --checkpoint a.pth.tar --dataset data/test-2002 --out eval-a/": _TWO_MODELS,
    "fomm evaluate --cross-identity --checkpoint b.pth.tar --dataset data/test-2002 --out eval-b/": _TWO_MODELS,
    "fomm evaluate --checkpoint candidates/sprites-64-stage4.pt "
    "--dataset data/test-2002 --embedding none --out eval-self-2002/":
        "needs the split above; `fomm evaluate` runs on the workspace's dataset",
    "fomm make-dataset sprites --out data/sprites-x --videos 2000 --frames 32 --size 64 --train-cross-pairs 2000":
        "2,000 videos and 2,000 pairs take seven minutes; tests/test_cross_pair_training.py makes a small such dataset",
    "fomm train --config configs/sprites-64-cross.yaml --checkpoint bundled-weights.pth.tar --log-dir runs/cross "
    "--device cpu --threads 2": _HOURS + " (and the dataset of the line before it)",
    "fomm train --config cross-2.yaml --checkpoint cross-weights.pth.tar --log-dir runs/cross-2 --device cpu --threads 2":
        _HOURS + " (and the files of the lines before it)",
    "fomm evaluate --cross-identity --checkpoint runs/cross-2/checkpoint.pth.tar --dataset data/val-1001 "
    "--embedding color-histogram --out eval-cross-2/":
        "needs the training run above; docs/evaluation.md's `evaluate --cross-identity` runs on a smaller split",
    "fomm train --config configs/sprites-64-cross.yaml --checkpoint reseeded.pth.tar --log-dir runs/reseeded "
    "--device cpu --threads 2": _HOURS + " (and the re-seeded checkpoint; tests/test_reseed_keypoints.py makes one)",
    "fomm train --config grow.yaml --checkpoint grown.pth.tar --log-dir runs/grown --device cpu --threads 2":
        _HOURS + " (and the grown checkpoint; tests/test_reseed_keypoints.py makes one)",
    "fomm train --config grow-gan.yaml --checkpoint grown-weights.pth.tar --log-dir runs/grown-gan --device cpu "
    "--threads 2": _HOURS + " (and the grown run's weights)",
    "fomm train --config grow.yaml --checkpoint grown-weights.pth.tar --log-dir runs/grown-2 --device cpu --threads 2":
        _HOURS + " (and the grown run's weights)",
    "fomm train --config grow.yaml --checkpoint grown-3-weights.pth.tar --log-dir runs/grown-4 --device cpu "
    "--threads 2": _HOURS + " (and the weights of the runs before it)",
    "fomm train --config grow-fine.yaml --checkpoint grown-3-fine.pth.tar --log-dir runs/grown-fine --device cpu "
    "--threads 2": _HOURS + " (and the weights of the runs before it)",
    "fomm train --config grow-fine.yaml --checkpoint grown-fine-weights.pth.tar --log-dir runs/grown-fine-2 "
    "--device cpu --threads 2": _HOURS + " (and the weights of the runs before it)",
    "fomm train --config grow-fine-decoded.yaml --checkpoint grown-fine-2-weights.pth.tar --log-dir "
    "runs/grown-fine-decoded --device cpu --threads 2": _HOURS + " (and the weights of the runs before it)",
    "fomm evaluate --cross-identity --checkpoint runs/grown-fine-decoded/checkpoint.pth.tar --dataset data/val-1001 "
    "--embedding color-histogram --precision fp32 --backend torch --out eval-5u/":
        "needs the training run above; docs/evaluation.md's `evaluate --cross-identity` runs on a smaller split",
    "fomm evaluate --cross-identity --checkpoint runs/grown-fine-2/checkpoint.pth.tar --dataset data/test-2002 "
    "--embedding color-histogram --precision fp32 --backend torch --out eval-5t-2002/":
        "needs the training run above; docs/evaluation.md's `evaluate --cross-identity` runs on a smaller split",
    "fomm evaluate --checkpoint candidates/sprites-64-stage4.pt --cross-identity --dataset data/test-2002 --embedding "
    "color-histogram --precision fp32 --backend torch --out eval-bundled-2002/":
        "needs the 12-pair split above (half a minute to make); "
        "docs/evaluation.md's `evaluate --cross-identity` runs on a smaller one",
    "fomm train --config grow-fine-gan.yaml --checkpoint grown-fine-2-weights.pth.tar --log-dir runs/grown-fine-gan "
    "--device cpu --threads 2": _HOURS + " (and the weights of the runs before it)",
    "fomm evaluate --cross-identity --checkpoint runs/grown-fine-gan/checkpoint.pth.tar --dataset data/val-1001 "
    "--embedding color-histogram --precision fp32 --backend torch --out eval-5v/":
        "needs the training run above; docs/evaluation.md's `evaluate --cross-identity` runs on a smaller split",
    "fomm evaluate --checkpoint candidates/sprites-64-stage4.pt --cross-identity --adapt-scale --dataset data/val-1001 "
    "--embedding color-histogram --precision fp32 --backend torch --out eval-bundled-adapt/":
        "needs the 12-pair split above (half a minute to make); "
        "tests/test_cross_identity.py runs `--adapt-scale` on a smaller one",
    "fomm evaluate --cross-identity --adapt-scale --checkpoint runs/grown-fine-2/checkpoint.pth.tar --dataset "
    "data/val-1001 --embedding color-histogram --precision fp32 --backend torch --out eval-5t-adapt/":
        "needs the training run above; tests/test_cross_identity.py runs `--adapt-scale` on a smaller split",
    "fomm evaluate --cross-identity --checkpoint runs/grown-fine-2/checkpoint.pth.tar --dataset data/val-1001 "
    "--embedding smooth-color-histogram --precision fp32 --backend torch --out eval-5t-smooth-1001/":
        "needs the training run above; docs/evaluation.md runs `--embedding smooth-color-histogram` on a smaller split",
    "fomm evaluate --checkpoint candidates/sprites-64-stage4.pt --cross-identity --dataset data/val-1001 --embedding "
    "smooth-color-histogram --precision fp32 --backend torch --out eval-bundled-smooth-1001/":
        "needs the 12-pair split above (half a minute to make); "
        "docs/evaluation.md runs the same on a smaller one",
    "fomm evaluate --cross-identity --checkpoint runs/grown-fine-gan/checkpoint.pth.tar --dataset data/test-8008 "
    "--embedding smooth-color-histogram --precision fp32 --backend torch --out eval-5v-8008/":
        "needs the training run above; docs/evaluation.md runs `--embedding smooth-color-histogram` on a smaller split",
    "fomm evaluate --checkpoint candidates/sprites-64-stage4.pt --cross-identity --dataset data/test-8008 --embedding "
    "smooth-color-histogram --precision fp32 --backend torch --out eval-bundled-8008/":
        "needs a 12-pair split (half a minute to make); docs/evaluation.md runs the same on a smaller one",
    "fomm make-dataset sprites --out data/test-10010 --videos 96 --frames 32 --size 64 --seed 10010 --test-fraction 0.5 "
    "--cross-pairs 48": _CROSS_SPLIT,
    "fomm evaluate --cross-identity --checkpoint runs/grown-fine-gan/checkpoint.pth.tar --dataset data/test-10010 "
    "--embedding smooth-color-histogram --precision fp32 --backend torch --out eval-5v-10010/":
        "needs the training run above; docs/evaluation.md runs `--embedding smooth-color-histogram` on a smaller split",
    "fomm make-dataset sprites --out data/test-15015 --videos 96 --frames 32 --size 64 --seed 15015 --test-fraction 0.5 "
    "--cross-pairs 48": _CROSS_SPLIT,
    "fomm train --config grow-long.yaml --checkpoint grown-start.pth.tar --log-dir runs/grow-long --device cpu "
    "--threads 2": _HOURS + " (1 h 44 min; and the grown start; tests/test_reseed_keypoints.py makes one)",
    "fomm evaluate --cross-identity --checkpoint candidates/sprites-64-5w.pt --dataset data/test-15015 "
    "--embedding color-histogram --precision fp32 --backend torch --out eval-5w-15015/":
        "needs the 48-pair split above; tests/test_cross_identity.py evaluates the same weights on a 4-pair split",
    "fomm train --config grow-fine-long.yaml --checkpoint 5w-fine-start.pth.tar --log-dir runs/grow-fine-long "
    "--device cpu --threads 2": _HOURS + " (58 min; and 5w's weights with the motion kernel dropped)",
    "fomm evaluate --cross-identity --checkpoint runs/grow-fine-long/checkpoint.pth.tar --dataset data/val-1001 "
    "--embedding color-histogram --precision fp32 --backend torch --out eval-5x-val/":
        "needs the training run above; docs/evaluation.md's `evaluate --cross-identity` runs on a smaller split",
    "fomm make-dataset sprites --out data/test-17017 --videos 96 --frames 32 --size 64 --seed 17017 --test-fraction 0.5 "
    "--cross-pairs 48": _CROSS_SPLIT,
    "fomm make-dataset sprites --out data/test-19019 --videos 96 --frames 32 --size 64 --seed 19019 --test-fraction 0.5 "
    "--cross-pairs 48": _CROSS_SPLIT,
    "fomm evaluate --cross-identity --checkpoint 5x-learned.pt --dataset data/test-19019 --embedding "
    "color-histogram --precision fp32 --backend torch --out judge-19019/":
        "needs the 48-pair split and the attached checkpoint above; tests/test_cross_identity.py evaluates the "
        "bundled model the same way on the splits it was judged on",
    "fomm evaluate --cross-identity --motion relative --checkpoint 5x-learned.pt --dataset data/test-19019 "
    "--embedding color-histogram --precision fp32 --backend torch --out relative-19019/":
        "needs the 48-pair split and the attached checkpoint above; tests/test_cross_identity.py evaluates "
        "relative motion on a 4-pair split",
    "fomm train --config y.yaml --checkpoint y-start.pth.tar --log-dir runs/y --device cpu --threads 2":
        "trains for a quarter of an hour from the weights of the runs before it; tests/test_point_transfer.py "
        "trains a model with a transfer for two steps",
    "fomm evaluate --cross-identity --checkpoint runs/y/checkpoint.pth.tar --dataset data/val-1001 "
    "--embedding color-histogram --precision fp32 --backend torch --out eval-5y-val/":
        "needs the training run above; docs/evaluation.md's `evaluate --cross-identity` runs on a smaller split",
    "fomm make-dataset sprites --out data/test-21021 --videos 96 --frames 32 --size 64 --seed 21021 --test-fraction 0.5 "
    "--cross-pairs 48": "tests/test_cross_identity.py makes this split (and 22022) with make_dataset and holds the "
                        "bundled model to the bar on it",
    "fomm evaluate --cross-identity --checkpoint runs/y/checkpoint.pth.tar --dataset data/test-21021 "
    "--embedding color-histogram --precision fp32 --backend torch --out judge-5y-21021/":
        "needs the training run above; tests/test_cross_identity.py evaluates the bundled model, 5y, on this split",
    "fomm train --config grow-transfer.yaml --checkpoint grown-3-weights.pth.tar --log-dir runs/grown-transfer "
    "--device cpu --threads 2": _HOURS + " (and the weights of the runs before it); tests/test_keypoint_transfer_loss.py "
                                         "trains with the loss through `fomm train`",
    "fomm train --config grow-decoded.yaml --checkpoint grown-3-weights.pth.tar --log-dir runs/grown-decoded "
    "--device cpu --threads 2 --max-steps 5000": "trains for 20 minutes, from the weights of the runs before it; "
                                                 "tests/test_decoded_loss.py trains with the loss through `fomm train`",
    "fomm experiment curve --dataset sprites --budget 600 --every 100 --out runs/variants --mixed-precision bf16 "
    "--batch-size 4 --max-train-videos 8": _VARIANTS + " (`experiment curve` with a tiny budget)",
    "fomm experiment variants --dataset sprites --budget 500 --seeds 4 --out runs/variants --mixed-precision bf16 "
    "--batch-size 4 --max-train-videos 8": _VARIANTS,
    "fomm experiment variants --dataset sprites --budget 500 --seed 4 --seeds 4 --data-seed 0 --out runs/variants "
    "--mixed-precision bf16 --batch-size 4 --max-train-videos 8": _VARIANTS + " (--data-seed too)",
    "fomm experiment variants --dataset sprites --budget 500 --seeds 8 --out runs/variants --mixed-precision bf16 "
    "--batch-size 4 --max-train-videos 8": _VARIANTS,
    "fomm experiment variants --dataset sprites --budget 500 --seeds 8 --data-seed 0 --variants a,b,c,d,e,h,i,j,k,l "
    "--out runs/variants --mixed-precision bf16 --batch-size 4 --max-train-videos 8":
        _VARIANTS + " (tests/test_experiments.py runs the other families as variants too)",
}


@dataclass(frozen=True)
class DocCommand:
    doc: str
    line: int
    text: str  # the command as collected
    argv: tuple[str, ...]  # the arguments after `fomm`

    def __str__(self) -> str:
        return f"{self.doc}:{self.line}: {self.text}"


def _fomm_arguments(text: str) -> list[str] | None:
    """The arguments given to fomm by one shell command, or None when it does not run fomm."""
    words = shlex.split(text)
    for position, word in enumerate(words):
        if word in ("fomm", ".venv/bin/fomm") or word.endswith("/bin/fomm"):
            return words[position + 1:]
        if word == "-m" and position + 1 < len(words) and words[position + 1] == "fomm.cli":
            return words[position + 2:]
    return None


def collect_commands() -> list[DocCommand]:
    commands = []
    for doc in DOCS:
        text = doc.read_text()
        for block in SHELL_BLOCK.finditer(text):
            first_line = text[:block.start(1)].count("\n") + 1
            joined = re.sub(r"\\\n\s*", " ", block.group(1))
            for offset, raw in enumerate(joined.splitlines()):
                line = re.sub(r"\s+#\s.*$", "", raw.strip().removeprefix("$ ")).strip()
                for part in line.split("&&"):
                    argv = _fomm_arguments(part.strip()) if part.strip() else None
                    if argv is not None:
                        commands.append(DocCommand(doc.relative_to(REPO).as_posix(), first_line + offset,
                                                   " ".join(part.split()), tuple(argv)))
    return commands


COMMANDS = collect_commands()


def test_the_docs_have_commands_to_check():
    assert len(COMMANDS) >= 15
    assert any(command.argv[:1] == ("demo",) for command in COMMANDS)


def test_every_skipped_command_is_still_documented():
    documented = {command.text for command in COMMANDS}
    assert sorted(set(NOT_RUN) - documented) == []


@pytest.mark.parametrize("command", COMMANDS, ids=str)
def test_documented_command_parses(command: DocCommand):
    from fomm.cli import COMMANDS as CLI_COMMANDS
    from fomm.cli import build_parser
    from fomm.config import PACKAGED_CONFIGS, resolve_config_path

    name = command.argv[0]
    assert name in CLI_COMMANDS, f"{command}: unknown command {name!r}"
    try:
        args = build_parser(name).parse_args(list(command.argv))
    except SystemExit as exit:
        pytest.fail(f"{command}: the parser refused it (exit {exit.code})")
    config = getattr(args, "config", None)
    if config is not None and Path(config).name in {p.name for p in PACKAGED_CONFIGS.glob("*.yaml")} | {
            p.stem for p in PACKAGED_CONFIGS.glob("*.yaml")}:
        assert resolve_config_path(config).is_file()


# --------------------------------------------------------------------------------------------
# running them


def _make_workspace(root: Path) -> None:
    """What a reader has by the time they run the docs' commands: their own media (here, copies
    of the bundled sample), a small sprites dataset (made by the docs' own command, with fewer
    videos), a training run's checkpoint (here, the bundled model written where training writes
    it) and a landmark detector (made by docs/evaluation.md's command)."""
    import imageio.v3 as iio

    import fomm
    from fomm.assets import BUNDLED_CHECKPOINT, BUNDLED_DRIVING, BUNDLED_SOURCE
    from fomm.data.media import read_source_image

    for name in ("me.png", "face.png", "face.jpg", "img.png", "source.png"):
        iio.imwrite(root / name, read_source_image(BUNDLED_SOURCE))
    for name in ("video.mp4", "talking.mp4", "driving.mp4"):
        shutil.copyfile(BUNDLED_DRIVING, root / name)
    (root / "candidates").symlink_to(REPO / "candidates")  # the models kept beside the repository's docs
    _write_portrait_media(root)
    _run(root, "make-dataset", "sprites", "--out", "data/sprites-64", "--videos", "8", "--frames", "32",
         "--size", "64", "--seed", "0", "--workers", "1", "--quiet")
    model = fomm.load_checkpoint(BUNDLED_CHECKPOINT)
    for run in ("sprites", "sprites-64"):
        fomm.save_checkpoint(root / "runs" / run / "checkpoint.pth.tar", model)
    _run(root, "train-landmarks", "--dataset", "data/sprites-64", "--out", "landmarks.pt")


def _write_portrait_media(root: Path) -> None:
    """A real photograph with a person (scikit-image's astronaut) as ``photo.jpg``, and clips of
    it panning (``clip.mp4``, ``dance.mp4``), for the commands that look for a face or a body."""
    import imageio.v3 as iio
    import numpy as np
    from skimage import data

    from fomm.data.video import write_video

    photo = data.astronaut()  # 512 x 512, the face near the top centre
    iio.imwrite(root / "photo.jpg", photo)
    frames = np.stack([photo[40:360, 40 + 4 * t:360 + 4 * t] for t in range(24)])
    write_video(root / "clip.mp4", frames, fps=12)
    write_video(root / "dance.mp4", frames, fps=12)


def _run(folder: Path, *argv: str, own_process: bool = False):
    """``fomm ARGV`` in ``folder``: in this process (tests/cli_runner.py), or with ``own_process``
    as a user's shell starts it."""
    if not own_process:
        return run_fomm(*argv, cwd=folder)
    environment = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "fomm.cli", *argv], cwd=folder, capture_output=True, text=True,
                          timeout=300, env=environment)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("docs")
    _make_workspace(root)
    return root


RUNNABLE = [command for command in COMMANDS if command.text not in NOT_RUN]


@pytest.mark.parametrize("command", RUNNABLE, ids=str)
def test_documented_command_runs(command: DocCommand, workspace: Path):
    # The README's first command (the demo) runs as its own process, as a user's shell starts it;
    # every other one in this process (the same code, without a new interpreter each).
    result = _run(workspace, *command.argv, own_process=command.argv[:1] == ("demo",))
    assert result.returncode == 0, f"{command}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
