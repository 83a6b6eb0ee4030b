"""matplotlib for result figures: one place that picks the backend and saves figures the way results are kept.

``pyplot()`` imports matplotlib lazily (it is heavy and most commands draw nothing). Outside a notebook it selects
the file-only Agg backend, so figures render on headless machines; inside Jupyter the notebook's inline backend
stays, so the same code shows its figures there. ``save(fig, path)`` writes PNG (and PDF with ``pdf=True``) with
group-readable permissions.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from harness.results.io import ensure_readable


def _in_notebook() -> bool:
    return "ipykernel" in sys.modules


def pyplot() -> Any:
    """``matplotlib.pyplot``, on the Agg backend unless running in a notebook."""
    import matplotlib  # deliberately lazy: heavy, and only figure-drawing code needs it

    if not _in_notebook():
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig: Any, path: str | Path, *, pdf: bool = False, dpi: int = 130) -> list[Path]:
    """Save ``fig`` as ``path`` (PNG) and, with ``pdf``, beside it as PDF; close it unless in a notebook."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    out = [path.with_suffix(".png")]
    fig.savefig(out[0], dpi=dpi, bbox_inches="tight")
    if pdf:
        out.append(path.with_suffix(".pdf"))
        fig.savefig(out[1], bbox_inches="tight")
    for p in out:
        ensure_readable(p)
    if not _in_notebook():
        pyplot().close(fig)
    return out
