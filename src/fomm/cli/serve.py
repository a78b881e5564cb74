"""``fomm serve``: the local web app (Gradio). With no arguments it serves the bundled model and its
samples on http://127.0.0.1:7860/; ``--models DIR`` adds every checkpoint found there."""

from __future__ import annotations

import argparse
import logging
import os
import socket
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from ..device import resolve_device, set_threads
from ..errors import UserError
from .arguments import positive_int, thread_count


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is from 1 to 65535, got {value}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0: every network)")
    parser.add_argument("--port", type=_port, default=7860, help="port (default 7860)")
    parser.add_argument("--models", type=Path, metavar="DIR",
                        help="folder of checkpoints to offer beside the bundled model (each with its config: "
                             "NAME.yaml beside NAME.pth.tar, config.yaml in a run folder, or a packaged one; "
                             "see docs/app.md)")
    parser.add_argument("--share", action="store_true",
                        help="also make a temporary public link through Gradio's share servers (off by default: "
                             "nothing leaves this machine)")
    parser.add_argument("--max-frames", type=positive_int, default=2000,
                        help="refuse driving videos longer than this many frames (default 2000)")
    parser.add_argument("--batch-size", type=positive_int, default=8, help="driving frames per forward pass")
    parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N or mps")
    parser.add_argument("--threads", type=thread_count, help="CPU threads for torch (default: torch's choice)")


#: Where ``--share`` links come from: without a connection to it there is no public link.
SHARE_SERVER = ("api.gradio.app", 443)


def _check_host(host: str, port: int) -> None:
    """``--host`` must be an address (or a name) this machine can listen on."""
    try:
        socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise UserError(f"--host {host}: not a valid address or host name (127.0.0.1 for this machine only, "
                        f"0.0.0.0 for every network)") from None


def _check_share_possible() -> None:
    """``--share`` needs Gradio's share servers: say so in one line when they cannot be reached,
    rather than Gradio's lines about a helper it could not download."""
    try:
        socket.create_connection(SHARE_SERVER, timeout=5).close()
    except OSError:
        raise UserError(f"--share: no public link without a network connection to Gradio's share servers "
                        f"({SHARE_SERVER[0]}); serve without --share (the page still works on this machine)") from None


def run(args: argparse.Namespace) -> int:
    _check_host(args.host, args.port)
    if args.share:
        _check_share_possible()
    with tempfile.TemporaryDirectory(prefix="fomm-serve-") as work_dir:
        # Gradio's copies of uploads and torch's compile cache go into this server's own folder,
        # deleted when it stops (Ctrl-C or SIGTERM), not into the shared temporary folder, unless
        # the user chose folders for them.
        with _environment_defaults(GRADIO_TEMP_DIR=str(Path(work_dir) / "gradio"),
                                   TORCHINDUCTOR_CACHE_DIR=str(Path(work_dir) / "inductor")):
            return _serve(args, Path(work_dir))


@contextmanager
def _environment_defaults(**values: str) -> Iterator[None]:
    """Set the environment variables that are not set yet; unset them again on the way out, so a
    caller in the same process (a test, a notebook) does not inherit a folder that is deleted."""
    added = [name for name in values if name not in os.environ]
    os.environ.update({name: values[name] for name in added})
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)


def _serve(args: argparse.Namespace, work_dir: Path) -> int:
    try:
        from ..app import web
    except ImportError as error:
        raise UserError(f"fomm serve needs Gradio ({error}): pip install 'fomm[app]'") from None
    from ..app.catalog import ModelCatalog, find_models

    logging.getLogger("httpx").setLevel(logging.WARNING)  # Gradio's own requests to itself, one line each
    set_threads(args.threads)
    catalog = ModelCatalog(find_models(args.models), device=resolve_device(args.device))
    app = web.build_app(catalog, work_dir / "jobs", max_frames=args.max_frames, batch_size=args.batch_size)
    url = web.launch(app, host=args.host, port=args.port, share=args.share)
    print(f"fomm serve: {len(catalog.names)} model(s): {', '.join(catalog.names)}")
    print(f"fomm serve: open {url} in a browser (Ctrl-C to stop)")
    if app.share_url:
        print(f"fomm serve: public link (valid for a while, anyone with it can use this server): {app.share_url}")
    try:
        while True:  # the server runs in Gradio's threads until Ctrl-C (or SIGTERM)
            time.sleep(0.5)
    except KeyboardInterrupt:
        print("fomm serve: stopped")
    finally:
        app.close(verbose=False)
    return 0
