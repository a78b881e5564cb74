"""Video I/O on real files written into tmp_path: every format, seeking, audio, bad input."""

from __future__ import annotations

import os
import subprocess
from fractions import Fraction
from pathlib import Path
from typing import Optional

import av
import imageio.v3 as iio
import imageio_ffmpeg
import numpy as np
import pytest

from fomm.data import (
    DataError,
    VideoInfo,
    VideoReadError,
    VideoWriteError,
    count_frames,
    iter_frames,
    read_frames_at,
    read_video,
    video_info,
    write_video,
)
from fomm.data.media import read_driving_video, read_source_image

# ----------------------------------------------------------------------------------------
# helpers (also used by test_datasets.py)


def smooth_frames(num_frames: int = 8, height: int = 32, width: int = 32) -> np.ndarray:
    """Smooth moving gradients, uint8 (T, H, W, 3): content lossy codecs keep well."""
    rows, cols = np.mgrid[:height, :width].astype(np.float32)
    frames = []
    for t in range(num_frames):
        red = 60 + 120 * (cols / max(width - 1, 1)) + 4 * t
        green = 50 + 100 * (rows / max(height - 1, 1)) + 2 * t
        blue = np.full_like(rows, 100 + 5 * t)
        frames.append(np.stack([red, green, blue], axis=-1))
    return np.clip(np.stack(frames), 0, 255).astype(np.uint8)


def indexed_frames(num_frames: int = 8, size: int = 32, step: int = 24) -> np.ndarray:
    """Flat gray frames whose level encodes their index (index * step), uint8 (T, H, W, 3)."""
    levels = (np.arange(num_frames) * step + 10).astype(np.uint8)
    return np.broadcast_to(levels[:, None, None, None], (num_frames, size, size, 3)).copy()


def frame_index(frame: np.ndarray, step: int = 24) -> int:
    """Inverse of indexed_frames for a float frame in [0, 1], any layout."""
    return int(round((float(np.asarray(frame).mean()) * 255 - 10) / step))


