"""A window that shows frames and reports the keys pressed in it, for ``fomm live``.

OpenCV's own windows are used when its build has them (``opencv-python``); fomm depends on
``opencv-python-headless``, which has none, so otherwise the window is a Tk one (Tk comes with
most Pythons). Either way a display is needed: without one, :func:`open_window` raises a
UserError that says to use ``--no-window``.

Frames are ``(H, W, 3)`` uint8 RGB. Keys come back as one-character strings (``"q"``, ``" "``),
or ``"escape"``.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Optional, Protocol

import cv2
import numpy as np

from ..errors import UserError

__all__ = ["Window", "display_available", "open_window", "opencv_has_windows"]

logger = logging.getLogger(__name__)

_ESCAPE = 27


class Window(Protocol):
    """A window on the screen."""

    closed: bool  # the user closed it

    def show(self, frame: np.ndarray) -> None:
        """Display an ``(H, W, 3)`` uint8 RGB frame (the window takes its size)."""

    def poll_key(self) -> Optional[str]:
        """Process the window's events; the key pressed since the last call, if any."""

    def close(self) -> None:
        """Remove the window."""


def display_available() -> bool:
    """Whether a window can be shown: on Linux and the BSDs, an X11 or Wayland display is set."""
    if sys.platform.startswith(("win", "darwin")):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def opencv_has_windows() -> bool:
    """Whether this OpenCV build was made with a GUI backend (``opencv-python-headless`` is not)."""
    for line in cv2.getBuildInformation().splitlines():
        if line.strip().startswith("GUI:"):
            return line.split(":", 1)[1].strip().upper() not in ("", "NONE")
    return False


class _OpenCvWindow:
    def __init__(self, title: str) -> None:
        self.title = title
        self.closed = False
        cv2.namedWindow(title, cv2.WINDOW_AUTOSIZE)

    def show(self, frame: np.ndarray) -> None:
        cv2.imshow(self.title, cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))

    def poll_key(self) -> Optional[str]:
        code = cv2.waitKey(1)
        if cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) < 1:
            self.closed = True
        if code < 0:
            return None
        code &= 0xFF
        return "escape" if code == _ESCAPE else chr(code).lower()

    def close(self) -> None:
        cv2.destroyWindow(self.title)


class _TkWindow:
    """A Tk window holding one image; frames go in as binary PPM, which Tk reads natively."""

    def __init__(self, title: str) -> None:
        import tkinter

        self._tk = tkinter
        self.closed = False
        self._keys: list[str] = []
        try:
            self._root = tkinter.Tk()
        except tkinter.TclError as error:
            raise UserError(f"cannot open a window ({error}): use --no-window") from None
        self._root.title(title)
        self._root.protocol("WM_DELETE_WINDOW", self._on_close)
        self._root.bind("<Key>", self._on_key)
        self._label = tkinter.Label(self._root, borderwidth=0)
        self._label.pack()
        self._image = None

    def _on_close(self) -> None:
        self.closed = True

    def _on_key(self, event) -> None:
        if event.keysym == "Escape":
            self._keys.append("escape")
        elif event.char:
            self._keys.append(event.char.lower())

    def show(self, frame: np.ndarray) -> None:
        height, width = frame.shape[:2]
        ppm = f"P6 {width} {height} 255 ".encode() + np.ascontiguousarray(frame, dtype=np.uint8).tobytes()
        image = self._tk.PhotoImage(width=width, height=height, data=ppm, format="PPM")
        self._label.configure(image=image)
        self._image = image  # Tk keeps no reference of its own

    def poll_key(self) -> Optional[str]:
        if not self.closed:
            try:
                self._root.update()
            except self._tk.TclError:  # destroyed by the window manager
                self.closed = True
        return self._keys.pop(0) if self._keys else None

    def close(self) -> None:
        try:
            self._root.destroy()
        except self._tk.TclError:
            pass


def open_window(title: str) -> Window:
    """A window titled ``title``: OpenCV's when it has them, else Tk's. Raises UserError when
    there is no display or no way to draw a window."""
    if not display_available():
        raise UserError("no display to show the window on (DISPLAY is not set): use --no-window, "
                        "with --out and/or --virtual-camera")
    if opencv_has_windows():
        return _OpenCvWindow(title)
    try:
        import tkinter  # noqa: F401
    except ImportError:
        raise UserError("cannot show a window: this OpenCV has no GUI (opencv-python-headless) and this Python "
                        "has no Tk; install opencv-python, or use --no-window") from None
    logger.debug("OpenCV has no GUI here; using a Tk window")
    return _TkWindow(title)
