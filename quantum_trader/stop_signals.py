"""The signals that ask a command for its ordered stop, for every command that has one (`run`,
`backtest`, `walk-forward`, `train`, `optimize`): SIGTERM, SIGINT and SIGHUP.

SIGHUP is what a closed terminal sends (an SSH session dropped); by default it kills the
process on the spot, without the stop that keeps outputs whole and says what was kept. Under
`nohup` it is ignored, and stays so: whoever ran the command asked for it to outlive the
terminal. The helper processes a command starts leave every stop to it (a terminal's Ctrl-C
and hangup reach the whole process group). Light (no asyncio at run time): the decisions
writer, which starts in tens of milliseconds, imports it.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # not imported at run time: the helpers start in tens of milliseconds
    import asyncio


def stop_signals() -> tuple[signal.Signals, ...]:
    """SIGTERM, SIGINT and SIGHUP, unless SIGHUP is ignored (`nohup`)."""
    hangup = () if signal.getsignal(signal.SIGHUP) is signal.SIG_IGN else (signal.SIGHUP,)
    return (signal.SIGTERM, signal.SIGINT, *hangup)


def add_stop_handlers(loop: asyncio.AbstractEventLoop, on_stop: Callable[[], None]) -> None:
    """Call `on_stop` on each stop signal, from `loop` (undo: `remove_stop_handlers`)."""
    for signum in stop_signals():
        loop.add_signal_handler(signum, on_stop)


def remove_stop_handlers(loop: asyncio.AbstractEventLoop) -> None:
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.remove_signal_handler(signum)  # False, not an error, where none was added


@contextmanager
def on_stop_signals(on_stop: Callable[[signal.Signals], None]) -> Iterator[None]:
    """Call `on_stop(signal)` on each stop signal in this block (main thread only), then
    restore the handlers that were there before."""

    def handle(signum: int, _frame: object) -> None:
        on_stop(signal.Signals(signum))

    previous = {signum: signal.signal(signum, handle) for signum in stop_signals()}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def leave_stops_to_the_parent() -> None:
    """In a helper process: ignore SIGINT and SIGHUP, which reach the whole process group;
    the command decides what they mean and ends its helpers by closing their input."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
