"""The one animation pipeline: ``fomm animate``, ``fomm demo``, the web app and live mode all run
through it.

    decode (a thread) ──► fit to the model (one resize, one pixel conversion) ──► batches
    ──► Animator (describe, transfer, render; any backend) ──► AnimatedBatch
    ──► outputs, one encoder thread each (result, GIF, side by side), all from the same batch

Memory holds a few batches whatever the video's length: every queue between the stages is
bounded, so a slow stage makes the others wait instead of piling up frames. The driving video is
decoded once; a first pass, which keeps only small things, runs before when the whole video must be
seen first: the reference frame that best matches the source (``--find-best-frame``: a
description per frame) or the subject's crop box (``--crop face|body``). Relative motion from a
reference frame N > 0 reads that frame alone first (a seek).

Any stage's error stops every stage within seconds: the decoder and the encoders watch for it,
the staged output files are removed, and the error is raised in the caller's thread (a
:class:`~fomm.errors.UserError` when it is the input's or the disk's fault). Live mode is the
frame-at-a-time case: :class:`fomm.app.live.LiveAnimator` fits frames with the same
:class:`~fomm.data.frames.Framing` and animates them with the same :meth:`Animator.step`.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional

import numpy as np
from torch import Tensor

from .animate import AnimatedBatch, Animator
from .bundle import TensorBundle
from .crop import driving_crop, source_crop
from .data.frames import Framing, to_uint8
from .data.video import iter_frames, read_frames_at, write_video
from .errors import UserError
from .files import staged_outputs
from .pose import best_matching_frame

__all__ = ["CROPS", "BackgroundWriter", "Outputs", "Reference", "Summary", "animate_to_files", "decoded_batches",
           "find_reference", "frame_inputs", "in_background"]

#: How inputs are fitted to the model's frame: around the face or the body found in them, the
#: largest centred region of the model's shape, or the whole frame resized.
CROPS = ("none", "center", "face", "body")

#: Batches waiting between decoding and the model, and frames waiting for each encoder.
DECODED_BATCHES = 3
ENCODER_FRAMES = 64
#: How often a stage waiting on a queue looks whether another stage has failed, in seconds.
POLL_SECONDS = 0.1


# --------------------------------------------------------------------------------------------
# decoding in the background


class _Finished:
    """What a producer thread leaves in its queue when it stops: the error that stopped it, if any."""

    def __init__(self, error: Optional[BaseException] = None) -> None:
        self.error = error


def _put(into: "queue.Queue", item, stop: threading.Event) -> bool:
    """Put ``item`` unless ``stop`` is set first; False when stopped."""
    while not stop.is_set():
        try:
            into.put(item, timeout=POLL_SECONDS)
            return True
        except queue.Full:
            continue
    return False


def _produce(items: Iterable, into: "queue.Queue", stop: threading.Event) -> None:
    try:
        for item in items:
            if not _put(into, item, stop):
                return
        _put(into, _Finished(), stop)
    except BaseException as error:  # handed to the consumer, which raises it in its own thread
        _put(into, _Finished(error), stop)


def in_background(items: Iterable, capacity: int) -> Iterator:
    """Iterate ``items`` in a thread, ``capacity`` ahead of the consumer; an error in the thread
    is raised in the consumer's, and the thread stops when the consumer does."""
    buffer: "queue.Queue" = queue.Queue(maxsize=capacity)
    stop = threading.Event()
    thread = threading.Thread(target=_produce, args=(items, buffer, stop), name="fomm-decoder", daemon=True)
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


def _grouped(frames: Iterable[np.ndarray], size: int) -> Iterator[np.ndarray]:
    batch: list[np.ndarray] = []
    for frame in frames:
        batch.append(frame)
        if len(batch) == size:
            yield np.stack(batch)
            batch = []
    if batch:
        yield np.stack(batch)


def decoded_batches(driving: Path, framing: Framing, batch_size: int) -> Iterator[Tensor]:
    """Model inputs ``(B, 3, H, W)`` of the driving video, decoded and fitted in a thread."""
    def fitted() -> Iterator[Tensor]:
        start = 0
        for frames in _grouped(iter_frames(driving), batch_size):
            yield framing(frames, start)
            start += len(frames)

    return in_background(fitted(), DECODED_BATCHES)


# --------------------------------------------------------------------------------------------
# fitting the inputs to the model


