"""Optuna search: the search space, pruning from the epoch callback, resuming an interrupted study in SQLite,
and the best-params override that loads back into a strategy. Real trials train on MSFT's bars."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest
import yaml
from pydantic import ValidationError

from ktrdr_assets.core.config.loader import parse_strategy
from ktrdr_assets.core.config.schema import _deep_merge
from ktrdr_assets.core.models.registry import get_spec
from ktrdr_assets.core.research.experiments import variant_strategy
from ktrdr_assets.core.research.hpo import (
    PruningTracker,
    SearchSettings,
    SearchSpace,
    best_override,
    open_study,
    run_search,
    study_storage,
    suggest_section,
    write_search_outputs,
)
from ktrdr_assets.core.training.tracking import NullTracker
from ktrdr_assets_tests.helpers import SHIPPED_STRATEGY, Inputs

ATTRS = {"symbol": "MSFT", "model_type": "neural_network"}
#: A small space so real trials take a fraction of a second.
SMALL = SearchSpace(batch_sizes=(256,), units=(8, 16, 8), layers=(1, 2))
FIXED_NN = {
    "learning_rate": 0.001,
    "batch_size": 64,
    "dropout": 0.2,
    "weight_decay": 0.0001,
    "layers": 2,
    "units_0": 96,
    "units_1": 32,
    "loss": "focal",
    "focal_gamma": 1.5,
    "focal_class_weights": False,
}


def _search(msft_inputs: Inputs, db: Path, out: Path, n_trials: int, name: str = "s", **kw) -> optuna.Study:
    settings = SearchSettings(sampler_startup_trials=3)
    study = open_study(study_storage(db), name, ATTRS, settings, kw.pop("pruner", None))
    run_search(
        study,
        msft_inputs.splits,
        msft_inputs.augmented,
        msft_inputs.strategy,
        symbol="MSFT",
        model_type="neural_network",
        n_trials=n_trials,
        output_dir=out,
        epochs=2,
        space=SMALL,
        **kw,
    )
    return study


# --------------------------------------------------------------------------- search space
def test_suggested_sections_known_answer() -> None:
    nn = suggest_section(optuna.trial.FixedTrial(FIXED_NN), "neural_network", SearchSpace())
    assert nn == {
        "learning_rate": 0.001,
        "batch_size": 64,
        "dropout": 0.2,
        "weight_decay": 0.0001,
        "hidden_layers": [96, 32],
        "loss": "focal",
        "focal_gamma": 1.5,
        "focal_class_weights": False,
    }
    lstm_params = {**FIXED_NN, "layers": 1, "hidden_size": 128, "loss": "weighted_ce"}
    lstm = suggest_section(optuna.trial.FixedTrial(lstm_params), "lstm", SearchSpace())
    assert (lstm["hidden_size"], lstm["num_layers"], lstm["loss"]) == (128, 1, "weighted_ce")
    assert "focal_gamma" not in lstm and "hidden_layers" not in lstm
    with pytest.raises(ValueError, match="model type 'xgboost' is not a torch model type"):
        suggest_section(optuna.trial.FixedTrial(FIXED_NN), "xgboost", SearchSpace())


def test_every_sampled_section_is_a_valid_model_config(msft_inputs: Inputs) -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    space = SearchSpace()
    for model_type in ("neural_network", "lstm"):
        for _ in range(25):
            trial = study.ask()
            section = suggest_section(trial, model_type, space)
            variant = variant_strategy(msft_inputs.strategy, model_type, section, seed=1)
            config = get_spec(model_type).parse_config(variant.models)
            assert space.learning_rate[0] <= config.learning_rate <= space.learning_rate[1]
            assert config.batch_size in space.batch_sizes and 0.1 <= config.dropout <= 0.5
            widths = config.hidden_layers if model_type == "neural_network" else (config.hidden_size,)
            assert all(w in range(32, 257, 32) for w in widths)
            study.tell(trial, 0.5)


def test_search_space_validation() -> None:
    with pytest.raises(ValidationError, match="dropout: low 0.6 is above high 0.5"):
        SearchSpace(dropout=(0.6, 0.5))
    with pytest.raises(ValidationError, match="learning_rate: a log-uniform range needs low > 0, got 0.0"):
        SearchSpace(learning_rate=(0.0, 0.1))
    with pytest.raises(ValidationError, match=r"units: need 1 <= low <= high and step >= 1, got \[64, 32"):
        SearchSpace(units=(64, 32, 32))


# --------------------------------------------------------------------------- pruning
def test_median_pruning_with_a_crafted_objective(tmp_path: Path) -> None:
    """Trial 0 sets the median at 0.9 per epoch; trial 1 reports 0.1 and is pruned at its first epoch from the
    epoch callback; trial 2 beats the median and completes. NaN epochs are not reported."""
    settings = SearchSettings(pruner_startup_trials=1, pruner_warmup_epochs=0)
    study = open_study(study_storage(tmp_path / "o.db"), "crafted", ATTRS, settings)
    accuracy = {0: 0.9, 1: 0.1, 2: 0.95}
    trackers = {}

    def objective(trial: optuna.Trial) -> float:
        trackers[trial.number] = tracker = PruningTracker(trial)
        for epoch in range(1, 5):
            tracker.log_epoch(epoch, {"val_acc": accuracy[trial.number], "val_loss": 1.0})
        tracker.log_epoch(5, {"val_acc": float("nan")})
        return accuracy[trial.number]

    study.optimize(objective, n_trials=3)
    assert [t.state.name for t in study.trials] == ["COMPLETE", "PRUNED", "COMPLETE"]
    pruned = study.trials[1]
    assert pruned.user_attrs["pruned_at_epoch"] == 1 and pruned.intermediate_values == {1: 0.1}
    assert len(trackers[1].rows) == 1  # the epoch that was pruned was recorded, none after it
    assert study.trials[2].intermediate_values == {1: 0.95, 2: 0.95, 3: 0.95, 4: 0.95}


def test_pruned_from_inside_real_training(msft_inputs: Inputs, tmp_path: Path) -> None:
    """TrialPruned raised in train_model's epoch callback leaves training cleanly: the trial is PRUNED, the
    run's tracker context saw the exception, metrics.csv holds the epochs run, and no model was saved."""
    exits = []

    @contextlib.contextmanager
    def factory(name, tags):
        try:
            yield NullTracker()
        except BaseException as err:
            exits.append(type(err).__name__)
            raise

    never_good_enough = optuna.pruners.ThresholdPruner(lower=1.01, n_warmup_steps=1)
    out = tmp_path / "out"
    study = _search(msft_inputs, tmp_path / "o.db", out, 2, pruner=never_good_enough, tracker_factory=factory)
    assert [t.state.name for t in study.trials] == ["PRUNED", "PRUNED"]
    assert exits == ["TrialPruned", "TrialPruned"]
    for trial in study.trials:
        assert trial.user_attrs["pruned_at_epoch"] == 1 == trial.user_attrs["epochs_reached"]
        run_dir = Path(trial.user_attrs["run_dir"])
        assert len(pd.read_csv(run_dir / "metrics.csv")) == 1 and not (run_dir / "model.pt").exists()
    with pytest.raises(ValueError, match=r"study 's' has no completed trial yet \({'PRUNED': 2}\)"):
        best_override(study, "neural_network", SMALL)


