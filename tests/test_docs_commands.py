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

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
SHELL_BLOCK = re.compile(r"^```(?:bash|sh|shell|console)\s*$(.*?)^```", re.M | re.S)

# The exact command (as collected: continuation lines joined, trailing comment dropped) -> why it
# is only parsed, not run.
NOT_RUN: dict[str, str] = {}


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
                                                   part.strip(), tuple(argv)))
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
    of the bundled sample), a small sprites dataset and a training run's checkpoint (here, the
    bundled model written where training writes it)."""
    import torch

    import fomm
    from fomm.assets import BUNDLED_CHECKPOINT, BUNDLED_DRIVING, BUNDLED_SOURCE
    from fomm.data.synthetic import make_dataset

    for name in ("me.png", "face.png", "face.jpg", "img.png", "source.png"):
        from fomm.data.media import read_source_image
        import imageio.v3 as iio

        iio.imwrite(root / name, read_source_image(BUNDLED_SOURCE))
    for name in ("dance.mp4", "video.mp4", "talking.mp4", "driving.mp4"):
        shutil.copyfile(BUNDLED_DRIVING, root / name)
    make_dataset(kind="sprites", out=root / "data" / "sprites-64", videos=6, frames=8, size=64, seed=0,
                 workers=1, progress=False)
    model = fomm.load_checkpoint(BUNDLED_CHECKPOINT)
    for run in ("sprites", "sprites-64"):
        fomm.save_checkpoint(root / "runs" / run / "checkpoint.pth.tar", model)
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("docs")
    _make_workspace(root)
    return root


RUNNABLE = [command for command in COMMANDS if command.text not in NOT_RUN]


@pytest.mark.parametrize("command", RUNNABLE, ids=str)
def test_documented_command_runs(command: DocCommand, workspace: Path):
    environment = dict(os.environ, OMP_NUM_THREADS="1", FOMM_OFFLINE="1")
    result = subprocess.run([sys.executable, "-m", "fomm.cli", *command.argv], cwd=workspace,
                            capture_output=True, text=True, timeout=300, env=environment)
    assert result.returncode == 0, f"{command}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
