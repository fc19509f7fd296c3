"""`--plot`: two panels with their own y axes, one legend, error steps marked and labelled (issue 31)."""

import pytest

from mlctl.profiling.chart import error_label, plot
from mlctl.profiling.figures import Step
from mlctl.profiling.render import Profile

pytest.importorskip("matplotlib")


def step(concurrency, rps, p99, errors=None):
    return Step(concurrency, int(rps * 20), errors or {}, 20.0, rps, p99 / 3, p99 / 3, p99 / 2, p99, p99, 1, 0.9, 10**8)


def test_error_label_says_the_count_and_the_two_commonest_kinds():
    assert error_label({"429": 2890}) == "2,890 errors: 429 x2,890"
    assert error_label({"timeout": 1, "429": 3, "500": 2}) == "6 errors: 429 x3, 500 x2"
    assert error_label({"503": 1}) == "1 error: 503 x1"


def test_the_chart_is_a_png_with_both_panels_legend_and_marks(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    steps = [step(1, 380, 4.1), step(2, 700, 4.5, {"429": 2890})]
    made = []
    real = pyplot.Figure.savefig

    def keep(fig, *a, **k):  # the figure as drawn, to read its axes back (matplotlib's, not mlctl's code)
        made.append(fig)
        return real(fig, *a, **k)

    pyplot.Figure.savefig = keep
    try:
        plot(Profile("e", "blue", "local", 20.0, 1000, None, 50.0, steps, None), tmp_path / "p.png")
    finally:
        pyplot.Figure.savefig = real
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    fig = made[0]
    top, bottom = fig.axes
    assert top.get_ylabel() == "throughput (req/s)" and bottom.get_ylabel() == "p99 latency (ms)"
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == ["throughput (req/s)", "p99 latency (ms)", "p99 target", "step with errors"]
    assert [t.get_text() for t in top.texts] == ["2,890 errors: 429 x2,890"]