def frame_inputs(source: np.ndarray, driving: Path, height: int, width: int, crop: str = "none",
                 source_name: str = "the source image", driving_name: Optional[str] = None
                 ) -> tuple[Framing, Framing]:
    """How the source image ``(H, W, 3)`` and the driving video's frames become model inputs, for
    a crop mode of :data:`CROPS`. ``face``/``body`` frame the subject of both in the same
    proportion (:func:`fomm.crop.source_crop`, :func:`fomm.crop.driving_crop`: a first pass over
    the driving video finds it, and the crop follows it where it would leave); ``center`` keeps
    the largest centred region of the model's shape; ``none`` resizes whole frames. Raises
    DataError naming ``source_name`` / ``driving_name`` when no subject is found."""
    if crop not in CROPS:
        raise UserError(f"unknown crop {crop!r} (use one of {', '.join(CROPS)})")
    if crop not in ("face", "body"):
        framing = Framing(height, width, centre_crop=crop == "center")
        return framing, framing
    aspect = height / width
    source_box = source_crop(source, crop, aspect, what=source_name)
    segment = driving_crop(iter_frames(driving), crop, aspect, what=driving_name or f"the driving video {driving}")
    driving_framing = Framing(height, width, box=segment.box.region()) if not segment.boxes else \
        Framing(height, width, boxes=tuple(box.region() for box in segment.boxes))
    return Framing(height, width, box=source_box.region()), driving_framing


# --------------------------------------------------------------------------------------------
# the reference frame of relative motion


@dataclass(frozen=True)
class Reference:
    """The driving frame relative motion is taken from: its index, and its description when a
    first pass already computed it (None: the pipeline describes it)."""

    index: int = 0
    motion: Optional[TensorBundle] = None


def find_reference(animator: Animator, source: Tensor, driving: Path, framing: Framing) -> Reference:
    """The driving frame whose pose best matches the source's: a first pass over the video that
    keeps one description per frame (a few numbers), not the frames."""
    prepared = None
    parts: list[TensorBundle] = []
    for inputs in decoded_batches(driving, framing, animator.batch_size):
        if prepared is None:
            prepared = animator.prepare_source(source, sample=inputs)
        parts.append(animator.describe(inputs).to("cpu"))
    motions = type(parts[0]).cat(parts)
    model = animator.model
    best = best_matching_frame(model.points(prepared.motion)[0], model.points(motions))
    return Reference(best, motions[best:best + 1])


def _reference_frame(driving: Path, framing: Framing, index: int) -> Tensor:
    """Driving frame ``index`` as a model input ``(3, H, W)`` (decoding stops there)."""
    return framing(read_frames_at(driving, [index]), index)[0]


# --------------------------------------------------------------------------------------------
# encoding in the background


class _Abort(Exception):
    """Raised inside an encoder when the pipeline failed elsewhere: the writer deletes its
    temporary file."""


_END = object()
_ABORT = object()


