"""The trajectories figure animated: the paths grow step by step."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sweeps.tools.trajectories.draw import COLOURS, DIVERGED, draw
from sweeps.tools.trajectories.simulate import Path2D
from sweeps.tools.trajectories.tables import FILES


def draw_gif(paths: Sequence[Path2D], out: Path, settings: Mapping[str, Any], frames: int = 60) -> Path:
    """The same figure animated: the paths grow step by step, then the last frame holds.

    Not matplotlib's ``PillowWriter``: it re-renders the whole figure, contours and all, for every frame
    (about a minute for 60 frames here). The background is drawn once instead and the paths blitted onto a
    copy of it per frame; Pillow writes the frames with one shared palette, undithered, so that the GIF
    stores little more than what changes between frames.
    """
    from PIL import Image

    drawn = draw(paths, settings, animated=True)
    fig = drawn.figure
    fig.set_dpi(72)
    canvas = fig.canvas
    canvas.draw()  # lays the figure out and renders everything but the animated artists
    fig.set_layout_engine("none")
    background = canvas.copy_from_bbox(fig.bbox)
    steps = max(p.steps for p in paths)
    shown = sorted({round(k) for k in np.linspace(0, steps, min(frames, steps + 1))})
    images = []
    for k in shown:
        canvas.restore_region(background)
        for p, line, end in drawn.lines:
            upto = p.points[: k + 1]
            line.set_data(upto[:, 0], upto[:, 1])
            end.set_data([upto[-1, 0]], [upto[-1, 1]])
            fig.draw_artist(line)
            fig.draw_artist(end)
        for p, cross in drawn.crosses:
            if k >= (p.diverged_at or 0):
                fig.draw_artist(cross)
        for artist in drawn.overlay:
            fig.draw_artist(artist)
        images.append(Image.fromarray(np.asarray(canvas.buffer_rgba())[..., :3].copy()))
    palette = _palette(images[-1])
    frames_p = [im.quantize(palette=palette, dither=Image.Dither.NONE) for im in images]
    path = out / FILES["gif"]
    durations = [80] * (len(frames_p) - 1) + [2500]
    frames_p[0].save(path, save_all=True, append_images=frames_p[1:], duration=durations, loop=0)
    return path


def _palette(final: Any) -> Any:
    """One GIF palette for every frame: the last frame's colours (background, antialiased edges) plus the
    exact colours of the paths and markers, which a median cut over a mostly pale picture would lose."""
    from matplotlib.colors import to_rgb
    from PIL import Image

    exact = [*COLOURS, "gold", "white", "black", DIVERGED]
    rgb = [round(255 * c) for name in exact for c in to_rgb(name)]
    base = final.quantize(colors=256 - len(exact), method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    palette = Image.new("P", (1, 1))
    palette.putpalette(base.getpalette()[: 3 * (256 - len(exact))] + rgb)
    return palette
