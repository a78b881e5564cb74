"""Animating a driving video of any length in constant memory.

Three stages overlap: a thread decodes the driving video and turns frames into model inputs
(crop, resize), the calling thread runs the networks a batch at a time, and one thread per output
file encodes frames as they come. Queues between the stages are bounded, so memory holds a few
batches whatever the video's length, and a slow stage makes the others wait instead of piling up
frames.

Some choices need the whole video before the first frame can be animated; a first pass then
reads it and keeps only what is small: the subject's crop box (the union of its detections) for a
face or body crop, the keypoints of every frame (K x 2 numbers each) to find the best reference
frame.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional

import numpy as np
import torch
from torch import Tensor

from .animate import Animator, prepare_frames
from .crop import DEFAULT_DETECTORS, DEFAULT_MARGINS, Box, crop_frame, make_detector, video_crop
from .data.video import iter_frames, read_frames_at
from .errors import UserError
from .keypoints import Keypoints, best_matching_frame

__all__ = ["AnimatedBatch", "BackgroundWriter", "FramePreparation", "animate_video", "close_writers",
           "find_reference_frame", "in_background", "subject_box", "write_in_background"]

#: Batches waiting between decoding and the model, and frames waiting for each encoder.
DECODED_BATCHES = 3
ENCODER_FRAMES = 64


@dataclass(frozen=True)
class FramePreparation:
    """How a decoded frame becomes a model input: cut to ``box`` (pixels of the decoded frame)
    when given, else centre-cropped to the model's aspect ratio with ``centre_crop``, then
    resized to ``height x width``."""

    height: int
    width: int
    box: Optional[Box] = None
    centre_crop: bool = False

    def __call__(self, frames: np.ndarray) -> Tensor:
        """``(B, H, W, 3)`` uint8 -> ``(B, 3, height, width)`` float in [0, 1]."""
        if self.box is not None:
            frames = np.stack([crop_frame(frame, self.box) for frame in frames])
        return prepare_frames(frames, self.height, self.width, crop=self.centre_crop)


@dataclass
class AnimatedBatch:
    """One batch through the model: the inputs ``(B, 3, H, W)``, the animated frames
    ``(B, 3, H, W)``, both in [0, 1] on the CPU, and the keypoints detected on the inputs."""

    driving: Tensor
    prediction: Tensor
    kp_driving: Keypoints


def _batches(frames: Iterable[np.ndarray], size: int) -> Iterator[np.ndarray]:
    batch: list[np.ndarray] = []
    for frame in frames:
        batch.append(frame)
        if len(batch) == size:
            yield np.stack(batch)
            batch = []
    if batch:
        yield np.stack(batch)


class _Finished:
    """What a producer thread leaves in its queue when it stops: the error that stopped it, if any."""

    def __init__(self, error: Optional[BaseException] = None) -> None:
        self.error = error


def _produce(items: Iterable, into: "queue.Queue", stop: threading.Event) -> None:
    try:
        for item in items:
            while not stop.is_set():
                try:
                    into.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if stop.is_set():
                return
        into.put(_Finished())
    except BaseException as error:  # handed to the consumer, which raises it in its own thread
        into.put(_Finished(error))


def in_background(items: Iterable, capacity: int) -> Iterator:
    """Iterate ``items`` in a thread, ``capacity`` ahead of the consumer; an error in the thread
    is raised in the consumer's."""
    buffer: "queue.Queue" = queue.Queue(maxsize=capacity)
    stop = threading.Event()
    thread = threading.Thread(target=_produce, args=(items, buffer, stop), daemon=True)
    thread.start()
    try:
        while True:
            item = buffer.get()
            if isinstance(item, _Finished):
                if item.error is not None:
                    raise item.error
                return
            yield item
    finally:
        stop.set()
        thread.join()


def prepared_batches(driving: Path, preparation: FramePreparation, batch_size: int
                     ) -> Iterator[tuple[np.ndarray, Tensor]]:
    """``(decoded frames, model inputs)`` per batch of the driving video, decoded in a thread."""
    def produce() -> Iterator[tuple[np.ndarray, Tensor]]:
        for frames in _batches(iter_frames(driving), batch_size):
            yield frames, preparation(frames)

    return in_background(produce(), DECODED_BATCHES)


