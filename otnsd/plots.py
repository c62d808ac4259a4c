"""One figure style for every notebook, saving as PNG and PDF, and the plots the notebooks share."""

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
    """Label an axes as computed on simulated data (when it was), naming a control simulator."""
    if getattr(dataset, "simulated", False):
        control = getattr(getattr(dataset, "cfg", None), "control", "none")
        note = "simulated data" + ("" if control == "none" else f", {control} control")
        ax.text(0.99, 0.01, note, transform=ax.transAxes, ha="right", va="bottom", fontsize=7, color="0.4")


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


def model_color(name: str) -> str:
    """A model's colour from its name: OT, InfoNCE, MSE, else grey (baselines)."""
    for key, label in (("ot", "OT"), ("infonce", "InfoNCE"), ("mse", "MSE")):
        if label in name:
            return COLORS[key]
    return "0.5"


def plan_heatmap(ax, gamma, title: str, *, colorbar: bool = True):
    """An OT plan as an image of :math:`N \\gamma_{ij}` (1 on a cell: all of row i's mass there)."""
    import numpy as np

    gamma = np.asarray(gamma)
    im = ax.imshow(gamma * len(gamma), cmap="Blues", vmin=0, vmax=1)
    ax.set(title=title, xlabel="image j", ylabel="brain i")
    ax.grid(False)
    if colorbar:
        ax.figure.colorbar(im, ax=ax, fraction=0.046, label="N · γ_ij")
    return im


def correlation_heatmap(ax, R, title: str):
    """A brain-by-image correlation matrix (the paper's Fig. 1)."""
    im = ax.imshow(R, cmap="RdBu_r", vmin=-1, vmax=1)
    ax.set(title=title, xlabel="image embedding j", ylabel="brain embedding i")
    ax.grid(False)
    return im


def annotated_heatmap(ax, M, labels, *, diagonal=None, fmt: str = "{:+.0f}", diagonal_fmt: str = "{:.0f}", lim=None,
                      title: str = "", colorbar_label: str | None = None, marked=None):
    """A symmetric region-by-region matrix with its values written in the cells.

    ``diagonal``: values to write on the diagonal instead (e.g. each single region's score), in grey.
    ``marked``: a boolean matrix; marked cells get a "*" (e.g. a 95% CI that excludes 0).
    """
    import numpy as np

    M = np.asarray(M, dtype=float)
    n = len(labels)
    lim = float(np.nanmax(np.abs(M))) if lim is None else lim
    im = ax.imshow(M, cmap="RdBu_r", vmin=-lim, vmax=lim)
    for i in range(n):
        for j in range(n):
            on_diag = i == j and diagonal is not None
            text = diagonal_fmt.format(diagonal[i]) if on_diag else "" if i == j else fmt.format(M[i, j])
            if marked is not None and i != j and marked[i][j]:
                text += "*"
            ax.text(j, i, text, ha="center", va="center", fontsize=8 if n <= 6 else 7, color="0.3" if on_diag else "k")
    ax.set_xticks(range(n), labels, rotation=45, fontsize=8)
    ax.set_yticks(range(n), labels, fontsize=8)
    ax.grid(False)
    ax.set_title(title)
    if colorbar_label:
        ax.figure.colorbar(im, ax=ax, shrink=0.8, label=colorbar_label)
    return im


def bars_with_ci(ax, results: dict, metric: str):
    """Horizontal bars of one metric with its 95% CI, one per model (``results``: name ->
    {metric: (value, low, high)}), coloured by :func:`model_color`."""
    import numpy as np

    names = list(results)
    v, lo, hi = (np.array([results[n][metric][k] for n in names]) for k in range(3))
    ax.barh(range(len(names)), v, xerr=[v - lo, hi - v], color=[model_color(n) for n in names], capsize=2)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.invert_yaxis()
    ax.set(xlabel=metric + " (x100, 95% CI)", title=metric)


def projection_panels(row, projection: dict, factor, *, method: str, factor_name: str, key: str = "All"):
    """Two scatter panels of a joint 2-D projection: every model's points coloured by model, and
    model ``key``'s points coloured by a factor (one label per point)."""
    import numpy as np

    for name, pts in projection.items():
        row[0].scatter(pts[:, 0], pts[:, 1], s=5, alpha=0.6, color=REGION_COLORS.get(name, "0.5"), label=name)
    cmap = plt.get_cmap("tab10")
    factor = np.asarray(factor)
    for k, level in enumerate(sorted(set(factor))):
        pts = projection[key][factor == level]
        row[1].scatter(pts[:, 0], pts[:, 1], s=6, alpha=0.7, color=cmap(k % 10), label=level)
    row[0].set_title(f"{method}: coloured by model")
    row[1].set_title(f"{method}: {'all-region' if key == 'All' else key} model, coloured by {factor_name}")
    for ax in row:
        ax.set(xticks=[], yticks=[], xlabel=f"{method} 1", ylabel=f"{method} 2")
    row[0].legend(fontsize=7, markerscale=3, loc="best")
    row[1].legend(fontsize=7, markerscale=3, loc="best", ncol=2)


def rate_curves(ax, curves: dict, *, ylabel: str, title: str):
    """One line per model family of a score against a corruption rate, with error bars:
    ``curves``: family -> list of (rate, mean, error) (e.g. the seed standard deviation)."""
    import numpy as np

    for k, (family, points) in enumerate(curves.items()):
        rate, mean, err = (np.array(v, dtype=float) for v in zip(*sorted(points)))
        # nudged apart so that overlapping error bars stay readable
        ax.errorbar(rate + 0.004 * (k - len(curves) / 2), mean, yerr=err, marker="o", ms=4, capsize=2, label=family)
    ax.set(xlabel="share of corrupted training trials", ylabel=ylabel, title=title)
    ax.legend(fontsize=7, ncol=2)


def share_bars(ax, shares: dict, *, chance: float, title: str):
    """Grouped bars of where OT plans put a row's mass (:func:`otnsd.analysis.true_pair_shares`):
    ``shares``: model -> list of its per-seed results; bars are seed means of ``true``, ``label``
    and ``clean``, with a dotted line at ``chance``."""
    import numpy as np

    names = list(shares)
    for k, part in enumerate(("true", "label", "clean")):
        means = [np.mean([x[part] for x in shares[n]]) for n in names]
        ax.bar(np.arange(len(names)) + 0.27 * (k - 1), means, width=0.27,
               label={"true": "mislabelled row: true image", "label": "mislabelled row: its label", "clean": "clean row: its label"}[part])
    ax.axhline(chance, color="k", lw=0.8, ls=":", label="chance")
    ax.set(xticks=range(len(names)), xticklabels=names, ylabel="share of the row's plan mass (seed mean)", title=title)
    ax.legend(fontsize=7)
