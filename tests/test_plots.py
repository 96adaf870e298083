"""helpers.plots: bars start at zero, every part and line has a legend entry, bad input is refused."""
import matplotlib.pyplot as plt
import numpy as np
import pytest
from scipy.stats import norm

from helpers import plots


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def test_bars_start_at_zero_even_for_values_far_from_it():
    ax = plots.bars(["Int4", "FP4", "NF4"], [34.34, 31.07, 27.41], title="perplexity")
    assert ax.get_ylim()[0] == 0 and ax.get_ylim()[1] > 34.34
    assert [t.get_text() for t in ax.texts] == ["34.3", "31.1", "27.4"]
    assert ax.get_title() == "perplexity"


def test_stacked_bars_totals_legend_and_line():
    parts = {"weights": [10.0, 3.0], "lora": [0.5, 0.5]}
    ax = plots.stacked_bars(["bf16", "NF4"], parts, line=(15.0, "T4"), colors={"weights": "tab:blue"})
    assert ax.get_ylim()[0] == 0 and ax.get_ylim()[1] >= 15.0
    assert [t.get_text() for t in ax.texts] == ["10.5", "3.5"]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["T4", "weights", "lora"]
    first = ax.patches[0]
    assert first.get_edgecolor()[:3] == (0.0, 0.0, 0.0)  # an outline keeps thin parts visible
    assert plots.stacked_bars(["bf16"], {"weights": [1.0]}, legend=False).get_legend() is None


def test_levels_on_density_draws_one_line_per_level():
    ax = plots.levels_on_density([-1.0, 0.0, 0.5, 1.0], scale=2.0)
    assert ax.get_ylim()[0] == 0
    assert ax.get_legend().get_texts()[0].get_text() == "4 levels"


def test_tradeoff_sorts_points_and_uses_a_log_axis():
    ax = plots.tradeoff({"NF4": [(4.5, 0.1), (4.13, 0.09)], "Int4": [(4.5, 0.2)]})
    assert ax.get_yscale() == "log"
    assert list(ax.lines[0].get_xdata()) == [4.13, 4.5]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["NF4", "Int4"]



def test_stacked_bars_totals_of_counts_are_whole_numbers():
    # 06's answers by ending: counts, as ints or as the floats numpy sums them to, are labelled "12", not "12.0".
    ax = plots.stacked_bars(["base", "tuned"], {"stopped": [7, 10], "cut off": [5, 2.0]})
    assert [t.get_text() for t in ax.texts] == ["12", "12"]
    ax = plots.stacked_bars(["a", "b"], {"GB": [1.3, 2.0], "more": [0.0, 1.0]})
    assert [t.get_text() for t in ax.texts] == ["1.3", "3"]


def test_levels_on_density_draws_the_levels_where_they_are_up_to_the_curve():
    # Levels in units of `scale` std, on an axis of the same units: each red line stands at its level and reaches
    # the curve there.
    levels, scale = [-1.0, 0.0, 0.5, 1.0], 2.0
    ax = plots.levels_on_density(levels, scale=scale)
    segments = ax.collections[0].get_segments()
    assert [s[0][0] for s in segments] == levels and all(s[0][1] == 0 for s in segments)
    curve = ax.lines[0]
    for level, segment in zip(levels, segments, strict=True):
        on_curve = np.interp(level, curve.get_xdata(), curve.get_ydata())
        assert segment[1][1] == pytest.approx(on_curve, rel=1e-3) == pytest.approx(norm.pdf(level * scale), rel=1e-3)
    assert ax.get_xlabel() == "value" and ax.get_ylabel() == "density"


def test_grouped_bars_labels_centres_and_a_line_above_the_bars():
    groups = ["256 positions", "512 positions", "1,024 positions"]
    series = {"eager": [1.0, 2.0, 4.0], "sdpa": [0.5, None, 1.5]}
    ax = plots.grouped_bars(groups, series, line=(15.0, "T4"))
    assert [t.get_text() for t in ax.get_xticklabels()] == groups
    assert list(ax.get_xticks()) == [0, 1, 2]
    bars = ax.patches
    assert len(bars) == 6
    for i in range(3):  # each group's bars side by side, centred on its label
        group = [bars[i], bars[3 + i]]
        centres = [b.get_x() + b.get_width() / 2 for b in group]
        assert np.mean(centres) == pytest.approx(i) and centres[0] < centres[1]
        assert group[0].get_x() + group[0].get_width() <= group[1].get_x() + 1e-12
    assert [b.get_height() for b in bars] == [1.0, 2.0, 4.0, 0.5, 0.0, 1.5]
    assert ax.get_ylim()[0] == 0 and ax.get_ylim()[1] > 15.0  # the reference line shows
    assert [t.get_text() for t in ax.texts] == ["n/a"]  # the missing value is written, not drawn as 0
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["T4", "eager", "sdpa"]

@pytest.mark.parametrize("call", [
    lambda: plots.bars(["a", "b"], [1.0]),
    lambda: plots.stacked_bars(["a"], {"weights": [1.0, 2.0]}),
    lambda: plots.tradeoff({"NF4": []}),
])
def test_bad_input_is_refused_with_a_message(call):
    with pytest.raises(ValueError, match="got|no points"):
        call()