def find_reference_frame(animator: Animator, source: Tensor, driving: Path, preparation: FramePreparation
                         ) -> int:
    """The driving frame whose pose best matches the source's (a first pass over the video that
    keeps only keypoints)."""
    poses, kp_source = [], None
    for _, inputs in prepared_batches(driving, preparation, animator.batch_size):
        if kp_source is None:  # the engine chosen on the first driving frames, not the source alone
            animator.choose_engine(source, inputs)
            kp_source = animator.prepare_source(source).keypoints.value[0]
        poses.append(animator.detect(inputs).value.cpu())
    if kp_source is None:
        raise UserError(f"driving video {driving}: has no frames")
    return best_matching_frame(kp_source, torch.cat(poses))


def animate_video(animator: Animator, source: Tensor, driving: Path, preparation: FramePreparation,
                  reference_frame: int = 0) -> Iterator[AnimatedBatch]:
    """Animate ``source`` ``(3, H, W)`` with the driving video at ``driving``, batch by batch, as
    it is decoded; motion is relative to frame ``reference_frame`` (when the animator transfers
    relative motion). Every frame is animated with the same reference, so the order of frames does
    not matter and the video is read once, front to back."""
    if reference_frame < 0:
        raise UserError(f"reference frame {reference_frame} is negative")
    reference = preparation(read_frames_at(driving, [reference_frame]))
    kp_initial: Optional[Keypoints] = None
    prepared = None
    for _, inputs in prepared_batches(driving, preparation, animator.batch_size):
        if prepared is None:
            animator.choose_engine(source, inputs)  # auto's check and int8's calibration: real driving frames
            prepared = animator.prepare_source(source)
            kp_initial = animator.detect(reference)
        step = animator.step(prepared, inputs, kp_initial)
        yield AnimatedBatch(driving=inputs, prediction=step.prediction.float().cpu(), kp_driving=step.kp_driving)


def subject_box(driving: Path, subject: str, aspect: float, what: str) -> Box:
    """One crop box for the whole driving video, framing ``subject`` (``face`` or ``body``) in
    every frame: the union of its detections (a first pass that keeps only boxes)."""
    detector = make_detector(DEFAULT_DETECTORS[subject])
    _, box = video_crop(iter_frames(driving), detector, DEFAULT_MARGINS[subject], aspect, what=what, subject=subject)
    return box


# --------------------------------------------------------------------------------------------
# encoding in the background


class BackgroundWriter:
    """Runs ``write(frames)`` in a thread, fed frame by frame through a bounded queue: the encoder
    works while the model computes the next batch. :meth:`close` waits for it and raises its
    error, if it had one."""

    def __init__(self, write: Callable[[Iterable[np.ndarray]], object], name: str) -> None:
        self._queue: "queue.Queue" = queue.Queue(maxsize=ENCODER_FRAMES)
        self._error: Optional[BaseException] = None
        self._thread = threading.Thread(target=self._run, args=(write,), name=name, daemon=True)
        self._thread.start()

    def _frames(self) -> Iterator[np.ndarray]:
        while True:
            frame = self._queue.get()
            if frame is None:
                return
            yield frame

    def _run(self, write: Callable[[Iterable[np.ndarray]], object]) -> None:
        try:
            write(self._frames())
        except BaseException as error:
            self._error = error
            while self._queue.get() is not None:  # drain, so the producer never blocks on us
                pass

    def put(self, frames: np.ndarray) -> None:
        """Queue ``(B, H, W, 3)`` uint8 frames; raises the writer's error as soon as it has one."""
        for frame in frames:
            if self._error is not None:
                raise self._error
            self._queue.put(frame)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error


def write_in_background(writers: dict[str, Callable[[Iterable[np.ndarray]], object]]
                        ) -> dict[str, BackgroundWriter]:
    """One :class:`BackgroundWriter` per named write function."""
    return {name: BackgroundWriter(write, name) for name, write in writers.items()}


def close_writers(writers: Iterable[BackgroundWriter], failed: bool) -> None:
    """Close every writer; raise the first writer's error unless the run ``failed`` already (its
    own error is the one to report)."""
    first: Optional[BaseException] = None
    for writer in writers:
        try:
            writer.close()
        except BaseException as error:
            first = first or error
    if first is not None and not failed:
        raise first
