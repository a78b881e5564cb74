"""Real-time animation (``fomm live``): frames from a camera, a video file or a stream are animated
one at a time as they arrive, and shown in a window, written to a file and/or sent to a virtual
camera.

It never falls behind. A reader thread keeps only the newest frame (:class:`LatestFrame`): when
the model is slower than the input, the frames it had no time for are dropped, never queued, so
what is shown is at most one animation step old. Files are read at their own frame rate, as a
camera would deliver them, so a file tells how a camera at that rate would be served.

Every frame read is either animated or counted as dropped. The report (:class:`LiveReport`)
gives the achieved rate and the end-to-end latency of each animated frame: from the moment it was
read to the moment its animation was handed to the window, file and camera.

Frames are ``(H, W, 3)`` uint8 RGB arrays throughout.
"""

from __future__ import annotations

import logging
import statistics
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Optional, Sequence

import av
import cv2
import numpy as np
import torch

from ..animate import Animator, PreparedSource
from ..bundle import TensorBundle
from ..crop import DEFAULT_DETECTORS, DEFAULT_MARGINS, make_detector, subject_crop
from ..data.frames import Framing, to_uint8
from ..data.video import iter_frames, video_info, write_video
from ..errors import DataError, UserError, VideoReadError
from ..pipeline import CROPS, BackgroundWriter
from .window import Window

__all__ = ["KEYS", "CapturedFrame", "FrameReader", "LatestFrame", "LiveAnimator", "LiveReport",
           "VideoFileSink", "VirtualCameraSink", "compose_view", "fastest_live_animator", "parse_input", "run_live"]

logger = logging.getLogger(__name__)
#: What the keys do in the window.
KEYS = {
    "a": "re-anchor: the current pose becomes the reference of the relative motion (also space)",
    "n": "next source image",
    "p": "previous source image",
    "s": "toggle the input beside the result",
    "q": "quit (also Esc)",
}
# The on-screen rate is over this many seconds of output.
RATE_WINDOW_S = 1.0


def parse_input(text: str) -> int | str:
    """``--input``: a camera number (``0``), a stream URL (``rtsp://...``, ``http://...``) or a
    video file, which must exist."""
    if text.strip().isdigit():
        return int(text)
    if "://" in text:
        return text
    if not Path(text).is_file():
        raise DataError(f"--input {text}: no such file (give a camera number such as 0, a video file or a URL)")
    return text


@dataclass(frozen=True)
class CapturedFrame:
    """A frame as read: its position in the input, its pixels and when it was read
    (``time.perf_counter()``)."""

    index: int
    image: np.ndarray
    captured_at: float


