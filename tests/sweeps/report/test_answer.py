"""The report's first lines: who leads, by how much, how sure, and what to run when nothing is tested."""

from __future__ import annotations

import re

import numpy as np
import pytest
from scipy import stats as scipy_stats

from sweeps.config.sweep import load_sweep
from sweeps.names import SEARCH
from sweeps.report.answer import answer
from sweeps.report.evidence import weigh
from sweeps.report.publish import intro
from sweeps.report.results import Results
from tests.sweeps.helpers import CONF
from tests.sweeps.report.constructed import entry, results

SEEDS = np.array([0.861, 0.874, 0.869, 0.880, 0.858])


def test_a_clear_lead_names_the_leader_its_margin_with_the_paired_interval_and_the_test() -> None:
    found = results({"sgd": SEEDS - 0.02, "adam": SEEDS + [0.001, -0.001, 0.0, 0.002, -0.002]})
    [line] = answer(found, weigh(found), ["conf/shootout.yaml"])
    differences = found.tuned["adam"].column("val_acc", 3) - found.tuned["sgd"].column("val_acc", 3)
    low, high = scipy_stats.t.interval(0.95, 4, loc=differences.mean(), scale=scipy_stats.sem(differences))
    assert line.startswith(f"adam leads sgd by {differences.mean():.4f} final val_acc")
    assert f"{low:+.4f} to {high:+.4f}" in line and "on 5 paired seeds (tuned, test split)" in line
    assert "the lead is significant (paired t-test, Holm p = " in line


def test_a_close_race_says_it_is_not_significant_and_how_many_seeds_would_tell() -> None:
    found = results({"sgd": SEEDS, "adam": SEEDS + [0.004, -0.003, 0.002, 0.001, -0.001]})
    [line] = answer(found, weigh(found))
    assert line.startswith("adam leads sgd by 0.0006 final val_acc")
    assert "not significant" in line and "paired seeds would separate them" in line


def test_one_seed_each_is_untested_and_names_the_command_that_ranks_them() -> None:
    sweep = load_sweep(CONF / "quickstart.yaml", ["search.optimizer=[momentum, adam]"])
    search = {"momentum": entry("momentum", [0.7790], SEARCH), "adam": entry("adam", [0.7655], SEARCH)}
    found = Results(sweep, search)
    command = ["conf/quickstart.yaml", "search.optimizer=[momentum, adam]", "study.retrain_seeds=0"]
    assert answer(found, weigh(found), command) == [
        "momentum leads adam by 0.0135 final val_acc on one seed each (best search trial, holdout split):"
        " untested.",
        "To rank them: `sweeps run conf/quickstart.yaml 'search.optimizer=[momentum, adam]'"
        " study.retrain_seeds=5`",
    ]


def test_the_command_that_ranks_them_names_a_storage_other_than_the_default_and_hides_its_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SWEEPS_STORAGE", "postgresql+psycopg://sweeper@db:5432/sweeps")  # not read
    sweep = load_sweep(CONF / "quickstart.yaml")
    search = {"momentum": entry("momentum", [0.7790], SEARCH), "adam": entry("adam", [0.7655], SEARCH)}
    found = Results(sweep, search)
    command = ["conf/quickstart.yaml"]
    elsewhere = "postgresql+psycopg://sweeper@db:5432/sweeps"
    assert answer(found, weigh(found), command, elsewhere)[1] == (
        f"To rank them: `SWEEPS_STORAGE='{elsewhere}' sweeps run conf/quickstart.yaml study.retrain_seeds=5`"
    )
    secret = "postgresql+psycopg://sweeper:hunter2@db:5432/sweeps"
    assert answer(found, weigh(found), command, secret)[1] == (
        "To rank them: `sweeps run conf/quickstart.yaml study.retrain_seeds=5`   (with $SWEEPS_STORAGE set:"
        " they hold a password, which is not printed)"
    )


def test_equal_means_are_a_tie_not_a_lead() -> None:
    found = results({"sgd": SEEDS, "adam": SEEDS[::-1]})
    [line] = answer(found, weigh(found))
    assert re.match(
        r"(sgd and adam|adam and sgd) tie on final val_acc \[95% interval of the difference -0\.", line
    )
    assert "not significant" in line


def test_a_lone_optimizer_is_said_to_have_nothing_to_compare_with() -> None:
    found = results({"adam": SEEDS})
    assert answer(found, weigh(found)) == [
        "adam is the only optimizer with a result (tuned, test split): there is nothing to compare it with."
    ]


def test_one_seed_gets_no_statistics_paragraph() -> None:
    sweep = load_sweep(CONF / "quickstart.yaml")
    found = Results(sweep, {n: entry(n, [0.7], SEARCH) for n in ("sgd", "adam")})
    assert not any(line.startswith("Statistics") for line in intro(found, weigh(found)))
    seeded = results({"sgd": SEEDS, "adam": SEEDS})
    assert intro(seeded, weigh(seeded))[-1].startswith("Statistics: mean ± std [95% Student t interval]")
