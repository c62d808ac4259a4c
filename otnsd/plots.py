"""One figure style for every notebook, and saving as PNG and PDF."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib.pyplot as plt

from .paths import figures_dir

STYLE = {
    "figure.dpi": 100,
    "savefig.dpi": 150,
    "savefig.bbox": "tight",
    "font.size": 10,
    "axes.titlesize": 10,
    "axes.labelsize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "legend.frameon": False,
    "image.cmap": "viridis",
    "pdf.fonttype": 42,
    "figure.constrained_layout.use": True,
}
COLORS = {"mse": "#4C72B0", "ot": "#DD8452", "infonce": "#55A868", "exact": "#222222", "sinkhorn": "#C44E52"}
# one colour per brain region (and "All") in every region figure
REGION_COLORS = {"All": "#222222", "Vision": "#8172B3", "Place": "#55A868", "Face": "#C44E52", "Word": "#937860",
                 "Body": "#DA8BC3", "Other": "#8C8C8C"}


def use_style() -> None:
    """Apply the project's matplotlib style."""
    plt.rcParams.update(STYLE)


def simulated_note(ax, dataset) -> None:
    """Label an axes as computed on simulated data (when it was)."""
    if getattr(dataset, "simulated", False):
        ax.text(0.99, 0.01, "simulated data", transform=ax.transAxes, ha="right", va="bottom",
                fontsize=7, color="0.4")


def savefig(fig, name: str, fig_dir: str | os.PathLike | None = None) -> list[Path]:
    """Save ``fig`` as ``<fig_dir>/<name>.png`` and ``.pdf``; returns the two paths."""
    out = figures_dir(fig_dir)
    paths = [out / f"{name}.png", out / f"{name}.pdf"]
    # no timestamps or version strings: the files change only when the figure does
    fig.savefig(paths[0], metadata={"Software": None})
    fig.savefig(paths[1], metadata={"Creator": None, "Producer": None, "CreationDate": None})
    return paths


def case_study_figure(image_ids, columns: dict, *, width: int = 28):
    """A grid of captions: one row per image, one column per source (Fig. 7's layout).

    ``columns`` maps a column title to one caption per image; long captions wrap at ``width``
    characters.
    """
    import textwrap

    names = list(columns)
    n_rows, n_cols = len(image_ids), len(names)
    fig, ax = plt.subplots(figsize=(2.3 * n_cols + 0.8, 0.95 * n_rows + 0.5))
    ax.set_axis_off()
    ax.set(xlim=(-0.6, n_cols), ylim=(n_rows, -0.6))
    for j, name in enumerate(names):
        ax.text(j + 0.45, -0.45, name, ha="center", va="center", fontsize=9, weight="bold")
        for i in range(n_rows):
            ax.text(j + 0.45, i + 0.4, textwrap.fill(columns[name][i], width), ha="center", va="center", fontsize=7.5,
                    color="0.15" if j else "#2F5D8A")
    for i, image_id in enumerate(image_ids):
        ax.text(-0.5, i + 0.4, f"image\n{int(image_id)}", ha="left", va="center", fontsize=7.5, color="0.4")
        ax.axhline(i + 0.9, color="0.85", lw=0.6)
    return fig


def _fmt(v, digits=2):
    if v is None:
        return "n/a"
    if isinstance(v, str):
        return v
    return f"{v:.{digits}f}"


def write_table(rows: list[dict], columns: list[str], name: str, fig_dir=None, *, caption: str = "") -> list[Path]:
    """Write rows (dicts keyed by column) as ``<name>.csv``, ``.md`` and ``.tex``; None reads "n/a"."""
    out = figures_dir(fig_dir)
    csv = [",".join(columns)] + [",".join(_fmt(r.get(c)) if not isinstance(r.get(c), str) else f'"{r[c]}"' for c in columns) for r in rows]
    md = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    md += ["| " + " | ".join(_fmt(r.get(c)) for c in columns) + " |" for r in rows]
    esc = lambda s: s.replace("_", r"\_").replace("%", r"\%").replace("&", r"\&")  # noqa: E731
    tex = [r"\begin{table}", r"\centering", r"\begin{tabular}{" + "l" + "r" * (len(columns) - 1) + "}", r"\hline"]
    tex.append(" & ".join(esc(c) for c in columns) + r" \\ \hline")
    tex += [" & ".join(esc(_fmt(r.get(c))) for c in columns) + r" \\" for r in rows]
    tex += [r"\hline", r"\end{tabular}"]
    if caption:
        tex.append(r"\caption{" + esc(caption) + "}")
    tex.append(r"\end{table}")
    paths = [out / f"{name}.csv", out / f"{name}.md", out / f"{name}.tex"]
    for p, lines in zip(paths, (csv, md, tex)):
        p.write_text("\n".join(lines) + "\n")
    return paths