class LatestFrame:
    """A one-frame mailbox between the reader and the model: a new frame replaces an unread one,
    which counts as dropped."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._frame: Optional[CapturedFrame] = None
        self._closed = False
        self.dropped = 0

    def put(self, frame: CapturedFrame) -> None:
        with self._condition:
            if self._frame is not None:
                self.dropped += 1
            self._frame = frame
            self._condition.notify()

    def take(self, timeout: Optional[float] = None) -> Optional[CapturedFrame]:
        """The newest unread frame; waits up to ``timeout`` seconds for one (None: no frame
        came, or the mailbox is closed and empty)."""
        with self._condition:
            if self._frame is None and not self._closed:
                self._condition.wait(timeout)
            frame, self._frame = self._frame, None
            return frame

    def close(self) -> None:
        """No more frames will come; a waiting :meth:`take` returns."""
        with self._condition:
            self._closed = True
            self._condition.notify_all()

    def discard(self) -> int:
        """Drop the unread frame, if any (at shutdown); returns how many were dropped (0 or 1)."""
        with self._condition:
            if self._frame is None:
                return 0
            self._frame = None
            self.dropped += 1
            return 1

    @property
    def finished(self) -> bool:
        """Closed, and the last frame taken."""
        with self._condition:
            return self._closed and self._frame is None


class FrameReader:
    """Reads an input in a thread into a :class:`LatestFrame`: a camera through OpenCV's
    ``VideoCapture`` (the portable way to open one), a file or a stream URL through PyAV, as every
    video is read in fomm.

    ``source``: a camera number, a URL or a file (see :func:`parse_input`). Anything but a camera
    is paced to its frame rate (``fps``, when the input reports one), as a camera delivers.
    Raises VideoReadError when the input cannot be opened.
    """

    def __init__(self, source: int | str) -> None:
        self.source = source
        self.is_camera = isinstance(source, int)
        self.capture: Optional[cv2.VideoCapture] = None
        self.stream = None
        if self.is_camera:
            self.capture = self._open_camera(source)
            reported = self.capture.get(cv2.CAP_PROP_FPS)
            self.fps: Optional[float] = float(reported) if reported and 0 < reported < 1000 else None
        elif "://" in str(source):
            self.stream = self._open_stream(str(source))
            rate = self.stream.streams.video[0].average_rate
            self.fps = float(rate) if rate else None
        else:
            info = video_info(source)  # a readable video, or one line naming what is wrong
            self.fps = info.fps
        self.frames = LatestFrame()
        self.frames_read = 0
        self.error: Optional[BaseException] = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fomm-live-reader", daemon=True)

    @staticmethod
    def _open_camera(number: int) -> cv2.VideoCapture:
        level = cv2.utils.logging.getLogLevel()
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)  # its warnings become our message
        try:
            capture = cv2.VideoCapture(number)
        finally:
            cv2.utils.logging.setLogLevel(level)
        if not capture.isOpened():
            raise VideoReadError(f"--input {number}: cannot open camera {number} (is one connected, and free?)")
        return capture

    @staticmethod
    def _open_stream(url: str):
        try:
            container = av.open(url, mode="r", timeout=10.0)
        except (av.FFmpegError, OSError) as error:
            raise VideoReadError(f"--input {url}: cannot open the stream ({getattr(error, 'strerror', None) or error})"
                                 ) from None
        if not container.streams.video:
            container.close()
            raise VideoReadError(f"--input {url}: the stream has no video")
        return container

    def _frames(self) -> Iterator[np.ndarray]:
        if self.capture is not None:
            while True:
                ok, bgr = self.capture.read()
                if not ok:
                    return
                yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        elif self.stream is not None:
            for frame in self.stream.decode(video=0):
                yield frame.to_ndarray(format="rgb24")
        else:
            yield from iter_frames(self.source)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop reading and wait for the thread; the input is closed."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        pace = not self.is_camera and self.fps is not None
        start = time.perf_counter()
        frames = self._frames()
        try:
            for rgb in frames:
                if self._stop.is_set():
                    break
                if pace:
                    delay = start + self.frames_read / self.fps - time.perf_counter()
                    if delay > 0 and self._stop.wait(delay):
                        break
                frame = CapturedFrame(self.frames_read, rgb, time.perf_counter())
                self.frames_read += 1
                self.frames.put(frame)
        except BaseException as error:  # reported by run_live in the main thread
            self.error = error
        finally:
            frames.close()
            if self.capture is not None:
                self.capture.release()
            if self.stream is not None:
                self.stream.close()
            self.frames.close()


class LiveAnimator:
    """Animates single frames with a cached source (one of ``sources``, switchable) and a
    reference pose (the first frame animated after start or :meth:`reanchor`): the pipeline's
    frame-at-a-time case, fitting frames with the same :class:`~fomm.data.frames.Framing` and
    animating them with the same :meth:`Animator.step`.

    ``crop``: how frames are fitted to the model (one of :data:`fomm.pipeline.CROPS`); a face or
    body crop box is found on the reference frame and kept until the next re-anchor (the centre
    crop is used while no subject is found). ``sources``: ``(H, W, 3)`` uint8 images.
    """

    def __init__(self, animator: Animator, sources: Sequence[np.ndarray], crop: str = "none") -> None:
        if crop not in CROPS:
            raise UserError(f"unknown crop {crop!r} (use one of {', '.join(CROPS)})")
        if not sources:
            raise UserError("no source image to animate")
        self.animator = animator
        self.crop = crop
        self.height, self.width = animator.model.frame_shape[:2]
        self._detector = make_detector(DEFAULT_DETECTORS[crop]) if crop in ("face", "body") else None
        self.sources: list[PreparedSource] = [animator.prepare_source(self._source_framing(image, number)(image)[0])
                                              for number, image in enumerate(sources, start=1)]
        self.current = 0
        self._centre = Framing(self.height, self.width, centre_crop=crop != "none")
        self._framing: Optional[Framing] = None if self._detector is not None else self._centre
        self._initial: Optional[TensorBundle] = None

    def _source_framing(self, image: np.ndarray, number: int) -> Framing:
        if self._detector is None:
            return Framing(self.height, self.width, centre_crop=self.crop == "center")
        try:
            _, box = subject_crop(image, self._detector, DEFAULT_MARGINS[self.crop], self.height / self.width,
                                  what=f"source image {number}", subject=self.crop)
        except DataError as error:
            raise DataError(f"{error}: choose --crop center or none, or another source image") from None
        return Framing(self.height, self.width, box=box.region())

    def reanchor(self) -> None:
        """Take the next frame's pose as the reference of the relative motion (and, with a face
        or body crop, find the subject again)."""
        self._initial = None
        if self._detector is not None:
            self._framing = None

    def switch_source(self, step: int) -> int:
        """Move ``step`` places along the sources (wrapping round); returns the new index."""
        self.current = (self.current + step) % len(self.sources)
        return self.current

    def framing(self, frame: np.ndarray) -> Framing:
        """How ``frame`` becomes the model input: around the subject found on the reference
        frame (the centre crop until one is found), or as ``crop`` says."""
        if self._framing is not None:
            return self._framing
        try:
            _, box = subject_crop(frame, self._detector, DEFAULT_MARGINS[self.crop], self.height / self.width,
                                  what="input frame", subject=self.crop)
        except DataError:
            return self._centre
        self._framing = Framing(self.height, self.width, box=box.region())
        self._initial = None  # the framing changed: take the reference pose in the new one
        return self._framing

    @torch.inference_mode()
    def animate(self, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(animation, the frame as the model saw it)``, both ``(H, W, 3)`` uint8 at the
        model's size."""
        driving = self.framing(frame)(frame)
        if self._initial is None:
            self._initial = self.animator.describe(driving)
        batch = self.animator.step(self.sources[self.current], driving, self._initial)
        return to_uint8(batch.prediction)[0], to_uint8(driving)[0]

    def warm_up(self, frames: int = 2) -> None:
        """Run the networks on blank frames so that lazy initialisation does not fall on the
        first real frame; the reference pose is left unset."""
        blank = np.zeros((self.height, self.width, 3), dtype=np.uint8)
        for _ in range(frames):
            self.animate(blank)
        self.reanchor()


