"""``sweeps bench``: three training paths timed in fresh processes, a table and a JSON file of the results."""

from __future__ import annotations

import json
import math
import shlex
import time
from pathlib import Path

import pytest

from sweeps.tools import bench
from tests.sweeps.helpers import HAS_FASHION_MNIST, invoke, squash
from tests.test_readme import SWEEPS


@pytest.fixture
def bench_data(tmp_path, write_idx_dataset) -> list[str]:
    """Options naming the data: Debian's Fashion-MNIST when installed, else a tiny IDX MNIST of 768 images."""
    if HAS_FASHION_MNIST:
        return []
    folder = tmp_path / "idx"
    write_idx_dataset(folder, name="mnist", n_train=768, n_test=64)
    return ["--dataset", "mnist", "--data-dir", str(folder)]


@pytest.mark.slow
def test_readme_bench_times_every_path_and_writes_json(tmp_path, bench_data):
    """The README's ``sweeps bench`` line, on a 640-image subset and one repeat."""
    out = tmp_path / "b.json"
    (line,) = [c for c in SWEEPS if c.startswith("sweeps bench") and "--trials" not in c]

    small = ["--train-subset", "640", "--repeats", "1", "--out", str(out)]
    started = time.perf_counter()
    result = invoke(*shlex.split(line)[1:], *small, *bench_data)
    wall = time.perf_counter() - started

    assert result.exit_code == 0, result.output
    rows = {line.split("│")[1].strip() for line in result.stdout.splitlines() if line.startswith("│")}
    assert {"(a)", "(b)", "(c)", "(c_bf16)"} <= rows
    assert squash(f"results written to {out}") in squash(result.stdout)

    report = json.loads(out.read_text())
    assert report["spec"]["train_subset"] == 640
    assert report["steps_per_epoch"] == 10  # 640 images in batches of 64
    assert report["device"]
    medians = report["median_seconds_per_epoch"]
    assert set(medians) == {"a", "b", "c", "c_bf16"}
    for path in medians:
        runs = report["seconds_per_epoch"][path]
        assert len(runs) == 1
        assert all(math.isfinite(s) and s > 0 for s in runs), (path, runs)
        assert math.isfinite(medians[path]) and medians[path] > 0
    # each path's epoch checked against clocks of its own: it ran within the bench's wall time, and its 640
    # images forward and backward take no less than their FLOPs at 1 TFLOP/s (beyond any CPU this runs on)
    floor = 3 * 640 * 3.163e6 / 1e12
    assert all(floor < medians[path] < wall for path in medians), (medians, wall)
    speedup = report["speedup_vs_a"]
    assert set(speedup) == {"a/b", "a/c", "a/c_bf16"}
    for path in ("b", "c", "c_bf16"):
        assert speedup[f"a/{path}"] == pytest.approx(medians["a"] / medians[path])
    assert report["environment"]["sweeps.version.torch"]


@pytest.fixture
def no_subprocess(monkeypatch):
    """Fail the test if bench starts a measuring process: bad options must be refused before that."""

    def tripwire(runs, module):
        raise AssertionError(f"bench started {runs} despite bad options")

    monkeypatch.setattr(bench, "measure", tripwire)


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        (["--optimizer", "foo"], "unknown optimizer 'foo'"),
        (["--dataset", "cifar10"], "--dataset"),
        (["--device", "tpu"], "--device"),
        (["--batch-size", "0"], "--batch-size"),
        (["--repeats", "0"], "--repeats"),
        (["--train-subset", "0"], "--train-subset"),
    ],
)
def test_bad_options_exit_2_before_any_measurement(options, fragment, tmp_path, no_subprocess):
    out = tmp_path / "b.json"

    result = invoke("bench", *options, "--out", str(out))

    assert result.exit_code == 2, result.output
    assert fragment in result.stderr
    assert "Traceback" not in result.output
    assert not out.exists()


def test_missing_data_exits_2_before_any_measurement(tmp_path, no_subprocess, no_local_data):
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "b.json"

    result = invoke("bench", "--dataset", "mnist", "--data-dir", str(empty), "--out", str(out))

    assert result.exit_code == 2, result.output
    assert "'mnist'notfound" in squash(result.stderr)
    assert not out.exists()


def test_a_failed_measuring_process_stops_the_others(tmp_path) -> None:
    marker = f"time.sleep(60)  # {tmp_path.name}"
    runs = [("bad", ["-n", "x", "pass"]), ("long", ["-n", "1", "-r", "1", f"import time; {marker}"])]
    started = time.monotonic()

    with pytest.raises(bench.BenchFailed, match="bad failed"):
        bench.measure(runs, "timeit")

    assert time.monotonic() - started < 30
    left = [p.read_bytes() for p in Path("/proc").glob("[0-9]*/cmdline") if p.exists()]
    assert not [c for c in left if marker.encode() in c]


def test_bench_help_times_each_answer_of_the_command_line() -> None:
    result = invoke("bench-help", "--repeats", "1")

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert [line.split()[1] for line in lines] == ["--help", "run", "report", "--version", "rn"]
    assert all(0 < float(line.split()[-2]) < 60 for line in lines)