class BackgroundWriter:
    """Runs ``write(frames)`` in a thread, fed through a bounded queue: the encoder works while
    the model computes the next batch.

    Neither side can wait on the other forever: :meth:`put` raises the writer's error as soon as
    it has one, :meth:`close` waits for the writer to finish and raises its error, and
    :meth:`abort` makes the writer stop and delete what it staged. ``prepare(item)`` (run in the
    writer's thread) turns each queued item into ``(N, H, W, 3)`` uint8 frames.
    """

    def __init__(self, write: Callable[[Iterable[np.ndarray]], object], name: str,
                 prepare: Callable[[object], np.ndarray] = np.asarray) -> None:
        self.name = name
        self._queue: "queue.Queue" = queue.Queue(maxsize=ENCODER_FRAMES)
        self._prepare = prepare
        self.error: Optional[BaseException] = None
        self._thread = threading.Thread(target=self._run, args=(write,), name=f"fomm-writer {name}", daemon=True)
        self._thread.start()

    def _frames(self) -> Iterator[np.ndarray]:
        while True:
            item = self._queue.get()
            if item is _END:
                return
            if item is _ABORT:
                raise _Abort(self.name)
            yield from self._prepare(item)

    def _run(self, write: Callable[[Iterable[np.ndarray]], object]) -> None:
        try:
            write(self._frames())
        except _Abort:
            pass
        except BaseException as error:
            self.error = error

    def _offer(self, item) -> bool:
        """Queue ``item`` while the writer runs; False once it has stopped."""
        while self._thread.is_alive():
            try:
                self._queue.put(item, timeout=POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    def put(self, item) -> None:
        """Queue an item for the encoder; raises the writer's error as soon as it has one."""
        if self.error is None:
            self._offer(item)
        if self.error is not None:
            raise self.error

    def close(self) -> None:
        """Wait for the file to be complete; raise the writer's error."""
        self._offer(_END)
        self._thread.join()
        if self.error is not None:
            raise self.error

    def abort(self) -> None:
        """Stop the writer and leave nothing behind."""
        self._offer(_ABORT)
        self._thread.join()


def _close_all(writers: Iterable[BackgroundWriter], failed: bool) -> None:
    """Close every writer (abort them when the run ``failed``: its own error is the one to
    report); raise the first writer's error."""
    first: Optional[BaseException] = None
    for writer in writers:
        try:
            writer.abort() if failed else writer.close()
        except BaseException as error:
            first = first or error
    if first is not None and not failed:
        raise first


# --------------------------------------------------------------------------------------------
# animating a video into files


@dataclass
class Outputs:
    """What to write, from the same batches: the animation (``result``: a video or a GIF, with the
    driving video's audio when ``audio_from`` is given and the format holds audio), a GIF of it,
    and the side-by-side panels (``side_by_side``: a function of the batch, drawn in its encoder's
    thread). Missing ones are not written."""

    result: Optional[Path] = None
    gif: Optional[Path] = None
    side_by_side: Optional[Path] = None
    fps: float = 25.0
    audio_from: Optional[Path] = None
    draw_side_by_side: Optional[Callable[[AnimatedBatch], np.ndarray]] = None

    def paths(self) -> list[Path]:
        return [path for path in (self.result, self.gif, self.side_by_side) if path is not None]


@dataclass
class Summary:
    """What a run did: frames written, the engine that ran the networks, the reference frame."""

    frames: int
    engine: str
    reference: int
    kept: dict[str, AnimatedBatch] = field(default_factory=dict)


def _writers(outputs: Outputs, staged: dict[Path, Path]) -> dict[str, BackgroundWriter]:
    result = lambda batch: to_uint8(batch.prediction)  # noqa: E731
    writers: dict[str, BackgroundWriter] = {}
    if outputs.result is not None:
        writers["result"] = BackgroundWriter(
            lambda frames: write_video(staged[outputs.result], frames, fps=outputs.fps, audio_from=outputs.audio_from,
                                       name=outputs.result), str(outputs.result), result)
    if outputs.gif is not None:
        writers["gif"] = BackgroundWriter(
            lambda frames: write_video(staged[outputs.gif], frames, fps=outputs.fps, name=outputs.gif),
            str(outputs.gif), result)
    if outputs.side_by_side is not None:
        if outputs.draw_side_by_side is None:
            raise ValueError("a side-by-side output needs draw_side_by_side")
        writers["side_by_side"] = BackgroundWriter(
            lambda frames: write_video(staged[outputs.side_by_side], frames, fps=outputs.fps,
                                       audio_from=outputs.audio_from, name=outputs.side_by_side),
            str(outputs.side_by_side), outputs.draw_side_by_side)
    return writers


def animate_to_files(animator: Animator, source: Tensor, driving: Path, framing: Framing, outputs: Outputs,
                     reference: Reference = Reference(), progress: Optional[Callable[[int], object]] = None,
                     keep: Iterable[int] = ()) -> Summary:
    """Animate ``source`` ``(3, H, W)`` with the driving video at ``driving`` (fitted by
    ``framing``) into ``outputs``: all of them, or none if anything fails.

    Motion is taken relative to ``reference`` (when the animator transfers relative motion).
    ``progress(n)`` is called after each batch of ``n`` frames. The batches holding the frame
    indices in ``keep`` are returned in the summary (``kept[index]``: a picture of that frame).
    """
    if reference.index < 0:
        raise UserError(f"reference frame {reference.index} is negative")
    keep = set(keep)
    reference_frame = None if reference.motion is not None or reference.index == 0 else \
        _reference_frame(driving, framing, reference.index)
    count = 0
    summary = Summary(frames=0, engine="", reference=reference.index)
    with staged_outputs(outputs.paths()) as staged:  # every output, or none of them
        writers = _writers(outputs, staged)
        failed = True
        try:
            prepared = initial = None
            for inputs in decoded_batches(driving, framing, animator.batch_size):
                if prepared is None:
                    prepared = animator.prepare_source(source, sample=inputs)
                    initial = reference.motion if reference.motion is not None else animator.describe(
                        inputs[:1] if reference_frame is None else reference_frame[None])
                batch = animator.step(prepared, inputs, initial)
                for writer in writers.values():
                    writer.put(batch)
                for index in keep & set(range(count, count + len(inputs))):
                    summary.kept[index] = batch
                count += len(inputs)
                if progress is not None:
                    progress(len(inputs))
            failed = False
        finally:
            _close_all(writers.values(), failed)
    summary.frames = count
    summary.engine = animator.engine.name if animator.engine is not None else ""
    return summary

