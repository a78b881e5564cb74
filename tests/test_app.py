"""The web app (`fomm serve`) and the live mode (`fomm live`), as their users meet them.

The web app runs as a real `fomm serve` process on a free port of 127.0.0.1; its API is called
through gradio_client and its page is driven by a real headless Chromium (Debian's package,
installed by scripts/setup.sh; that one test is skipped where there is none). `fomm live` reads
real video files, made here at 25 fps and at a rate the model cannot keep up with.
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

import av
import numpy as np
import pytest
import torch
import yaml

from fomm.animate import Animator
from fomm.data.frames import fit_frames, to_uint8
from fomm.app.live import CapturedFrame, FrameReader, LatestFrame, LiveAnimator, VideoFileSink, run_live
from fomm.app.catalog import BUNDLED_MODEL_NAME, ModelCatalog, find_models
from fomm.assets import BUNDLED_CHECKPOINT, BUNDLED_DRIVING, BUNDLED_SOURCE
from fomm.checkpoint import load_checkpoint, save_checkpoint
from fomm.cli import main
from fomm.data.media import read_source_image
from fomm.data.video import read_video, video_info, write_video
from fomm.errors import UserError

from .reference_fixtures import fixture, original_checkpoint

from .conftest import fresh_cache

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:gradio.*")

gradio_client = pytest.importorskip("gradio_client", reason="the web app's tests need fomm[app]")

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = Path(os.environ.get("FOMM_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SUMMARY = re.compile(r"animated (\d+) of (\d+) frames \((\d+) dropped\) in [\d.]+ s: ([\d.]+) fps.*"
                     r"latency (\d+) ms median, (\d+) ms p95")


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    """The `auto` backend choice is remembered in $FOMM_CACHE: each test has its own."""
    monkeypatch.setenv("FOMM_CACHE", str(fresh_cache(tmp_path / "fomm-cache")))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def write_tone(path: Path, seconds: float, rate: int = 22050) -> Path:
    """An AAC file holding a 440 Hz tone."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=rate)
        stream.layout = "mono"
        time_axis = np.arange(int(seconds * rate)) / rate
        frame = av.AudioFrame.from_ndarray((0.3 * np.sin(2 * np.pi * 440 * time_axis)).astype(np.float32)[None],
                                           format="fltp", layout="mono")
        frame.sample_rate = rate
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    return path


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, Path]:
    """Short driving clips cut from the bundled one (with sound), a fast clip, and bad uploads."""
    root = tmp_path_factory.mktemp("media")
    frames = read_video(BUNDLED_DRIVING)
    tone = write_tone(root / "tone.m4a", seconds=1.0)
    clips = {
        "clip": write_video(root / "clip.mp4", frames[:12], fps=25, audio_from=tone),
        "short": write_video(root / "short.mp4", frames[20:28], fps=25),
        # 240 fps: far more than the model animates here, so the live loop must drop frames.
        "fast": write_video(root / "fast.mp4", np.concatenate([frames, frames]), fps=240),
    }
    (root / "notes.mp4").write_text("this is not a video\n")
    (root / "notes.png").write_text("this is not a picture\n")
    clips.update(bad_video=root / "notes.mp4", bad_image=root / "notes.png")
    return clips


# --------------------------------------------------------------------------------------------
# models on offer


