"""The cyclic garbage collector during a batch run (a backtest): what is loaded before the
replay is exempt from its full passes, and the report's bounded work is not interrupted.

Since the forty-ninth pass (docs/BENCHMARKS.md) the replay itself runs with the collector
paused: its passes were ≈ 4 % of the replay's instructions, and the year's replay leaves
≈ 36,000 objects in cycles (a few MB), freed by the collection right after it.

A full pass walks every tracked object. In the year's backtest those are mostly what lives
for the whole command (the modules, the settings, the market's series), and the six full
passes cost 0.37 s of its ≈ 13 s, for nothing: they found garbage only in the replay's own
cycles and in the report's figures. Reference counting still frees everything as before;
only the search for unreachable cycles changes, and both scopes restore the collector as
they found it, so a caller that runs many backtests in one process (the optimizer) keeps
nothing exempt or paused between them. The daemon does not use them.

A command that is about to exit exempts what it still holds (`leave_to_exit`): the
interpreter's last full collection would walk the report's and the libraries' objects
(≈ 0.2 s after the year's backtest) only for the OS to take the memory back.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def loaded_objects_exempt() -> Iterator[None]:
    """Full passes skip the objects alive on entry; on exit they are collectable again."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


@contextmanager
def collector_paused() -> Iterator[None]:
    """No cycle collection inside (reference counting goes on); resumed on exit if it ran
    on entry, so nested and overlapping scopes leave it as the outermost found it."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def leave_to_exit() -> None:
    """Exempt every object alive now from cycle collection for the rest of the process, the
    collection at interpreter exit included: only for a command's last step."""
    gc.freeze()
