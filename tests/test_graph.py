"""The keypoint graph: shapes, a non-negative adjacency, and an exact no-op at zero mixing; the seed
proposal's single-head formulation (``style: seed``)."""

from __future__ import annotations

import pytest
import torch

import fomm
from fomm.config import ConfigError, FommConfig, GraphParams
from fomm.models.fomm.graph import KeypointGraph, SeedKeypointGraph, build_keypoint_graph, pool_under_heatmap


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


# --- the seed proposal's formulation (graph_params.style: seed) -----------------------------------


def seed_graph(num_kp=5, hidden=16, **params):
    torch.manual_seed(0)
    graph = build_keypoint_graph(num_kp, 8, GraphParams(style="seed", hidden_features=hidden, **params),
                                 estimate_jacobian=True)
    torch.nn.init.normal_(graph.out.weight, std=0.5)  # the zero start would hide the refinement
    torch.nn.init.normal_(graph.out.bias, std=0.5)
    return graph


def random_keypoints(batch=3, num_kp=5):
    return fomm.Keypoints(torch.rand(batch, num_kp, 2) * 2 - 1, torch.randn(batch, num_kp, 2, 2))


def test_seed_style_builds_the_single_head_values_only_graph():
    params = GraphParams(style="seed")
    assert (params.num_heads, params.mix_weight, params.refine_jacobian) == (1, 0.3, False)
    assert GraphParams().mix_weight == 0.5 and GraphParams().style == "improved"
    graph = build_keypoint_graph(5, 8, params, estimate_jacobian=True)
    assert isinstance(graph, SeedKeypointGraph) and graph.num_heads == 1
    # Linear maps from the 2-d coordinates only: no jacobian or pooled-feature inputs.
    assert graph.query.in_features == graph.key.in_features == graph.value.in_features == 2
    assert graph.out.out_features == 2
    improved = build_keypoint_graph(5, 8, GraphParams(), estimate_jacobian=True)
    assert isinstance(improved, KeypointGraph)


def test_seed_graph_moves_values_by_three_tenths_of_its_output_and_never_the_jacobian():
    graph = seed_graph()
    kp = random_keypoints()
    heatmap = torch.softmax(torch.randn(3, 5, 36), -1).view(3, 5, 6, 6)
    with torch.no_grad():
        refined = graph(kp, heatmap, torch.randn(3, 8, 12, 12))
        output = graph.refinement(kp.value)
    assert graph.mix_weight == 0.3
    assert torch.equal(refined.jacobian, kp.jacobian)
    assert torch.allclose(refined.value - kp.value, 0.3 * output, atol=1e-6)
    assert (refined.value - kp.value).abs().max() > 1e-3
    # The heatmap and feature map are not inputs of the seed graph.
    with torch.no_grad():
        assert torch.equal(graph(kp).value, refined.value)


def test_seed_graph_starts_at_the_detector_keypoints():
    graph = build_keypoint_graph(5, 8, GraphParams(style="seed"), estimate_jacobian=True)
    kp = random_keypoints()
    refined = graph(kp)
    assert torch.equal(refined.value, kp.value) and torch.equal(refined.jacobian, kp.jacobian)


def test_seed_adjacency_is_a_soft_mask_that_multiplies_the_attention():
    graph = seed_graph()
    with torch.no_grad():
        graph.adjacency_logits.normal_(std=3.0)
    adjacency = graph.adjacency()
    assert adjacency.shape == (5, 5) and (adjacency > 0).all() and (adjacency < 1).all()
    value = random_keypoints().value
    with torch.no_grad():
        weights = graph.attention_weights(value)
        scores = graph.query(value) @ graph.key(value).transpose(-1, -2) / 4.0  # sqrt(16)
        masked = torch.softmax(scores, -1) * adjacency
    assert torch.allclose(weights, masked / masked.sum(-1, keepdim=True), atol=1e-6)
    assert torch.allclose(weights.sum(-1), torch.ones(3, 5), atol=1e-6)
    # An edge masked to (almost) zero carries (almost) no attention, whatever the scores say.
    with torch.no_grad():
        graph.adjacency_logits[:, 2] = -30.0
        assert graph.attention_weights(value)[:, :, 2].max() < 1e-9


def test_seed_graph_gradients_reach_every_parameter():
    graph = seed_graph()
    kp = random_keypoints()
    kp = fomm.Keypoints(kp.value.requires_grad_(), kp.jacobian)
    graph(kp).value.pow(2).sum().backward()
    for name, parameter in graph.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
    assert kp.value.grad is not None and kp.value.grad.abs().sum() > 0


def test_seed_style_loads_from_a_config_and_rejects_what_it_cannot_do(reference_dir):
    data = fomm.load_config(reference_dir / "config.yaml").to_dict()
    data["model_params"]["graph_params"] = {"style": "seed", "hidden_features": 16}
    config = FommConfig.from_dict(data)
    params = config.model_params.graph_params
    assert params.style == "seed" and params.mix_weight == 0.3 and params.num_heads == 1
    assert FommConfig.from_dict(config.to_dict()).model_params.graph_params == params  # as checkpoints embed it
    model = fomm.build_model(config)
    assert isinstance(model.kp_detector.graph, SeedKeypointGraph)
    data["model_params"]["graph_params"] = {"style": "seed", "mix_weight": 0.7}
    assert FommConfig.from_dict(data).model_params.graph_params.mix_weight == 0.7  # explicit mix wins

    data["model_params"]["graph_params"] = {"style": "seeded"}
    with pytest.raises(ConfigError, match=r"model_params\.graph_params\.style"):
        FommConfig.from_dict(data)
    data["model_params"]["graph_params"] = {"style": "seed", "num_heads": 4}
    with pytest.raises(ConfigError, match="one attention head"):
        FommConfig.from_dict(data)


def test_improved_style_is_the_default_and_unchanged(reference_dir):
    data = fomm.load_config(reference_dir / "config.yaml").to_dict()
    data["model_params"]["graph_params"] = {"hidden_features": 16}  # a config written before `style`
    config = FommConfig.from_dict(data)
    assert config.model_params.graph_params.style == "improved"
    assert type(fomm.build_model(config).kp_detector.graph) is KeypointGraph
