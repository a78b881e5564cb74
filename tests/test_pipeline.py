"""The one animation pipeline: the same frames as animating in memory, every output from the same
batches, and any stage's error stopping every stage at once (never a hang), with nothing left
behind."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch

import fomm
from fomm.animate import Animator
from fomm.assets import BUNDLED_CHECKPOINT, BUNDLED_DRIVING
from fomm.data.frames import Framing, to_uint8
from fomm.data.video import read_video
from fomm.pipeline import BackgroundWriter, Outputs, Reference, animate_to_files, find_reference, in_background
from fomm.visualize import SideBySide

from .conftest import bundled_clip


@pytest.fixture(scope="module")
def animator() -> Animator:
    return Animator(fomm.load_checkpoint(BUNDLED_CHECKPOINT), batch_size=8, precision="fp32", backend="torch")


@pytest.fixture(scope="module")
def inputs():
    return bundled_clip(64, 64)


@pytest.mark.parametrize("reference", [0, 13])
def test_written_frames_are_the_in_memory_animation(animator, inputs, tmp_path, reference):
    """A lossless output (the original's .png strip) holds exactly the in-memory frames, whatever
    the reference frame (read alone, by a seek); the side-by-side panels come from the same
    batches."""
    source, driving = inputs
    expected = to_uint8(animator.animate(source, driving, best_frame=reference))
    outputs = Outputs(result=tmp_path / "result.png", side_by_side=tmp_path / "panels.png",
                      draw_side_by_side=SideBySide(animator.model, source, draw_border=False))
    summary = animate_to_files(animator, source, BUNDLED_DRIVING, Framing(64, 64), outputs, Reference(reference))
    assert summary.frames == len(driving) and summary.engine == "torch fp32"
    written = read_video(tmp_path / "result.png")
    assert np.array_equal(written, expected)
    panels = read_video(tmp_path / "panels.png")  # a strip of square frames reads as 3 frames per panel row
    assert panels.shape[1:] == (64, 64, 3) and len(panels) == 3 * len(driving)
    # The right-hand panel is the result with the points it was rendered from drawn on it; the
    # middle one the driving frame with its own.
    same_as_result = (panels[2::3] == expected).all(axis=-1).mean()
    same_as_driving = (panels[1::3] == to_uint8(driving)).all(axis=-1).mean()
    assert 0.8 < same_as_result < 1 and 0.8 < same_as_driving < 1


def test_the_first_pass_finds_the_same_reference_frame(animator, inputs):
    source, driving = inputs
    found = find_reference(animator, source, BUNDLED_DRIVING, Framing(64, 64))
    assert found.index == animator.find_best_frame(source, driving)
    assert torch.allclose(found.motion.value, animator.describe(driving[found.index:found.index + 1]).value)


def test_an_error_while_decoding_reaches_the_consumer():
    def broken():
        yield 1
        raise ValueError("corrupt packet at frame 2")

    items = in_background(broken(), capacity=2)
    assert next(items) == 1
    with pytest.raises(ValueError, match="corrupt packet"):
        next(items)


def test_the_decoder_stops_when_the_consumer_does():
    produced = []

    def endless():
        while True:
            produced.append(1)
            yield len(produced)

    items = in_background(endless(), capacity=2)
    next(items)
    items.close()  # the consumer fails and leaves: the thread must not keep the process alive
    count = len(produced)
    time.sleep(0.3)
    assert len(produced) == count and not any(t.name == "fomm-decoder" for t in threading.enumerate())


def test_an_encoder_error_mid_way_stops_the_producer_and_is_raised():
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


def within(seconds: float, call) -> BaseException | None:
    """Run ``call`` in a thread; fail if it is still running after ``seconds`` (a hang), else
    return what it raised (None)."""
    raised: list[BaseException] = []

    def run():
        try:
            call()
        except BaseException as error:  # handed back to the test
            raised.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still running after {seconds} s: a hang"
    return raised[0] if raised else None


def test_an_encoder_error_after_the_last_frame_is_raised_by_close_without_a_hang():
    """The hang a tester found: a writer that fails only when finishing its file (the disk fills as
    it flushes) must not leave close() waiting forever."""
    def write(frames):
        for _ in frames:
            pass
        raise OSError(28, "No space left on device")

    writer = BackgroundWriter(write, "out.mp4")
    writer.put(np.zeros((2, 2, 2, 3), dtype=np.uint8))
    error = within(5, writer.close)
    assert isinstance(error, OSError) and "No space left" in str(error)


def test_abort_stops_the_writer_and_it_cleans_up():
    finished = []

    def write(frames):
        try:
            for _ in frames:
                pass
        finally:
            finished.append(True)

    writer = BackgroundWriter(write, "out.mp4")
    writer.put(np.zeros((2, 2, 2, 3), dtype=np.uint8))
    writer.abort()
    assert finished == [True] and writer.error is None


def test_an_engine_error_leaves_no_output_and_no_temporary(tmp_path, inputs):
    """A stage that fails after the encoders started (here the engine: an unknown precision for the
    exported runtime) unwinds everything: no output, no staged temporary."""
    source, _ = inputs
    model = fomm.load_checkpoint(BUNDLED_CHECKPOINT)
    animator = Animator(model, backend="onnxruntime", precision="fp16")
    outputs = Outputs(result=tmp_path / "result.mp4", gif=tmp_path / "result.gif")
    with pytest.raises(fomm.UserError, match="fp32 only"):
        animate_to_files(animator, source, BUNDLED_DRIVING, Framing(64, 64), outputs)
    assert list(tmp_path.iterdir()) == []
