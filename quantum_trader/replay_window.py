"""The window a replay covers: the requested one within the recorded data, after warm-up,
and a line for each end a symbol's recording moves (backtest, walk-forward, optimize).
"""

from __future__ import annotations

from datetime import datetime

from quantum_trader.clock import utc_from_ms
from quantum_trader.errors import ConfigurationError
from quantum_trader.log import get_logger
from quantum_trader.market.replay import ReplayFeed

log = get_logger("backtest")  # its lines read as when backtest.py wrote them


def window(
    feed: ReplayFeed, start: datetime | None, end: datetime | None
) -> tuple[datetime, datetime]:
    """The requested window within the recorded data (after warm-up), or ConfigurationError."""
    first = max(start or feed.start, feed.start)
    last = min(end or feed.end, feed.end)
    if first >= last and start is None and end is None:  # the recording itself is too short
        raise ConfigurationError([feed.too_short()])
    if first >= last:
        raise ConfigurationError(
            [
                f"--start/--end: nothing to replay between {first.isoformat()} and "
                f"{last.isoformat()}; recorded data (after warm-up) covers "
                f"{feed.start.isoformat()} .. {feed.end.isoformat()}"
                + "".join(f" ({line})" for line in narrowed(feed, start, end))
            ]
        )
    return first, last


def said_narrowed(feed: ReplayFeed, start: datetime | None, end: datetime | None) -> list[str]:
    """`narrowed`, each line also a warning (shown by a quiet command): for its report."""
    lines = narrowed(feed, start, end)
    for line in lines:
        log.warning("replay_window_narrowed", detail=line)
    return lines


def narrowed(feed: ReplayFeed, start: datetime | None, end: datetime | None) -> list[str]:
    """One line for each end of the requested window that a symbol's recording moves: the
    replay covers only what every symbol covers."""
    lines = []
    if start is not None and feed.start > start:
        symbol = feed.first_starting
        first = utc_from_ms(int(feed.bars[symbol].time_ms[0]))
        lines.append(
            f"{symbol}'s candles begin at {first:%Y-%m-%d %H:%M}: after {feed.history_bars} "
            f"bars of warm-up the replay starts at {feed.start:%Y-%m-%d %H:%M}, not at "
            f"{start:%Y-%m-%d %H:%M}"
        )
    if end is not None and feed.end < end:
        symbol = feed.first_ending
        lines.append(
            f"{symbol}'s candles end at {feed.end:%Y-%m-%d %H:%M}: the replay ends there, "
            f"not at {end:%Y-%m-%d %H:%M}"
        )
    return lines
