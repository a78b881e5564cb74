"""`fomm evaluate --cross-identity` (issue 23): animations of one figure by another's motion against
the exact ground truth. A perfect animation scores 0, the source repeated scores the baseline, a
real model lies between; real model objects throughout (tiny nn.Modules, the bundled model)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import fomm
from fomm.assets import BUNDLED_CHECKPOINT
from fomm.cli import main
from fomm.data.synthetic import list_cross_pairs, make_dataset
from fomm.data.video import read_video
from fomm.evaluation import ColorHistogramEmbedding, LandmarkConfig, LandmarkNet, TrainedLandmarkDetector
from fomm.evaluation.cross_identity import Animation, ModelAnimation, evaluate_cross_identity
from fomm.evaluation.metrics import embedding_distances, gaussian_blur
from fomm.evaluation.protocol import read_frames
from tests.script_modules import load_script

appearance_controls = load_script("appearance_controls")

SHAPE = (64, 64, 3)


def _key(frames: torch.Tensor) -> bytes:
    return (frames * 255).round().to(torch.uint8).numpy().tobytes()


class GroundTruthAnimation(torch.nn.Module):
    """A perfect animation of the pairs of one dataset: driven by a pair's driving video it returns
    that pair's truth; driven by a truth video (the oracle: the source's own motion made perfect)
    it returns that video, as a perfect model reconstructing its own figure would."""

    def __init__(self, dataset: Path) -> None:
        super().__init__()
        self.answers: dict[tuple[bytes, bytes], torch.Tensor] = {}
        for pair in list_cross_pairs(dataset):
            source, driving, truth = (torch.from_numpy(read_video(p)).permute(0, 3, 1, 2).float() / 255
                                      for p in (pair.source, pair.driving, pair.truth))
            self.answers[_key(source[0]), _key(driving)] = truth
            self.answers[_key(source[0]), _key(truth)] = truth

    def forward(self, source: torch.Tensor, driving: torch.Tensor) -> torch.Tensor:
        return self.answers[_key(source), _key(driving)].clone()


class RepeatSource(torch.nn.Module):
    """No motion at all: the source image for every driving frame."""

    def forward(self, source: torch.Tensor, driving: torch.Tensor) -> torch.Tensor:
        return source[None].repeat(len(driving), 1, 1, 1)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cross") / "sprites"
    make_dataset("sprites", root, videos=6, frames=12, size=64, seed=4242, test_fraction=0.5, workers=1,
                 cross_pairs=3)
    return root


def _detector() -> TrainedLandmarkDetector:
    torch.manual_seed(0)
    return TrainedLandmarkDetector(LandmarkNet(LandmarkConfig(num_joints=15, width=8)))


def test_a_perfect_animation_scores_zero_and_its_oracle_too(dataset):
    assert isinstance(GroundTruthAnimation(dataset), Animation)
    result = evaluate_cross_identity(GroundTruthAnimation(dataset), dataset, SHAPE, landmark_detector=_detector(),
                                     embedding=ColorHistogramEmbedding())
    for name in ("L1", "L1_moving", "L1_oracle", "L1_moving_oracle", "moving_vs_repeat_source", "appearance"):
        assert result.value(name) == 0, name
    # 0 / 0 against its own oracle: no ratio and no interval, each with its reason (not nan)
    ratios = {metric.name: metric for metric in result.metrics if metric.name.startswith("moving_vs_oracle")}
    assert set(ratios) == {"moving_vs_oracle", "moving_vs_oracle_low", "moving_vs_oracle_high"}
    assert all(metric.value is None for metric in ratios.values())
    assert ratios["moving_vs_oracle_low"].note == ratios["moving_vs_oracle"].note == "the denominator is zero: no ratio"
    assert result.value("L1_moving_repeat_source") > 0.05  # the pairs do move
    # The detector sees the truth itself: its error is exactly its own floor.
    assert result.value("pose_error") == result.value("pose_error_truth") > 0
    assert result.value("transfer_gap") > 0.3  # the rule misses even with perfect keypoints
    assert len(result.videos) == 3 and result.row_kind == "pair"


def test_repeating_the_source_scores_the_baseline(dataset):
    result = evaluate_cross_identity(RepeatSource(), dataset, SHAPE, embedding=ColorHistogramEmbedding())
    assert result.value("L1") == result.value("L1_repeat_source") > 0
    assert result.value("L1_moving") == result.value("L1_moving_repeat_source") > result.value("L1")
    assert result.value("moving_vs_repeat_source") == 1
    # Every resampling of the pairs gives the same ratio: the interval is the point.
    assert result.value("moving_vs_repeat_source_low") == pytest.approx(1)
    assert result.value("moving_vs_repeat_source_high") == pytest.approx(1)
    assert result.value("appearance") == result.value("appearance_repeat_source")
    # Repeating the source is its own oracle: the truth video does not move it either.
    assert result.value("L1_oracle") == result.value("L1")
    for row in result.videos:
        assert row.l1_moving == row.repeat_l1_moving and 0 < row.moving_fraction < 1


def test_the_bundled_model_lies_between_perfect_and_no_motion(dataset):
    model = fomm.load_checkpoint(BUNDLED_CHECKPOINT)
    result = evaluate_cross_identity(ModelAnimation(model), dataset, SHAPE, num_pairs=2)
    assert len(result.videos) == 2
    assert 0 < result.value("L1_moving") < result.value("L1_moving_repeat_source")
    assert 0 < result.value("L1_moving_oracle") < result.value("L1_moving_repeat_source")
    ratio = result.value("moving_vs_repeat_source")
    assert ratio == pytest.approx(result.value("L1_moving") / result.value("L1_moving_repeat_source"))
    # Pooled over every moving pixel of every pair: a weighted mean of the pairs' own figures.
    rows = result.videos
    low, high = min(r.l1_moving for r in rows), max(r.l1_moving for r in rows)
    assert low <= result.value("L1_moving") <= high
    # Resampling two pairs spans the ratios of each pair alone (and holds the pooled one).
    for name, baseline in (("moving_vs_repeat_source", "repeat_l1_moving"), ("moving_vs_oracle", "oracle_l1_moving")):
        alone = [r.l1_moving / getattr(r, baseline) for r in rows]
        assert result.value(f"{name}_low") == pytest.approx(min(alone))
        assert result.value(f"{name}_high") == pytest.approx(max(alone))
        assert min(alone) <= result.value(name) <= max(alone)


def test_evaluate_cross_identity_command_writes_its_table_and_videos(dataset, tmp_path, capsys):
    out, videos = tmp_path / "out", tmp_path / "videos"
    code = main(["evaluate", "--cross-identity", "--dataset", str(dataset), "--num-videos", "1", "--device", "cpu",
                 "--embedding", "none", "--out", str(out), "--videos", str(videos)])
    printed = capsys.readouterr().out
    assert code == 0
    assert "L1_moving_oracle" in printed and "moving_vs_repeat_source" in printed
    assert sorted(p.name for p in out.iterdir()) == ["metrics.csv", "metrics.json", "per_pair.csv"]
    data = json.loads((out / "metrics.json").read_text())
    assert data["settings"]["protocol"] == "cross-identity" and len(data["pairs"]) == 1
    pair = list_cross_pairs(dataset)[0]
    written = videos / f"{pair.name}.mp4"
    assert written.is_file() and len(read_video(written)) == 12


def test_adapt_scale_changes_the_cross_identity_animation_and_is_recorded(dataset, tmp_path, capsys):
    figures = {}
    for adapt in (False, True):
        out = tmp_path / f"adapt-{adapt}"
        code = main(["evaluate", "--cross-identity", "--dataset", str(dataset), "--num-videos", "2", "--device", "cpu",
                     "--embedding", "none", "--out", str(out), *(["--adapt-scale"] if adapt else [])])
        assert code == 0, capsys.readouterr().err
        data = json.loads((out / "metrics.json").read_text())
        assert data["settings"]["adapt_scale"] is adapt
        figures[adapt] = data["metrics"]
    # The oracle is driven by the truth itself (the same figure), the animation by another figure.
    assert figures[True]["L1_moving"]["value"] != figures[False]["L1_moving"]["value"]
    assert figures[True]["L1_moving_repeat_source"] == figures[False]["L1_moving_repeat_source"]


def test_adapt_scale_without_cross_identity_is_refused_in_one_line(dataset, tmp_path, capsys):
    code = main(["evaluate", "--adapt-scale", "--dataset", str(dataset), "--device", "cpu", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "--adapt-scale" in err and len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_the_smooth_histogram_is_a_colour_distribution_and_tells_colours_apart(dataset):
    truth = read_frames(list_cross_pairs(dataset)[0].truth, SHAPE)
    for embedding in (ColorHistogramEmbedding(smooth=True), ColorHistogramEmbedding(smooth=True, blur_sigma=0)):
        vectors = embedding(truth)
        assert vectors.shape == (len(truth), 8 ** 3) and (vectors >= 0).all()
        assert torch.allclose((vectors ** 2).sum(dim=1), torch.ones(len(truth)), atol=1e-5)
        assert embedding_distances(embedding, truth, truth).max() == 0
        # The same pixels with red and blue swapped: every colour changes, nothing moves.
        assert embedding_distances(embedding, truth.flip(1), truth).min() > 0.5
    with pytest.raises(ValueError, match="blur_sigma"):
        ColorHistogramEmbedding(smooth=True, blur_sigma=-1)


def test_gaussian_blur_keeps_a_flat_image_and_the_mean():
    flat = torch.full((2, 3, 9, 11), 0.3)
    assert torch.allclose(gaussian_blur(flat, 1.5), flat)
    torch.manual_seed(0)
    noise = torch.rand(1, 3, 32, 32)
    blurred = gaussian_blur(noise, 1.0)
    assert blurred.shape == noise.shape and blurred.std() < noise.std() / 2
    assert blurred.mean() == pytest.approx(noise.mean().item(), abs=0.01)
    assert gaussian_blur(noise, 0) is noise


def test_appearance_controls_show_resampling_counts_less_with_the_smooth_histogram(dataset, capsys):
    """scripts/appearance_controls.py on real cross pairs: half a pixel of resampling of the truth
    against another figure's frames, for both histograms."""
    assert appearance_controls.main([str(dataset)]) == 0
    rows = {line.split()[0]: [float(value) for value in line.split()[1:]]
            for line in capsys.readouterr().out.splitlines()[2:]}
    hard, smooth = rows["color-histogram"], rows["smooth-color-histogram"]
    half_pixel, blurred, other_figure, separation = 1, 3, 5, 6
    assert smooth[half_pixel] < hard[half_pixel] / 2
    assert smooth[other_figure] > 5 * smooth[half_pixel]
    assert smooth[separation] > hard[separation]
    # It still sees a washed-out figure: a blur of the truth reads well above half a pixel's shift.
    assert smooth[blurred] > 1.5 * smooth[half_pixel]


