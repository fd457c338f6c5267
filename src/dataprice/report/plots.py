"""Plots of a run (matplotlib, non-interactive backend, deterministic PNG output)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backend_bases import RendererBase
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure  # no pyplot: no GUI backend, no global figure state
from matplotlib.text import Text
from matplotlib.transforms import Bbox

_META = {"Software": None}  # no version string in the file: same data, same bytes


#: Most sellers drawn in the per-seller bar chart; larger markets show the best paid.
MAX_BARS = 40

#: Resolution of every PNG; figures are also built at it, so that text measured while
#: placing labels has the size it is drawn at.
DPI = 110

_INTERVAL_NOTE = "bars: 95% resampling interval"
_SD_NOTE = "bars: ± sd over replicates"


def _new_figure(figsize: tuple[float, float]) -> Figure:
    """A figure drawn by Agg (so it has a renderer to measure text with) at :data:`DPI`."""
    fig = Figure(figsize=figsize, dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: Path) -> Path:
    fig.savefig(path, dpi=DPI, metadata=_META)
    return path


def _finite_column(frame: pd.DataFrame, column: str) -> np.ndarray | None:
    """``frame[column]`` as floats, or None when the column is absent or has no finite value."""
    if column not in frame.columns:
        return None
    values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float)
    return values if np.isfinite(values).any() else None


def _error(frame: pd.DataFrame, kind: str, key: str, *, sd: bool = True) -> tuple[np.ndarray | None, str | None]:
    """Asymmetric error bars ``(2, n)`` around ``frame[f"{kind}[{key}]"]`` and what they are.

    From the 95% interval ``{kind}_lo`` / ``{kind}_hi`` when both columns are there with a
    finite value, else (``sd``) from ``{kind}_sd``; ``(None, None)`` when neither. Lengths are
    clipped at 0 (an interval need not contain the mean); a row without a finite bound gets
    no bar (NaN).
    """
    mean = pd.to_numeric(frame[f"{kind}[{key}]"], errors="coerce").to_numpy(dtype=float)
    lo = _finite_column(frame, f"{kind}_lo[{key}]")
    hi = _finite_column(frame, f"{kind}_hi[{key}]")
    if lo is not None and hi is not None:
        with np.errstate(invalid="ignore"):
            err = np.vstack([np.clip(mean - lo, 0.0, None), np.clip(hi - mean, 0.0, None)])
        return err, _INTERVAL_NOTE
    spread = _finite_column(frame, f"{kind}_sd[{key}]") if sd else None
    if spread is not None:
        spread = np.abs(spread)
        return np.vstack([spread, spread]), _SD_NOTE
    return None, None


def _notes(kinds: dict[str, str]) -> str:
    """One line saying what the error bars are: ``{rule: note}`` for the rules that have them."""
    distinct = list(dict.fromkeys(kinds.values()))
    if len(distinct) <= 1:
        return distinct[0] if distinct else ""
    return "; ".join(
        f"{note} ({', '.join(k for k, n in kinds.items() if n == note)})" for note in distinct
    )


def payments_by_rule_figure(sellers: pd.DataFrame, rules: list[str]) -> Figure:
    """The figure of :func:`payments_by_rule`.

    Grouped bars: each seller's mean payment under each rule, with its cost marked (the
    :data:`MAX_BARS` best-paid sellers when there are more). Each bar carries an error bar from
    the 95% resampling interval ``payment_lo/hi[rule]`` where present, else from
    ``payment_sd[rule]``; the title says which.
    """
    title = "Payment to each seller under each rule"
    if len(sellers) > MAX_BARS:
        top = sellers[[f"payment[{r}]" for r in rules]].max(axis=1).nlargest(MAX_BARS, keep="first").index
        title += f" ({MAX_BARS} best paid of {len(sellers)})"
        sellers = sellers.loc[sorted(top)]
    n = len(sellers)
    width = 0.8 / max(len(rules), 1)
    fig = _new_figure((max(6, 0.9 * n + 2), 4))
    ax = fig.subplots()
    x = np.arange(n)
    kinds: dict[str, str] = {}
    for k, rule in enumerate(rules):
        err, note = _error(sellers, "payment", rule)
        if note is not None:
            kinds[rule] = note
        ax.bar(x + (k - (len(rules) - 1) / 2) * width, sellers[f"payment[{rule}]"], width, label=rule,
               yerr=err, error_kw={"ecolor": "#333333", "elinewidth": 0.8, "capsize": 2.0, "capthick": 0.8})
    ax.scatter(x, sellers["cost"], marker="_", s=400, color="black", zorder=3, label="cost")
    ax.set_xticks(x, sellers["seller"], rotation=45, ha="right")
    ax.set_ylabel("payment (money)")
    note = _notes(kinds)
    if note:
        ax.set_title(f"{title}\n{note}", fontsize=11)
    else:
        ax.set_title(title)
    ax.axhline(0, color="grey", lw=0.8)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))  # beside the bars: covers none
    fig.tight_layout()
    return fig


def payments_by_rule(sellers: pd.DataFrame, rules: list[str], path: Path) -> Path:
    """Write :func:`payments_by_rule_figure` to ``path`` (PNG) and return ``path``."""
    return _save(payments_by_rule_figure(sellers, rules), path)


#: Most sellers named in each panel of the value-cost plot (the most valuable first); a name
#: that would overlap one already placed, or leave the panel, is left out.
MAX_LABELLED_SELLERS = 40

#: Where :func:`place_labels` tries a label, in order: offset in points from the point and
#: the text's alignment (NE, NW, SE, SW, N, S, E, W).
_HAlign = Literal["left", "center", "right"]
_VAlign = Literal["bottom", "center", "top"]
LABEL_OFFSETS: tuple[tuple[float, float, _HAlign, _VAlign], ...] = (
    (3.0, 3.0, "left", "bottom"),
    (-3.0, 3.0, "right", "bottom"),
    (3.0, -3.0, "left", "top"),
    (-3.0, -3.0, "right", "top"),
    (0.0, 4.0, "center", "bottom"),
    (0.0, -4.0, "center", "top"),
    (4.0, 0.0, "left", "center"),
    (-4.0, 0.0, "right", "center"),
)


def _renderer(fig: Figure) -> RendererBase:
    """The renderer that measures ``fig``'s text (attaching an Agg canvas if it has none)."""
    canvas = fig.canvas
    if not isinstance(canvas, FigureCanvasAgg):
        canvas = FigureCanvasAgg(fig)
    return canvas.get_renderer()


