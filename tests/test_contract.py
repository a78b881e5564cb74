"""The command-line contract, under random input: every command either succeeds with complete
outputs (exit 0) or refuses in one line (exit 2) and writes nothing; never a traceback.

Arguments are drawn by Hypothesis from pools of good and bad values: numbers (0, negative, huge,
NaN, infinite, not a number at all), and files (good media and checkpoints, garbage bytes,
truncated videos and checkpoints, empty files, folders, missing paths, outputs in missing folders
or with unknown extensions). The known single cases, one line each, are in tests/test_cli.py.
"""

from __future__ import annotations

import contextlib
import io
import shutil
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fomm.assets import BUNDLED_CHECKPOINT, BUNDLED_DRIVING, BUNDLED_SOURCE
from fomm.cli import main
from fomm.data.synthetic import make_dataset

from .train_helpers import TINY_CONFIG

NUMBERS = ["1", "2", "0", "-1", "1000000000", "nan", "inf", "-inf", "0.0001", "abc", ""]


@pytest.fixture(scope="module")
def pool(tmp_path_factory) -> Path:
    """Inputs good and bad, made once; commands run in their own folders beside it."""
    root = tmp_path_factory.mktemp("pool")
    shutil.copyfile(BUNDLED_SOURCE, root / "good.png")
    shutil.copyfile(BUNDLED_DRIVING, root / "good.mp4")
    shutil.copyfile(BUNDLED_CHECKPOINT, root / "good.pt")
    data = BUNDLED_DRIVING.read_bytes()
    (root / "truncated.mp4").write_bytes(data[: len(data) // 3])
    checkpoint = BUNDLED_CHECKPOINT.read_bytes()
    (root / "truncated.pt").write_bytes(checkpoint[: len(checkpoint) // 2])
    garbage = bytes((index * 7919) % 251 for index in range(5000))
    for name in ("garbage.mp4", "garbage.png", "garbage.pt", "garbage.yaml", "garbage.csv"):
        (root / name).write_bytes(garbage)
    (root / "empty.mp4").write_bytes(b"")
    (root / "folder").mkdir()
    make_dataset("sprites", root / "dataset", videos=4, frames=4, size=64, seed=0, test_fraction=0.5, workers=1)
    config = dict(TINY_CONFIG, dataset_params={"root_dir": str(root / "dataset"), "frame_shape": [32, 32, 3]})
    (root / "tiny.yaml").write_text(yaml.safe_dump(config))
    (root / "wrong-key.yaml").write_text(yaml.safe_dump(dict(config, model_parms={})))
    return root


INPUTS = ["good", "missing", "garbage", "truncated", "empty", "folder"]
OUTPUT_NAMES = ["out.mp4", "out.gif", "out.xyz", "missing/out.mp4", "folder", "out"]


def _input(pool: Path, kind: str, suffix: str) -> str:
    return str(pool / "folder") if kind == "folder" else str(pool / f"{kind}{suffix}")


def _output(work: Path, name: str) -> str:
    if name == "folder":
        (work / "folder").mkdir(exist_ok=True)
    return str(work / name)


def _options(draw, choices: dict[str, list[str]]) -> list[str]:
    argv: list[str] = []
    for option, values in choices.items():
        if draw(st.booleans()):
            argv += [option, draw(st.sampled_from(values))]
    return argv


@st.composite
def animate_argv(draw, pool: Path, work: Path) -> list[str]:
    argv = ["animate", "--device", "cpu",
            "--source", _input(pool, draw(st.sampled_from(INPUTS)), ".png"),
            "--driving", _input(pool, draw(st.sampled_from(INPUTS)), ".mp4"),
            "--out", _output(work, draw(st.sampled_from(OUTPUT_NAMES)))]
    if draw(st.booleans()):
        argv += ["--checkpoint", _input(pool, draw(st.sampled_from(INPUTS)), ".pt")]
    argv += _options(draw, {"--fps": NUMBERS, "--batch-size": NUMBERS, "--threads": NUMBERS,
                            "--best-frame": NUMBERS, "--gif": [_output(work, "side.gif"), _output(work, "x.mp4")],
                            "--side-by-side": [_output(work, "panels.mp4"), _output(work, "out.mp4")]})
    return argv


@st.composite
def visualize_argv(draw, pool: Path, work: Path) -> list[str]:
    return ["visualize", "--device", "cpu",
            "--source", _input(pool, draw(st.sampled_from(INPUTS)), ".png"),
            "--driving", _input(pool, draw(st.sampled_from(INPUTS)), ".mp4"),
            "--out", _output(work, draw(st.sampled_from(["motion.png", "motion.xyz", "folder", "missing/m.png"])))
            ] + _options(draw, {"--frame": NUMBERS})


@st.composite
def evaluate_argv(draw, pool: Path, work: Path) -> list[str]:
    dataset = draw(st.sampled_from([str(pool / "dataset"), str(pool / "missing"), str(pool / "folder"),
                                    str(pool / "good.mp4")]))
    command = draw(st.sampled_from(["evaluate", "reconstruct"]))
    return [command, "--device", "cpu", "--dataset", dataset,
            "--out", _output(work, draw(st.sampled_from(["results", "folder", "missing/results"])))
            ] + _options(draw, {"--num-videos": NUMBERS, "--batch-size": NUMBERS})


@st.composite
def make_dataset_argv(draw, pool: Path, work: Path) -> list[str]:
    return ["make-dataset", draw(st.sampled_from(["sprites", "warped-photos", "nonsense"])),
            "--out", _output(work, draw(st.sampled_from(["ds", "folder", "missing/ds"]))),
            "--workers", "1", "--quiet",
            "--videos", draw(st.sampled_from(["2", "0", "-1", "abc"])),
            "--frames", draw(st.sampled_from(["3", "0", "1000000000"])),
            "--size", draw(st.sampled_from(["32", "33", "0", "7", "100000"]))
            ] + _options(draw, {"--test-fraction": ["0.5", "1.5", "nan", "-0.1"],
                                "--format": ["png-strip", "mp4", "bogus"]})


@st.composite
def train_argv(draw, pool: Path, work: Path) -> list[str]:
    config = draw(st.sampled_from([str(pool / "tiny.yaml"), str(pool / "wrong-key.yaml"),
                                   str(pool / "garbage.yaml"), str(pool / "missing.yaml"), "no-such-config"]))
    return ["train", "--config", config, "--device", "cpu", "--no-progress",
            "--log-dir", _output(work, draw(st.sampled_from(["run", "missing/run"]))),
            "--max-steps", draw(st.sampled_from(["1", "0", "-1", "abc"]))
            ] + _options(draw, {"--checkpoint": [_input(pool, kind, ".pt") for kind in INPUTS],
                                "--threads": NUMBERS})


@st.composite
def export_argv(draw, pool: Path, work: Path) -> list[str]:
    return ["export", "--no-check",
            "--checkpoint", _input(pool, draw(st.sampled_from(["good", "garbage", "truncated", "missing"])), ".pt"),
            "--out", _output(work, draw(st.sampled_from(["onnx", "folder", "out.mp4"]))),
            "--opset", draw(st.sampled_from(["18", "3", "-1", "abc"]))]


def run_contract(argv: list[str], work: Path) -> None:
    before = {path for path in work.rglob("*")}
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(argv)
        except SystemExit as exit:  # argparse's own refusals
            code = exit.code
    message = [line for line in stderr.getvalue().splitlines() if line.strip() and "\r" not in line]
    if code == 0:
        out = argv[argv.index("--out") + 1] if "--out" in argv else None
        if out is not None:
            assert Path(out).exists(), f"{argv}: exit 0 but {out} was not written"
        return
    assert code == 2, f"{argv}: exit {code}\n{stderr.getvalue()[-3000:]}"
    assert len(message) == 1 and ": error:" in message[0], f"{argv}: not one line:\n{stderr.getvalue()[-3000:]}"
    assert "Traceback" not in stderr.getvalue()
    new = {path for path in work.rglob("*")} - before
    assert not new, f"{argv}: exit 2 but wrote {sorted(map(str, new))}"


COMMANDS = {"animate": animate_argv, "visualize": visualize_argv, "evaluate": evaluate_argv,
            "make-dataset": make_dataset_argv, "train": train_argv, "export": export_argv}
EXAMPLES = {"animate": 25, "visualize": 12, "evaluate": 12, "make-dataset": 15, "train": 12, "export": 1}
#: The slow set's budget: twenty times the default's (each run draws new examples).
LARGER_EXAMPLES = {command: 20 * count for command, count in EXAMPLES.items()}


def fuzz(command: str, examples: int, derandomize: bool, pool: Path, tmp_path_factory) -> None:
    @settings(max_examples=examples, deadline=None, derandomize=derandomize, database=None,
              suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def check(data):
        work = tmp_path_factory.mktemp(command)
        (work / "folder").mkdir(exist_ok=True)  # an existing folder, given where a file is expected
        argv = data.draw(COMMANDS[command](pool, work))
        run_contract(argv, work)

    check()


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_command_exits_0_with_outputs_or_2_with_one_line_and_no_files(command, pool, tmp_path_factory):
    fuzz(command, EXAMPLES[command], True, pool, tmp_path_factory)


@pytest.mark.slow
@pytest.mark.parametrize("command", list(COMMANDS))
def test_the_contract_holds_under_a_larger_fresh_fuzz_budget(command, pool, tmp_path_factory):
    """The same contract on 20x the examples, drawn afresh each run (pytest -m slow)."""
    fuzz(command, LARGER_EXAMPLES[command], False, pool, tmp_path_factory)
