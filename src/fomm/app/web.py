"""The web app of ``fomm serve``: a Gradio page to animate an uploaded picture with an uploaded
video, and the same as an API.

The API endpoint ``/animate`` takes the source image and the driving video first (every other
input has a default) and returns the result video first::

    from gradio_client import Client, handle_file
    client = Client("http://127.0.0.1:7860/")
    result, side_by_side, keypoints, files, summary = client.predict(
        handle_file("face.png"), {"video": handle_file("driving.mp4")}, api_name="/animate")

One animation runs at a time (the CPU or GPU is the bottleneck); other requests wait in Gradio's
queue and see their place in it. Neither the server nor the page reaches another machine:
Gradio's telemetry and version check are off, the page uses the system's fonts rather than
Google's, and its content security policy keeps the browser from loading anything from elsewhere.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
import warnings
from collections import deque
from pathlib import Path
from typing import Optional, Sequence

# Read by Gradio when it is imported and when a server starts: no telemetry, no version check.
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"

import gradio as gr  # noqa: E402  (after the environment above)
from starlette.middleware import Middleware  # noqa: E402

from ..animate import BACKENDS, MOTION_MODES, PRECISIONS  # noqa: E402
from ..assets import ASSETS, BUNDLED_DRIVING, BUNDLED_SOURCE  # noqa: E402
from ..errors import UserError  # noqa: E402
from .job import CROPS, AnimationOptions, AnimationOutputs, run_animation  # noqa: E402
from .catalog import ModelCatalog  # noqa: E402

__all__ = ["API_NAME", "CONTENT_SECURITY_POLICY", "JobFolders", "SameOriginOnly", "build_app", "launch"]

logger = logging.getLogger(__name__)

API_NAME = "animate"
#: The queue holds at most this many waiting requests; more are refused with a message.
MAX_QUEUE = 64
#: Gradio's own copies of uploads and results are deleted after a day (checked hourly).
CACHE_LIFETIME_S = 24 * 3600
#: The Motion choice that leaves the mode to the model (``fomm animate`` without ``--motion``).
MODEL_DEFAULT = "default"

_INTRO = """\
# fomm: animate a picture with the motion of a video

Upload a **source** picture and a **driving** video (or pick a sample below), then press
**Animate**. The result keeps the driving video's sound. Every model the server found is in the
*Model* list; the bundled one is trained on 64x64 cartoon sprites (see *Samples*).
"""


def _explain_unreadable_images(image: gr.Image, what: str) -> gr.Image:
    """``image`` (an input), whose unreadable uploads get a message naming the file rather than
    PIL's error. Gradio opens an uploaded image before the app's function sees it, so the check
    wraps this component's ``preprocess`` (a subclass would do, but Gradio writes a ``.pyi``
    stub beside the module of every component class it sees)."""
    preprocess = image.preprocess

    def checked(payload):
        try:
            return preprocess(payload)
        except (OSError, ValueError) as error:  # PIL.UnidentifiedImageError is an OSError
            name = getattr(payload, "orig_name", None) or Path(getattr(payload, "path", "") or "upload").name
            logger.info("unreadable %s upload %s: %s", what, name, error)
            raise gr.Error(f"the {what} {name} is not an image that can be read (use a PNG, JPEG, WebP, BMP or "
                           f"TIFF picture)", print_exception=False) from None

    image.preprocess = checked  # type: ignore[method-assign]
    return image


def _without_upload_folders(message: str, uploads: Sequence[Optional[str]]) -> str:
    """``message`` with Gradio's upload folders (``/tmp/gradio/<hash>/``) taken out of the file
    names in it: the user knows the file by its own name."""
    for upload in uploads:
        if upload:
            message = message.replace(f"{Path(upload).parent}{os.sep}", "")
    return message


#: The page may load and connect to its own server only: Gradio's page template and its video
#: player ask CDNs for scripts (an iframe resizer, ffmpeg.wasm for trimming), which would tell
#: them who uses the app. The browser refuses those requests; nothing the app needs is lost.
CONTENT_SECURITY_POLICY = ("default-src 'self' 'unsafe-inline' 'unsafe-eval' data: blob:; "
                           "connect-src 'self' data: blob:")


class SameOriginOnly:
    """ASGI middleware that gives every HTTP response :data:`CONTENT_SECURITY_POLICY`."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_policy(message) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", []),
                           (b"content-security-policy", CONTENT_SECURITY_POLICY.encode())]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_policy)


class JobFolders:
    """A fresh folder under ``root`` for each request; only the ``keep`` newest are kept (Gradio
    has copied a request's results into its own cache long before)."""

    def __init__(self, root: Path, keep: int = 16) -> None:
        self.root = Path(root)
        self.keep = keep
        self._folders: deque[Path] = deque()
        self._lock = threading.Lock()

    def new(self) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix="job-", dir=self.root))
        with self._lock:
            self._folders.append(folder)
            while len(self._folders) > self.keep:
                shutil.rmtree(self._folders.popleft(), ignore_errors=True)
        return folder


def _summary(outputs: AnimationOutputs, model_name: str) -> str:
    return f"*{model_name}*: {outputs.description}."


