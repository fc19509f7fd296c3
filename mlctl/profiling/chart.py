"""`--plot FILE.png`: throughput and p99 latency against concurrency, steps with errors marked (matplotlib, the
`plot` extra)."""

from __future__ import annotations

from pathlib import Path

from mlctl.errors import MlctlError
from mlctl.profiling.render import Profile


def check_plotting() -> None:
    """MlctlError unless matplotlib can be imported (asked before any load is sent)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise MlctlError(
            "--plot needs matplotlib, which is not installed",
            detail="Install the plot extra: `pip install 'mlctl[plot]'` (or `pip install matplotlib`), "
            "or leave out --plot.",
        ) from None


def error_label(errors: dict) -> str:
    """Pure: how a step's errors read on the chart ("2,890 errors: 429 x2,890")."""
    total = sum(errors.values())
    kinds = ", ".join(f"{k} x{n:,}" for k, n in sorted(errors.items(), key=lambda kv: -kv[1])[:2])
    return f"{total:,} error{'s' if total != 1 else ''}: {kinds}"


def plot(p: Profile, path: Path) -> None:
    """Write a PNG of two panels sharing the concurrency axis, each with its own y axis: throughput (req/s)
    above, p99 latency (ms) below, with the p99 target when given; a step that had errors is marked on both
    and labelled with its count and kinds. One legend names every line and mark."""
    check_plotting()
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    xs = [s.concurrency for s in p.steps]
    fig, (top, bottom) = pyplot.subplots(2, 1, sharex=True, figsize=(7, 5.5))
    try:
        lines = top.plot(xs, [s.rps for s in p.steps], marker="o", color="tab:blue", label="throughput (req/s)")
        top.set_ylabel("throughput (req/s)", color="tab:blue")
        lines += bottom.plot(xs, [s.p99_ms for s in p.steps], marker="s", color="tab:red", label="p99 latency (ms)")
        bottom.set_ylabel("p99 latency (ms)", color="tab:red")
        if p.target_p99_ms is not None:
            lines.append(
                bottom.axhline(p.target_p99_ms, color="tab:red", linestyle=":", linewidth=1, label="p99 target")
            )
        if p.target_rps is not None:
            lines.append(
                top.axhline(
                    p.target_rps, color="tab:blue", linestyle=":", linewidth=1, label="req/s target (all instances)"
                )
            )
        failed = [s for s in p.steps if s.errors]
        targets = {id(top): p.target_rps or 0, id(bottom): p.target_p99_ms or 0}
        for axis, value in ((top, lambda s: s.rps), (bottom, lambda s: s.p99_ms)):
            highest = max([value(s) for s in p.steps] + [targets[id(axis)]]) or 1
            axis.set_ylim(0, highest * 1.3)  # room above the highest point for its mark and label
            axis.margins(x=0.08)
            axis.grid(True, alpha=0.3)
            if failed:
                marks = axis.scatter(
                    [s.concurrency for s in failed],
                    [value(s) for s in failed],
                    s=140,
                    facecolors="none",
                    edgecolors="black",
                    linewidths=1.5,
                    zorder=3,
                    label="step with errors",
                )
        if failed:
            lines.append(marks)
            for s in failed:
                top.annotate(
                    error_label(s.errors),
                    (s.concurrency, s.rps),
                    textcoords="offset points",
                    xytext=(0, 12),
                    ha="right" if s.concurrency == max(xs) and len(xs) > 1 else "center",
                    fontsize=8,
                )
        if len(xs) > 1 and max(xs) / min(xs) >= 8:
            bottom.set_xscale("log", base=2)
        bottom.set_xticks(xs, [str(x) for x in xs])
        if len(xs) == 1:
            bottom.set_xlim(xs[0] - 1, xs[0] + 1)
        bottom.set_xlabel("concurrency (requests in flight)")
        top.set_title(f"{p.endpoint}/{p.deployment} ({p.runtime} runtime)")
        fig.legend(handles=lines, loc="lower center", ncol=3, fontsize=8, frameon=False)
        fig.tight_layout(rect=(0, 0.09, 1, 1))  # the legend below the panels, over no line
        try:
            fig.savefig(path, format="png", dpi=110)
        except OSError as e:
            raise MlctlError(f"cannot write the plot {path}: {e.strerror or e}") from None
    finally:
        pyplot.close(fig)
