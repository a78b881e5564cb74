"""Streaming animation: the same frames as animating the whole video in memory, errors of the
decoding and encoding threads raised where the caller sees them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import fomm
from fomm.animate import Animator
from fomm.data.frames import fit_frames
from fomm.assets import BUNDLED_CHECKPOINT, BUNDLED_DRIVING, BUNDLED_SOURCE
from fomm.data.media import read_driving_video, read_source_image
from fomm.streaming import BackgroundWriter, FramePreparation, animate_video, find_reference_frame, in_background


@pytest.fixture(scope="module")
def animator() -> Animator:
    return Animator(fomm.load_checkpoint(BUNDLED_CHECKPOINT), batch_size=8, precision="fp32", backend="torch")


@pytest.mark.parametrize("reference", [0, 13])
def test_streamed_frames_equal_the_in_memory_animation(animator, reference):
    source = fit_frames(read_source_image(BUNDLED_SOURCE), 64, 64)[0]
    driving = fit_frames(read_driving_video(BUNDLED_DRIVING)[0], 64, 64)
    expected = animator.animate(source, driving, best_frame=reference)
    streamed = torch.cat([batch.prediction for batch in animate_video(animator, source, BUNDLED_DRIVING,
                                                                      FramePreparation(64, 64), reference)])
    assert streamed.shape == expected.shape
    assert (streamed - expected).abs().max() < 1e-5


def test_the_first_pass_finds_the_same_reference_frame(animator):
    source = fit_frames(read_source_image(BUNDLED_SOURCE), 64, 64)[0]
    driving = fit_frames(read_driving_video(BUNDLED_DRIVING)[0], 64, 64)
    assert find_reference_frame(animator, source, BUNDLED_DRIVING, FramePreparation(64, 64)) == \
        animator.find_best_frame(source, driving)


def test_an_error_while_decoding_reaches_the_consumer():
    def broken():
        yield 1
        raise ValueError("corrupt packet at frame 2")

    items = in_background(broken(), capacity=2)
    assert next(items) == 1
    with pytest.raises(ValueError, match="corrupt packet"):
        next(items)


def test_an_encoder_error_stops_the_producer_and_is_raised():
    written = []

    def write(frames):
        for index, frame in enumerate(frames):
            if index == 3:
                raise OSError(28, "No space left on device")
            written.append(frame)

    writer = BackgroundWriter(write, "out.mp4")
    with pytest.raises(OSError, match="No space left"):
        for _ in range(200):  # far more than the queue holds: the producer must not block forever
            writer.put(np.zeros((4, 2, 2, 3), dtype=np.uint8))
        writer.close()
    assert len(written) == 3