# --------------------------------------------------------------------------- resume
def test_an_interrupted_study_resumes_in_sqlite(msft_inputs: Inputs, tmp_path: Path) -> None:
    db, out = tmp_path / "optuna.db", tmp_path / "out"
    calls = []

    class CtrlC(NullTracker):
        def log_epoch(self, step, metrics):
            if step == 2:
                raise KeyboardInterrupt

    @contextlib.contextmanager
    def interrupt_third_trial(name, tags):
        calls.append(name)
        yield CtrlC() if len(calls) == 3 else NullTracker()

    with pytest.raises(KeyboardInterrupt):
        _search(msft_inputs, db, out, 3, tracker_factory=interrupt_third_trial)
    study = _search(msft_inputs, db, out, 2)  # a new storage connection and study object, as after a restart
    assert [(t.number, t.state.name) for t in study.trials] == [
        (0, "COMPLETE"),
        (1, "COMPLETE"),
        (2, "FAIL"),
        (3, "COMPLETE"),
        (4, "COMPLETE"),
    ]
    assert study.user_attrs == ATTRS
    # the sampler was re-seeded: the resumed run does not replay the first trials' points
    assert study.trials[3].params != study.trials[0].params
    with pytest.raises(ValueError, match=r"study 's' belongs to another problem \(symbol: stored 'MSFT'"):
        open_study(study_storage(db), "s", {**ATTRS, "symbol": "AAPL"})

    paths = write_search_outputs(study, out, "neural_network", SMALL)
    trials = pd.read_csv(paths["trials_csv"])
    assert trials["state"].tolist() == ["COMPLETE", "COMPLETE", "FAIL", "COMPLETE", "COMPLETE"]
    assert paths["history_png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the override deep-merges into the shipped strategy and validates as the best trial's section
    override = yaml.safe_load(paths["override_yaml"].read_text())
    assert list(override) == ["models"] and list(override["models"]) == ["neural_network"]
    merged = parse_strategy(_deep_merge(yaml.safe_load(SHIPPED_STRATEGY.read_text()), override), "merged")
    config = get_spec("neural_network").parse_config(merged.models)
    best = study.best_trial
    assert config.learning_rate == pytest.approx(best.params["learning_rate"])
    assert config.dropout == pytest.approx(best.params["dropout"])
    assert len(config.hidden_layers) == best.params["layers"]
    assert best.value == max(t.value for t in study.trials if t.value is not None)


def test_a_killed_process_trial_is_failed_by_the_heartbeat(tmp_path: Path) -> None:
    storage = study_storage(tmp_path / "o.db", heartbeat_seconds=1)
    study = open_study(storage, "hb", ATTRS)
    with pytest.warns(UserWarning, match="Heartbeat of storage is supposed to be used with Study.optimize"):
        orphan = study.ask()  # a trial whose process died: heartbeat recorded once, never again
    storage.record_heartbeat(orphan._trial_id)
    time.sleep(3.1)  # grace period = 2 heartbeats, + 1 s: the store keeps whole seconds
    resumed = open_study(study_storage(tmp_path / "o.db", heartbeat_seconds=1), "hb", ATTRS)
    resumed.optimize(lambda trial: 0.5, n_trials=1)
    assert [t.state.name for t in resumed.trials] == ["FAIL", "COMPLETE"]
