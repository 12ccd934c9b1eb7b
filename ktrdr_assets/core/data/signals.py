"""The three trading signals, defined once. Integer codes are the class labels every model uses."""

from enum import IntEnum


class Signal(IntEnum):
    SELL = 0
    HOLD = 1
    BUY = 2


CLASS_NAMES: tuple[str, ...] = tuple(s.name for s in Signal)  # ("SELL", "HOLD", "BUY")
N_CLASSES = len(Signal)
