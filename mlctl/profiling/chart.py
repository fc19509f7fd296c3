"""`--plot FILE.png`: throughput and p99 latency against concurrency (matplotlib, the `plot` extra)."""

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


def plot(p: Profile, path: Path) -> None:
    """Write a PNG: req/s (left axis) and p99 ms (right axis) against concurrency."""
    check_plotting()
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    xs = [s.concurrency for s in p.steps]
    fig, left = pyplot.subplots(figsize=(7, 4))
    try:
        left.plot(xs, [s.rps for s in p.steps], marker="o", color="tab:blue", label="req/s")
        left.set_xlabel("concurrency")
        left.set_ylabel("throughput (req/s)", color="tab:blue")
        right = left.twinx()
        right.plot(xs, [s.p99_ms for s in p.steps], marker="s", color="tab:red", label="p99 ms")
        right.set_ylabel("p99 latency (ms)", color="tab:red")
        if p.target_p99_ms is not None:
            right.axhline(p.target_p99_ms, color="tab:red", linestyle=":", linewidth=1)
        if len(xs) > 1 and max(xs) / min(xs) >= 8:
            left.set_xscale("log", base=2)
        left.set_xticks(xs, [str(x) for x in xs])
        left.set_title(f"{p.endpoint}/{p.deployment}")
        fig.tight_layout()
        try:
            fig.savefig(path, format="png")
        except OSError as e:
            raise MlctlError(f"cannot write the plot {path}: {e.strerror or e}") from None
    finally:
        pyplot.close(fig)
