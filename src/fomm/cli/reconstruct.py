"""``fomm reconstruct``: ``fomm evaluate`` that also writes the reconstructed videos.

For every test video the first frame is the source and every frame drives it with its own
keypoints (the original ``reconstruction.py``); each reconstruction is written to
``--out/<name><format>`` in the config's ``reconstruction_params.format`` (.mp4, .mov, .mkv, .gif
or a .png strip), and the metrics are printed and written to ``--out/metrics.*``.
"""

from __future__ import annotations

import argparse

from .evaluate import add_evaluation_arguments, run_evaluation

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_evaluation_arguments(parser, reconstruct=True)


def run(args: argparse.Namespace) -> int:
    result, videos, files = run_evaluation(args, videos=args.out)
    print(result.table())
    print(f"wrote {len(videos)} videos ({result.settings['frames']} frames) and "
          + ", ".join(path.name for path in files) + f" to {args.out}")
    return 0
