"""The signal filter, the first gate of SPEC §2: which signals become the approval chain's
candidates. It reads the account only through the set of open positions."""

from __future__ import annotations

from collections.abc import Mapping

from quantum_trader.domain import (
    Candidate,
    GateName,
    PortfolioView,
    ReasonCode,
    Verdict,
)
from quantum_trader.market.model import MarketState


def select_candidates(
    market: MarketState,
    portfolio: PortfolioView,
    min_confidence: float,
    blocked: Mapping[str, str],
) -> tuple[list[Candidate], list[Verdict]]:
    """Turn signals into candidates. HOLD is not a decision; weak signals, symbols that
    already hold a position (one-way mode) and symbols with an order of ours whose outcome is
    unknown (`blocked`, symbol → why) are denied here, before the chain."""
    candidates: list[Candidate] = []
    denied: list[Verdict] = []
    view = market.view
    # The floor's text for a weak signal's detail, made once a call: a float's shortest repr
    # costs ≈ 2,000 instructions, and most of a cycle's signals are weak.
    floor = f"{min_confidence}"
    for signal in market.signals:
        side = signal.action.side
        if side is None:  # HOLD, the one action without a side (domain/enums.py)
            continue
        if signal.symbol in portfolio.positions:
            denied.append(
                Verdict.deny(
                    GateName.SIGNAL_FILTER, signal.symbol, ReasonCode.POSITION_ALREADY_OPEN
                )
            )
        elif signal.symbol in blocked:
            denied.append(
                Verdict.deny(
                    GateName.SIGNAL_FILTER,
                    signal.symbol,
                    ReasonCode.ORDER_UNSETTLED,
                    blocked[signal.symbol],
                )
            )
        elif signal.confidence < min_confidence:
            detail = f"{signal.confidence:.3f} < {floor}"
            denied.append(
                Verdict.deny(
                    GateName.SIGNAL_FILTER, signal.symbol, ReasonCode.LOW_CONFIDENCE, detail
                )
            )
        else:
            price, regime = view.prices[signal.symbol], view.regimes[signal.symbol]
            candidates.append(Candidate(signal, side, price, view.atr_pct[signal.symbol], regime))
    return candidates, denied