def test_evaluate_names_the_embedding_it_used(dataset, tmp_path):
    out = tmp_path / "out"
    assert main(["evaluate", "--cross-identity", "--dataset", str(dataset), "--num-videos", "1", "--device", "cpu",
                 "--embedding", "smooth-color-histogram", "--out", str(out)]) == 0
    data = json.loads((out / "metrics.json").read_text())
    assert data["settings"]["embedding"] == "ColorHistogramEmbedding(bins=8, smooth=True, blur_sigma=1.0)"
    assert "smooth=True" in data["metrics"]["appearance"]["description"]
    assert 0 < data["metrics"]["appearance"]["value"] < 2 ** 0.5


def test_cross_identity_on_a_dataset_without_pairs_is_one_line(tmp_path, capsys):
    make_dataset("sprites", tmp_path / "plain", videos=2, frames=3, size=32, workers=1)
    code = main(["evaluate", "--cross-identity", "--dataset", str(tmp_path / "plain"), "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2 and "--cross-pairs N" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("meta", ["[1, 2]", '"a string"', "{not json"])
def test_evaluate_refuses_a_meta_json_that_is_not_an_object(dataset, tmp_path, capsys, meta):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "meta.json").write_text(meta)
    for link in ("train", "test"):
        (broken / link).symlink_to(dataset / link)
    code = main(["evaluate", "--dataset", str(broken), "--device", "cpu", "--num-videos", "1"])
    err = capsys.readouterr().err
    assert code == 2 and "meta.json" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("option, name", [("--csv", "m.csv"), ("--json", "m.json")])
def test_evaluate_refuses_a_file_in_a_missing_folder_as_every_command_does(dataset, tmp_path, capsys, option, name):
    target = tmp_path / "missing" / name
    code = main(["evaluate", "--dataset", str(dataset), "--device", "cpu", option, str(target)])
    err = capsys.readouterr().err
    assert code == 2 and "does not exist" in err
    assert not (tmp_path / "missing").exists()


# --------------------------------------------------------------------------------------------
# the bundled model, judged on the task (docs/bundled-model.md)

#: Issue 23's bar on moving pixels: at most this share of the error of repeating the source, and at
#: most this multiple of the model's own self-reconstruction error on the same pixels (the oracle).
BAR_VS_REPEAT, BAR_VS_ORACLE = 0.45, 1.10
#: What the shipped model (5y, with its learned transfer) measures on this file's 4-pair split (0.455
#: and 1.055; on the 48-pair splits it was judged on, 0.424-0.438 and 1.060-1.090,
#: docs/bundled-model.md), with a margin: a change that makes it animate other figures worse fails here.
SHIPPED_VS_REPEAT, SHIPPED_VS_ORACLE = 0.50, 1.15


@pytest.fixture(scope="module")
def fresh_split(tmp_path_factory) -> Path:
    """4 cross pairs of 32 frames from a sprites seed used for no choice (5005)."""
    root = tmp_path_factory.mktemp("fresh") / "sprites-5005"
    make_dataset("sprites", root, videos=6, frames=32, size=64, seed=5005, test_fraction=0.5, workers=1,
                 cross_pairs=4)
    return root


@pytest.fixture(scope="module")
def bundled_model():
    return fomm.load_checkpoint(BUNDLED_CHECKPOINT)


@pytest.fixture(scope="module")
def bundled_on_a_fresh_split(fresh_split, bundled_model):
    """The bundled model on that split, as ``fomm animate`` runs it (its learned transfer)."""
    return evaluate_cross_identity(ModelAnimation(bundled_model), fresh_split, SHAPE)


def test_the_bundled_model_animates_other_figures_as_documented(bundled_on_a_fresh_split):
    result = bundled_on_a_fresh_split
    assert result.value("moving_vs_repeat_source") <= SHIPPED_VS_REPEAT
    assert result.value("moving_vs_oracle") <= SHIPPED_VS_ORACLE


#: The seeds of the two 48-pair splits the shipped model was judged on, read once each by the rule
#: written before they were made (docs/bundled-model.md, "5y").
JUDGED_SEEDS = (21021, 22022)


@pytest.mark.parametrize("seed", JUDGED_SEEDS)
def test_the_bundled_model_meets_the_cross_identity_bar_on_the_splits_it_was_judged_on(seed, bundled_model, tmp_path):
    """Issue 23's bar, held where it was judged: the split is made again, byte for byte as `fomm
    make-dataset sprites --videos 96 --frames 32 --size 64 --seed S --test-fraction 0.5
    --cross-pairs 48` made it, and the bundled model animates it as `fomm animate` does. (A 4-pair
    split, as above, is too small to judge the bar on: its intervals span 0.1.)"""
    root = make_dataset("sprites", tmp_path / f"test-{seed}", videos=96, frames=32, size=64, seed=seed,
                        test_fraction=0.5, workers=1, cross_pairs=48).out
    result = evaluate_cross_identity(ModelAnimation(bundled_model), root, SHAPE)
    assert result.value("moving_vs_repeat_source") <= BAR_VS_REPEAT
    assert result.value("moving_vs_oracle") <= BAR_VS_ORACLE


def test_the_bundled_models_learned_transfer_moves_the_figures_closer_to_the_truth(
        fresh_split, bundled_model, bundled_on_a_fresh_split):
    """The shipped point transfer, on a split it never saw: its frames are nearer the truth on
    moving pixels than the same model's relative motion, against the same oracle."""
    assert bundled_model.default_motion().mode == "learned"
    relative = evaluate_cross_identity(ModelAnimation(bundled_model, motion="relative"), fresh_split, SHAPE)
    learned = bundled_on_a_fresh_split
    assert learned.value("L1_moving") < relative.value("L1_moving")
    assert learned.value("L1_moving_oracle") == relative.value("L1_moving_oracle")


#: Models kept in candidates/ (candidates/README.md): the previous bundled model (stage 4) and 5w
#: (docs/bundled-model.md, "5w: the chain in one schedule"): the file, its keypoints and the scale of
#: its dense motion field.
CANDIDATES = Path(__file__).resolve().parents[1] / "candidates"
CANDIDATE_MODELS = {"stage4": (CANDIDATES / "sprites-64-stage4.pt", 10, 0.5),
                    "5w": (CANDIDATES / "sprites-64-5w.pt", 15, 0.5)}


@pytest.mark.parametrize("name", sorted(CANDIDATE_MODELS))
def test_the_committed_candidate_reads_back_and_animates_other_figures_worse_than_shipped(
        name, fresh_split, bundled_on_a_fresh_split):
    path, num_kp, scale = CANDIDATE_MODELS[name]
    model = fomm.load_checkpoint(path)
    assert model.config.model_params.common_params.num_kp == num_kp
    assert model.config.model_params.generator_params.dense_motion_params.scale_factor == scale
    assert all(p.dtype == torch.float32 for p in model.parameters())  # fp16 or fp32 on disk, fp32 to run
    candidate = evaluate_cross_identity(ModelAnimation(model), fresh_split, SHAPE)
    assert bundled_on_a_fresh_split.value("moving_vs_repeat_source") < candidate.value("moving_vs_repeat_source")
