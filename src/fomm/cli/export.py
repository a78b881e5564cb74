"""``fomm export``: a model of any family as ONNX graphs (describe, encode the source, render) with
a dynamic batch and image size (see :mod:`fomm.export`)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ..backends.cache import copy_cached_export, exported_files
from ..export import DEFAULT_OPSET, check_onnx, export_onnx
from ..files import require_free_space
from ..errors import OutputPathError
from ..models import MotionModel
from .arguments import add_model_arguments, load_model
from .outputs import check_output_folder

logger = logging.getLogger(__name__)


def opset(text: str) -> int:
    """An argparse type: an ONNX opset the dynamo exporter writes (18 up to onnx's newest)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    newest = _newest_opset()
    if not DEFAULT_OPSET <= value <= newest:
        raise argparse.ArgumentTypeError(f"{value} is not an opset the exporter writes (use {DEFAULT_OPSET} to "
                                         f"{newest})")
    return value


def _newest_opset() -> int:
    try:
        import onnx
    except ImportError:  # export_onnx says which extra to install
        return DEFAULT_OPSET
    return onnx.defs.onnx_opset_version()


def _graphs_size(model: MotionModel) -> int:
    """About the bytes of the exported graphs: their float32 weights (the inference networks')."""
    return sum(parameter.numel() * 4 for name in model.inference_modules()
               for parameter in getattr(model, name).parameters())


def _export_into_cache(model: MotionModel) -> bool:
    """Export ``model`` into the backends' cache; False (with a warning) where the cache cannot
    be written, so that the export goes to ``--out`` alone."""
    try:
        exported_files(model)
    except OSError as error:
        logger.warning("cannot write the export cache (%s): exporting to --out only", error.strerror or error)
        return False
    return True


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser, runtime=False)  # traced and checked on the CPU
    parser.add_argument("--out", type=Path, default=Path("onnx"), help="output folder (default onnx/)")
    parser.add_argument("--opset", type=opset, default=DEFAULT_OPSET,
                        help=f"ONNX opset, {DEFAULT_OPSET} (default, the lowest the exporter writes) or newer")
    parser.add_argument("--no-check", action="store_true", help="skip the onnxruntime comparison")


def run(args: argparse.Namespace) -> int:
    check_output_folder(args.out, "--out")
    model = load_model(args)
    created = not args.out.exists()
    try:
        args.out.mkdir(parents=True, exist_ok=True)
        require_free_space(args.out, _graphs_size(model))  # now, not after the export's tens of seconds
        # `fomm animate --backend auto` may have exported this very model already (same weights,
        # exporter and opset, checked intact): copying its files saves the tens of seconds an
        # export takes. Otherwise the export goes into that cache first, so that the exported
        # backends (and the next export) find it there.
        files = copy_cached_export(model, args.out) if args.opset == DEFAULT_OPSET else None
        copied = files is not None
        if files is None and args.opset == DEFAULT_OPSET and _export_into_cache(model):
            files = copy_cached_export(model, args.out)
        if files is None:
            files = export_onnx(model, args.out, opset=args.opset, check=False).files
    except OSError as error:
        raise OutputPathError(f"--out {args.out}: cannot write there ({error.strerror or error})") from None
    finally:
        if created and args.out.is_dir() and not any(args.out.iterdir()):
            args.out.rmdir()  # nothing written: leave no empty folder behind
    if copied:
        print("copied the cached export of this checkpoint: " + ", ".join(str(path) for path in files.all()))
    else:
        print("wrote " + ", ".join(str(path) for path in files.all()))
    print(f"inputs: any batch; height and width multiples of {model.size_multiple()}")
    if not args.no_check:
        print(f"onnxruntime vs torch: max abs difference {check_onnx(model, files):.2e}")
    return 0
