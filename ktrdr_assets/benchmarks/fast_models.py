"""Small models for end-to-end timing and tests: a whole symbol trains in seconds, every code path runs."""

#: The sequence types beyond the LSTM: a couple of epochs of tiny nets.
_FAST_SEQUENCE = {"epochs": 2, "hidden_size": 8, "patience": 2, "batch_size": 256}

FAST_MODELS = {
    "random_forest": {"n_estimators": 25, "cross_validation": {"folds": 3}},
    "xgboost": {"n_estimators": 25, "early_stopping_rounds": 5, "cross_validation": {"folds": 3}},
    "neural_network": {"epochs": 5, "hidden_layers": [32, 16], "patience": 3},
    "lstm": {"epochs": 3, "hidden_size": 16, "patience": 2, "batch_size": 64},
    "gru": _FAST_SEQUENCE,
    "attention_lstm": {**_FAST_SEQUENCE, "attention_dim": 8},
    "cnn_lstm": {**_FAST_SEQUENCE, "conv_channels": [8], "attention_dim": 8},
    "pooled": {"overrides": {"neural_network": {"epochs": 3}, "lstm": {"epochs": 2, "batch_size": 256}}},
    "permutation_repeats": 1,
}

#: A short walk-forward for tests: three folds, torch epochs capped at the fast models' own.
FAST_EVALUATION = {"folds": 3, "max_epochs_per_fold": 3}