def place_labels(
    ax: Axes,
    xs: Sequence[float] | np.ndarray,
    ys: Sequence[float] | np.ndarray,
    texts: Sequence[str],
    *,
    limit: int | None = MAX_LABELLED_SELLERS,
    offsets: Sequence[tuple[float, float, _HAlign, _VAlign]] = LABEL_OFFSETS,
    fontsize: float = 7.0,
    pad: float = 1.0,
    marker_radius: float = 3.0,
    **text_kw: Any,
) -> list[Text]:
    """Label points so that no two labels overlap and none leaves the axes.

    Points are taken in the order given (put the most important first: they win) and at most
    ``limit`` of them are tried, so thousands of points stay fast. For each, the label is tried
    at each of ``offsets`` (points from the data point, with its alignment); its box, measured
    by the figure's renderer and grown by ``pad`` pixels, must lie inside the axes and meet no
    label placed before. Among those offsets the first that also keeps clear of the other
    points' markers (all of ``xs``, ``ys``, taken as squares of ``marker_radius`` pixels) wins,
    else the first allowed one. A point with no allowed offset, or that is not finite or not
    inside the axes, is left without a label.

    Measure once the layout is final: call ``fig.tight_layout()`` and set the axes limits
    before, and change neither afterwards (labels are placed in display space).

    ``text_kw`` goes to :meth:`~matplotlib.axes.Axes.annotate`. Returns the labels placed
    (annotations, which are :class:`~matplotlib.text.Text`), in the order of their points.
    """
    fig = ax.get_figure(root=True)
    assert isinstance(fig, Figure)
    renderer = _renderer(fig)
    frame = ax.get_window_extent(renderer)
    x_all = np.asarray(xs, dtype=float)
    y_all = np.asarray(ys, dtype=float)
    if not len(x_all) == len(y_all) == len(texts):
        raise ValueError("xs, ys and texts must have the same length")
    points = np.asarray(ax.transData.transform(np.column_stack([x_all, y_all])), dtype=float).reshape(-1, 2)
    with np.errstate(invalid="ignore"):  # NaN compares false: not visible
        visible: np.ndarray = ((frame.x0 <= points[:, 0]) & (points[:, 0] <= frame.x1)
                               & (frame.y0 <= points[:, 1]) & (points[:, 1] <= frame.y1))
    markers = points[visible]
    marker_index = np.flatnonzero(visible)
    placed: list[Text] = []
    boxes: list[Bbox] = []
    count = len(texts) if limit is None else min(limit, len(texts))
    for i in range(count):
        if not visible[i]:
            continue
        others = marker_index != i
        label = ax.annotate(str(texts[i]), (float(x_all[i]), float(y_all[i])), xytext=(0.0, 0.0),
                            textcoords="offset points", fontsize=fontsize, **text_kw)
        chosen: tuple[float, float, _HAlign, _VAlign, Bbox] | None = None
        for dx, dy, ha, va in offsets:
            label.set_position((dx, dy))
            label.set_horizontalalignment(ha)
            label.set_verticalalignment(va)
            box = label.get_window_extent(renderer).padded(pad)
            inside = frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1
            if not inside or any(box.overlaps(other) for other in boxes):
                continue
            covers = ((box.x0 - marker_radius <= markers[:, 0]) & (markers[:, 0] <= box.x1 + marker_radius)
                      & (box.y0 - marker_radius <= markers[:, 1]) & (markers[:, 1] <= box.y1 + marker_radius))
            if not (covers & others).any():
                chosen = (dx, dy, ha, va, box)
                break
            if chosen is None:
                chosen = (dx, dy, ha, va, box)
        if chosen is None:
            label.remove()
            continue
        dx, dy, ha, va, box = chosen
        label.set_position((dx, dy))
        label.set_horizontalalignment(ha)
        label.set_verticalalignment(va)
        placed.append(label)
        boxes.append(box)
    return placed


