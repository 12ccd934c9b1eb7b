"""LSTM input windows as strided views of one split's feature rows: no copy per window.

Window k of a split ends at row i = k + lookback - 1 and holds rows [i - lookback + 1 .. i]; its
label is row i's label. The first lookback - 1 rows of a split have no complete window and are
skipped. Build one `WindowDataset` per split from that split's own rows, so no window ever crosses
a split boundary (a validation window never reaches back into training rows).
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset


def sliding_windows(features: torch.Tensor, lookback: int) -> torch.Tensor:
    """(n_rows - lookback + 1, lookback, n_features) view of (n_rows, n_features) rows, sharing storage."""
    if features.dim() != 2:
        raise ValueError(f"features must be 2-D (rows, features), got shape {tuple(features.shape)}")
    if lookback < 1:
        raise ValueError(f"lookback must be a positive integer, got {lookback}")
    if features.shape[0] < lookback:
        raise ValueError(f"{features.shape[0]} rows are fewer than lookback={lookback}: no complete window")
    # unfold(0, L, 1) -> (n - L + 1, n_features, L); transposing the last two axes is a view as well.
    return features.unfold(0, lookback, 1).transpose(1, 2)


class WindowDataset(Dataset):
    """The windows of ONE split, with each window's label (the label of its last row).

    `features` is the split's (n_rows, n_features) base tensor; `windows` views it; `labels` and
    `row_index` (position of each window's last row within the split) have one entry per window.
    """

    def __init__(self, features: torch.Tensor | np.ndarray, labels: torch.Tensor | np.ndarray, lookback: int):
        features = torch.as_tensor(features, dtype=torch.float32)
        labels = torch.as_tensor(labels, dtype=torch.long)
        if labels.dim() != 1 or labels.shape[0] != features.shape[0]:
            raise ValueError(
                f"labels must be 1-D with one label per feature row ({features.shape[0]}), "
                f"got shape {tuple(labels.shape)}"
            )
        self.lookback = int(lookback)
        self.features = features
        self.windows = sliding_windows(features, self.lookback)
        self.labels = labels[self.lookback - 1 :]
        self.row_index = torch.arange(self.lookback - 1, features.shape[0])

    def __len__(self) -> int:
        return self.labels.shape[0]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.windows[index], self.labels[index]

    @property
    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(windows, labels), like `TensorDataset.tensors`."""
        return self.windows, self.labels

    def to(self, device: torch.device | str) -> WindowDataset:
        """The same windows on `device`: the base rows move once and are re-viewed there."""
        moved = WindowDataset.__new__(WindowDataset)
        moved.lookback = self.lookback
        moved.features = self.features.to(device)
        moved.windows = sliding_windows(moved.features, self.lookback)
        moved.labels = self.labels.to(device)
        moved.row_index = self.row_index
        return moved
