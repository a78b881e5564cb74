"""`fomm visualize`: the motion picture of one driving frame, with and without a keypoint graph."""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import pytest
import torch

import fomm
from fomm.cli import main
from fomm.config import FommConfig
from fomm.models.registry import load_config
from fomm.data.video import read_video, write_video
from fomm.visualize import analyse_frame, motion_figure

from .test_evaluate import (
    REFERENCE,
    finished_files,
    make_synthetic,
    save_reference_checkpoint,
)


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> tuple[Path, Path]:
    """A source PNG and a driving mp4 of 8 frames, from a synthetic sprite video."""
    root = make_synthetic(tmp_path_factory.mktemp("sprites"), videos=2)
    frames = read_video(next((root / "test").glob("*.png")))
    folder = tmp_path_factory.mktemp("media")
    iio.imwrite(folder / "source.png", frames[0])
    return folder / "source.png", write_video(folder / "driving.mp4", frames, fps=10)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return save_reference_checkpoint(tmp_path_factory.mktemp("ckpt") / "model.pt")


def _visualize(checkpoint: Path, source: Path, driving: Path, out: Path, *extra: str) -> int:
    return main(["visualize", "--checkpoint", str(checkpoint), "--source", str(source), "--driving", str(driving),
                 "--out", str(out), "--device", "cpu", *extra])


def test_visualize_writes_a_picture(checkpoint, media, tmp_path, capsys):
    source, driving = media
    out = tmp_path / "pictures" / "motion.png"
    assert _visualize(checkpoint, source, driving, out, "--frame", "5") == 0
    assert "wrote" in capsys.readouterr().out
    picture = iio.imread(out)
    assert picture.ndim == 3 and picture.shape[0] > 300 and picture.shape[1] > 1000
    assert picture[..., :3].std() > 10  # not blank
    assert finished_files(out.parent) == ["motion.png"]


def test_graph_edges_and_adjacency_are_drawn_when_the_model_has_a_graph(media, tmp_path):
    data = load_config(REFERENCE / "config.yaml").to_dict()
    data["model_params"]["graph_params"] = {"hidden_features": 16, "adjacency_threshold": 0.5}
    model = fomm.build_model(FommConfig.from_dict(data)).eval()
    with torch.no_grad():  # a structured adjacency: strong edges along a chain, weak elsewhere
        logits = torch.full((10, 10), -4.0)
        for i in range(9):
            logits[i, i + 1] = logits[i + 1, i] = 2.0
        model.kp_detector.graph.adjacency_logits.copy_(logits)
    frames = torch.rand(2, 3, 64, 64)
    analysis = analyse_frame(model, frames[0], frames[1])
    assert analysis.adjacency.shape == (10, 10) and analysis.adjacency_threshold == 0.5
    figure = motion_figure(analysis)
    titles = [axis.get_title() for axis in figure.axes]
    assert any(title.startswith("adjacency") for title in titles)
    source_axis = next(axis for axis in figure.axes if axis.get_title() == "source")
    widths = sorted({round(line.get_linewidth(), 3) for line in source_axis.lines})
    assert len(source_axis.lines) == 9 and widths  # the 9 chain edges, none of the weak ones
    assert sum(title.startswith("heatmap") for title in titles) == 10
    assert sum(title.startswith("mask") and title != "masks (all)" for title in titles) == 11

    # and through the command, from a checkpoint
    checkpoint = fomm.save_checkpoint(tmp_path / "graph.pt", model)
    source, driving = media
    assert _visualize(checkpoint, source, driving, tmp_path / "graph.png", "--absolute") == 0
    assert iio.imread(tmp_path / "graph.png").shape[1] > 1000


def test_visualize_bad_inputs_fail_with_one_line_and_no_picture(checkpoint, media, tmp_path, capsys):
    source, driving = media
    out = tmp_path / "motion.png"
    cases = [
        ((checkpoint, source, driving, out, "--frame", "8"), "out of range"),
        ((checkpoint, source, driving, out, "--frame", "-1"), "out of range"),
        ((checkpoint, tmp_path / "none.png", driving, out), "source not found"),
        ((checkpoint, source, tmp_path / "none.mp4", out), "driving video not found"),
        ((checkpoint, source, driving, tmp_path / "motion.txt"), "--out"),
        ((tmp_path / "none.pt", source, driving, out), "checkpoint not found"),
    ]
    for arguments, expected in cases:
        code = _visualize(*arguments)
        error = capsys.readouterr().err
        assert code == 2, error
        assert error.startswith("fomm visualize: error:") and expected in error, error
    assert finished_files(tmp_path) == []
