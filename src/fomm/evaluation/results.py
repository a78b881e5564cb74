"""What an evaluation produces and how it is written: the metrics table (:class:`Metric`), the
per-video rows (:class:`VideoMetrics`), both together (:class:`EvaluationResult`: text table, CSV,
JSON), and the reconstructed videos (:class:`ReconstructionWriter`). Every file is written
atomically (:mod:`fomm.files`, :func:`fomm.data.video.write_video`)."""

from __future__ import annotations

import csv
import io
import json
import logging
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Optional

from torch import Tensor

from ..data.frames import to_uint8
from ..data.video import DEFAULT_FPS, OUTPUT_SUFFIXES, video_info, write_video
from ..errors import OutputPathError, VideoWriteError
from ..files import write_text_atomic

logger = logging.getLogger(__name__)

__all__ = ["RECONSTRUCTION_FORMATS", "EvaluationResult", "Metric", "ReconstructionWriter",
           "VideoMetrics"]

#: What :func:`fomm.data.video.write_video` writes; ``.png`` is a horizontal strip of the frames.
RECONSTRUCTION_FORMATS = OUTPUT_SUFFIXES


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


@dataclass
class VideoMetrics:
    """Metrics of one test video (None where not computed): ``l1`` in [0, 1]; ``akd_px`` pixels;
    ``mkr`` [0, 1]; ``aed`` embedding units; ``keypoint_error``, ``jitter`` and
    ``kp_acceleration`` % of width; ``flow_epe_px`` pixels (see :mod:`fomm.evaluation.metrics`).
    FID is a property of the whole set of frames, so it has no per-video value."""

    name: str
    frames: int
    l1: float
    akd_px: Optional[float] = None
    mkr: Optional[float] = None
    aed: Optional[float] = None
    keypoint_error: Optional[float] = None
    jitter: Optional[float] = None
    kp_acceleration: Optional[float] = None
    flow_epe_px: Optional[float] = None


@dataclass
class Metric:
    """One row of the results table: ``value`` None means n/a, with the reason in ``note``."""

    name: str
    value: Optional[float]
    unit: str
    description: str
    note: str = ""

    def formatted(self) -> str:
        if _missing(self.value):
            return "n/a"
        if 0 < abs(self.value) < 1e-3:  # e.g. the FID of a small feature network: not 0.0000
            return f"{self.value:.2e}"
        return f"{self.value:.4f}" if abs(self.value) < 100 else f"{self.value:.1f}"


@dataclass
class EvaluationResult:
    """Pooled metrics (``metrics``, one row each), per-video metrics (``videos``: one dataclass
    per evaluated item, :class:`VideoMetrics` for reconstruction, a cross pair's figures for the
    cross-identity protocol) and the run's settings. ``row_kind`` names an item (``video``,
    ``pair``) in the per-item file's name."""

    metrics: list[Metric]
    videos: list
    settings: dict = field(default_factory=dict)
    row_kind: str = "video"

    def metric(self, name: str) -> Metric:
        for metric in self.metrics:
            if metric.name == name:
                return metric
        raise KeyError(name)

    def value(self, name: str) -> Optional[float]:
        return self.metric(name).value

    def table(self) -> str:
        """The metrics as an aligned text table."""
        rows = [("metric", "value", "unit", "note")]
        rows += [(m.name, m.formatted(), m.unit, m.note) for m in self.metrics]
        widths = [max(len(row[i]) for row in rows) for i in range(3)]
        lines = ["  ".join(cell.ljust(widths[i]) if i < 3 else cell for i, cell in enumerate(row)).rstrip()
                 for row in rows]
        lines.insert(1, "-" * max(len(line) for line in lines))
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """JSON-ready: NaN becomes None (JSON has no NaN)."""
        def clean(value):
            return None if isinstance(value, float) and math.isnan(value) else value

        return {
            "metrics": {m.name: {"value": clean(m.value), "unit": m.unit, "description": m.description,
                                 "note": m.note} for m in self.metrics},
            f"{self.row_kind}s": [{key: clean(value) for key, value in asdict(video).items()}
                                  for video in self.videos],
            "settings": self.settings,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def metrics_csv(self) -> str:
        """``metric,value,unit,description,note``; n/a values are empty."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["metric", "value", "unit", "description", "note"])
        for m in self.metrics:
            writer.writerow([m.name, "" if _missing(m.value) else repr(float(m.value)), m.unit, m.description, m.note])
        return buffer.getvalue()

    def videos_csv(self) -> str:
        """One row per video (or pair), the fields of its row type; n/a values are empty."""
        buffer = io.StringIO()
        names = [column.name for column in fields(self.videos[0] if self.videos else VideoMetrics)]
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(names)
        for video in self.videos:
            writer.writerow(["" if _missing(getattr(video, name)) else getattr(video, name) for name in names])
        return buffer.getvalue()

    def write(self, out_dir: Optional[Path] = None, csv_path: Optional[Path] = None,
              json_path: Optional[Path] = None) -> list[Path]:
        """Write ``metrics.csv``, ``per_<row_kind>.csv`` and ``metrics.json`` into ``out_dir`` and/or
        the metrics CSV to ``csv_path`` and the JSON to ``json_path``, each atomically. Returns the
        paths written."""
        written = []
        if out_dir is not None:
            out_dir = Path(out_dir)
            written += [write_text_atomic(out_dir / "metrics.csv", self.metrics_csv()),
                        write_text_atomic(out_dir / f"per_{self.row_kind}.csv", self.videos_csv()),
                        write_text_atomic(out_dir / "metrics.json", self.to_json())]
        if csv_path is not None:
            written.append(write_text_atomic(csv_path, self.metrics_csv()))
        if json_path is not None:
            written.append(write_text_atomic(json_path, self.to_json()))
        return written


class ReconstructionWriter:
    """Writes each reconstruction to ``folder/<video stem><suffix>`` at the source video's frame
    rate (:data:`DEFAULT_FPS` for image strips and frame folders), atomically.

    ``suffix`` is one of :data:`RECONSTRUCTION_FORMATS` (the config's
    ``reconstruction_params.format``). A stem already written in this run gets the full original
    name instead (``a.mp4`` and ``a.gif`` become ``a.mp4`` and ``a_gif.mp4``). The folder is created
    with the first video.
    """

    def __init__(self, folder: str | Path, suffix: str = ".mp4") -> None:
        self.folder = Path(folder)
        if self.folder.exists() and not self.folder.is_dir():
            raise OutputPathError(f"{self.folder} exists and is not a folder")
        if suffix.lower() not in RECONSTRUCTION_FORMATS:
            raise VideoWriteError(f"cannot write reconstructions as '{suffix}' "
                                  f"(use one of {', '.join(RECONSTRUCTION_FORMATS)})")
        self.suffix = suffix.lower()
        self.written: list[Path] = []

    def write(self, source: Path, prediction: Tensor) -> Path:
        """Write ``prediction`` ``(T, 3, H, W)`` in [0, 1], the reconstruction of the video at
        ``source``; returns the path written."""
        source = Path(source)
        target = self.folder / f"{source.stem}{self.suffix}"
        if target in self.written:
            target = self.folder / f"{source.name.replace('.', '_')}{self.suffix}"
        fps = video_info(source).fps or DEFAULT_FPS
        self.folder.mkdir(parents=True, exist_ok=True)
        write_video(target, to_uint8(prediction), fps=fps)
        self.written.append(target)
        logger.debug("wrote %s", target)
        return target