#: Steps timed per thread count when live mode chooses its threads.
TIMED_STEPS = 4


def fastest_live_animator(build: Callable[[], "LiveAnimator"], thread_counts: Sequence[int]
                          ) -> tuple["LiveAnimator", int, dict[int, float]]:
    """The live animator of the thread count whose one-frame step is fastest here, with that
    count and each count's median step in seconds. A live loop runs one frame at a time, where
    more threads can cost more than they give (on a busy 2-core machine: 3.2 frames/s with two
    threads, 23.7 with one), so it is measured rather than assumed. ``build()`` makes an animator
    with torch's current thread count (its engine chosen then)."""
    timings: dict[int, float] = {}
    best: Optional[tuple[float, int, LiveAnimator]] = None
    blank = None
    for count in dict.fromkeys(thread_counts):
        torch.set_num_threads(count)
        live = build()
        live.warm_up()
        if blank is None:
            blank = np.zeros((live.height, live.width, 3), dtype=np.uint8)
        times = []
        for _ in range(TIMED_STEPS):
            started = time.perf_counter()
            live.animate(blank)
            times.append(time.perf_counter() - started)
        live.reanchor()
        timings[count] = statistics.median(times)
        if best is None or timings[count] < best[0]:
            best = (timings[count], count, live)
    assert best is not None
    torch.set_num_threads(best[1])
    return best[2], best[1], timings


def _resized(frame: np.ndarray, height: int) -> np.ndarray:
    if frame.shape[0] == height:
        return frame
    width = max(1, round(frame.shape[1] * height / frame.shape[0]))
    smaller = height < frame.shape[0]
    return cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA if smaller else cv2.INTER_CUBIC)


def _draw_text(image: np.ndarray, text: str) -> None:
    scale = max(0.4, image.shape[0] / 720)
    origin = (8, 8 + round(22 * scale))
    for color, thickness in (((0, 0, 0), 4), ((255, 255, 255), 1)):  # outlined: legible on any picture
        cv2.putText(image, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, color, thickness, cv2.LINE_AA)


