"""FID: the Fréchet distance on known answers, the streamed feature statistics, a TorchScript
feature network made here and used through `fomm evaluate --fid-network`, and the one-line errors
for files that are not such a network."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch
from torch import nn

from fomm.cli import main
from fomm.errors import CheckpointError, DataError
from fomm.evaluation import FeatureNetwork, FeatureStatistics, frechet_distance, load_feature_network
from fomm.evaluation.fid import fid

from .test_evaluate import make_synthetic, save_reference_checkpoint


class TinyFeatures(nn.Module):
    """(B, 3, H, W) -> (B, 6, 1, 1): one strided convolution, ReLU, global average pooling."""

    def __init__(self, pool: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, stride=2)
        self.pool = pool

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        features = torch.relu(self.conv(frames * 2 - 1))
        return features.mean(dim=(2, 3), keepdim=True) if self.pool else features


def save_scripted(path: Path, pool: bool = True) -> Path:
    torch.manual_seed(0)
    torch.jit.script(TinyFeatures(pool)).save(str(path))
    return path


@pytest.fixture(scope="module")
def sprites(tmp_path_factory) -> Path:
    return make_synthetic(tmp_path_factory.mktemp("sprites"))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return save_reference_checkpoint(tmp_path_factory.mktemp("ckpt") / "model.pt")


@pytest.fixture(scope="module")
def network_file(tmp_path_factory) -> Path:
    return save_scripted(tmp_path_factory.mktemp("net") / "features.pt")


# --------------------------------------------------------------------------------------------
# the distance


def test_frechet_distance_of_diagonal_gaussians_is_the_closed_form():
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=5), rng.normal(size=5)
    var1, var2 = rng.uniform(0.1, 3, 5), rng.uniform(0.1, 3, 5)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(var1) - np.sqrt(var2)) ** 2)
    assert frechet_distance(mu1, np.diag(var1), mu2, np.diag(var2)) == pytest.approx(expected, rel=1e-10)
    # one dimension: (m1 - m2)^2 + (s1 - s2)^2
    assert frechet_distance(np.array([1.0]), np.array([[4.0]]), np.array([-1.0]), np.array([[1.0]])) == (
        pytest.approx(4 + 1))
    assert frechet_distance(mu1, np.diag(var1), mu1, np.diag(var1)) == pytest.approx(0.0, abs=1e-12)


def test_frechet_distance_of_full_covariances_matches_the_textbook_sqrtm_formula():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(40, 8)), rng.normal(size=(40, 8)) @ rng.normal(size=(8, 8))
    sigma1, sigma2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    mu1, mu2 = a.mean(0), b.mean(0)
    cross = scipy.linalg.sqrtm(sigma1 @ sigma2).real
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(sigma1 + sigma2 - 2 * cross)
    assert frechet_distance(mu1, sigma1, mu2, sigma2) == pytest.approx(expected, rel=1e-8)
    assert frechet_distance(mu2, sigma2, mu1, sigma1) == pytest.approx(expected, rel=1e-8)  # symmetric
    with pytest.raises(ValueError, match="covariances"):
        frechet_distance(mu1, sigma1, mu2[:4], sigma2)


def test_streamed_statistics_equal_those_of_all_features_at_once():
    rng = np.random.default_rng(2)
    features = rng.normal(loc=1000.0, size=(50, 4))  # a large mean: the naive sum of squares loses digits
    streamed = FeatureStatistics()
    for part in np.array_split(features, [3, 4, 20, 20]):
        streamed.add(part)
    assert streamed.count == 50
    np.testing.assert_allclose(streamed.mean, features.mean(0), rtol=1e-12)
    np.testing.assert_allclose(streamed.covariance, np.cov(features, rowvar=False), rtol=1e-9, atol=1e-12)
    shifted = FeatureStatistics.of(features + np.array([3.0, 0.0, 4.0, 0.0]))
    # a pure shift of the features: FID is the squared length of the shift
    assert streamed.frechet_distance(shifted) == pytest.approx(25.0, rel=1e-6)
    with pytest.raises(DataError, match="at least 2 frames"):
        _ = FeatureStatistics.of(features[:1]).covariance


# --------------------------------------------------------------------------------------------
# the network


def test_fid_of_identical_frame_sets_is_zero_and_of_different_ones_is_not(network_file):
    network = load_feature_network(network_file, batch_size=5)
    assert network.check(64, 64) == 6
    torch.manual_seed(0)
    frames = torch.rand(12, 3, 32, 32)
    assert fid(network, frames, frames.clone()) == pytest.approx(0.0, abs=1e-9)
    assert fid(network, frames, frames.flip(0), batch_size=4) == pytest.approx(0.0, abs=1e-9)  # a set: order-free
    darker = fid(network, frames * 0.5, frames)
    assert darker > 1e-4
    # a plain callable (a module not exported) gives the same number as the scripted file
    eager = TinyFeatures()
    eager.load_state_dict(torch.jit.load(str(network_file)).state_dict())
    assert fid(eager, frames * 0.5, frames) == pytest.approx(darker, rel=1e-6)
    with pytest.raises(DataError, match="at least 2 generated frames"):
        fid(network, frames[:1], frames)


def test_fid_through_the_evaluate_command(checkpoint, sprites, network_file, tmp_path, capsys):
    import fomm
    from fomm.data.video import read_video
    from fomm.evaluation import reconstruct_video

    out = tmp_path / "metrics.json"
    assert main(["evaluate", "--checkpoint", str(checkpoint), "--dataset", str(sprites), "--fid-network",
                 str(network_file), "--embedding", "none", "--json", str(out), "--device", "cpu",
                 "--batch-size", "3"]) == 0
    assert "FID" in capsys.readouterr().out
    data = json.loads(out.read_text())
    value = data["metrics"]["FID"]["value"]
    assert value is not None and value > 0 and data["metrics"]["FID"]["note"] == ""
    assert "features.pt" in data["metrics"]["FID"]["description"]
    assert data["settings"]["feature_network"] == "features.pt"

    # the same number from the library: every generated frame against every driving frame
    model = fomm.load_checkpoint(checkpoint)
    generated, driving = [], []
    for path in sorted((sprites / "test").glob("*.png")):
        frames = torch.from_numpy(read_video(path, (64, 64, 3))).permute(0, 3, 1, 2).float() / 255
        generated.append(reconstruct_video(model, frames).prediction)
        driving.append(frames)
    expected = fid(load_feature_network(network_file), torch.cat(generated), torch.cat(driving))
    assert value == pytest.approx(expected, rel=1e-4)


def test_bad_feature_networks_fail_with_one_line(checkpoint, sprites, tmp_path, capsys):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a network")
    state_dict = tmp_path / "weights.pt"
    torch.save(TinyFeatures().state_dict(), state_dict)
    feature_map = save_scripted(tmp_path / "map.pt", pool=False)  # (B, 6, 31, 31): not pooled

    with pytest.raises(CheckpointError, match="not found"):
        load_feature_network(tmp_path / "absent.pt")
    with pytest.raises(CheckpointError, match="not a TorchScript module"):
        load_feature_network(state_dict)
    with pytest.raises(CheckpointError, match=r"shape \(2, 6, 31, 31\)"):
        load_feature_network(feature_map).check(64, 64)
    with pytest.raises(CheckpointError, match="NaN"):
        FeatureNetwork(lambda frames: torch.full((len(frames), 3), float("nan"))).check(8, 8)

    out = tmp_path / "out"
    cases = [
        (tmp_path / "absent.pt", "feature network not found"),
        (garbage, "not a TorchScript module"),
        (state_dict, "not a TorchScript module"),
        (feature_map, "(B, D) or (B, D, 1, 1)"),
    ]
    for path, expected in cases:
        code = main(["evaluate", "--checkpoint", str(checkpoint), "--dataset", str(sprites), "--fid-network",
                     str(path), "--out", str(out), "--device", "cpu"])
        error = capsys.readouterr().err
        assert code == 2, error
        assert error.startswith("fomm evaluate: error:") and expected in error, error
        assert len(error.strip().splitlines()) == 1, error
    assert not out.exists()
