"""The keypoint graph: shapes, a non-negative adjacency, and an exact no-op at zero mixing."""

from __future__ import annotations

import pytest
import torch

import fomm
from fomm.config import GraphParams
from fomm.models.graph import KeypointGraph, pool_under_heatmap


def graph_config(reference_dir, **graph):
    config = fomm.load_config(reference_dir / "config.yaml")
    config.model_params.graph_params = GraphParams(**graph)
    return config


def test_zero_mix_weight_gives_the_base_keypoints_exactly(reference_dir, reference_io):
    base = fomm.load_checkpoint(reference_dir / "checkpoint.pth.tar", config=reference_dir / "config.yaml")
    with_graph = fomm.build_model(graph_config(reference_dir, mix_weight=0.0)).eval()
    missing, unexpected = with_graph.kp_detector.load_state_dict(base.kp_detector.state_dict(), strict=False)
    assert not unexpected and all(key.startswith("graph.") for key in missing)
    torch.nn.init.normal_(with_graph.kp_detector.graph.out.weight)  # a graph that would move them
    with torch.no_grad():
        expected = base.kp_detector(reference_io["source"])
        got = with_graph.kp_detector(reference_io["source"])
    assert torch.equal(got.value, expected.value) and torch.equal(got.jacobian, expected.jacobian)


def test_refinement_moves_keypoints_when_mixed(reference_dir, reference_io):
    model = fomm.build_model(graph_config(reference_dir, mix_weight=0.5)).eval()
    torch.nn.init.normal_(model.kp_detector.graph.out.weight, std=0.1)
    with torch.no_grad():
        refined = model.kp_detector(reference_io["source"])
        model.kp_detector.graph.mix_weight = 0.0
        base = model.kp_detector(reference_io["source"])
    assert refined.value.shape == (2, 10, 2) and refined.jacobian.shape == (2, 10, 2, 2)
    assert (refined.value - base.value).abs().max() > 1e-3
    assert (refined.jacobian - base.jacobian).abs().max() > 1e-3


def test_adjacency_stays_non_negative_and_symmetric_under_training():
    graph = KeypointGraph(5, 8, GraphParams(hidden_features=16, num_heads=2), estimate_jacobian=True)
    optimizer = torch.optim.Adam(graph.parameters(), lr=0.5)  # large steps push logits far negative
    kp = fomm.Keypoints(torch.rand(3, 5, 2) * 2 - 1, torch.eye(2).repeat(3, 5, 1, 1))
    heatmap = torch.softmax(torch.randn(3, 5, 36), -1).view(3, 5, 6, 6)
    feature_map = torch.randn(3, 8, 12, 12)
    for _ in range(20):
        loss = graph(kp, heatmap, feature_map).value.pow(2).sum() + graph.adjacency().sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        adjacency = graph.adjacency()
        assert adjacency.shape == (5, 5)
        assert (adjacency >= 0).all() and torch.allclose(adjacency, adjacency.t())
    assert adjacency.max() < 0.1  # the loss drove the edges towards zero, never below


def test_pooling_reads_features_under_the_heatmap():
    features = torch.zeros(1, 2, 10, 10)
    features[0, 0, 5, 6] = 3.0
    heatmap = torch.zeros(1, 1, 4, 4)
    heatmap[0, 0, 2, 3] = 1.0  # heatmap pixel (2, 3) is feature pixel (2+3, 3+3)
    assert pool_under_heatmap(features, heatmap).tolist() == [[[3.0, 0.0]]]


def test_heads_must_divide_hidden_features():
    with pytest.raises(ValueError, match="divisible"):
        KeypointGraph(4, 8, GraphParams(hidden_features=10, num_heads=3), estimate_jacobian=False)
