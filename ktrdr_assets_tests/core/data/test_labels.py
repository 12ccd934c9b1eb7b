"""Labels: known answers on hand-built price paths, no leakage past the lookahead, bad inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ktrdr_assets.core.config.schema import LabelConfig, TripleBarrierConfig, ZigZagConfig
from ktrdr_assets.core.data import labels as labels_module
from ktrdr_assets.core.data.labels import label_distribution, make_labels, triple_barrier_labels, zigzag_labels
from ktrdr_assets.core.data.signals import Signal

S, H, B = int(Signal.SELL), int(Signal.HOLD), int(Signal.BUY)


def _index(n: int) -> pd.DatetimeIndex:
    return pd.date_range("2024-01-01", periods=n, freq="D", tz="UTC")


def _close(values: list[float]) -> pd.Series:
    return pd.Series(values, index=_index(len(values)), dtype=np.float64, name="close")


def _bars(close: list[float], high: list[float], low: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"high": high, "low": low, "close": close}, index=_index(len(close)))


def _random_bars(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, n)))
    wick = np.abs(rng.normal(0, 0.01, (2, n))) * close
    return pd.DataFrame(
        {"open": close, "high": close + wick[0], "low": close - wick[1], "close": close}, index=_index(n)
    )


# --------------------------------------------------------------------------- zigzag
def test_zigzag_rising_path_buys_while_the_move_is_big_enough() -> None:
    close = _close([100, 103, 106, 109, 110, 111, 111.5, 112, 112.5, 113])
    # lookahead 3, threshold 5%: t0 max(103,106,109)=109 -> +9% BUY; t1 110/103 -> +6.8% BUY;
    # t2 111/106 -> +4.7% HOLD; t3 111.5/109, t4 112/110, t5 112.5/111, t6 113/111.5 -> < 5% HOLD.
    labels = zigzag_labels(close, threshold=0.05, lookahead=3)
    assert labels.tolist() == [B, B, H, H, H, H, H]
    assert labels.dtype == np.int8 and labels.name == "label"


def test_zigzag_falling_path_sells_while_the_move_is_big_enough() -> None:
    close = _close([100, 97, 94, 91, 90, 89, 88.5, 88, 87.5, 87])
    # t0 min=91 -> -9% SELL; t1 90/97 -> -7.2% SELL; t2 89/94 -> -5.3% SELL;
    # t3 88.5/91 -> -2.7%, t4 88/90, t5 87.5/89, t6 87/88.5 -> HOLD.
    assert zigzag_labels(close, 0.05, 3).tolist() == [S, S, S, H, H, H, H]


def test_zigzag_flat_path_holds() -> None:
    assert zigzag_labels(_close([100.0] * 10), 0.05, 3).tolist() == [H] * 7


def test_zigzag_larger_move_wins_when_both_cross_the_threshold() -> None:
    # t0 sees (108, 90): up 8% < down 10% -> SELL; t1 sees (90, 100): down 16.7% -> SELL;
    # t2 sees (100, 100): up 11.1% -> BUY; t3 sees (100, 100): 0 -> HOLD.
    assert zigzag_labels(_close([100, 108, 90, 100, 100, 100]), 0.05, 2).tolist() == [S, S, B, H]
    # t0 sees (110, 93): up 10% > down 7% -> BUY; t1 sees (93, 93): down 15.5% -> SELL; t2 flat.
    assert zigzag_labels(_close([100, 110, 93, 93, 93]), 0.05, 2).tolist() == [B, S, H]


def test_zigzag_tie_is_hold_and_threshold_is_inclusive() -> None:
    # 125/100 - 1 and 1 - 75/100 are both exactly 0.25 in binary floating point: a tie -> HOLD.
    assert zigzag_labels(_close([100, 125, 75, 75]), 0.05, 2).tolist() == [H, S]
    # 160/128 - 1 is exactly 0.25: reaching the threshold counts, just under it does not.
    assert zigzag_labels(_close([128, 160]), 0.25, 1).tolist() == [B]
    assert zigzag_labels(_close([128, 160]), 0.2500001, 1).tolist() == [H]


def test_zigzag_last_lookahead_bars_are_unlabelled() -> None:
    close = _close([100, 101, 102, 103, 104, 105, 106, 107, 108, 109, 110, 111])
    labels = zigzag_labels(close, 0.05, 4)
    assert labels.index.equals(close.index[:-4])
    short = zigzag_labels(close.iloc[:4], 0.05, 4)
    assert short.empty and short.dtype == np.int8


def test_zigzag_matches_a_direct_per_bar_computation() -> None:
    close = _random_bars(500, seed=1)["close"]
    lookahead, threshold = 7, 0.04
    expected = []
    for t in range(len(close) - lookahead):
        window = close.iloc[t + 1 : t + 1 + lookahead]
        up, down = window.max() / close.iloc[t] - 1, 1 - window.min() / close.iloc[t]
        expected.append(B if up >= threshold and up > down else S if down >= threshold and down > up else H)
    assert zigzag_labels(close, threshold, lookahead).tolist() == expected
    assert len(set(expected)) == 3


@pytest.mark.parametrize("method", ["zigzag", "triple_barrier"])
def test_labels_never_see_past_their_lookahead(method: str) -> None:
    config = LabelConfig(method=method, zigzag=ZigZagConfig(lookahead=5), triple_barrier=TripleBarrierConfig(horizon=5))
    bars = _random_bars(300, seed=2)
    base = make_labels(bars, config)["label"]
    t = 150
    changed = bars.copy()
    factor = np.random.default_rng(3).uniform(0.5, 1.5, (len(bars) - t - 6, 1))
    changed.iloc[t + 6 :] = bars.iloc[t + 6 :].to_numpy() * factor
    after = make_labels(changed, config)["label"]
    # Every label up to t sees at most bar t+5: identical.
    pd.testing.assert_series_equal(after.iloc[: t + 1], base.iloc[: t + 1])
    # The window does reach t+5: flat bars t+1..t+5 hold, doubling bar t+5 alone makes label t a BUY.
    flat = bars.copy()
    flat.iloc[t + 1 : t + 6] = bars["close"].iloc[t]
    assert make_labels(flat, config)["label"].iloc[t] == H
    flat.iloc[t + 5] = 2 * bars["close"].iloc[t]
    assert make_labels(flat, config)["label"].iloc[t] == B


# --------------------------------------------------------------------------- triple barrier
def test_triple_barrier_profit_first() -> None:
    # entry 100: barriers 105 / 98. t1 stays inside, t2 high 106 hits profit, t3 low 97 is too late.
    bars = _bars([100, 101, 104, 99], high=[100, 103, 106, 104], low=[100, 99, 99.5, 97])
    assert triple_barrier_labels(bars, 0.05, 0.02, 3).tolist() == [B]


def test_triple_barrier_stop_first() -> None:
    bars = _bars([100, 98, 106, 106], high=[100, 101, 107, 107], low=[100, 97.5, 99, 99])
    assert triple_barrier_labels(bars, 0.05, 0.02, 3).tolist() == [S]


def test_triple_barrier_same_bar_touch_is_sell() -> None:
    bars = _bars([100, 100, 100, 100], high=[100, 106, 100, 100], low=[100, 97, 100, 100])
    assert triple_barrier_labels(bars, 0.05, 0.02, 3).tolist() == [S]


def test_triple_barrier_vertical_barrier_is_hold_and_touching_counts() -> None:
    bars = _bars([100, 101, 99, 103], high=[100, 104.9, 102, 104], low=[100, 98.5, 98.1, 100])
    assert triple_barrier_labels(bars, 0.05, 0.02, 3).tolist() == [H]
    # 100 * 1.25 and 100 * 0.5 are exact: a high of exactly 125 touches the profit barrier.
    touch = _bars([100, 110], high=[100, 125], low=[100, 100])
    assert triple_barrier_labels(touch, 0.25, 0.5, 1).tolist() == [B]


def test_triple_barrier_path_labels_every_bar_and_drops_the_last_horizon() -> None:
    close = [100, 100, 104, 106, 103, 101, 100, 97, 96, 99, 103]
    high = [100, 101, 105, 107, 104, 102, 101, 99, 98, 100, 104]
    low = [100, 99, 101, 104, 100, 98, 97, 95, 95, 96, 99]
    # horizon 2, +3% / -2%: t0 (105 >= 103) BUY; t1 (105) BUY; t2 [107.12, 101.92]: t3 high 107
    # no, low 104 no; t4 high 104 no, low 100 <= 101.92 SELL; t3 [109.18, 103.88]: t4 low 100 SELL;
    # t4 [106.09, 100.94]: t5 low 98 SELL; t5 [104.03, 98.98]: t6 low 97 SELL; t6 [103, 98]: t7 low 95
    # SELL; t7 [99.91, 95.06]: t8 low 95 SELL; t8 [98.88, 94.08]: t9 high 100 BUY.
    bars = _bars(close, high, low)
    labels = triple_barrier_labels(bars, 0.03, 0.02, 2)
    assert labels.tolist() == [B, B, S, S, S, S, S, S, B]
    assert labels.index.equals(bars.index[:-2])


def test_triple_barrier_chunks_match_a_per_bar_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    bars = _random_bars(700, seed=4)
    target, stop, horizon = 0.03, 0.02, 9
    expected = []
    for t in range(len(bars) - horizon):
        entry = bars["close"].iloc[t]
        label = H
        for j in range(t + 1, t + horizon + 1):
            if bars["low"].iloc[j] <= entry * (1 - stop):
                label = S
                break
            if bars["high"].iloc[j] >= entry * (1 + target):
                label = B
                break
        expected.append(label)
    monkeypatch.setattr(labels_module, "_CHUNK_ROWS", 64)  # many chunks, a ragged last one
    assert triple_barrier_labels(bars, target, stop, horizon).tolist() == expected
    assert len(set(expected)) == 3


# --------------------------------------------------------------------------- make_labels, distribution
def test_make_labels_zigzag_adds_forward_return() -> None:
    bars = pd.DataFrame({"close": [100.0, 110.0, 99.0, 99.0]}, index=_index(4))
    out = make_labels(bars, LabelConfig(zigzag=ZigZagConfig(threshold=0.05, lookahead=2)))
    assert list(out.columns) == ["label", "forward_return"]
    assert out["label"].dtype == np.int8 and out["forward_return"].dtype == np.float64
    # t0 sees (110, 99): up 10% > down 1% -> BUY; t1 sees (99, 99): down 10% -> SELL.
    assert out["label"].tolist() == [B, S]
    np.testing.assert_allclose(out["forward_return"], [99 / 100 - 1, 99 / 110 - 1])


def test_make_labels_triple_barrier_uses_the_horizon() -> None:
    bars = _bars([100, 98, 106, 106], high=[100, 101, 107, 107], low=[100, 97.5, 99, 99])
    config = LabelConfig(method="triple_barrier", triple_barrier=TripleBarrierConfig(horizon=3))
    out = make_labels(bars, config)
    assert out["label"].tolist() == [S]
    np.testing.assert_allclose(out["forward_return"], [106 / 100 - 1])


def test_label_distribution_counts_every_class() -> None:
    labels = pd.Series([B, B, H], index=_index(3), dtype=np.int8)
    assert label_distribution(labels) == {
        "SELL": {"count": 0, "share": 0.0},
        "HOLD": {"count": 1, "share": 1 / 3},
        "BUY": {"count": 2, "share": 2 / 3},
    }
    assert list(label_distribution(labels)) == ["SELL", "HOLD", "BUY"]
    empty = label_distribution(pd.Series([], dtype=np.int8))
    assert list(empty) == ["SELL", "HOLD", "BUY"] and all(v == {"count": 0, "share": 0.0} for v in empty.values())


# --------------------------------------------------------------------------- bad input
def test_label_distribution_rejects_unknown_codes() -> None:
    with pytest.raises(ValueError, match=r"unknown label 3 at 2024-01-02 00:00:00\+00:00"):
        label_distribution(pd.Series([1, 3], index=_index(2)))


def test_bad_prices_are_named_by_timestamp() -> None:
    with pytest.raises(ValueError, match=r"close is 0.0 at 2024-01-03 00:00:00\+00:00; labels need positive"):
        zigzag_labels(_close([100, 101, 0, 102]), 0.05, 1)
    with pytest.raises(ValueError, match=r"low is nan at 2024-01-02"):
        triple_barrier_labels(_bars([100, 101], high=[100, 102], low=[100, np.nan]), 0.05, 0.02, 1)


def test_missing_columns_and_bad_parameters_are_rejected() -> None:
    with pytest.raises(ValueError, match=r"bars have no 'high' column"):
        triple_barrier_labels(pd.DataFrame({"close": [1.0, 2.0]}, index=_index(2)), 0.05, 0.02, 1)
    with pytest.raises(ValueError, match=r"bars have no 'close' column"):
        make_labels(pd.DataFrame({"open": [1.0, 2.0]}, index=_index(2)), LabelConfig())
    with pytest.raises(ValueError, match=r"zigzag threshold must be a fraction in \(0, 1\), got 0"):
        zigzag_labels(_close([1.0, 2.0]), 0, 1)
    with pytest.raises(ValueError, match=r"triple_barrier horizon must be an integer >= 1, got 0"):
        triple_barrier_labels(_bars([1, 2], [1, 2], [1, 2]), 0.05, 0.02, 0)
