"""Reliability diagrams as PNG (matplotlib, headless): calibrated probability vs observed win
frequency, and, where known, predicted expected R vs realized R, on quantile bins."""

from __future__ import annotations

import io

import numpy as np

from quantum_trader.domain import FloatArray
from quantum_trader.record import record
from quantum_trader.signals.evaluation import RELIABILITY_BINS, Reliability


@record
class ReliabilityFigure:
    """What one diagram shows: the probability curve and, optionally, the expected-R curve."""

    title: str
    reliability: Reliability
    expected_r: tuple[float, ...]
    realized_r: tuple[float, ...]

    @classmethod
    def of(
        cls,
        title: str,
        table: Reliability,
        expected: FloatArray | None,
        realized: FloatArray | None,
    ) -> ReliabilityFigure:
        if expected is None or realized is None or expected.size < RELIABILITY_BINS:
            return cls(title, table, (), ())
        order = np.argsort(expected, kind="stable")
        bins = np.array_split(order, RELIABILITY_BINS)
        return cls(
            title,
            table,
            tuple(float(expected[b].mean()) for b in bins),
            tuple(float(realized[b].mean()) for b in bins),
        )


def reliability_png(figure: ReliabilityFigure) -> bytes:
    """Render one diagram (two panels when expected R is known) to PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    panels = 2 if figure.expected_r else 1
    fig, axes = plt.subplots(1, panels, figsize=(4.2 * panels, 4.0), squeeze=False)
    left = axes[0][0]
    left.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1)
    left.plot(figure.reliability.predicted, figure.reliability.observed, marker="o")
    left.set(
        title=f"{figure.title}: P(R > 0)",
        xlabel="calibrated probability",
        ylabel="observed frequency",
        xlim=(0, 1),
        ylim=(0, 1),
    )
    if panels == 2:
        right = axes[0][1]
        low = min(*figure.expected_r, *figure.realized_r)
        high = max(*figure.expected_r, *figure.realized_r)
        right.plot([low, high], [low, high], color="grey", linestyle="--", linewidth=1)
        right.plot(figure.expected_r, figure.realized_r, marker="o")
        right.set(title="expected R after costs", xlabel="predicted", ylabel="realized")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    plt.close(fig)
    return buffer.getvalue()
