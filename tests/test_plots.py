"""helpers.plots: bars start at zero, every part and line has a legend entry, bad input is refused."""
import matplotlib.pyplot as plt
import pytest

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


@pytest.mark.parametrize("call", [
    lambda: plots.bars(["a", "b"], [1.0]),
    lambda: plots.stacked_bars(["a"], {"weights": [1.0, 2.0]}),
    lambda: plots.tradeoff({"NF4": []}),
])
def test_bad_input_is_refused_with_a_message(call):
    with pytest.raises(ValueError, match="got|no points"):
        call()