def compose_view(result: np.ndarray, seen: Optional[np.ndarray], height: int, text: str = "") -> np.ndarray:
    """What the window shows: ``seen | result`` (or the result alone when ``seen`` is None),
    each scaled to ``height`` pixels, with ``text`` written in the top-left corner."""
    panels = [_resized(result, height)] if seen is None else [_resized(seen, height), _resized(result, height)]
    view = np.ascontiguousarray(np.concatenate(panels, axis=1))
    if text:
        _draw_text(view, text)
    return view


class VideoFileSink:
    """Writes the live output to a video file, one output frame per input frame, through the
    pipeline's :class:`~fomm.pipeline.BackgroundWriter`: a dropped input frame repeats the latest
    animation (what a viewer saw then), and frames before the first animation repeat it, so the
    file lasts as long as the input and keeps its timing. The file is written atomically: if the
    session fails, nothing is left under ``path``."""

    def __init__(self, path: Path, fps: float) -> None:
        self.path = Path(path)
        self.fps = fps
        self.frames_written = 0
        self._last: Optional[np.ndarray] = None
        self._next_index = 0
        self._writer = BackgroundWriter(lambda frames: write_video(self.path, frames, fps=fps), str(self.path),
                                        prepare=lambda frame: [frame])

    def add(self, index: int, frame: np.ndarray) -> None:
        """The animation of input frame ``index`` (indices increase)."""
        repeat = self._last if self._last is not None else frame
        for _ in range(self._next_index, index):
            self._writer.put(repeat)
        self._writer.put(frame)
        self.frames_written += index + 1 - self._next_index
        self._next_index = index + 1
        self._last = frame

    def finish(self, frames_read: int) -> None:
        """Pad to ``frames_read`` frames and close the file."""
        if self._last is not None:
            for _ in range(self._next_index, frames_read):
                self._writer.put(self._last)
            self.frames_written += max(0, frames_read - self._next_index)
            self._next_index = max(self._next_index, frames_read)
        self._writer.close()

    def abort(self) -> None:
        """Stop writing and leave no file."""
        self._writer.abort()


class VirtualCameraSink:
    """A virtual camera other programs (video calls) can pick, through ``pyvirtualcam`` (an
    optional package; it needs OBS's virtual camera, or v4l2loopback on Linux)."""

    @staticmethod
    def check_installed() -> None:
        """Raise UserError when pyvirtualcam is not installed (before any work is done)."""
        try:
            import pyvirtualcam  # noqa: F401
        except ImportError:
            raise UserError("--virtual-camera needs the pyvirtualcam package: pip install pyvirtualcam") from None

    def __init__(self, width: int, height: int, fps: float) -> None:
        self.check_installed()
        import pyvirtualcam

        try:
            self.camera = pyvirtualcam.Camera(width=width, height=height, fps=fps, fmt=pyvirtualcam.PixelFormat.RGB)
        except RuntimeError as error:  # no backend: OBS not installed, v4l2loopback not loaded
            raise UserError(f"--virtual-camera: no virtual camera available ({error})") from None
        self.size = (height, width)
        logger.info("virtual camera: %s", self.camera.device)

    def send(self, frame: np.ndarray) -> None:
        if frame.shape[:2] != self.size:
            frame = cv2.resize(frame, (self.size[1], self.size[0]), interpolation=cv2.INTER_CUBIC)
        self.camera.send(np.ascontiguousarray(frame))

    def close(self) -> None:
        self.camera.close()


@dataclass
class LiveReport:
    """How a live session went. Times in seconds; one latency (read -> output delivered) and one
    wait (read -> picked up by the model) per animated frame."""

    frames_read: int
    frames_animated: int
    frames_dropped: int
    seconds: float
    input_fps: Optional[float]
    latencies: list[float] = field(default_factory=list)
    waits: list[float] = field(default_factory=list)
    steps: list[float] = field(default_factory=list)

    @property
    def fps(self) -> float:
        """Animated frames per second of wall time."""
        return self.frames_animated / self.seconds if self.seconds > 0 else 0.0

    def latency_ms(self, quantile: float) -> float:
        """The latency below which ``quantile`` of the animated frames were delivered, in ms."""
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return 1000 * ordered[min(len(ordered) - 1, int(quantile * len(ordered)))]

    def summary(self) -> str:
        nominal = f" (input {self.input_fps:g} fps)" if self.input_fps else ""
        text = (f"animated {self.frames_animated} of {self.frames_read} frames ({self.frames_dropped} dropped) "
                f"in {self.seconds:.1f} s: {self.fps:.1f} fps{nominal}")
        if self.latencies:
            text += (f"; latency {1000 * statistics.median(self.latencies):.0f} ms median, "
                     f"{self.latency_ms(0.95):.0f} ms p95, {1000 * max(self.latencies):.0f} ms max")
        return text


