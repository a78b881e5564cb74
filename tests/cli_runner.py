"""``fomm`` commands run in the test process, as a subprocess would run them, without the second
or so a new Python spends importing torch: the exit status, everything printed, and fomm's own
log lines on stderr (where the command line shows them)."""

from __future__ import annotations

import contextlib
import io
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from fomm.cli import main


@dataclass
class Finished:
    """What a command left: as :class:`subprocess.CompletedProcess`'s fields."""

    returncode: int
    stdout: str
    stderr: str


def run_fomm(*args: str, cwd: Optional[Path] = None) -> Finished:
    """``fomm ARGS...`` in this process, in ``cwd`` (default: the current folder)."""
    out, err = io.StringIO(), io.StringIO()
    handler = logging.StreamHandler(err)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("fomm")
    logger.addHandler(handler)
    try:
        with contextlib.chdir(cwd or os.getcwd()), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(list(args))
            except SystemExit as exit_:  # argparse's usage errors and --help
                code = exit_.code if isinstance(exit_.code, int) else 2
    finally:
        logger.removeHandler(handler)
    return Finished(code, out.getvalue(), err.getvalue())
