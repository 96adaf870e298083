"""Small matplotlib helpers for the notebooks' pictures, so that a code cell shows the lesson, not the styling.

Each function draws on the axes it is given (or a new figure) and returns the axes; bar value axes start at 0.
"""

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from scipy.stats import norm


def _axes(ax: Axes | None, figsize: tuple[float, float]) -> Axes:
    """`ax`, or the axes of a new figure of `figsize`."""
    if ax is not None:
        return ax
    return plt.subplots(figsize=figsize)[1]


def _check_lengths(labels: Sequence, values: Sequence, what: str) -> None:
    """Raise unless there is one value per label."""
    if len(labels) != len(values):
        raise ValueError(f"{what}: got {len(values)} values for {len(labels)} labels; pass one value per label")


def bars(labels: Sequence[str], values: Sequence[float], title: str = "", ylabel: str = "",
         colors: Sequence[str] | None = None, fmt: str = "{:.3g}", ax: Axes | None = None) -> Axes:
    """Bar chart from zero, each bar labelled with its value."""
    _check_lengths(labels, values, "bars")
    ax = _axes(ax, (6, 3.2))
    drawn = ax.bar(list(labels), list(values), color=colors)
    ax.bar_label(drawn, labels=[fmt.format(v) for v in values], fontsize=8)
    ax.set(title=title, ylabel=ylabel)
    ax.set_ylim(0, max(values) * 1.15 if max(values) > 0 else 1)
    return ax


def stacked_bars(labels: Sequence[str], parts: Mapping[str, Sequence[float]], title: str = "", ylabel: str = "",
                 colors: Mapping[str, str] | None = None, line: tuple[float, str] | None = None,
                 legend: bool = True, ax: Axes | None = None) -> Axes:
    """Stacked bars from zero (one stack per label, one colour per part), totals on top, legend beside."""
    for name, heights in parts.items():
        _check_lengths(labels, heights, f"stacked_bars part {name!r}")
    ax = _axes(ax, (5, 3.5))
    bottoms = np.zeros(len(labels))
    for name, heights in parts.items():
        ax.bar(list(labels), heights, bottom=bottoms, label=name, color=(colors or {}).get(name),
               edgecolor="black", linewidth=0.5)
        bottoms = bottoms + np.asarray(heights, dtype=float)
    for i, total in enumerate(bottoms):
        # Counts (answers, rows) are whole numbers: show them as such, anything else to one decimal.
        ax.text(i, total, f"{total:.0f}" if float(total).is_integer() else f"{total:.1f}", ha="center", va="bottom",
                fontsize=8)
    if line is not None:
        ax.axhline(line[0], color="black", ls="--", label=line[1])
    top = max([*bottoms, line[0] if line else 0])
    ax.set_ylim(0, top * 1.15 if top > 0 else 1)
    ax.set(title=title, ylabel=ylabel)
    if legend:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return ax


def levels_on_density(levels: Sequence[float], scale: float = 1.0, title: str = "", ax: Axes | None = None) -> Axes:
    """The standard normal density with a red line at each level (levels in units of `scale` std)."""
    levels = np.asarray(levels, dtype=float)
    ax = _axes(ax, (9, 3))
    edge = max(3.0, float(np.abs(levels).max()) * scale * 1.1)
    xs = np.linspace(-edge, edge, 600) / scale
    ax.plot(xs, norm.pdf(xs * scale), color="black", lw=1)
    ax.vlines(levels, 0, norm.pdf(levels * scale), color="tab:red", label=f"{len(levels)} levels")
    ax.set(title=title, xlabel="value", ylabel="density")
    ax.set_ylim(0, None)
    ax.legend(fontsize=8, loc="upper right")
    return ax


def tradeoff(points: Mapping[str, Sequence[tuple[float, float]]], title: str = "", xlabel: str = "bits per parameter",
             ylabel: str = "mean |error|", ax: Axes | None = None) -> Axes:
    """One line of (x, y) points per named series, log-scaled y: e.g. bits per parameter against error."""
    ax = _axes(ax, (7, 3.8))
    for name, pts in points.items():
        if not pts:
            raise ValueError(f"tradeoff: series {name!r} has no points")
        xs, ys = zip(*sorted(pts), strict=True)
        ax.plot(xs, ys, "o-", ms=4, label=name)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel, yscale="log")
    ax.legend(fontsize=8)
    return ax


def grouped_bars(groups: Sequence[str], series: Mapping[str, Sequence[float | None]], title: str = "",
                 ylabel: str = "", missing: str = "n/a", line: tuple[float, str] | None = None,
                 ax: Axes | None = None) -> Axes:
    """Bars from zero, one group per label and one bar per series in each; a None value is written as `missing`."""
    for name, values in series.items():
        _check_lengths(groups, values, f"grouped_bars series {name!r}")
    ax = _axes(ax, (7, 3.5))
    width = 0.8 / max(len(series), 1)
    known = [v for values in series.values() for v in values if v is not None]
    top = max([*known, line[0] if line else 0, 0])
    for j, (name, values) in enumerate(series.items()):
        xs = np.arange(len(groups)) + (j - (len(series) - 1) / 2) * width
        drawn = ax.bar(xs, [v or 0 for v in values], width, label=name)
        for x, v in zip(xs, values, strict=True):
            if v is None:
                ax.text(x, top * 0.05, missing, ha="center", va="bottom", rotation=90,
                        color=drawn.patches[0].get_facecolor(), weight="bold")
    if line is not None:
        ax.axhline(line[0], color="black", ls="--", lw=1, label=line[1])
    ax.set_xticks(range(len(groups)), list(groups))
    ax.set_ylim(0, top * 1.15 if top > 0 else 1)
    ax.set(title=title, ylabel=ylabel)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return ax
