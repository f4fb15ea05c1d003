"""Reports of the verification studies: one JSON (the numbers), one Markdown (tables), one PNG
(curves) per study, written side by side as ``<stem>.json/.md/.png``."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np


def mean_ci95(values) -> tuple[float, float, float]:
    """Mean and its 95% confidence interval (normal approximation over independent trials)."""
    v = np.asarray(values, dtype=np.float64)
    m = float(v.mean())
    if len(v) < 2:
        return m, m, m
    half = 1.96 * float(v.std(ddof=1)) / math.sqrt(len(v))
    return m, m - half, m + half


def wilson95(k: int, n: int) -> tuple[float, float]:
    """Wilson's 95% interval of a proportion k/n."""
    if n == 0:
        return 0.0, 1.0
    z = 1.96
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return max(0.0, c - h), min(1.0, c + h)


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON: {type(o).__name__}")


def table(header: Sequence[str], rows: Sequence[Sequence]) -> List[str]:
    """A Markdown table; floats with 4 significant digits."""
    fmt = lambda v: f"{v:.4g}" if isinstance(v, float) else str(v)  # noqa: E731
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + \
        ["| " + " | ".join(fmt(v) for v in r) + " |" for r in rows]


def plot(path: Path, panels: List[Dict], title: str) -> Path:
    """Curves with their 95% bands, one panel per entry: ``{"title", "xlabel", "ylabel", "xscale",
    "series": {label: {"x", "y", "lo", "hi"}}}``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(3, len(panels))
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.8 * rows), squeeze=False)
    for ax, panel in zip(axes.ravel(), panels):
        for label, s in panel["series"].items():
            line, = ax.plot(s["x"], s["y"], marker="o", ms=3, label=label)
            if s.get("lo") is not None:
                ax.fill_between(s["x"], s["lo"], s["hi"], color=line.get_color(), alpha=0.15)
        ax.set_title(panel["title"], fontsize=9)
        ax.set_xlabel(panel.get("xlabel", ""))
        ax.set_ylabel(panel.get("ylabel", ""))
        if panel.get("xscale"):
            ax.set_xscale(panel["xscale"])
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax in axes.ravel()[len(panels):]:
        ax.axis("off")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(result: Dict, out_dir, stem: str, markdown: List[str], panels: List[Dict], title: str) -> Dict[str, Path]:
    """``<stem>.json`` (``result``), ``<stem>.md`` (``markdown`` lines) and ``<stem>.png`` (``panels``)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / f"{stem}.json", "md": out / f"{stem}.md", "png": out / f"{stem}.png"}
    paths["json"].write_text(json.dumps(result, indent=1, default=_json_default))
    paths["md"].write_text("\n".join(markdown + ["", f"![{title}]({stem}.png)", ""]))
    plot(paths["png"], panels, title)
    return paths
