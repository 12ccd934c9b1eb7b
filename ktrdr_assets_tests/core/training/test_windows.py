"""LSTM windows: strided views (no copy per window), label alignment, no crossing of split boundaries."""

import numpy as np
import pytest
import torch

from ktrdr_assets.core.training.windows import WindowDataset, sliding_windows


def _rows(n: int, n_features: int = 3) -> torch.Tensor:
    return torch.arange(n * n_features, dtype=torch.float32).reshape(n, n_features)


def test_window_i_holds_rows_up_to_i_and_shares_storage():
    rows, lookback = _rows(12), 4
    windows = sliding_windows(rows, lookback)
    assert windows.shape == (12 - lookback + 1, lookback, 3)
    for k in range(windows.shape[0]):
        i = k + lookback - 1  # the labelled row this window ends at
        assert torch.equal(windows[k], rows[i - lookback + 1 : i + 1])
    assert windows.untyped_storage().data_ptr() == rows.untyped_storage().data_ptr()
    assert not windows.is_contiguous()  # a view over the rows, not a materialised copy
    rows[5, 0] = -1.0  # writing the base shows through every window that covers row 5
    assert windows[2, 3, 0] == -1.0 and windows[5, 0, 0] == -1.0


def test_dataset_labels_are_the_last_rows_labels_and_first_rows_are_skipped():
    features = np.random.default_rng(0).normal(size=(10, 2))
    labels = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 0])
    data = WindowDataset(features, labels, lookback=3)
    assert len(data) == 8
    assert data.labels.tolist() == labels[2:].tolist()
    assert data.row_index.tolist() == list(range(2, 10))
    window, label = data[4]
    assert torch.allclose(window, torch.as_tensor(features[2:7][2:5], dtype=torch.float32))
    assert int(label) == labels[6]
    assert data.windows.untyped_storage().data_ptr() == data.features.untyped_storage().data_ptr()


def test_each_split_starts_its_own_windows():
    rows = _rows(20)
    train, validation = (
        WindowDataset(rows[:14], torch.zeros(14), 5),
        WindowDataset(rows[14:], torch.ones(6), 5),
    )
    assert len(train) == 10 and len(validation) == 2
    assert torch.equal(validation.windows[0], rows[14:19])  # never reaches back into training rows
    assert validation.windows.min() >= rows[14].min()


def test_to_device_re_views_the_moved_base():
    data = WindowDataset(_rows(8), torch.zeros(8), 3)
    moved = data.to("cpu")
    assert torch.equal(moved.windows, data.windows)
    assert moved.windows.untyped_storage().data_ptr() == moved.features.untyped_storage().data_ptr()


def test_bad_inputs_name_the_rule():
    with pytest.raises(ValueError, match="5 rows are fewer than lookback=6"):
        sliding_windows(_rows(5), 6)
    with pytest.raises(ValueError, match="lookback must be a positive integer, got 0"):
        sliding_windows(_rows(5), 0)
    with pytest.raises(ValueError, match="features must be 2-D"):
        sliding_windows(torch.zeros(5), 2)
    with pytest.raises(ValueError, match=r"one label per feature row \(5\), got shape \(4,\)"):
        WindowDataset(_rows(5), torch.zeros(4), 2)
