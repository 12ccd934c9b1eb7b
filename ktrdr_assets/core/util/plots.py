"""PNG charts for people: learning curves of a training run (matplotlib, Agg, no pyplot state)."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported when a figure is drawn: the code location loads without matplotlib
    from matplotlib.figure import Figure


def new_figure(width: float = 8, height: float = 3.2) -> Figure:
    """A matplotlib Figure with its own Agg canvas (no pyplot global state, safe in any thread)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=90)
    FigureCanvasAgg(fig)
    return fig


def figure_png(fig: Figure) -> bytes:
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def learning_curves_png(rows: Sequence[Mapping[str, Any]], title: str, x_label: str = "epoch") -> bytes:
    """Loss and accuracy per epoch (or boosting round), train vs validation, as PNG bytes."""
    fig = new_figure()
    epochs = [row["epoch"] for row in rows]
    for position, (metric, label) in enumerate((("loss", "loss"), ("acc", "accuracy")), start=1):
        ax = fig.add_subplot(1, 2, position)
        for part, style in (("train", "-"), ("val", "--")):
            values = [row.get(f"{part}_{metric}") for row in rows]
            if any(v is not None for v in values):
                ax.plot(epochs, values, style, label=part)
        ax.set_xlabel(x_label)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize=8)
    fig.suptitle(title, fontsize=10)
    return figure_png(fig)


def comparison_png(series: Mapping[str, tuple[Sequence[float], Sequence[float]]], title: str) -> bytes:
    """One line per model: (x values, y values), e.g. validation loss per epoch."""
    fig = new_figure()
    ax = fig.add_subplot(1, 1, 1)
    for name, (xs, ys) in series.items():
        ax.plot(xs, ys, label=name)
    ax.set_xlabel("epoch / round")
    ax.set_ylabel("validation loss")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    ax.set_title(title, fontsize=10)
    return figure_png(fig)


def equity_comparison_png(curves: Mapping[str, Any], title: str) -> bytes:
    """One equity curve per name (a Series indexed by time, 1.0 at its start), e.g. every candidate's
    holdout backtest beside buy-and-hold."""
    fig = new_figure(10, 5)
    ax = fig.add_subplot(1, 1, 1)
    for name, curve in curves.items():
        ax.plot(curve.index, curve.to_numpy(), label=name, linewidth=1.2)
    ax.set_ylabel("equity (start = 1)")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    ax.set_title(title, fontsize=10)
    return figure_png(fig)
