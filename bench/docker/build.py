"""Benchmark: the docker runtime's image builds, cold and warm, for the example's environment
(examples/diabetes: scikit-learn, numpy, joblib, plus the scoring server's packages).

Run on demand (not in CI), on a machine with a Docker engine:

    python3 bench/docker/build.py [--rounds 3] [--cold-packages]

- base: choosing mlctl's own base image (built once per machine when missing: debootstrap, about a
  minute; the time of that first build is printed when this run makes it);
- cold: an image the engine does not have (a spec digest of this run's own, so the content digest is
  new): packages installed on the host with uv (uv's package cache as it is; with --cold-packages an
  empty uv cache, so every wheel is downloaded), the build context sent and the image built;
- warm: the same image asked for again (what a second apply, or another project with the same
  environment, does): found in the engine by its tag.

The images this run builds are removed at the end; the base stays (it is shared).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "docker"))

from image_support import example_copy  # noqa: E402

from mlctl.projectpaths import Project  # noqa: E402
from mlctl.resources import Kind  # noqa: E402
from mlctl.runtime.docker import baseimage as base
from mlctl.runtime.docker import engine, images
from mlctl.schemas.load import load_config  # noqa: E402


def example_request(tmp: Path) -> images.ImageRequest:
    config = load_config(Project.at(example_copy(tmp / "diabetes")))
    (image,) = [r for r in config.resources if r.kind is Kind.IMAGE]
    return images.ImageRequest.from_attributes(image.attributes)


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def row(name: str, times: list[float], note: str = "") -> str:
    shown = f"{statistics.median(times):8.2f} s median  ({', '.join(f'{t:.2f}' for t in times)})"
    return f"  {name:<8} {shown}  {note}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cold-packages", action="store_true", help="install with an empty uv cache (downloads)")
    args = parser.parse_args()
    client = engine.connect()
    made: list[str] = []
    with tempfile.TemporaryDirectory(prefix="mlctl-bench-docker-") as tmp:
        os.environ.setdefault("MLCTL_CACHE", str(Path(tmp) / "cache"))
        if args.cold_packages:
            os.environ["UV_CACHE_DIR"] = str(Path(tmp) / "uv-cache")
        request = example_request(Path(tmp))
        base_time, chosen = timed(lambda: base.choose(client, env_image=None, settings={}))
        cold, warm = [], []
        try:
            for _ in range(args.rounds):
                if args.cold_packages:
                    shutil.rmtree(os.environ["UV_CACHE_DIR"], ignore_errors=True)
                one = replace(request, spec_digest=f"sha256:bench-{uuid.uuid4().hex}")
                t, built = timed(lambda: images.ensure_image(client, one, {}))
                made.append(built.tag)
                cold.append(t)
                warm.append(timed(lambda: images.ensure_image(client, one, {}))[0])
        finally:
            for tag in made:
                client.images.remove(tag, force=True)
    size = client.images.get(chosen.image_id).attrs.get("Size", 0) / 2**20
    print(
        f"docker image builds: examples/diabetes environment ({len(built.frozen)} packages), "
        f"{args.rounds} round(s), load average {os.getloadavg()[0]:.1f}"
    )
    print(row("base", [base_time], f"{chosen.name} ({chosen.reason}; {size:.0f} MiB)"))
    print(
        row(
            "cold",
            cold,
            "packages on the host with uv"
            + (" (empty uv cache)" if args.cold_packages else " (uv cache as it is)")
            + " + docker build",
        )
    )
    print(row("warm", warm, "found in the engine by its tag"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