def test_models_folder_pairs_checkpoints_with_their_configs(tmp_path):
    model = load_checkpoint(BUNDLED_CHECKPOINT)
    save_checkpoint(tmp_path / "runs" / "mine" / "checkpoint.pth.tar", model)  # ours: carries its config
    original = {name: getattr(model, name).state_dict() for name in ("generator", "kp_detector")}
    torch.save(original, tmp_path / "sprites-original.pth.tar")  # the original layout: no config inside
    (tmp_path / "sprites-original.yaml").write_text(yaml.safe_dump(model.config.to_dict(), sort_keys=False))
    (tmp_path / "vox-cpk.pth.tar").write_bytes(b"")  # a published name: its packaged config
    (tmp_path / "notes.txt").write_text("not a checkpoint")
    for family, name in (("tpsmm", "tpsmm.pth.tar"), ("mraa", "mraa.pth")):  # the other families' layouts
        torch.save(original_checkpoint(family), tmp_path / name)
        shutil.copyfile(fixture(family, "config.yaml"), (tmp_path / name).with_name(f"{family}.yaml"))

    entries = {entry.name: entry for entry in find_models(tmp_path)}
    assert list(entries) == [BUNDLED_MODEL_NAME, "mraa.pth (MRAA)", "runs/mine/checkpoint.pth.tar (FOMM)",
                             "sprites-original.pth.tar (FOMM)", "tpsmm.pth.tar (TPSMM)", "vox-cpk.pth.tar"]
    assert entries["sprites-original.pth.tar (FOMM)"].config == str(tmp_path / "sprites-original.yaml")
    assert entries["vox-cpk.pth.tar"].config == "vox-256"
    registry = ModelCatalog(list(entries.values()), keep=1)
    loaded = registry.load("sprites-original.pth.tar (FOMM)")
    for name, value in model.generator.state_dict().items():
        assert torch.equal(loaded.generator.state_dict()[name], value), name
    assert registry.load("runs/mine/checkpoint.pth.tar (FOMM)").frame_shape == (64, 64, 3)
    assert registry.load("tpsmm.pth.tar (TPSMM)").family == "tpsmm"
    assert registry.load("mraa.pth (MRAA)").family == "mraa"
    with pytest.raises(UserError, match="unknown model"):
        registry.load("nothing.pth.tar")


def test_models_folder_must_exist(tmp_path):
    with pytest.raises(UserError, match="not a folder"):
        find_models(tmp_path / "missing")


