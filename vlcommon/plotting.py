"""matplotlib for the reports of both systems: the headless backend, and figures written atomically.

from vlcommon.plotting import plt, save_figure
fig, axis = plt.subplots()
...
save_figure(fig, out / "weights.png")
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # reports are drawn on headless training nodes and in CI
import matplotlib.pyplot as plt

from vlcommon.ledger import atomic_write

__all__ = ["plt", "save_figure"]


def save_figure(fig, path: str | Path, *, dpi: int = 110) -> Path:
    """Lay out, write through a temporary file and a rename (a reader never sees half a PNG), close."""
    path = Path(path)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=dpi, format=path.suffix.lstrip(".") or "png"))
    plt.close(fig)
    return path
