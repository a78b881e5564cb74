"""Optical-flow consistency: zero for keypoints that move with the image, growing with the error."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import fomm
from fomm.config import DatasetParams
from fomm.data import FramesDataset, write_video
from fomm.data.flow import dense_flow
from fomm.models.losses import carry_keypoints, flow_consistency_loss


def _normalised(value: torch.Tensor, size: int) -> torch.Tensor:
    """Narrow heatmaps (summing to 1) centred on ``value`` (B, K, 2): a confident detector's."""
    bumps = fomm.geometry.keypoints_to_gaussian(value, size, size, 0.005)
    return bumps / bumps.sum(dim=(2, 3), keepdim=True)


def translated_pair(shift: tuple[float, float], batch: int = 2, num_kp: int = 5):
    torch.manual_seed(0)
    value_a = torch.rand(batch, num_kp, 2) * 1.2 - 0.6
    jacobian_a = torch.eye(2) + 0.1 * torch.randn(batch, num_kp, 2, 2)
    kp_a = fomm.Keypoints(value_a, jacobian_a)
    flow = torch.tensor(shift).view(1, 2, 1, 1).expand(batch, 2, 32, 32).clone()
    return kp_a, _normalised(value_a, 16), flow


def test_zero_when_keypoints_move_exactly_with_a_translation():
    kp_a, heatmap_a, flow = translated_pair((0.1, -0.05))
    kp_b = fomm.Keypoints(kp_a.value + torch.tensor([0.1, -0.05]), kp_a.jacobian)
    assert flow_consistency_loss(kp_a, heatmap_a, kp_b, flow).item() < 1e-6


def test_grows_with_the_error():
    kp_a, heatmap_a, flow = translated_pair((0.1, -0.05))
    losses = []
    for error in (0.0, 0.02, 0.05, 0.1):
        kp_b = fomm.Keypoints(kp_a.value + torch.tensor([0.1 + error, -0.05]), kp_a.jacobian * (1 + error))
        losses.append(flow_consistency_loss(kp_a, heatmap_a, kp_b, flow).item())
    assert losses[0] < 1e-6 and all(a < b for a, b in zip(losses, losses[1:]))


def test_jacobian_follows_the_flow_derivative():
    """A flow that scales the image by 1.2 about the centre: F(z) = 0.2 z, so J_b = 1.2 J_a."""
    kp_a, heatmap_a, _ = translated_pair((0.0, 0.0))
    grid = fomm.geometry.coordinate_grid(32, 32).permute(2, 0, 1)
    flow = (0.2 * grid).unsqueeze(0).expand(2, -1, -1, -1)
    carried = carry_keypoints(kp_a, heatmap_a, flow)
    assert torch.allclose(carried.jacobian, 1.2 * kp_a.jacobian, atol=1e-4)
    assert torch.allclose(carried.value, 1.2 * kp_a.value, atol=1e-2)


def test_mask_selects_nearby_pairs_only():
    kp_a, heatmap_a, flow = translated_pair((0.1, 0.0))
    kp_b = fomm.Keypoints(kp_a.value.clone(), kp_a.jacobian)  # did not move: wrong for a moving image
    assert flow_consistency_loss(kp_a, heatmap_a, kp_b, flow, mask=torch.tensor([False, False])).item() == 0.0
    assert flow_consistency_loss(kp_a, heatmap_a, kp_b, flow, mask=torch.tensor([True, False])).item() > 0.04


def textured(size: int = 64, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    coarse = rng.random((size // 8, size // 8, 3))
    import cv2

    return cv2.resize(coarse, (size * 2, size * 2), interpolation=cv2.INTER_CUBIC).clip(0, 1).astype(np.float32)


def test_dense_flow_measures_a_real_translation():
    image = textured()
    frame_a, frame_b = image[10:74, 10:74], image[10:74, 7:71]  # content moves 3 px right in b
    flow = dense_flow(frame_a, frame_b)
    assert flow.shape == (2, 64, 64)
    interior = flow[:, 12:-12, 12:-12]
    assert np.median(interior[0]) * 63 / 2 == pytest.approx(3.0, abs=0.3)
    assert abs(np.median(interior[1]) * 63 / 2) < 0.3


def test_dataset_computes_flow_for_nearby_pairs(tmp_path):
    image = textured(seed=1)
    frames = np.stack([image[8:72, 16 - 2 * t:80 - 2 * t] for t in range(6)])
    (tmp_path / "train").mkdir()
    (tmp_path / "test").mkdir()
    for split in ("train", "test"):
        write_video(tmp_path / split / "pan.mp4", frames, fps=10)
    params = DatasetParams(root_dir=str(tmp_path), frame_shape=(64, 64, 3), nearby_pair_ratio=1.0,
                           nearby_pair_max_gap=1, compute_flow=True, cache_flow=True)
    dataset = FramesDataset(params, is_train=True)
    torch.manual_seed(0)
    sample = dataset[0]
    assert sample["nearby"] and sample["flow"].shape == (2, 64, 64)
    # Consecutive frames pan by 2 px; the measured flow has that magnitude along x.
    assert abs(float(sample["flow"][0, 16:-16, 16:-16].median()) * 63 / 2) == pytest.approx(2.0, abs=0.4)