# --------------------------------------------------------------------------------------------
# fomm serve: a real server process


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`fomm serve` on a free port; stopped with SIGTERM at the end, which must exit cleanly."""
    port = free_port()
    environment = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1",
                       GRADIO_TEMP_DIR=str(tmp_path_factory.mktemp("gradio")),
                       FOMM_CACHE=str(fresh_cache(tmp_path_factory.mktemp("fomm-cache"))))
    process = subprocess.Popen([sys.executable, "-m", "fomm.cli", "serve", "--port", str(port), "--threads", "1"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=environment)
    lines: queue.Queue = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(line) for line in process.stdout], daemon=True)
    reader.start()
    output, url, deadline = [], None, time.monotonic() + 180
    while url is None and time.monotonic() < deadline and process.poll() is None:
        try:
            output.append(lines.get(timeout=1.0))
        except queue.Empty:
            continue
        found = re.search(r"open (http://127\.0\.0\.1:\d+/?)", output[-1])
        url = found.group(1) if found else None
    if url is None:
        process.kill()
        reader.join(timeout=10)
        pytest.fail("fomm serve did not start:\n" + "".join(output + list(lines.queue)))
    yield url
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    reader.join(timeout=10)
    output += list(lines.queue)
    assert process.returncode == 0, "".join(output)
    assert "fomm serve: stopped" in output[-1]


@pytest.fixture(scope="module")
def client(server):
    return gradio_client.Client(server, verbose=False)


def test_api_animates_an_upload_with_its_sound(client, media):
    from gradio_client import handle_file

    result, side, keypoints, files, summary = client.predict(
        handle_file(str(BUNDLED_SOURCE)), {"video": handle_file(str(media["clip"]))}, api_name="/animate")
    animation = read_video(result["video"])
    assert animation.shape == (12, 64, 64, 3) and animation.std() > 5
    assert video_info(result["video"]).has_audio, "the driving video's sound is kept"
    panels = read_video(side["video"])
    assert len(panels) == 12 and panels.shape[2] >= 3 * 64
    picture = read_source_image(Path(keypoints))
    assert picture.ndim == 3 and picture.shape[0] > 100
    assert sorted(Path(path).name for path in files) == ["keypoints.png", "result.mp4", "side_by_side.mp4"]
    assert "12 frames at 25 fps" in summary
    # The page's default motion is the model's, as `fomm animate`'s: the bundled model's learned transfer.
    assert "corrected by the model's learned point transfer" in summary


@pytest.mark.parametrize("upload, expected", [
    ("bad_video", "notes.mp4: not a readable video"),
    ("bad_image", "the source picture notes.png is not an image that can be read"),
])
def test_api_explains_bad_uploads(client, media, upload, expected):
    from gradio_client import handle_file

    source = media["bad_image"] if upload == "bad_image" else BUNDLED_SOURCE
    driving = media["bad_video"] if upload == "bad_video" else media["short"]
    with pytest.raises(gradio_client.exceptions.AppError) as raised:
        client.predict(handle_file(str(source)), {"video": handle_file(str(driving))}, api_name="/animate")
    message = str(raised.value)
    assert expected in message and "Traceback" not in message and "/tmp/gradio" not in message


def test_api_says_when_no_face_is_found_to_crop_to(client, media):
    from gradio_client import handle_file

    with pytest.raises(gradio_client.exceptions.AppError, match="no face found"):
        client.predict(handle_file(str(BUNDLED_SOURCE)), {"video": handle_file(str(media["short"]))},
                       crop="face", api_name="/animate")


def test_concurrent_requests_are_queued_and_all_served(client, media):
    from gradio_client import handle_file

    jobs = [client.submit(handle_file(str(BUNDLED_SOURCE)), {"video": handle_file(str(media["short"]))},
                          motion=motion, api_name="/animate") for motion in ("relative", "absolute")]
    results = [job.result(timeout=300) for job in jobs]
    videos = [read_video(result[0]["video"]) for result in results]
    assert all(video.shape == (8, 64, 64, 3) for video in videos)
    assert np.abs(videos[0].astype(int) - videos[1].astype(int)).mean() > 1, "each request got its own result"


def _note_outside(outside: dict, url: str, failure) -> None:
    if not url.startswith(("data:", "blob:")) and urlparse(url).hostname not in ("127.0.0.1", "localhost"):
        outside[url] = failure


def test_browser_uploads_a_sample_and_shows_the_result(server, media, tmp_path):
    """A person's path through the page in a real browser; nothing is fetched from the network.
    FOMM_APP_SCREENSHOT=docs/assets/app.png also saves the screenshot there (for the docs)."""
    if not CHROMIUM.is_file():
        pytest.skip(f"no Chromium at {CHROMIUM} (scripts/setup.sh installs Debian's chromium with CI=1 or "
                    f"FOMM_BROWSER_TESTS=1, as root)")
    playwright = pytest.importorskip("playwright.sync_api", reason="the browser test needs playwright (fomm[dev])")
    outside: dict[str, str] = {}  # url -> why it failed (None: it went out)
    with playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.on("request", lambda request: _note_outside(outside, request.url, None))
            page.on("requestfailed", lambda request: _note_outside(outside, request.url, request.failure))
            page.goto(server)
            page.set_input_files("#source input[type=file]", str(BUNDLED_SOURCE))
            page.set_input_files("#driving input[type=file]", str(media["clip"]))
            page.wait_for_selector("#driving video", timeout=30_000)
            page.click("#animate")
            page.wait_for_function("() => { const v = document.querySelector('#result video');"
                                   " return v && v.readyState >= 1 && v.duration > 0; }", timeout=180_000)
            page.wait_for_function("() => document.querySelector('#summary').innerText.includes('12 frames')",
                                   timeout=30_000)
            page.wait_for_selector("#keypoints img", timeout=30_000)
            page.wait_for_timeout(500)  # let the videos draw their first frame
            screenshot = tmp_path / "app.png"
            page.screenshot(path=str(screenshot), full_page=True)

            page.click("#driving button[aria-label='Clear']")
            page.set_input_files("#driving input[type=file]", str(media["bad_video"]))
            page.wait_for_timeout(1000)
            page.click("#animate")
            error = page.wait_for_selector(".toast-body:has-text('notes.mp4:')", timeout=60_000).inner_text()
            assert "notes.mp4: not a readable video" in error and "Traceback" not in error, error
        finally:
            browser.close()
    picture = read_source_image(screenshot)
    assert picture.shape[1] == 1280 and picture.std() > 10
    went_out = {url: why for url, why in outside.items() if why not in ("csp", "net::ERR_BLOCKED_BY_CSP")}
    assert not went_out, f"the page reached the network: {went_out}"
    if os.environ.get("FOMM_APP_SCREENSHOT"):
        shutil.copyfile(screenshot, os.environ["FOMM_APP_SCREENSHOT"])


def test_serve_refuses_a_missing_models_folder_and_a_busy_port(tmp_path, capsys, monkeypatch):
    # Gradio reads its folder once, when first imported: in one process, both calls must use one
    # that outlives them (each `fomm serve` process deletes its own).
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    assert main(["serve", "--models", str(tmp_path / "missing")]) == 2
    assert "--models" in capsys.readouterr().err
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        assert main(["serve", "--port", str(busy.getsockname()[1])]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "--port" in error, error


def test_a_serve_that_stops_leaves_nothing_in_the_temporary_folder(tmp_path):
    """`fomm serve` on a busy port builds the whole app (Gradio makes its folders then) and stops:
    its own folder, with Gradio's inside, is gone, and the environment is as it was."""
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    environment = {name: value for name, value in os.environ.items()
                   if name not in ("GRADIO_TEMP_DIR", "TORCHINDUCTOR_CACHE_DIR")}
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        script = (f"import os; from fomm.cli import main; code = main(['serve', '--port', '{busy.getsockname()[1]}']); "
                  "print(code, os.environ.get('GRADIO_TEMP_DIR'), os.environ.get('TORCHINDUCTOR_CACHE_DIR'))")
        finished = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                                  env=dict(environment, TMPDIR=str(temporary)))
    assert finished.stdout.split() == ["2", "None", "None"], finished.stdout + finished.stderr
    assert "--port" in finished.stderr
    assert list(temporary.iterdir()) == []