def encode_with_pyav(path: Path, frames: np.ndarray, codec: str = "libx264", fps: int = 25, **options: str) -> Path:
    """A video written directly with PyAV (formats write_video does not produce, e.g. AVI)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        stream.options = options
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def make_video_with_audio(path: Path, audio_codec: str = "aac", seconds: float = 1.0,
                          silent_until: float = 0.0, frames: Optional[np.ndarray] = None, fps: int = 25) -> Path:
    """An H.264 video with a 440 Hz mono tone as long as the video (silence before
    ``silent_until`` seconds): of ``frames`` ``(T, H, W, 3)`` uint8 at ``fps``, or by default of
    ``seconds`` of 32x32 frames at 25 fps."""
    rate = 16000
    if frames is None:
        frames = smooth_frames(int(fps * seconds))
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=fps)
        video.height, video.width = frames.shape[1:3]
        video.pix_fmt = "yuv420p"
        audio = container.add_stream(audio_codec, rate=rate)
        audio.layout = "mono"
        for frame in frames:
            for packet in video.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        time = np.arange(rate * len(frames) // fps) / rate
        samples = (0.3 * 32767 * np.sin(2 * np.pi * 440 * time) * (time >= silent_until)).astype(np.int16)
        for start in range(0, len(samples), 1024):
            chunk = av.AudioFrame.from_ndarray(samples[None, start : start + 1024], format="s16", layout="mono")
            chunk.sample_rate = rate
            for packet in audio.encode(chunk):
                container.mux(packet)
        for packet in audio.encode():
            container.mux(packet)
    return path


def audio_streams(path: Path) -> list[str]:
    with av.open(str(path)) as container:
        return [stream.codec_context.name for stream in container.streams.audio]


def mean_abs_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float32) - b.astype(np.float32)).mean() / 255.0)


# ----------------------------------------------------------------------------------------
# round trips


@pytest.mark.parametrize("suffix", [".mp4", ".mov", ".mkv", ".gif"])
def test_write_read_round_trip(tmp_path: Path, suffix: str) -> None:
    frames = smooth_frames(8, 32, 32)
    path = write_video(tmp_path / f"clip{suffix}", frames, fps=25)
    info = video_info(path)
    assert (info.num_frames, info.height, info.width) == (8, 32, 32)
    assert info.fps == pytest.approx(25.0)
    assert not info.has_audio
    decoded = read_video(path)
    assert decoded.shape == (8, 32, 32, 3) and decoded.dtype == np.uint8
    assert mean_abs_error(decoded, frames) < 0.03
    as_float = read_video(path, dtype=np.float32)
    assert as_float.dtype == np.float32 and 0.0 <= as_float.min() and as_float.max() <= 1.0
    assert count_frames(path) == 8


def test_fps_preserved(tmp_path: Path) -> None:
    for fps in (12.0, 30.0, 29.97):
        path = write_video(tmp_path / f"fps{fps}.mp4", smooth_frames(6), fps=fps)
        assert video_info(path).fps == pytest.approx(fps, rel=1e-3)


def test_write_float_frames_and_iterator(tmp_path: Path) -> None:
    frames = smooth_frames(5)
    path = write_video(tmp_path / "float.mp4", (frame / 255.0 for frame in frames), fps=10)
    assert mean_abs_error(read_video(path), frames) < 0.03


def test_odd_sizes_are_padded_for_h264(tmp_path: Path) -> None:
    frames = smooth_frames(4, 33, 47)
    decoded = read_video(write_video(tmp_path / "odd.mp4", frames, fps=25))
    assert decoded.shape == (4, 34, 48, 3)
    assert mean_abs_error(decoded[:, :33, :47], frames) < 0.03


def test_writes_are_atomic(tmp_path: Path) -> None:
    target = tmp_path / "out.mp4"
    write_video(target, smooth_frames(4), fps=25)
    before = target.read_bytes()

    def frames_then_failure():
        yield from smooth_frames(3)
        yield np.zeros((16, 16, 3), np.uint8)  # wrong size: the write fails midway

    with pytest.raises(VideoWriteError, match="frame 3"):
        write_video(target, frames_then_failure(), fps=25)
    assert target.read_bytes() == before  # the old file is intact
    assert sorted(os.listdir(tmp_path)) == ["out.mp4"]  # no temporary left over


def test_write_errors(tmp_path: Path) -> None:
    with pytest.raises(VideoWriteError, match="no frames"):
        write_video(tmp_path / "empty.mp4", [], fps=25)
    with pytest.raises(VideoWriteError, match=r"\.avi"):
        write_video(tmp_path / "clip.avi", smooth_frames(2), fps=25)
    assert os.listdir(tmp_path) == []


def test_iter_frames_streams(tmp_path: Path) -> None:
    path = write_video(tmp_path / "clip.mp4", smooth_frames(12), fps=25)
    count = 0
    for frame in iter_frames(path, frame_shape=(16, 24, 3)):
        assert frame.shape == (16, 24, 3) and frame.dtype == np.uint8
        count += 1
    assert count == 12


# ----------------------------------------------------------------------------------------
# reading selected frames


@pytest.mark.parametrize(
    "name, options",
    [("keyframes.mp4", {"g": "4", "bf": "2"}), ("default.mp4", {}), ("clip.avi", {"g": "5"})],
)
def test_read_frames_at_matches_full_decode(tmp_path: Path, name: str, options: dict) -> None:
    frames = indexed_frames(80, 32, step=3)
    codec = "mpeg4" if name.endswith(".avi") else "libx264"
    path = encode_with_pyav(tmp_path / name, frames, codec=codec, **options)
    full = read_video(path)
    assert len(full) == 80
    rng = np.random.default_rng(0)
    for indices in ([79], [0, 79], [60, 2, 60], [30, 31], list(rng.integers(0, 80, 4))):
        np.testing.assert_array_equal(read_frames_at(path, indices), full[indices])


def test_read_frames_at_other_formats(tmp_path: Path) -> None:
    frames = indexed_frames(6, 16)
    gif = write_video(tmp_path / "clip.gif", frames, fps=25)
    np.testing.assert_array_equal(read_frames_at(gif, [5, 1]), read_video(gif)[[5, 1]])
    folder = tmp_path / "frames"
    folder.mkdir()
    for index, frame in enumerate(frames):
        iio.imwrite(folder / f"{index:03d}.png", frame)
    np.testing.assert_array_equal(read_frames_at(folder, [4, 0]), frames[[4, 0]])


def test_read_frames_at_out_of_range_names_file(tmp_path: Path) -> None:
    path = write_video(tmp_path / "short.mp4", smooth_frames(4), fps=25)
    with pytest.raises(VideoReadError, match="short.mp4.*frame 9"):
        read_frames_at(path, [1, 9])
    with pytest.raises(IndexError):
        read_frames_at(path, [-1])


# ----------------------------------------------------------------------------------------
# audio


@pytest.mark.parametrize("source_name, codec", [("voice.mp4", "aac"), ("voice.mov", "pcm_s16le")])
@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_audio_kept(tmp_path: Path, source_name: str, codec: str, suffix: str) -> None:
    source = make_video_with_audio(tmp_path / source_name, codec)
    assert video_info(source).has_audio
    out = write_video(tmp_path / f"animated{suffix}", smooth_frames(10), fps=25, audio_from=source)
    assert video_info(out).has_audio
    assert len(audio_streams(out)) == 1
    if suffix == ".mp4":
        assert audio_streams(out) == ["aac"]  # PCM is re-encoded, AAC copied
    with av.open(str(out)) as container:
        samples = sum(frame.samples for frame in container.decode(audio=0))
    # 10 frames at 25 fps = 0.4 s of 16 kHz audio, cut at packet granularity
    assert 0.35 * 16000 <= samples <= 0.6 * 16000


def test_audio_from_silent_video_writes_without_audio(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    silent = write_video(tmp_path / "silent.mp4", smooth_frames(4), fps=25)
    out = write_video(tmp_path / "out.mp4", smooth_frames(4), fps=25, audio_from=silent)
    assert audio_streams(out) == []
    assert "no audio" in caplog.text


@pytest.mark.parametrize("codec", ["aac", "pcm_s16le"])  # remuxed, re-encoded
def test_audio_from_a_later_start(tmp_path: Path, codec: str) -> None:
    """A segment cut out of a video keeps its own sound: audio_start skips what came before."""
    source = make_video_with_audio(tmp_path / f"voice.{'mp4' if codec == 'aac' else 'mov'}", codec,
                                   silent_until=0.5)

    def loudness(path: Path) -> float:
        with av.open(str(path)) as container:
            samples = np.concatenate([frame.to_ndarray().ravel() for frame in container.decode(audio=0)])
        return float(np.sqrt(np.mean((samples.astype(np.float64) / (32767 if samples.dtype == np.int16 else 1)) ** 2)))

    start = write_video(tmp_path / "start.mp4", smooth_frames(10), fps=25, audio_from=source)
    later = write_video(tmp_path / "later.mp4", smooth_frames(10), fps=25, audio_from=source, audio_start=0.5)
    assert loudness(start) < 0.05  # the silent first 0.4 s
    assert loudness(later) > 0.15  # the tone (RMS 0.21)


def test_audio_from_missing_file(tmp_path: Path) -> None:
    with pytest.raises(VideoReadError, match="nothere.mp4"):
        write_video(tmp_path / "out.mp4", smooth_frames(4), fps=25, audio_from=tmp_path / "nothere.mp4")
    assert os.listdir(tmp_path) == []


# ----------------------------------------------------------------------------------------
# strips, folders, colour conversions, resizing


def test_image_strip_png_and_jpg(tmp_path: Path) -> None:
    frames = smooth_frames(5, 16, 16)
    strip = np.concatenate(list(frames), axis=1)  # (16, 80, 3): frames side by side
    iio.imwrite(tmp_path / "strip.png", strip)
    iio.imwrite(tmp_path / "strip.jpg", strip, quality=95)
    info = video_info(tmp_path / "strip.png")
    assert (info.kind, info.num_frames, info.height, info.width) == ("strip", 5, 16, 16)
    np.testing.assert_array_equal(read_video(tmp_path / "strip.png"), frames)
    assert mean_abs_error(read_video(tmp_path / "strip.jpg"), frames) < 0.03
    np.testing.assert_array_equal(read_frames_at(tmp_path / "strip.png", [3]), frames[[3]])


def test_folder_of_frames_natural_order(tmp_path: Path) -> None:
    frames = indexed_frames(12, 8, step=20)
    for index, frame in enumerate(frames):
        iio.imwrite(tmp_path / f"frame{index}.png", frame)  # frame10 must come after frame9
    (tmp_path / "notes.txt").write_text("not a frame")
    info = video_info(tmp_path)
    assert (info.kind, info.num_frames, info.fps) == ("folder", 12, None)
    np.testing.assert_array_equal(read_video(tmp_path), frames)


def test_grayscale_and_rgba_become_rgb(tmp_path: Path) -> None:
    gray = np.tile(np.arange(0, 256, 8, dtype=np.uint8), (32, 1))  # (32, 32)
    folder = tmp_path / "gray"
    folder.mkdir()
    for index in range(3):
        iio.imwrite(folder / f"{index}.png", gray)
    decoded = read_video(folder)
    assert decoded.shape == (3, 32, 32, 3)
    for channel in range(3):
        np.testing.assert_array_equal(decoded[0, :, :, channel], gray)

    rgba = np.concatenate([smooth_frames(1, 16, 32)[0], np.full((16, 32, 1), 77, np.uint8)], axis=-1)
    iio.imwrite(tmp_path / "rgba.png", rgba)  # a strip of two 16x16 frames with alpha
    decoded = read_video(tmp_path / "rgba.png")
    assert decoded.shape == (2, 16, 16, 3)
    np.testing.assert_array_equal(np.concatenate(list(decoded), axis=1), rgba[:, :, :3])


def test_gray_video_becomes_rgb(tmp_path: Path) -> None:
    frames = np.repeat(smooth_frames(4)[..., :1], 3, axis=-1)
    path = tmp_path / "gray.mkv"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=25)  # lossless gray
        stream.width = stream.height = 32
        stream.pix_fmt = "gray"
        for frame in frames[..., 0]:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="gray")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    decoded = read_video(path)
    assert decoded.shape == (4, 32, 32, 3)
    assert mean_abs_error(decoded, frames) < 0.01


def test_resize_to_frame_shape_is_antialiased(tmp_path: Path) -> None:
    checker = ((np.indices((64, 48)).sum(axis=0) % 2) * 255).astype(np.uint8)  # 1-pixel checkerboard
    folder = tmp_path / "checker"
    folder.mkdir()
    for index in range(2):
        iio.imwrite(folder / f"{index}.png", checker)
    small = read_video(folder, frame_shape=(32, 24, 3))
    assert small.shape == (2, 32, 24, 3)
    # Averaging filters give flat gray; a nearest-neighbour resize would give black or white.
    assert np.all(np.abs(small.astype(int) - 128) <= 2)
    gray = read_video(folder, frame_shape=(16, 16, 1))
    assert gray.shape == (2, 16, 16, 1)
    big = read_video(write_video(tmp_path / "clip.mp4", smooth_frames(3, 32, 32), fps=25), frame_shape=(64, 64, 3))
    assert big.shape == (3, 64, 64, 3)


# ----------------------------------------------------------------------------------------
# bad input


def test_bad_inputs_raise_naming_the_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    good = write_video(tmp_path / "good.mp4", smooth_frames(8), fps=25)
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(good.read_bytes()[:300])
    empty_folder = tmp_path / "no_frames"
    empty_folder.mkdir()
    bad_strip = tmp_path / "bad_strip.png"
    iio.imwrite(bad_strip, np.zeros((16, 40, 3), np.uint8))
    not_video = tmp_path / "readme.txt"
    not_video.write_text("hello")
    cases = {
        tmp_path / "missing.mp4": "not found",
        empty: "empty",
        garbage: "not a readable video",
        truncated: "not a readable video",
        empty_folder: "no images",
        bad_strip: "not a strip",
        not_video: "unsupported video format",
    }
    for path, reason in cases.items():
        for reader in (video_info, read_video, lambda p: read_frames_at(p, [0])):
            with pytest.raises(VideoReadError, match=reason) as caught:
                reader(path)
            assert str(path) in str(caught.value)
            assert isinstance(caught.value, DataError) and isinstance(caught.value, ValueError)


def test_zero_frame_video(tmp_path: Path) -> None:
    path = tmp_path / "zero.mp4"
    subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-y", "-f", "lavfi", "-i",
         "color=c=red:s=32x32", "-frames:v", "0", "-c:v", "libx264", str(path)],
        check=True,
    )
    with pytest.raises(VideoReadError, match="zero.mp4"):
        read_video(path)


def test_damaged_frames_raise_instead_of_blank_frames(tmp_path: Path) -> None:
    # Header at the front (faststart) but the frame data cut: the header reads fine, decoding not.
    path = tmp_path / "cut.mp4"
    frames = (np.random.default_rng(0).random((16, 32, 32, 3)) * 255).astype(np.uint8)
    with av.open(str(path), "w", options={"movflags": "faststart"}) as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width = stream.height = 32
        stream.pix_fmt = "yuv420p"
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert video_info(path).num_frames == 16
    with pytest.raises(VideoReadError, match="cut.mp4"):
        read_video(path)
    with pytest.raises(VideoReadError, match="cut.mp4"):
        read_frames_at(path, [15])


# ----------------------------------------------------------------------------------------
# phone media: rotation, EXIF orientation, variable frame rate, animated images


def _marked_picture(height: int = 64, width: int = 128) -> np.ndarray:
    """A wide picture with a red block at its top-left and a blue one at its bottom-right, on a
    gradient: any turn or mirror of it is told apart."""
    picture = smooth_frames(1, height, width)[0]
    picture[: height // 4, : width // 4] = (255, 0, 0)
    picture[-height // 4 :, -width // 4 :] = (0, 0, 255)
    return picture


@pytest.mark.parametrize("degrees", [90, -90, 180])
def test_display_rotation_is_applied_as_players_do(tmp_path: Path, degrees: int) -> None:
    """A phone writes sideways pixels plus a display matrix; ffmpeg (like every player) turns
    the picture upright, and so must fomm: same size, same pixels."""
    plain = encode_with_pyav(tmp_path / "plain.mp4", np.stack([_marked_picture()] * 4))
    rotated = tmp_path / "phone.mp4"
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    subprocess.run([ffmpeg, "-v", "error", "-display_rotation", str(degrees), "-i", str(plain), "-c", "copy",
                    str(rotated)], check=True)
    raw = subprocess.run([ffmpeg, "-v", "error", "-i", str(rotated), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                         check=True, capture_output=True).stdout
    height, width = (128, 64) if degrees % 180 else (64, 128)
    shown = np.frombuffer(raw, np.uint8).reshape(4, height, width, 3)
    info = video_info(rotated)
    assert (info.height, info.width) == (height, width)
    frames = read_video(rotated)
    assert frames.shape == shown.shape
    assert mean_abs_error(frames, shown) < 0.01
    np.testing.assert_array_equal(read_frames_at(rotated, [2]), frames[[2]])
    np.testing.assert_array_equal(read_source_image(rotated), frames[0])


@pytest.mark.parametrize("orientation, turns", [(6, -1), (8, 1), (3, 2)])
def test_exif_orientation_of_a_jpeg_is_applied(tmp_path: Path, orientation: int, turns: int) -> None:
    """EXIF orientation 6: the camera was turned a quarter clockwise, and a viewer turns the
    stored picture a quarter clockwise to show it (8: counter-clockwise, 3: half a turn)."""
    from PIL import Image

    stored = _marked_picture(48, 96)
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "photo.jpg"
    Image.fromarray(stored).save(path, exif=exif, quality=95)
    shown = np.rot90(stored, turns)
    assert mean_abs_error(read_source_image(path), shown) < 0.03
    folder = tmp_path / "frames"
    folder.mkdir()
    path.rename(folder / "0001.jpg")
    info = video_info(folder)
    assert (info.height, info.width) == shown.shape[:2]
    assert mean_abs_error(read_video(folder)[0], shown) < 0.03


def test_variable_frame_rate_frames_are_found_by_timestamp(tmp_path: Path) -> None:
    """Phones record at a variable rate. Here frames come every 20 ms, then every 100 ms:
    frame 5 is at 0.1 s, which time x average rate (16.9 fps) calls frame 2."""
    frames = indexed_frames(80, 32, step=3)
    path = tmp_path / "phone.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width = stream.height = 32
        stream.pix_fmt = "yuv420p"
        stream.options = {"g": "10", "bf": "2"}
        stream.codec_context.time_base = Fraction(1, 1000)
        time = 0
        for index, frame in enumerate(frames):
            picture = av.VideoFrame.from_ndarray(frame, format="rgb24")
            picture.pts, picture.time_base = time, Fraction(1, 1000)
            time += 20 if index < 40 else 100
            for packet in stream.encode(picture):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    decoded = [frame_index(frame / 255.0, step=3) for frame in read_video(path)]
    assert decoded == list(range(80))
    for indices in ([5], [60], [70, 5], [79, 0, 40, 41], [39, 45]):
        found = read_frames_at(path, indices)
        assert [frame_index(frame / 255.0, step=3) for frame in found] == indices


@pytest.mark.parametrize("suffix", [".png", ".webp"])
def test_animated_png_and_webp_give_every_frame(tmp_path: Path, suffix: str) -> None:
    from PIL import Image

    frames = indexed_frames(6, 16)
    path = tmp_path / f"loop{suffix}"
    pictures = [Image.fromarray(frame) for frame in frames]
    pictures[0].save(path, save_all=True, append_images=pictures[1:], duration=50, loop=0,
                     **({"lossless": True} if suffix == ".webp" else {}))
    info = video_info(path)
    assert info == VideoInfo(path, "animation", 6, 16, 16, 20.0, False)
    np.testing.assert_array_equal(read_video(path), frames)
    np.testing.assert_array_equal(read_frames_at(path, [4, 1]), frames[[4, 1]])
    driving, fps = read_driving_video(path)
    assert len(driving) == 6 and fps == 20.0
    np.testing.assert_array_equal(read_source_image(path), frames[0])