class _Readout:
    """The on-screen rate (over the last second) and latency (of the last frame)."""

    def __init__(self) -> None:
        self._times: deque[float] = deque()
        self.latency = 0.0

    def add(self, delivered: float, latency: float) -> None:
        self._times.append(delivered)
        while self._times and self._times[0] < delivered - RATE_WINDOW_S:
            self._times.popleft()
        self.latency = latency

    def text(self) -> str:
        rate = (len(self._times) - 1) / (self._times[-1] - self._times[0]) if len(self._times) > 1 else 0.0
        return f"{rate:4.1f} fps  {1000 * self.latency:4.0f} ms"


def _handle_key(key: str, live: LiveAnimator, state: dict) -> bool:
    """Act on a key; False to quit."""
    if key in ("q", "escape"):
        return False
    if key in ("a", " "):
        live.reanchor()
        logger.info("re-anchored: the next frame is the reference pose")
    elif key in ("n", "p"):
        index = live.switch_source(1 if key == "n" else -1)
        logger.info("source image %d of %d", index + 1, len(live.sources))
    elif key == "s":
        state["side_by_side"] = not state["side_by_side"]
    return True


def run_live(reader: FrameReader, live: LiveAnimator, window: Optional[Window] = None,
             file_sink: Optional[VideoFileSink] = None, camera: Optional[VirtualCameraSink] = None,
             side_by_side: bool = True, display_height: int = 512, duration: Optional[float] = None) -> LiveReport:
    """Animate ``reader``'s frames until the input ends, ``duration`` seconds pass, the window
    is closed or quit (``q``/Esc), or Ctrl-C. Returns the report; the output file is complete.

    ``window``: shows ``input | result`` (``side_by_side``; ``s`` toggles) at ``display_height``
    pixels with the rate and latency; its keys are :data:`KEYS`.
    """
    state = {"side_by_side": side_by_side}
    latencies: list[float] = []
    waits: list[float] = []
    steps: list[float] = []
    readout = _Readout()
    live.warm_up()
    reader.start()
    start = time.perf_counter()
    completed = False
    try:
        while duration is None or time.perf_counter() - start < duration:
            if window is not None:
                key = window.poll_key()
                if (key is not None and not _handle_key(key, live, state)) or window.closed:
                    break
            frame = reader.frames.take(timeout=0.02)
            if frame is None:
                if reader.frames.finished:
                    break
                continue
            picked = time.perf_counter()
            result, seen = live.animate(frame.image)
            stepped = time.perf_counter()
            if file_sink is not None:
                file_sink.add(frame.index, result)
            if camera is not None:
                camera.send(result)
            if window is not None:
                window.show(compose_view(result, seen if state["side_by_side"] else None, display_height,
                                         readout.text()))
            delivered = time.perf_counter()
            latencies.append(delivered - frame.captured_at)
            waits.append(picked - frame.captured_at)
            steps.append(stepped - picked)
            readout.add(delivered, latencies[-1])
        completed = True
    except KeyboardInterrupt:
        logger.info("stopped (Ctrl-C)")
        completed = True
    finally:
        ended = time.perf_counter()
        reader.stop()
        reader.frames.discard()
        if file_sink is not None:
            if completed:
                file_sink.finish(reader.frames_read)
            else:
                file_sink.abort()
        if camera is not None:
            camera.close()
    if reader.error is not None:
        raise VideoReadError(f"--input {reader.source}: reading failed ({reader.error})")
    return LiveReport(frames_read=reader.frames_read, frames_animated=len(latencies),
                      frames_dropped=reader.frames.dropped, seconds=ended - start, input_fps=reader.fps,
                      latencies=latencies, waits=waits, steps=steps)