def build_app(catalog: ModelCatalog, work_dir: Path, samples: Sequence[tuple[Path, Path]] = (
        (BUNDLED_SOURCE, BUNDLED_DRIVING),), max_frames: Optional[int] = None, batch_size: int = 8) -> gr.Blocks:
    """The page: uploads, options, the Animate button, the outputs and the sample pairs.

    ``work_dir`` receives each request's files (see :class:`JobFolders`); ``max_frames`` refuses
    longer driving videos with a message (None: no limit).
    """
    folders = JobFolders(work_dir)

    def animate(source: Optional[str], driving: Optional[str], model_name: str = catalog.names[0],
                motion: str = MODEL_DEFAULT, adapt_scale: bool = False, find_best_frame: bool = False,
                crop: str = "none", precision: str = "auto", backend: str = "auto",
                progress: gr.Progress = gr.Progress()):
        try:
            options = AnimationOptions(motion=None if motion == MODEL_DEFAULT else motion,
                                       adapt_scale=bool(adapt_scale), find_best_frame=bool(find_best_frame),
                                       crop=crop, precision=precision, backend=backend, batch_size=batch_size,
                                       max_frames=max_frames)
            progress(0.0, desc=f"loading {model_name}")
            model = catalog.load(model_name)
            outputs = run_animation(model, source, driving, options, folders.new(),
                                    lambda fraction, what: progress(fraction, desc=what),
                                    checkpoint=catalog.entry(model_name).checkpoint)
        except UserError as error:
            logger.info("request refused: %s", error)
            raise gr.Error(_without_upload_folders(str(error), [source, driving]), print_exception=False) from None
        files = [str(path) for path in outputs.files]
        return files[0], files[1], files[2], files, _summary(outputs, model_name)

    theme = gr.themes.Default(font=["ui-sans-serif", "system-ui", "sans-serif"],
                              font_mono=["ui-monospace", "monospace"])
    with warnings.catch_warnings():
        # Gradio 5 announces that Gradio 6 takes the theme in launch(), which Gradio 5 does not.
        warnings.filterwarnings("ignore", "The 'theme' parameter", DeprecationWarning)
        app = gr.Blocks(title="fomm: image animation", theme=theme, analytics_enabled=False,
                        delete_cache=(3600, CACHE_LIFETIME_S))
    with app:
        gr.Markdown(_INTRO)
        with gr.Row():
            with gr.Column():
                source = _explain_unreadable_images(gr.Image(type="filepath", label="Source picture",
                                                             sources=["upload"], height=256, elem_id="source"),
                                                    "source picture")
                driving = gr.Video(label="Driving video", sources=["upload"], height=256, elem_id="driving")
            with gr.Column():
                result = gr.Video(label="Result", autoplay=True, loop=True, interactive=False, height=256,
                                  elem_id="result")
                summary = gr.Markdown(elem_id="summary")
                button = gr.Button("Animate", variant="primary", elem_id="animate")
        with gr.Accordion("Options", open=True):
            with gr.Row():
                model = gr.Dropdown(catalog.names, value=catalog.names[0], label="Model", scale=2)
                motion = gr.Radio([MODEL_DEFAULT, *MOTION_MODES], value=MODEL_DEFAULT, label="Motion",
                                  info="default: the model's own (learned where it has a point transfer, as the "
                                       "bundled model does; else relative); "
                                       "relative: the driving video's motion from its reference frame; "
                                       "avd: through the model's AVD network (TPSMM, MRAA); "
                                       "learned: relative, corrected by the model's learned point transfer "
                                       "(FOMM models with one)")
                crop = gr.Radio(list(CROPS), value="none", label="Crop",
                                info="fit inputs to the model: around a face, a body, the centre, or whole")
                precision = gr.Dropdown(list(PRECISIONS), value="auto", label="Precision",
                                        info="auto: the fastest measured here that stays within 40 dB of fp32")
                backend = gr.Dropdown(list(BACKENDS), value="auto", label="Backend",
                                      info="what runs the networks (auto: measured on the first request)")
            with gr.Row():
                adapt_scale = gr.Checkbox(False, label="Adapt scale",
                                          info="scale the motion to the source's size")
                find_best_frame = gr.Checkbox(False, label="Find best frame",
                                              info="take motion from the driving frame most like the source")
        with gr.Row():
            side_by_side = gr.Video(label="Source | driving | result, with keypoints", interactive=False,
                                    autoplay=True, loop=True, elem_id="side_by_side")
            downloads = gr.File(label="Downloads", file_count="multiple", interactive=False, elem_id="downloads")
        keypoints = gr.Image(label="Keypoints, heatmaps and motion masks (middle frame)", type="filepath",
                             interactive=False, height=420, elem_id="keypoints")
        if samples:
            gr.Examples([[str(image), str(video)] for image, video in samples], inputs=[source, driving],
                        label="Samples")
        button.click(animate,
                     inputs=[source, driving, model, motion, adapt_scale, find_best_frame, crop, precision, backend],
                     outputs=[result, side_by_side, keypoints, downloads, summary], api_name=API_NAME,
                     concurrency_limit=1)
    return app


def launch(app: gr.Blocks, host: str = "127.0.0.1", port: int = 7860, share: bool = False,
           allowed_paths: Sequence[Path] = ()) -> str:
    """Start serving ``app`` in a background thread; returns its local URL (with ``share``, the
    public one is ``app.share_url``). One request runs at a time, up to :data:`MAX_QUEUE` wait.
    ``app.close()`` stops it. Raises UserError when the port is taken."""
    app.queue(default_concurrency_limit=1, max_size=MAX_QUEUE)
    try:
        _, url, _ = app.launch(server_name=host, server_port=port, share=share, prevent_thread_lock=True,
                               quiet=True, show_error=True, ssr_mode=False, inbrowser=False,
                               allowed_paths=[str(ASSETS), *map(str, allowed_paths)],
                               app_kwargs={"middleware": [Middleware(SameOriginOnly)]})
    except OSError as error:
        raise UserError(f"cannot serve on {host}:{port} ({error}); is another server using the port? "
                        f"Choose another with --port") from None
    return url
