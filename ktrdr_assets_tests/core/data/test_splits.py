"""Temporal splits with purge gaps, the train-only JSON scaler, and verify_splits."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
from sklearn.preprocessing import RobustScaler, StandardScaler

from ktrdr_assets.core.config.schema import SplitConfig
from ktrdr_assets.core.data.scaling import FeatureScaler
from ktrdr_assets.core.data.splits import TemporalSplits, temporal_split, verify_splits

FEATURES = ["rsi", "trend", "volume_ratio", "const"]


def make_features(n: int = 420, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    index = pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC", name="timestamp")
    frame = pd.DataFrame(
        {
            "rsi": rng.normal(50, 10, n),
            "trend": np.arange(n, dtype=float),  # rises: later parts are far above the train mean
            "volume_ratio": rng.lognormal(0, 1.5, n),  # heavy-tailed
            "const": 3.0,
        },
        index=index,
    )
    frame["label"] = rng.choice(3, n, p=[0.2, 0.55, 0.25]).astype(np.int8)
    return frame


@pytest.fixture(scope="module")
def features() -> pd.DataFrame:
    return make_features()


@pytest.fixture(scope="module")
def splits(features: pd.DataFrame) -> TemporalSplits:
    return temporal_split(features, FEATURES, SplitConfig(), lookahead=10)


def test_sizes_follow_fractions_of_rows_left_after_two_purge_gaps(splits: TemporalSplits) -> None:
    # 420 rows - 2 x 10 purged = 400 shared 70/15/15
    assert (len(splits.train), len(splits.validation), len(splits.test)) == (280, 60, 60)
    assert splits.row_positions == {"train": (0, 279), "validation": (290, 349), "test": (360, 419)}
    assert splits.purge_bars == 10 and splits.lookahead == 10 and splits.source_rows == 420


def test_parts_keep_original_timestamps_and_labels(splits: TemporalSplits, features: pd.DataFrame) -> None:
    for part, (first, last) in splits.row_positions.items():
        frame = splits.parts()[part]
        assert frame.index.equals(features.index[first : last + 1])
        assert list(frame.columns) == [*FEATURES, "label"]
        assert frame["label"].dtype == np.int8
        np.testing.assert_array_equal(frame["label"], features["label"].iloc[first : last + 1])


@pytest.mark.parametrize(("purge_bars", "lookahead", "expected"), [(None, 5, 5), (3, 5, 5), (0, 5, 5), (8, 5, 8)])
def test_purge_gap_is_exactly_max_of_purge_bars_and_lookahead(
    features: pd.DataFrame, purge_bars: int | None, lookahead: int, expected: int
) -> None:
    result = temporal_split(features, FEATURES, SplitConfig(purge_bars=purge_bars), lookahead)
    position = features.index.get_loc
    assert result.purge_bars == expected
    assert position(result.validation.index[0]) - position(result.train.index[-1]) - 1 == expected
    assert position(result.test.index[0]) - position(result.validation.index[-1]) - 1 == expected
    assert result.summary()["gap_rows"] == {"train_validation": expected, "validation_test": expected}
    assert len(result.train) + len(result.validation) + len(result.test) + 2 * expected == len(features)


def test_scaler_is_fitted_on_train_only(splits: TemporalSplits, features: pd.DataFrame) -> None:
    raw_train = features.iloc[:280]
    for column in ["rsi", "trend"]:
        mean, std = raw_train[column].mean(), raw_train[column].std(ddof=0)
        assert splits.train[column].mean() == pytest.approx(0, abs=1e-9)
        assert splits.train[column].std(ddof=0) == pytest.approx(1)
        expected = (features[column].iloc[290:350] - mean) / std
        np.testing.assert_allclose(splits.validation[column], expected, rtol=1e-12)
    # the trend keeps rising after train, so validation and test are not centred
    assert splits.validation["trend"].mean() > 1.5
    assert splits.test["trend"].mean() > splits.validation["trend"].mean()
    assert splits.scaler.n_fit_rows == 280


def test_heavy_tailed_columns_use_robust_scaling(splits: TemporalSplits, features: pd.DataFrame) -> None:
    kinds = dict(zip(splits.scaler.columns, splits.scaler.kinds, strict=True))
    assert kinds == {"rsi": "standard", "trend": "standard", "volume_ratio": "robust", "const": "standard"}
    raw = features["volume_ratio"].iloc[:280].to_numpy()
    q25, median, q75 = np.percentile(raw, [25, 50, 75])
    np.testing.assert_allclose(splits.train["volume_ratio"], (raw - median) / (q75 - q25), rtol=1e-12)


def test_constant_column_scales_to_finite_zeros(splits: TemporalSplits) -> None:
    for frame in splits.parts().values():
        np.testing.assert_array_equal(frame["const"], 0.0)


def test_scaler_json_reproduces_sklearn_exactly(features: pd.DataFrame) -> None:
    train, other = features.iloc[:200], features.iloc[200:]
    scaler = FeatureScaler.from_json(FeatureScaler.fit(train, FEATURES, ("volume*",)).to_json())
    standard = ["rsi", "trend", "const"]
    expected_standard = StandardScaler().fit(train[standard]).transform(other[standard])
    expected_robust = RobustScaler().fit(train[["volume_ratio"]]).transform(other[["volume_ratio"]])
    scaled = scaler.transform(other)
    np.testing.assert_array_equal(scaled[standard].to_numpy(), expected_standard)
    np.testing.assert_array_equal(scaled[["volume_ratio"]].to_numpy(), expected_robust)
    np.testing.assert_array_equal(scaled["label"], other["label"])


def test_scaler_json_round_trip_is_plain_json(splits: TemporalSplits) -> None:
    text = splits.scaler.to_json()
    raw = json.loads(text)
    assert [c["name"] for c in raw["columns"]] == FEATURES
    assert [c["kind"] for c in raw["columns"]] == ["standard", "standard", "robust", "standard"]
    assert FeatureScaler.from_json(text) == splits.scaler


def test_scaler_from_json_names_the_problem() -> None:
    good = json.loads(FeatureScaler.fit(make_features(50), FEATURES, ()).to_json())
    del good["n_fit_rows"]
    with pytest.raises(ValueError, match=r"scaler\.json: missing key 'n_fit_rows'"):
        FeatureScaler.from_json(json.dumps(good), "scaler.json")
    good = json.loads(FeatureScaler.fit(make_features(50), FEATURES, ()).to_json())
    good["columns"][1]["scale"] = 0.0
    with pytest.raises(ValueError, match=r"s\.json: column 'trend': center/scale must be finite with scale > 0"):
        FeatureScaler.from_json(json.dumps(good), "s.json")


def test_to_dir_from_dir_round_trip(splits: TemporalSplits, tmp_path) -> None:
    splits.to_dir(tmp_path / "splits")
    assert sorted(p.name for p in (tmp_path / "splits").iterdir()) == [
        "meta.json",
        "scaler.json",
        "test.parquet",
        "train.parquet",
        "validation.parquet",
    ]
    loaded = TemporalSplits.from_dir(tmp_path / "splits")
    for name, frame in splits.parts().items():
        pd.testing.assert_frame_equal(loaded.parts()[name], frame, check_freq=False)
    assert loaded.scaler == splits.scaler
    assert (loaded.feature_names, loaded.purge_bars, loaded.lookahead) == (FEATURES, 10, 10)
    assert loaded.row_positions == splits.row_positions
    assert loaded.summary() == splits.summary()
    assert verify_splits(loaded) == []


def test_from_dir_names_missing_files(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match=r"splits folder lacks .*train\.parquet"):
        TemporalSplits.from_dir(tmp_path)


def test_summary_counts_and_shares(splits: TemporalSplits, features: pd.DataFrame) -> None:
    summary = splits.summary()
    expected = features["label"].iloc[290:350].value_counts()
    validation = summary["validation"]
    assert validation["rows"] == 60
    assert validation["first"] == features.index[290].isoformat()
    assert validation["last"] == features.index[349].isoformat()
    assert validation["class_counts"] == {
        name: int(expected.get(code, 0)) for code, name in enumerate(["SELL", "HOLD", "BUY"])
    }
    assert validation["class_shares"]["HOLD"] == pytest.approx(expected.get(1, 0) / 60)
    assert summary["purge_bars"] == 10
    json.dumps(summary)  # plain JSON types only


def test_verify_splits_accepts_valid_splits(splits: TemporalSplits) -> None:
    assert verify_splits(splits) == []


def test_verify_splits_catches_overlap(splits: TemporalSplits) -> None:
    moved = dataclasses.replace(
        splits,
        validation=pd.concat([splits.train.tail(3), splits.validation]),
        row_positions={**splits.row_positions, "validation": (277, 349)},
    )
    problems = verify_splits(moved)
    assert any("train and validation overlap in time" in p for p in problems)
    assert any("only -3 rows between train and validation" in p for p in problems)


def test_verify_splits_catches_too_small_gap(features: pd.DataFrame) -> None:
    short = temporal_split(features, FEATURES, SplitConfig(), lookahead=4)
    assert verify_splits(short) == []
    claimed = dataclasses.replace(short, lookahead=6)  # labels really looked 6 bars ahead
    problems = verify_splits(claimed)
    assert "purge_bars 4 is below the label lookahead 6" in problems
    assert any("only 4 rows between validation and test" in p for p in problems)


def test_verify_splits_catches_shuffled_part(splits: TemporalSplits) -> None:
    shuffled = dataclasses.replace(splits, train=splits.train.sample(frac=1.0, random_state=1))
    assert any(p.startswith("train: index must be strictly increasing") for p in verify_splits(shuffled))


def test_verify_splits_catches_scaler_fitted_beyond_train(splits: TemporalSplits, features: pd.DataFrame) -> None:
    rows = features.iloc[:350]  # train + purge + validation
    leaky = FeatureScaler.fit(rows, FEATURES, ("volume*",))
    raw = {name: features.iloc[a : b + 1][[*FEATURES, "label"]] for name, (a, b) in splits.row_positions.items()}
    bad = dataclasses.replace(splits, scaler=leaky, **{name: leaky.transform(f) for name, f in raw.items()})
    problems = verify_splits(bad)
    assert "scaler was fitted on 350 rows but train has 280" in problems
    assert any("scaled train mean of 'trend'" in p for p in problems)
    # hiding the row count does not hide the leak
    disguised = dataclasses.replace(bad, scaler=dataclasses.replace(leaky, n_fit_rows=280))
    assert any("not fitted on the train rows" in p for p in verify_splits(disguised))


def test_too_small_data_names_the_sizes() -> None:
    with pytest.raises(
        ValueError,
        match=r"60 labelled rows minus 2 purge gaps of 20 rows leave train=14, validation=3, test=3",
    ):
        temporal_split(make_features(60), FEATURES, SplitConfig(), lookahead=20)


def test_rejects_non_finite_feature_naming_column_and_timestamp() -> None:
    frame = make_features(100)
    frame.iloc[7, frame.columns.get_loc("rsi")] = np.nan
    with pytest.raises(ValueError, match=r"temporal_split: feature 'rsi' is nan at 2024-01-01T07:00:00\+00:00"):
        temporal_split(frame, FEATURES, SplitConfig(), lookahead=2)


def test_rejects_unsorted_index_and_missing_columns() -> None:
    frame = make_features(100)
    with pytest.raises(
        ValueError, match=r"strictly increasing timestamps, broken at row 1 \(2024-01-05 02:00:00\+00:00\)"
    ):
        temporal_split(frame.iloc[::-1], FEATURES, SplitConfig(), lookahead=2)
    with pytest.raises(ValueError, match=r"temporal_split: frame lacks columns \['macd'\]"):
        temporal_split(frame, [*FEATURES, "macd"], SplitConfig(), lookahead=2)


def test_rejects_bad_label_code() -> None:
    frame = make_features(100)
    frame.iloc[5, frame.columns.get_loc("label")] = 3
    with pytest.raises(ValueError, match=r"'label' is 3 at 2024-01-01T05:00:00\+00:00; class codes are 0\.\.2"):
        temporal_split(frame, FEATURES, SplitConfig(), lookahead=2)
