"""Chapter 7's grid (course_lib/trained/data_hunger_digits.json): it is complete, every run fitted its
training set (the chapter says so), and a stored point reproduces within the seed spread."""

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
        assert rec["steps"] == GRID["arms"][key.split("/")[0]]["steps"] and 0 <= rec["test_acc"] <= 1, key


def test_the_grid_is_complete():
    runs = load_results()["runs"]
    expected = {run_key(arm, model, n, seed) for arm, recipe in GRID["arms"].items() for seed in GRID["seeds"]
                for model in recipe["models"] for n in recipe["sizes_per_class"]}
    assert set(runs) == expected and len(expected) == 3 * (3 * 4 + 3 * 4 + 2)


def test_every_run_fitted_its_training_set():
    """Chapter 7's claims on the un-augmented training images: every plain run fitted all of them, every run
    of the other arms at least 98 % (the lowest, the ViT with shifts on all images, seed 2: 0.984)."""
    lowest = {point: s["min_train_acc"] for point, s in summarise(load_results()).items()}
    assert all(acc == 1.0 for (arm, _, _), acc in lowest.items() if arm == "plain"), lowest
    assert min(lowest.values()) >= 0.98, {p: a for p, a in lowest.items() if a < 0.98}


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


@pytest.mark.parametrize("shard", ["2/2", "1", "a/b"])
def test_a_bad_shard_is_refused_with_its_form(shard, capsys):
    from course_lib.data_hunger import main

    with pytest.raises(SystemExit):
        main(["--shard", shard, "--out", "unused.json"])
    assert "--shard takes K/N" in capsys.readouterr().err
