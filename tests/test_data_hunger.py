"""Chapter 7's grid (course_lib/trained/data_hunger_digits.json): a stored point reproduces within the
seed spread."""

from __future__ import annotations

import pytest

from course_lib.data_hunger import GRID, RESULTS, load_results, run_key, run_point, summarise

pytestmark = pytest.mark.usefixtures("one_thread")


def test_results_record_their_provenance_and_grid():
    res = load_results()
    assert res["grid"] == GRID
    assert "course_lib.data_hunger" in res["provenance"]["script"]
    assert res["provenance"]["torch"] and res["runs"]
    for key, rec in res["runs"].items():
        assert rec["steps"] == GRID["steps"] and 0 <= rec["test_acc"] <= 1, key


def test_a_cheap_point_reproduces_within_the_seed_spread():
    res = load_results(RESULTS)
    key = run_key("plain", "CNN", 10, 0)
    stored = res["runs"][key]
    fresh = run_point("CNN", 10, 0, "plain")
    assert fresh["n_train"] == stored["n_train"] == 100
    spread = summarise(res)[("plain", "CNN", 100)]
    low = spread["min"] - max(spread["std"], 0.01)
    high = spread["max"] + max(spread["std"], 0.01)
    assert low <= fresh["test_acc"] <= high
    # Same seed, same thread count: the same run (up to the order of floating-point sums on another CPU).
    assert fresh["test_acc"] == pytest.approx(stored["test_acc"], abs=0.01)


def test_summarise_mean_and_spread():
    res = {"runs": {
        "plain/ViT/10/0": {"n_train": 100, "test_acc": 0.5, "train_acc": 1.0},
        "plain/ViT/10/1": {"n_train": 100, "test_acc": 0.7, "train_acc": 0.9},
    }}  # fmt: skip
    s = summarise(res)[("plain", "ViT", 100)]
    assert s["mean"] == pytest.approx(0.6) and s["std"] == pytest.approx(0.1414, abs=1e-4)
    assert (s["min"], s["max"], s["min_train_acc"], s["seeds"]) == (0.5, 0.7, 0.9, 2)
