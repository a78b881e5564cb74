"""``fomm export``: the keypoint detector and the generator as ONNX files."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..export import DEFAULT_OPSET, export_onnx
from .arguments import add_model_arguments, load_model
from .outputs import check_output_folder


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser, runtime=False)  # traced and checked on the CPU
    parser.add_argument("--out", type=Path, default=Path("onnx"), help="output folder (default onnx/)")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (default {DEFAULT_OPSET})")
    parser.add_argument("--no-check", action="store_true", help="skip the onnxruntime comparison")


def run(args: argparse.Namespace) -> int:
    check_output_folder(args.out, "--out")
    model = load_model(args)
    result = export_onnx(model, args.out, opset=args.opset, check=not args.no_check)
    print(f"wrote {result.kp_detector} and {result.generator}")
    if result.max_error is not None:
        print(f"onnxruntime vs torch: max abs difference {result.max_error:.2e}")
    return 0
