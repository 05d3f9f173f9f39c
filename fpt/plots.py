"""Figures as files: matplotlib on the Agg backend (no display on servers and in tests), one way to save."""

from __future__ import annotations

from pathlib import Path


def pyplot():
    """matplotlib.pyplot on the file-only Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig, path: Path, dpi: int = 110, tight: bool = True) -> Path:
    """Write `fig` to `path` (PNG) and free it; returns the path."""
    if tight:
        fig.tight_layout()
    fig.savefig(path, dpi=dpi, bbox_inches="tight")  # legends placed outside the axes included
    pyplot().close(fig)
    return Path(path)