def _value_limits(values: np.ndarray, err: np.ndarray | None) -> tuple[float, float]:
    """y limits for a panel: its values with their error bars, and 0, with a margin."""
    lows, highs = values, values
    if err is not None:
        lows, highs = values - np.nan_to_num(err[0]), values + np.nan_to_num(err[1])
    finite = np.concatenate([lows[np.isfinite(lows)], highs[np.isfinite(highs)], [0.0]])
    lo, hi = float(finite.min()), float(finite.max())
    span = hi - lo or max(abs(hi), 1.0)
    return lo - 0.08 * span, hi + 0.12 * span


def value_vs_cost_figure(sellers: pd.DataFrame, methods: list[str]) -> Figure:
    """The figure of :func:`value_vs_cost`.

    One panel per valuation method (own y axis: leave-one-out, Shapley, Banzhaf... values live
    on different scales), at most three to a row, each titled with the method: each seller's
    value against its cost, the 95% resampling interval ``value_lo/hi[method]`` as error bars
    where present, and the line value = cost. Up to :data:`MAX_LABELLED_SELLERS` sellers per
    panel are named, the most valuable first, where the name fits (:func:`place_labels`).
    """
    n = max(len(methods), 1)
    ncols = min(3, n)
    nrows = -(-n // ncols)
    size = (6.5, 4.6) if n == 1 else (3.9 * ncols, 3.3 * nrows + 0.7)
    fig = _new_figure(size)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    costs = pd.to_numeric(sellers["cost"], errors="coerce").to_numpy(dtype=float)
    finite_costs = costs[np.isfinite(costs)]
    top = float(finite_costs.max()) * 1.15 if finite_costs.size else 0.0
    top = top if top > 0 else 1.0
    names = sellers["seller"].astype(str).to_numpy()
    kinds: dict[str, str] = {}
    panels: list[tuple[Axes, np.ndarray]] = []
    for k, method in enumerate(methods):
        ax = axes[k // ncols][k % ncols]
        values = pd.to_numeric(sellers[f"value[{method}]"], errors="coerce").to_numpy(dtype=float)
        err, note = _error(sellers, "value", method, sd=False)
        if note is not None:
            kinds[method] = note
            ax.errorbar(costs, values, yerr=err, fmt="none", ecolor=f"C{k}", elinewidth=0.7, alpha=0.5, zorder=2)
        ax.scatter(costs, values, s=14, color=f"C{k}", alpha=0.85, zorder=3, linewidths=0)
        ax.plot([0.0, top], [0.0, top], color="grey", ls="--", lw=0.8, scalex=False, scaley=False, zorder=1)
        ax.set_xlim(0.0, top)
        ax.set_ylim(*_value_limits(values, err))
        ax.set_title(method, fontsize=10)
        ax.tick_params(labelsize=8)
        ax.set_xlabel("private cost", fontsize=8)
        if k % ncols == 0:
            ax.set_ylabel("value (money)", fontsize=8)
        panels.append((ax, values))
    for k in range(len(methods), nrows * ncols):
        axes[k // ncols][k % ncols].remove()
    many = len(sellers) > MAX_LABELLED_SELLERS
    title = "Value of each seller's data against its cost (dashed: value = cost)"
    notes = [f"the {MAX_LABELLED_SELLERS} most valuable per panel named where they fit"] if many else []
    if kinds:
        notes.append(_notes(kinds))
    fig.suptitle(title + ("\n" + "; ".join(notes) if notes else ""), fontsize=10 if notes else 11)
    fig.tight_layout()  # final layout: labels are placed in display space after it
    for ax, values in panels:
        order = np.argsort(-np.nan_to_num(values, nan=-np.inf), kind="stable")  # most valuable first
        order = order[np.isfinite(values[order])]
        place_labels(ax, costs[order], values[order], list(names[order]), limit=MAX_LABELLED_SELLERS, alpha=0.8)
    return fig


def value_vs_cost(sellers: pd.DataFrame, methods: list[str], path: Path) -> Path:
    """Write :func:`value_vs_cost_figure` to ``path`` (PNG) and return ``path``."""
    return _save(value_vs_cost_figure(sellers, methods), path)


def over_rounds(
    dynamics: pd.DataFrame,
    column: str,
    ylabel: str,
    title: str,
    path: Path,
    *,
    reference: float | None = None,
    smooth: bool = False,
) -> Path:
    """A line per rule: mean of ``column`` per round over replicates, with a min-max band.

    Rules that coincide (Myerson and VCG without constraints) stay visible through
    alternating line styles. With ``smooth``, a centred rolling mean over about a twentieth
    of the rounds (said in the title).
    """
    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    styles = ["-", "--", ":", "-."]
    rounds = int(dynamics["round"].max()) + 1
    window = max(1, rounds // 20) if smooth else 1
    for k, (rule, frame) in enumerate(dynamics.groupby("rule", sort=False)):
        stats = frame.groupby("round")[column].agg(["mean", "min", "max"])
        if window > 1:
            stats = stats.rolling(window, center=True, min_periods=1).mean()
        ax.plot(stats.index, stats["mean"], label=rule, lw=1.5, ls=styles[k % len(styles)])
        if frame["replicate"].nunique() > 1:
            ax.fill_between(stats.index, stats["min"], stats["max"], alpha=0.12)
    if reference is not None:
        ax.axhline(reference, color="black", ls="--", lw=0.8)
    ax.set_xlabel("round")
    ax.set_ylabel(ylabel)
    ax.set_title(title + (f" (rolling mean over {window} rounds)" if window > 1 else ""))
    ax.legend(fontsize=8, ncols=3)
    fig.tight_layout()
    fig.savefig(path, dpi=110, metadata=_META)
    return path


def mechanism_comparison(mechanisms: pd.DataFrame, path: Path) -> Path:
    """One panel per question: what the buyer pays, efficiency, truthfulness (largest
    misreport gain) and stability (payment CV across replicates), one bar per rule."""
    panels = [("total_paid", "total paid"), ("efficiency", "efficiency"),
              ("max_misreport_gain", "largest misreport gain"), ("payment_cv", "payment CV (stability)")]
    panels = [(c, t) for c, t in panels if c in mechanisms.columns and mechanisms[c].notna().any()]
    fig = Figure(figsize=(3.2 * len(panels), 3.4))
    axes = fig.subplots(1, len(panels), squeeze=False)
    rules = list(mechanisms["rule"])
    colors = [f"C{k}" for k in range(len(rules))]
    for ax, (column, title) in zip(axes[0], panels, strict=True):
        ax.bar(rules, mechanisms[column].astype(float).fillna(0.0), color=colors)
        ax.set_title(title, fontsize=10)
        ax.tick_params(axis="x", rotation=45, labelsize=8)
        ax.axhline(0, color="grey", lw=0.8)
    fig.suptitle("Payment rules compared (means over replicates)", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110, metadata=_META)
    return path
