"""The shared training lookup's pure parts: which epochs are ready to report, typed epoch records, and argument
checks that keep every value out of an MLflow filter unless it is safe."""

from __future__ import annotations

import pytest

from ktrdr_assets.cli.query_errors import InvalidQuery
from ktrdr_assets.cli.training_queries import Selection, epoch_record, ready_epochs

FULL = {"train_loss": 1.0, "val_loss": 1.0, "train_acc": 0.5, "val_acc": 0.5, "best_epoch": 1.0, "_logged_ms": 1}


def _without(*keys: str) -> dict[str, float]:
    return {k: v for k, v in FULL.items() if k not in keys}


def test_an_epoch_is_reported_only_once_it_and_every_epoch_before_it_are_whole():
    # read one metric at a time while the training writes: epoch 2 lost its val_loss to the race, 3 is whole
    table = {1: FULL, 2: _without("val_loss"), 3: FULL, 4: _without("best_epoch")}
    assert ready_epochs(table, 0, terminal=False) == [1]
    assert ready_epochs(table, 1, terminal=False) == []
    assert ready_epochs({**table, 2: FULL}, 1, terminal=False) == [2, 3]  # 4 still lacks a key epoch 3 has
    assert ready_epochs(table, 0, terminal=True) == [1, 2, 3, 4]  # the run ended: nothing more is coming
    # the first epoch needs the four losses and accuracies, not the trend (the tracker may split the write)
    assert ready_epochs({1: _without("best_epoch")}, 0, terminal=False) == [1]
    assert ready_epochs({1: _without("val_acc", "best_epoch")}, 0, terminal=False) == []


def test_epoch_records_are_typed():
    record = epoch_record(3, {**FULL, "epochs_since_improvement": 2.0, "is_overfitting": 1.0, "is_plateaued": 0.0})
    assert record["epoch"] == 3 and record["best_epoch"] == 1 and isinstance(record["best_epoch"], int)
    assert (record["epochs_since_improvement"], record["is_overfitting"], record["is_plateaued"]) == (2, True, False)
    assert record["logged_at"].year == 1970 and "_logged_ms" not in record


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"symbol": "AAA' or '1"}, "invalid partition key"),
        ({"symbol": "../x"}, "invalid partition key"),
        ({"run_id": "abc def"}, "invalid MLflow run id"),
        ({"dagster_run": "x'"}, "invalid Dagster run id"),
        ({"model_type": "cnn"}, "invalid model type 'cnn'"),
    ],
)
def test_a_selection_refuses_what_could_reach_a_filter_unchecked(fields, message):
    with pytest.raises(InvalidQuery, match=message):
        Selection(**fields)


def test_the_search_filter_asks_for_nested_model_trainings_with_the_selected_tags():
    where = Selection(symbol="EURUSD", model_type="lstm").search_filter("RUNNING")
    assert where == (
        "tags.`mlflow.parentRunId` IS NOT NULL and tags.model_type IS NOT NULL and tags.symbol = 'EURUSD' "
        "and tags.model_type = 'lstm' and attributes.status = 'RUNNING'"
    )
    with pytest.raises(InvalidQuery, match="invalid status 'DONE'"):
        Selection().search_filter("DONE")