# --------------------------------------------------------------------------------------------
# fomm live


def test_latest_frame_keeps_only_the_newest():
    mailbox = LatestFrame()
    blank = np.zeros((2, 2, 3), np.uint8)
    for index in range(5):
        mailbox.put(CapturedFrame(index, blank, time.perf_counter()))
    assert mailbox.take(timeout=0).index == 4
    assert mailbox.dropped == 4 and mailbox.take(timeout=0) is None
    mailbox.put(CapturedFrame(5, blank, time.perf_counter()))
    mailbox.close()
    assert not mailbox.finished and mailbox.discard() == 1 and mailbox.finished and mailbox.dropped == 5


def test_live_on_a_25_fps_clip_accounts_for_every_frame(tmp_path, capsys):
    out = tmp_path / "live.mp4"
    assert main(["live", "--input", str(BUNDLED_DRIVING), "--no-window", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    found = SUMMARY.search(printed)
    assert found, printed
    animated, read, dropped, fps, median, p95 = map(float, found.groups())
    frames = video_info(BUNDLED_DRIVING).num_frames
    assert read == frames and animated + dropped == read and animated > 0
    assert 0 < median <= p95 and fps > 0
    written = read_video(out)
    assert len(written) == frames and written.std() > 5, "one output frame per input frame"
    assert f"wrote {out} ({frames} frames at 25 fps)" in printed


def test_live_drops_frames_rather_than_falling_behind(media, tmp_path):
    """At 240 fps the model cannot keep up: frames are dropped, and no frame waits longer than
    about one animation step, as it would in a queue (where the wait grows frame after frame)."""
    model = load_checkpoint(BUNDLED_CHECKPOINT)
    live = LiveAnimator(Animator(model), [read_source_image(BUNDLED_SOURCE)])
    reader = FrameReader(str(media["fast"]))
    assert reader.fps == pytest.approx(240)
    sink = VideoFileSink(tmp_path / "fast.mp4", fps=reader.fps)
    report = run_live(reader, live, file_sink=sink)
    total = video_info(media["fast"]).num_frames
    assert report.frames_read == total and report.frames_animated + report.frames_dropped == total
    assert report.frames_dropped > 0 and report.frames_animated > 1
    service = [latency - wait for latency, wait in zip(report.latencies, report.waits)]
    assert max(report.waits) <= max(service) + 0.15, (max(report.waits), max(service))
    assert len(read_video(tmp_path / "fast.mp4")) == total
    assert "dropped" in report.summary() and "latency" in report.summary()


def test_live_reanchors_and_switches_sources():
    """Re-anchoring makes the current pose the reference: animating that same frame then gives
    back the source's own pose, which it did not while the reference was another frame."""
    model = load_checkpoint(BUNDLED_CHECKPOINT)
    source = read_source_image(BUNDLED_SOURCE)
    driving = read_video(BUNDLED_DRIVING)
    live = LiveAnimator(Animator(model), [source, np.ascontiguousarray(source[:, ::-1])])
    live.animate(driving[0])  # the reference: frame 0
    moved, _ = live.animate(driving[40])
    live.reanchor()
    still, seen = live.animate(driving[40])  # the reference: frame 40 itself
    image = fit_frames(source, 64, 64)
    own = to_uint8(Animator(model).animate(image[0], image))[0].astype(int)  # the source in its own pose
    assert np.abs(still.astype(int) - own).mean() < 0.5 * np.abs(moved.astype(int) - own).mean()
    assert np.array_equal(seen, driving[40])
    assert [live.switch_source(1), live.switch_source(1), live.switch_source(-1)] == [1, 0, 1]
    flipped, _ = live.animate(driving[40])
    assert np.abs(flipped.astype(int) - still.astype(int)).mean() > 5, "the other source is animated"


def test_live_needs_a_display_or_no_window(monkeypatch, capsys):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert main(["live", "--input", str(BUNDLED_DRIVING)]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "--no-window" in error, error


@pytest.mark.parametrize("argv, expected", [
    (["--input", "missing.mp4"], "--input missing.mp4: no such file"),
    (["--input", "7"], "cannot open camera 7"),
    (["--out", "live.gif"], "unknown extension"),
])
def test_live_input_and_output_mistakes_are_one_line(argv, expected, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    arguments = ["live", "--no-window", *argv]
    if "--out" not in argv:
        arguments += ["--out", "live.mp4"]
    if "--input" not in argv:
        arguments += ["--input", str(BUNDLED_DRIVING)]
    assert main(arguments) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and expected in error, error


def test_live_virtual_camera_without_pyvirtualcam_is_one_line(capsys):
    try:
        import pyvirtualcam  # noqa: F401
        pytest.skip("pyvirtualcam is installed here: the message is for where it is not")
    except ImportError:
        pass
    assert main(["live", "--no-window", "--virtual-camera", "--input", str(BUNDLED_DRIVING)]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "pip install pyvirtualcam" in error, error


@pytest.fixture
def virtual_display(tmp_path):
    """An X display of its own (Xvfb), or a skip where there is no Xvfb."""
    if shutil.which("Xvfb") is None:
        pytest.skip("no Xvfb (scripts/setup.sh installs Debian's xvfb with CI=1 or FOMM_BROWSER_TESTS=1)")
    number = next(number for number in range(60, 100)
                  if not Path(f"/tmp/.X{number}-lock").exists() and not Path(f"/tmp/.X11-unix/X{number}").exists())
    server = subprocess.Popen(["Xvfb", f":{number}", "-screen", "0", "800x600x24", "-nolisten", "tcp"],
                              stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while not Path(f"/tmp/.X11-unix/X{number}").exists() and time.monotonic() < deadline and server.poll() is None:
        time.sleep(0.05)
    try:
        yield f":{number}"
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_live_window_shows_input_and_result(virtual_display, monkeypatch):
    from PIL import ImageGrab

    from fomm.app.live import compose_view
    from fomm.app.window import open_window

    monkeypatch.setenv("DISPLAY", virtual_display)
    window = open_window("fomm live test")
    try:
        result = np.zeros((64, 64, 3), np.uint8)
        result[:, :, 0] = 200  # red result
        seen = np.zeros((64, 64, 3), np.uint8)
        seen[:, :, 2] = 200  # blue input
        view = compose_view(result, seen, 128)
        window.show(view)
        for _ in range(20):
            window.poll_key()
            time.sleep(0.02)
        screen = np.asarray(ImageGrab.grab(xdisplay=virtual_display))[..., :3].astype(int)
    finally:
        window.close()
    blue = (screen[..., 2] > 150) & (screen[..., 0] < 50)
    red = (screen[..., 0] > 150) & (screen[..., 2] < 50)
    assert blue.sum() >= 0.9 * 128 * 128 and red.sum() >= 0.9 * 128 * 128, "input and result on the screen"
    assert np.nonzero(blue)[1].mean() < np.nonzero(red)[1].mean(), "input on the left, result on the right"
