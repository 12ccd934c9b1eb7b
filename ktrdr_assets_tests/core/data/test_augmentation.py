"""Adaptive augmentation: sizes, class shares, the four techniques, determinism."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ktrdr_assets.core.config.schema import AugmentationConfig
from ktrdr_assets.core.data.augmentation import (
    TECHNIQUES,
    AugmentationDistributionWarning,
    augment_train_set,
)

FEATURES = ["f0", "f1", "f2", "f3"]
ONLY_SMOTE = AugmentationConfig(noise_std=0, max_shift=0, feature_dropout=0)


def make_train(counts: tuple[int, int, int], seed: int = 0, run: int = 3) -> pd.DataFrame:
    """Labels in shuffled runs of `run` bars (so same-label neighbours exist), class-dependent features."""
    rng = np.random.default_rng(seed)
    runs = [np.full(min(run, c - start), cls) for cls, c in enumerate(counts) for start in range(0, c, run)]
    labels = np.concatenate([runs[i] for i in rng.permutation(len(runs))])
    n = len(labels)
    values = rng.normal(size=(n, len(FEATURES))) + labels[:, None]
    index = pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC", name="timestamp")
    frame = pd.DataFrame(values, columns=FEATURES, index=index)
    frame["label"] = labels.astype(np.int8)
    return frame


def synthetic_by_technique(frame: pd.DataFrame, info: dict) -> dict[str, pd.DataFrame]:
    synthetic = frame[frame["synthetic"]]
    bounds = np.cumsum([0, *(info["rows_by_technique"][t] for t in TECHNIQUES)])
    return {t: synthetic.iloc[bounds[i] : bounds[i + 1]] for i, t in enumerate(TECHNIQUES)}


def test_untouched_at_or_above_threshold_and_when_disabled() -> None:
    train = make_train((90, 150, 60))
    for config in (AugmentationConfig(), AugmentationConfig(enabled=False, size_threshold=1000)):
        result = augment_train_set(train, FEATURES, config, seed=0)
        assert not result.info["applied"] and result.info["factor"] == 1
        pd.testing.assert_frame_equal(result.frame.drop(columns="synthetic"), train)
        assert not result.frame["synthetic"].any()
    assert (
        "300 train rows >= size_threshold 300"
        in augment_train_set(train, FEATURES, AugmentationConfig(), 0).info["reason"]
    )


@pytest.mark.parametrize(("counts", "factor"), [((150, 62, 38), 2), ((90, 38, 22), 3), ((120, 50, 29), 3)])
def test_sizes_and_exact_class_counts(counts: tuple[int, int, int], factor: int) -> None:
    train = make_train(counts)
    result = augment_train_set(train, FEATURES, AugmentationConfig(), seed=1)
    frame, info = result.frame, result.info
    n = sum(counts)
    assert len(frame) == info["augmented_rows"] == info["target_rows"] == factor * n
    assert info["factor"] == factor and info["applied"]
    assert info["augmented_counts"] == {
        name: factor * c for name, c in zip(("SELL", "HOLD", "BUY"), counts, strict=True)
    }
    # originals first, unchanged, in chronological order; synthetic rows after with NaT
    pd.testing.assert_frame_equal(frame.iloc[:n].drop(columns="synthetic"), train, check_freq=False)
    assert not frame["synthetic"].iloc[:n].any() and frame["synthetic"].iloc[n:].all()
    assert frame.index[n:].isna().all()
    assert list(frame.columns) == [*FEATURES, "label", "synthetic"]
    assert np.isfinite(frame[FEATURES].to_numpy()).all()


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("n", [150, 250])
def test_imbalanced_shares_stay_within_tolerance(seed: int, n: int) -> None:
    counts = (round(0.6 * n), round(0.25 * n), n - round(0.6 * n) - round(0.25 * n))
    result = augment_train_set(make_train(counts, seed=seed), FEATURES, AugmentationConfig(), seed=seed)
    labels = result.frame["label"].to_numpy()
    shares = np.bincount(labels, minlength=3) / len(labels)
    assert np.abs(shares - np.array(counts) / n).max() <= 0.05
    assert result.info["within_tolerance"] and result.info["max_share_shift_points"] <= 5
    assert set(result.info["techniques"]) == set(TECHNIQUES)


def _distance_to_nearest_segment(point: np.ndarray, members: np.ndarray) -> float:
    """Smallest distance from `point` to any segment between two rows of `members`."""
    a = members[:, None, :]
    v = members[None, :, :] - a
    length2 = (v**2).sum(axis=-1)
    u = np.clip(((point - a) * v).sum(axis=-1) / np.where(length2 > 0, length2, 1), 0, 1)
    return float(np.linalg.norm(point - (a + u[..., None] * v), axis=-1).min())


def test_smote_rows_interpolate_between_same_class_originals() -> None:
    train = make_train((60, 25, 15))
    result = augment_train_set(train, FEATURES, ONLY_SMOTE, seed=3)
    smote = synthetic_by_technique(result.frame, result.info)["smote"]
    assert result.info["techniques"] == ["smote"] and len(smote) == 200
    originals = train[FEATURES].to_numpy()
    for point, label in zip(smote[FEATURES].to_numpy(), smote["label"], strict=True):
        members = originals[train["label"].to_numpy() == label]
        assert _distance_to_nearest_segment(point, members) < 1e-9
        assert np.abs(originals - point).sum(axis=1).min() > 1e-6  # not a copy
    # a noisy copy lies off every segment: the check above can fail
    noisy = originals[0] + 0.3
    assert _distance_to_nearest_segment(noisy, originals[train["label"].to_numpy() == 0]) > 1e-3


def test_class_with_one_row_skips_smote_and_still_keeps_its_share() -> None:
    train = make_train((1, 80, 39))
    result = augment_train_set(train, FEATURES, AugmentationConfig(), seed=0)
    assert "SMOTE skipped for SELL: 1 row, needs at least 2" in result.info["reason"]
    assert result.info["augmented_counts"] == {"SELL": 3, "HOLD": 240, "BUY": 117}
    assert result.info["rows_by_technique"]["smote"] > 0


def test_time_shift_copies_only_same_label_neighbours() -> None:
    config = AugmentationConfig(noise_std=0, feature_dropout=0, use_smote=False, max_shift=2)
    train = make_train((60, 60, 60), run=4)
    result = augment_train_set(train, FEATURES, config, seed=0)
    shifted = synthetic_by_technique(result.frame, result.info)["time_shift"]
    assert len(shifted) == 180 and result.info["techniques"] == ["time_shift"]
    originals, labels = train[FEATURES].to_numpy(), train["label"].to_numpy()
    for point, label in zip(shifted[FEATURES].to_numpy(), shifted["label"], strict=True):
        source = np.flatnonzero((originals == point).all(axis=1))
        assert len(source) == 1 and labels[source[0]] == label
        lo, hi = max(source[0] - 2, 0), source[0] + 3
        assert (labels[lo:hi] == label).sum() >= 2  # a same-label bar within 2 rows took these features


def test_time_shift_makes_nothing_when_neighbours_differ() -> None:
    config = AugmentationConfig(noise_std=0, feature_dropout=0, use_smote=False, max_shift=2)
    train = make_train((50, 50, 50), run=1)
    labels = np.tile([0, 1, 2], 50).astype(np.int8)  # no equal label within 2 bars
    train["label"] = labels
    result = augment_train_set(train, FEATURES, config, seed=0)
    assert result.info["synthetic_rows"] == 0 and result.info["techniques"] == []
    assert "only 0 of 100 synthetic SELL rows could be made" in result.info["reason"]


def test_distribution_warning_when_pool_cannot_keep_shares() -> None:
    config = AugmentationConfig(noise_std=0, feature_dropout=0, use_smote=False, max_shift=1)
    train = make_train((30, 70, 1), run=1)
    labels = np.ones(101, dtype=np.int8)
    labels[np.arange(30) * 3] = 0  # isolated SELL bars: no same-label neighbour
    labels[-1] = 2
    train["label"] = labels
    with pytest.warns(AugmentationDistributionWarning, match=r"class shares moved"):
        result = augment_train_set(train, FEATURES, config, seed=0)
    info = result.info
    assert not info["within_tolerance"] and info["max_share_shift_points"] > 5
    assert "only 0 of 60 synthetic SELL rows could be made" in info["reason"]
    assert len(result.frame) < info["target_rows"]


def test_gaussian_noise_scale_follows_column_std() -> None:
    config = AugmentationConfig(max_shift=0, feature_dropout=0, use_smote=False, noise_std=0.15)
    train = make_train((100, 100, 50))  # 2x: every noisy row is used, in original order
    train["f3"] *= 10
    result = augment_train_set(train, FEATURES, config, seed=0)
    noise = result.frame[FEATURES].to_numpy()[250:] - train[FEATURES].to_numpy()
    np.testing.assert_array_equal(result.frame["label"].to_numpy()[250:], train["label"])
    np.testing.assert_allclose(noise.std(axis=0), 0.15 * train[FEATURES].std(ddof=0), rtol=0.15)


def test_feature_dropout_zeroes_about_the_configured_fraction() -> None:
    config = AugmentationConfig(max_shift=0, noise_std=0, use_smote=False, feature_dropout=0.1)
    train = make_train((100, 100, 50))
    result = augment_train_set(train, FEATURES, config, seed=0)
    dropped, original = result.frame[FEATURES].to_numpy()[250:], train[FEATURES].to_numpy()
    zeroed = dropped == 0
    np.testing.assert_array_equal(dropped[~zeroed], original[~zeroed])
    assert 0.07 < zeroed.mean() < 0.13


def test_same_seed_same_output_other_seed_differs() -> None:
    train = make_train((90, 38, 22))
    first = augment_train_set(train, FEATURES, AugmentationConfig(), seed=7)
    second = augment_train_set(train, FEATURES, AugmentationConfig(), seed=7)
    other = augment_train_set(train, FEATURES, AugmentationConfig(), seed=8)
    pd.testing.assert_frame_equal(first.frame, second.frame)
    assert first.info == second.info
    assert not first.frame.equals(other.frame)


def test_frame_round_trips_through_parquet(tmp_path) -> None:
    result = augment_train_set(make_train((90, 38, 22)), FEATURES, AugmentationConfig(), seed=0)
    result.frame.to_parquet(tmp_path / "augmented.parquet")
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "augmented.parquet"), result.frame)


def test_rejects_missing_label_column() -> None:
    train = make_train((90, 38, 22)).drop(columns="label")
    with pytest.raises(ValueError, match=r"augment_train_set: frame lacks columns \['label'\]"):
        augment_train_set(train, FEATURES, AugmentationConfig(), seed=0)
