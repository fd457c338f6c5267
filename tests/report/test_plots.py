"""The report's figures: payment error bars from intervals (or sds), one panel per valuation
method on its own scale, seller names that neither overlap nor leave their panel, and PNGs
that are the same bytes for the same data."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.container import ErrorbarContainer

from dataprice.report import plots

RULES = ["myerson", "vcg"]
METHODS = ["loo", "exact_shapley", "banzhaf"]
SCALES = {"loo": 1.0, "exact_shapley": 100.0, "banzhaf": 10_000.0}


def crowded_sellers(n: int = 30, *, intervals: bool = True, sd: bool = False, seed: int = 0) -> pd.DataFrame:
    """Sellers with close costs and values: names drawn where the points are would collide."""
    rng = np.random.default_rng(seed)
    cost = 1.0 + 0.02 * rng.random(n)                          # all within 2% of each other
    frame = pd.DataFrame({"seller": [f"seller_{k:02d}" for k in range(n)], "cost": cost})
    for method, scale in SCALES.items():
        value = scale * (1.0 + 0.03 * rng.random(n))
        frame[f"value[{method}]"] = value
        if intervals:
            frame[f"value_lo[{method}]"] = value - 0.05 * scale
            frame[f"value_hi[{method}]"] = value + 0.08 * scale
    for rule in RULES:
        pay = cost + rng.random(n)
        frame[f"payment[{rule}]"] = pay
        if intervals:
            frame[f"payment_lo[{rule}]"] = pay - 0.1
            frame[f"payment_hi[{rule}]"] = pay + 0.2
        if sd:
            frame[f"payment_sd[{rule}]"] = 0.05
    return frame


def _extents(fig, labels):
    renderer = fig.canvas.get_renderer()
    return [label.get_window_extent(renderer) for label in labels]


def _assert_apart_and_inside(fig, ax, labels):
    boxes = _extents(fig, labels)
    for a, b in itertools.combinations(boxes, 2):
        assert not a.overlaps(b), (a, b)
    frame = ax.get_window_extent(fig.canvas.get_renderer())
    for box in boxes:
        assert frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1


def test_place_labels_keeps_labels_apart_and_inside_the_axes():
    sellers = crowded_sellers()
    fig = plots._new_figure((4.0, 3.0))
    ax = fig.subplots()
    ax.scatter(sellers["cost"], sellers["value[loo]"])
    fig.tight_layout()
    texts = list(sellers["seller"])
    labels = plots.place_labels(ax, sellers["cost"].to_numpy(), sellers["value[loo]"].to_numpy(), texts)
    assert 1 <= len(labels) < len(sellers)  # some placed, the crowd skipped
    assert labels[0].get_text() == texts[0]  # the first (most important) always wins
    _assert_apart_and_inside(fig, ax, labels)
    fig.canvas.draw()  # drawing does not move them
    _assert_apart_and_inside(fig, ax, labels)
    placed = {t.get_text() for t in labels}
    assert placed == {t.get_text() for t in ax.texts}  # skipped labels are not left on the axes


def test_place_labels_caps_the_points_tried_and_skips_points_outside():
    fig = plots._new_figure((6.0, 4.0))
    ax = fig.subplots()
    ax.set_xlim(0, 10)
    ax.set_ylim(0, 10)
    fig.tight_layout()
    xs = np.array([1.0, 5.0, 50.0, np.nan, 9.0, 3.0])
    ys = np.array([1.0, 5.0, 5.0, 5.0, 9.0, 7.0])
    labels = plots.place_labels(ax, xs, ys, list("abcdef"), limit=5)
    assert [t.get_text() for t in labels] == ["a", "b", "e"]  # c outside, d not finite, f past the cap
    _assert_apart_and_inside(fig, ax, labels)


def test_value_vs_cost_draws_one_panel_per_method_on_its_own_scale():
    sellers = crowded_sellers()
    fig = plots.value_vs_cost_figure(sellers, METHODS)
    assert len(fig.axes) == 3
    for ax, method in zip(fig.axes, METHODS, strict=True):
        assert ax.get_title() == method
        bottom, top = ax.get_ylim()
        assert bottom <= 0.0 and SCALES[method] * 1.03 < top < SCALES[method] * 2  # its own scale
        assert any(isinstance(c, ErrorbarContainer) for c in ax.containers)  # value intervals
        assert any(line.get_linestyle() == "--" for line in ax.get_lines())  # value = cost
        labels = list(ax.texts)
        assert labels
        _assert_apart_and_inside(fig, ax, labels)
    assert "95% resampling interval" in fig.get_suptitle()


def test_value_vs_cost_grid_has_at_most_three_columns():
    sellers = crowded_sellers(8)
    sellers["value[tmc_shapley]"] = sellers["value[exact_shapley]"]
    fig = plots.value_vs_cost_figure(sellers, [*METHODS, "tmc_shapley"])
    assert len(fig.axes) == 4  # the two empty cells of the 2 x 3 grid are removed
    columns = {round(ax.get_position().x0, 3) for ax in fig.axes}
    assert len(columns) == 3


def test_payments_with_intervals_draw_asymmetric_error_bars():
    sellers = crowded_sellers(6)
    fig = plots.payments_by_rule_figure(sellers, RULES)
    ax = fig.axes[0]
    bars = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    assert len(bars) == len(RULES)
    segments = bars[0].lines[2][0].get_segments()
    lows = sorted(seg[0][1] for seg in segments)
    highs = sorted(seg[1][1] for seg in segments)
    assert np.allclose(lows, sorted(sellers["payment_lo[myerson]"]))
    assert np.allclose(highs, sorted(sellers["payment_hi[myerson]"]))
    assert "95% resampling interval" in ax.get_title()
    assert any(c.get_label() == "cost" for c in ax.collections)  # the cost marker stays


def test_payments_fall_back_to_sd_then_to_no_bars():
    sellers = crowded_sellers(6, intervals=False, sd=True)
    ax = plots.payments_by_rule_figure(sellers, RULES).axes[0]
    assert sum(isinstance(c, ErrorbarContainer) for c in ax.containers) == len(RULES)
    assert "± sd over replicates" in ax.get_title()
    # interval columns present but empty (no resampling): the sd is used
    sellers["payment_lo[vcg]"] = np.nan
    sellers["payment_hi[vcg]"] = np.nan
    ax = plots.payments_by_rule_figure(sellers, RULES).axes[0]
    assert "± sd over replicates" in ax.get_title()
    bare = crowded_sellers(6, intervals=False)
    ax = plots.payments_by_rule_figure(bare, RULES).axes[0]
    assert not any(isinstance(c, ErrorbarContainer) for c in ax.containers)
    assert "bars:" not in ax.get_title()


def test_payments_keep_the_best_paid_when_there_are_many_sellers():
    sellers = crowded_sellers(plots.MAX_BARS + 15)
    ax = plots.payments_by_rule_figure(sellers, RULES).axes[0]
    assert len(ax.get_xticks()) == plots.MAX_BARS
    assert f"{plots.MAX_BARS} best paid of {len(sellers)}" in ax.get_title()


def test_pngs_are_byte_identical_and_work_without_interval_columns(tmp_path: Path):
    for name, sellers in [("with", crowded_sellers()), ("without", crowded_sellers(intervals=False))]:
        for draw in (plots.payments_by_rule, plots.value_vs_cost):
            what = RULES if draw is plots.payments_by_rule else METHODS
            first = draw(sellers, what, tmp_path / f"{name}_{draw.__name__}_1.png")
            second = draw(sellers, what, tmp_path / f"{name}_{draw.__name__}_2.png")
            assert first.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            assert first.read_bytes() == second.read_bytes()


def test_value_vs_cost_with_one_method_and_missing_values(tmp_path: Path):
    sellers = crowded_sellers(10, intervals=False)
    sellers.loc[3, "value[loo]"] = np.nan  # a partial valuation
    fig = plots.value_vs_cost_figure(sellers, ["loo"])
    assert len(fig.axes) == 1 and not fig.axes[0].containers
    assert "seller_03" not in {t.get_text() for t in fig.axes[0].texts}
    assert plots.value_vs_cost(sellers, ["loo"], tmp_path / "v.png").exists()


def test_thousands_of_sellers_stay_fast(tmp_path: Path):
    sellers = crowded_sellers(5000, seed=1)
    start = time.perf_counter()
    fig = plots.value_vs_cost_figure(sellers, METHODS)
    plots.value_vs_cost(sellers, METHODS, tmp_path / "v.png")
    plots.payments_by_rule(sellers, RULES, tmp_path / "p.png")
    assert time.perf_counter() - start < 30
    for ax in fig.axes:
        assert 1 <= len(ax.texts) <= plots.MAX_LABELLED_SELLERS
        _assert_apart_and_inside(fig, ax, list(ax.texts))
