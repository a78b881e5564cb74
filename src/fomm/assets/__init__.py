"""The bundled model and sample media, shipped inside the package so that ``fomm demo`` and the
defaults of ``fomm animate`` work with nothing downloaded (docs/bundled-model.md says how they were
made)."""

from pathlib import Path

ASSETS = Path(__file__).parent
BUNDLED_CHECKPOINT = ASSETS / "sprites-64.pt"
BUNDLED_SOURCE = ASSETS / "source.png"
BUNDLED_DRIVING = ASSETS / "driving.mp4"
