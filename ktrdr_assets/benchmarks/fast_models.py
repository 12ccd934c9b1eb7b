"""Small models for end-to-end timing and tests: a whole symbol trains in seconds, every code path runs."""

FAST_MODELS = {
    "random_forest": {"n_estimators": 25, "cross_validation": {"folds": 3}},
    "xgboost": {"n_estimators": 25, "early_stopping_rounds": 5, "cross_validation": {"folds": 3}},
    "neural_network": {"epochs": 5, "hidden_layers": [32, 16], "patience": 3},
    "lstm": {"epochs": 3, "hidden_size": 16, "patience": 2, "batch_size": 64},
    "permutation_repeats": 1,
}

#: A short walk-forward for tests: three folds, torch epochs capped at the fast models' own.
FAST_EVALUATION = {"folds": 3, "max_epochs_per_fold": 3}
