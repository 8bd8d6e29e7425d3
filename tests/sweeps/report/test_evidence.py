"""What a report concludes from constructed results whose answer is known, and its numbers against scipy on
the same values: groups, intervals, paired tests with Holm, seeds needed, the gain from tuning, tunability."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from sweeps.names import DEFAULT, SEARCH, TUNED
from sweeps.report.answer import answer
from sweeps.report.evidence import weigh
from sweeps.report.evidence_tables import tunability_table
from sweeps.report.publish import tables_of
from sweeps.report.results import Results, SearchTrial
from sweeps.report.stats import seeds_needed
from sweeps.report.tables import epoch_table, shootout_table
from sweeps.report.verdict import verdict
from tests.sweeps.report.constructed import entry, results

pytestmark = [  # no scipy warning may leak out of a report (scipy's are RuntimeWarning or UserWarning kin);
    # not every warning: a pipe an earlier test left open is collected, with its ResourceWarning, at any time
    pytest.mark.filterwarnings("error::RuntimeWarning"),
    pytest.mark.filterwarnings("error::UserWarning"),
]

TEN = np.array([0.861, 0.874, 0.869, 0.880, 0.858, 0.866, 0.877, 0.871, 0.863, 0.870])


def test_two_optimizers_with_identical_values_form_one_group() -> None:
    found = results({"sgd": TEN, "adam": TEN.copy()})
    evidence = weigh(found)
    assert evidence.phases[TUNED].comparison.ranks == {"sgd": 1, "adam": 1}
    table = shootout_table(found, evidence)
    assert list(table.display["tuned group"]) == ["1", "1"]
    said = " ".join(verdict(found, evidence))
    assert "cannot be told apart" in said and "their seeds give the same values" in said


def test_a_clear_winner_over_ten_seeds_is_separated() -> None:
    found = results({"sgd": TEN - 0.05 + 0.002 * np.sin(np.arange(10)), "adam": TEN})
    evidence = weigh(found)
    comparison = evidence.phases[TUNED].comparison
    assert comparison.ranks == {"adam": 1, "sgd": 2} and comparison.top_separated
    assert "Tuned: adam is ahead of the next best" in verdict(found, evidence)[1]
    assert list(epoch_table(found, evidence).display["rank"]) == ["2", "1"]


def test_alpha_sets_how_sure_a_separation_must_be() -> None:
    behind = TEN - (0.002 + 0.004 * np.sin(np.arange(10) * 1.7))  # paired t: p = 0.024
    found = results({"sgd": behind, "adam": TEN})
    assert 0.01 < scipy_stats.ttest_rel(TEN, behind).pvalue < 0.05
    assert weigh(found, alpha=0.05).phases[TUNED].comparison.ranks == {"adam": 1, "sgd": 2}
    assert weigh(found, alpha=0.01).phases[TUNED].comparison.ranks == {"adam": 1, "sgd": 1}


def test_intervals_tests_and_holm_equal_scipy_on_the_same_numbers() -> None:
    a = TEN
    b = TEN - np.array([0.004, -0.001, 0.006, 0.002, 0.0, 0.005, 0.003, -0.002, 0.004, 0.001])
    c = TEN - 0.03 + np.array([0.003, 0.0, -0.004, 0.002, 0.001, -0.001, 0.0, 0.002, -0.003, 0.001])
    evidence = weigh(results({"adam": a, "rmsprop": b, "sgd": c}))
    phase = evidence.phases[TUNED]
    for name, values in (("adam", a), ("rmsprop", b), ("sgd", c)):
        found = phase.intervals[name]["final acc"]
        low, high = scipy_stats.t.interval(0.95, 9, loc=values.mean(), scale=scipy_stats.sem(values))
        assert (found.mean, found.std) == pytest.approx((values.mean(), values.std(ddof=1)))
        assert (found.low, found.high) == pytest.approx((low, high))
        assert phase.intervals[name]["best acc"] == found  # the curves rise to their last epoch
    values = {("adam", "rmsprop"): (a, b), ("adam", "sgd"): (a, c), ("rmsprop", "sgd"): (b, c)}
    raw = {pair: scipy_stats.ttest_rel(*both) for pair, both in values.items()}
    p = sorted((r.pvalue, pair) for pair, r in raw.items())
    holm = {pair: min(1.0, max((3 - j) * p[j][0] for j in range(i + 1))) for i, (_, pair) in enumerate(p)}
    for pair in phase.comparison.pairs:
        assert pair.test.statistic == pytest.approx(raw[(pair.a, pair.b)].statistic)
        assert pair.test.p_value == pytest.approx(raw[(pair.a, pair.b)].pvalue)
        assert pair.p_adjusted == pytest.approx(holm[(pair.a, pair.b)])


def test_wilcoxon_on_request_equals_scipy() -> None:
    a, b = TEN, TEN - np.linspace(-0.002, 0.01, 10)
    evidence = weigh(results({"adam": a, "sgd": b}), test="wilcoxon")
    (pair,) = evidence.phases[TUNED].comparison.pairs
    expected = scipy_stats.wilcoxon(a, b)
    assert (pair.test.method, pair.test.statistic) == ("wilcoxon", pytest.approx(expected.statistic))
    assert pair.test.p_value == pytest.approx(expected.pvalue)


def test_seeds_pair_by_number_not_by_row() -> None:
    """adam is sgd + 0.01 on every seed, but its rows are stored in another seed order: paired by seed the
    gap is exact; paired by row it would drown in the seed-to-seed spread."""
    sgd = results({"sgd": [0.80, 0.85, 0.82], "adam": [0.81, 0.86, 0.83]})
    shuffled = entry("adam", [0.83, 0.81, 0.86], seeds=[3, 1, 2])
    found = Results(sgd.sweep, sgd.search, {}, {"sgd": sgd.tuned["sgd"], "adam": shuffled})
    comparison = weigh(found).phases[TUNED].comparison
    assert comparison.pair("adam", "sgd").test.mean_difference == pytest.approx(0.01)
    assert comparison.ranks == {"adam": 1, "sgd": 2}


def test_when_the_best_two_are_close_the_report_estimates_the_seeds_needed() -> None:
    wobble = 0.01 * np.array([1, -1, 1, -1, 1, -1])
    base = TEN[:6]
    found = results({"adam": base + 0.003 + wobble, "rmsprop": base, "sgd": base - 0.1})
    evidence = weigh(found)
    comparison = evidence.phases[TUNED].comparison
    assert comparison.ranks == {"adam": 1, "rmsprop": 1, "sgd": 3}
    expected = seeds_needed(base + 0.003 + wobble, base)
    assert comparison.seeds_needed == expected and expected > 6
    assert f"about {expected} paired seeds would separate them" in verdict(found, evidence)[1]


def test_gain_pairs_default_and_tuned_by_seed_with_a_t_interval() -> None:
    default = np.array([0.70, 0.74, 0.69, 0.73, 0.71])
    tuned = np.array([0.80, 0.85, 0.81, 0.82, 0.83])
    found = results({"sgd": tuned, "adam": tuned + 0.01}, {"sgd": default, "adam": default + 0.1})
    evidence = weigh(found)
    gain = evidence.gains["sgd"]
    d = tuned - default
    low, high = scipy_stats.t.interval(0.95, 4, loc=d.mean(), scale=scipy_stats.sem(d))
    assert (gain.mean, gain.low, gain.high) == pytest.approx((d.mean(), low, high))
    assert "helped sgd (+0.1080)" in " ".join(verdict(found, evidence))
    assert set(evidence.phases) == {TUNED, DEFAULT}


def test_tunability_counts_pruned_and_failed_trials_as_misses() -> None:
    nan = math.nan
    trials = [
        SearchTrial("adam", 0.900, 1e-3),
        SearchTrial("adam", 0.895, 3e-3),
        SearchTrial("adam", 0.860, 3e-2),
        SearchTrial("adam", nan, 1.0),  # pruned or diverged: a miss, not left out
        SearchTrial("sgd", 0.80, 0.1),
    ]
    found = results({"sgd": TEN, "adam": TEN}, trials=trials)
    evidence = weigh(found)
    one, five = evidence.tunability["adam"]
    assert (one.share, one.trials, one.lr_min, one.lr_max) == (0.5, 2, 1e-3, 3e-3)
    assert (five.share, five.trials, five.lr_max) == (0.75, 3, 3e-2)
    assert evidence.searched == {"sgd": 1, "adam": 4}
    adam = tunability_table(found, evidence).display.set_index("optimizer").loc["adam"]
    assert (adam["within 1%"], adam["lr within 1%"], adam["within 5%"]) == (
        "50% (2/4)",
        "0.001 – 0.003",
        "75% (3/4)",
    )


def test_a_sweep_outside_the_seed_setting_is_not_called_the_seed_table() -> None:
    quick = results(
        {"sgd": TEN, "momentum": TEN}, spec="quickstart.yaml", overrides=["study.retrain_seeds=0"]
    )
    tuned = {
        n: entry(
            n, e.curves["val_acc"][:1, -1], SEARCH, config={"optimizer": n, "lr": 0.01, "batch_size": 64}
        )
        for n, e in quick.tuned.items()
    }
    found = Results(quick.sweep, tuned)
    titles = [t.title for t in tables_of(found, weigh(found))]
    assert titles[0] == "Accuracy and loss by epoch" and "Seed table" not in titles
    table = tables_of(found, weigh(found))[0]
    assert "published rank" not in table.display.columns
    assert any("input scaling standard" in note for note in table.notes)  # the default where unset
    assert list(table.numbers["split"]) == ["holdout", "holdout"]  # the search selected on held-out images
    assert "split" not in table.display and "seeds" not in table.display  # one value for all: the caption
    assert "Values are of one seed each, measured on held-out training images" in " ".join(table.notes)
    assert list(table.display["settings"]) == ["lr=0.01 bs=64", "lr=0.01 bs=64"]


def test_one_seed_each_is_untested_and_said_so() -> None:
    base = results({"sgd": TEN, "adam": TEN}, overrides=["study.retrain_seeds=0"])
    one = {n: entry(n, [0.8 + 0.01 * i], SEARCH, seeds=[0]) for i, n in enumerate(["sgd", "adam"])}
    found = Results(base.sweep, one)
    evidence = weigh(found)
    assert evidence.phases[SEARCH].comparison is None
    assert verdict(found, evidence) == []  # the answer says it, once, first
    assert answer(found, evidence)[0] == (
        "adam leads sgd by 0.0100 final val_acc on one seed each (best search trial, test split): untested."
    )
    table = epoch_table(found, evidence)
    assert table.title == "Seed table" and list(table.display["rank"]) == ["2", "1"]
    assert any("untested" in note for note in table.notes)


def test_one_seed_each_ranks_a_diverged_optimizer_last() -> None:
    base = results({"sgd": TEN, "adam": TEN}, overrides=["study.retrain_seeds=0"])
    one = {
        n: entry(n, [final], SEARCH, seeds=[0])
        for n, final in {"sgd": 0.81, "adadelta": 0.9, "adam": 0.82}.items()
    }
    for curve in one["adadelta"].curves.values():
        curve[:, -1] = math.nan  # its last epoch diverged: no final value
    found = Results(base.sweep, one)
    table = epoch_table(found, weigh(found))
    assert dict(zip(table.display["optimizer"], table.display["rank"], strict=True)) == {
        "adam": "1",
        "sgd": "2",
        "adadelta": "3",
    }


def test_the_published_order_is_checked_step_by_step_on_the_defaults() -> None:
    names = ["adam", "rmsprop", "momentum", "sgd"]
    finals = {"adam": TEN, "rmsprop": TEN.copy(), "momentum": TEN - 0.05, "sgd": TEN - 0.03}
    found = results({n: TEN for n in names}, {n: finals[n] for n in names})
    line = verdict(found, weigh(found))[-1]
    assert line == (
        "Published order, on these seeds (default): adam > rmsprop: not separated; "
        "rmsprop > momentum: confirmed; momentum > sgd: reversed."
    )
    assert list(shootout_table(found, weigh(found)).display["published rank"]) == ["1", "2", "3", "4"]


def test_a_seed_table_sweep_with_repeats_ranks_its_trials_in_groups() -> None:
    """``conf/seed_table.yaml`` with ``study.repeats=5``: nothing is retrained, each optimizer's one trial ran
    on 5 paired seeds, so the seed table's rank is a group rank and the published order is checked on them."""
    base = results({"adam": TEN, "rmsprop": TEN}, overrides=["study.retrain_seeds=0", "study.repeats=5"])
    wobble = 0.004 * np.array([1, -1, 1, -1, 0])
    finals = {"adam": TEN[:5], "rmsprop": TEN[:5] - 0.0005 + wobble, "sgd": TEN[:5] - 0.05}
    found = Results(base.sweep, {n: entry(n, v, SEARCH, seeds=range(5)) for n, v in finals.items()})
    evidence = weigh(found)
    table = epoch_table(found, evidence)
    assert table.title == "Seed table" and list(table.display["rank"]) == ["1", "1", "3"]
    assert list(table.display["published rank"]) == ["1", "2", "4"]
    assert verdict(found, evidence)[-1] == (
        "Published order, on these seeds (best search trial): adam > rmsprop: not separated;"
        " rmsprop > sgd: confirmed."
    )


def test_an_optimizer_whose_default_was_its_best_trial_kept_the_default() -> None:
    found = results({"sgd": TEN, "adam": TEN + 0.01}, {"sgd": TEN, "adam": TEN - 0.02})
    # tuned to Keras' own lr for SGD, 0.01: the same settings as the default, the search found nothing better
    kept = entry("sgd", TEN, config={"optimizer": "sgd", "batch_size": 64, "lr": 0.01})
    found = Results(found.sweep, found.search, found.default, {"sgd": kept, "adam": found.tuned["adam"]})
    said = " ".join(verdict(found, weigh(found)))
    assert "helped adam (+0.0300); found nothing better than the default for sgd." in said
