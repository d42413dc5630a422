"""A cycle's audit trail (SPEC §10.3): every verdict it reached, with the signal it judged,
as decision rows and, at INFO, one `decision` log line each."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

from quantum_trader.domain import Decision, Signal, Verdict
from quantum_trader.log import get_logger

log = get_logger("executor")


def decisions_of(
    cycle_id: str, now: datetime, verdicts: Sequence[Verdict], signals: Sequence[Signal]
) -> list[Decision]:
    """The cycle's decision rows, each logged as it is made (a backtest's summary level logs
    none: not even spelled)."""
    by_symbol = {s.symbol: s for s in signals}
    logged = log.is_enabled_for(logging.INFO)
    decisions: list[Decision] = []
    for verdict in verdicts:
        signal = by_symbol.get(verdict.symbol)
        confidence = signal.confidence if signal else 0.0
        side = signal.action.side if signal else None
        votes = _votes(signal)
        extra: dict[str, object] = {"votes": votes} if votes else {}
        decisions.append(Decision(cycle_id, now, verdict, confidence, side, extra))
        if logged:
            log.info(
                "decision",
                symbol=verdict.symbol,
                gate=verdict.gate,
                approved=verdict.approved,
                reason=verdict.reason,
                detail=verdict.detail,
                confidence=round(confidence, 4),
                votes=votes,
            )
    return decisions


def log_signals(signals: Sequence[Signal]) -> None:
    """One `signals` line for the cycle's signals (none at a backtest's summary level)."""
    if not log.is_enabled_for(logging.INFO):
        return
    log.info(
        "signals",
        source=signals[0].source if signals else None,
        signals={s.symbol: f"{s.action}:{s.confidence:.2f}" for s in signals},
    )


def _votes(signal: Signal | None) -> str:
    """Every model's vote, when there are several to tell apart (the ensemble's)."""
    if signal is None or len(signal.votes) < 2:
        return ""
    return ",".join(f"{v.model}:{v.action}:{v.confidence:.2f}" for v in signal.votes)
