"""Checks that a saved figure is a picture a reader can use, not just a file that starts like a PNG.

`record_figures` wraps matplotlib's `Figure.savefig`, so a test sees what was drawn on each figure it
saved (panels, data lines, point sets, images); `assert_picture` reads the PNG back and checks its
size and that it is not blank. A figure that lost its data, a panel or its pixels fails here.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class Drawn:
    """What one saved figure held: one entry per panel (colour bars included)."""
    panels: int = 0
    lines: list[int] = field(default_factory=list)       # data lines per panel (not axhline / axvline)
    points: list[int] = field(default_factory=list)      # scatter / error-bar point sets per panel
    images: list[int] = field(default_factory=list)      # heatmaps per panel


def summarise(fig) -> Drawn:
    from matplotlib.collections import PathCollection

    drawn = Drawn(panels=len(fig.axes))
    for ax in fig.axes:
        drawn.lines.append(sum(line.get_transform() is ax.transData and len(line.get_xdata()) > 1
                               for line in ax.get_lines()))
        drawn.points.append(sum(isinstance(c, PathCollection) for c in ax.collections)
                            + sum(1 for c in ax.containers if type(c).__name__ == "ErrorbarContainer"))
        drawn.images.append(len(ax.get_images()))
    return drawn


def record_figures(monkeypatch) -> dict[str, Drawn]:
    """Patch Figure.savefig for the test: returns {file name: Drawn}, filled as figures are saved."""
    from matplotlib.figure import Figure

    seen: dict[str, Drawn] = {}
    original = Figure.savefig

    def savefig(self, fname, *args, **kwargs):
        seen[Path(str(fname)).name] = summarise(self)
        return original(self, fname, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", savefig)
    return seen


def assert_picture(path: Path, min_width: int = 300, min_height: int = 200, min_ink: float = 0.02) -> None:
    """The PNG decodes, is at least min_width x min_height pixels, and more than min_ink of its
    pixels are not background (a blank or nearly empty canvas fails)."""
    import matplotlib.image as mpimg

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path
    pixels = mpimg.imread(path)[..., :3]
    height, width = pixels.shape[:2]
    assert width >= min_width and height >= min_height, (path.name, width, height)
    background = np.median(pixels.reshape(-1, 3), axis=0)
    ink = np.abs(pixels - background).max(axis=-1) > 0.1
    assert ink.mean() > min_ink, (path.name, float(ink.mean()))
    # distinct colours, each channel at 2 decimals and a colour packed into one int (np.unique over
    # rows, axis=0, took 1.3 s per figure here; this takes 0.04 s)
    levels = np.rint(pixels * 100).astype(np.int32)
    colours = np.unique(levels[..., 0] * 101 ** 2 + levels[..., 1] * 101 + levels[..., 2])
    assert len(colours) > 8, (path.name, "too few colours")
