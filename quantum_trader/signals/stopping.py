"""A stop asked for by a signal, carried out at the next safe point of training.

Raising from a signal handler interrupts whatever the main thread is doing, including a model
library half-way through a step with its worker threads running; seen under load as a process
that aborted (SIGABRT) or did not finish stopping. So the handler only records the request and
training checks it between steps, folds and stages (`check`), where nothing is half done.
"""

from __future__ import annotations


class StopRequested(BaseException):
    """SIGTERM/SIGINT arrived: stop training; nothing is published."""


class StopSignal:
    """The name of the signal that asked training to stop, or None."""

    def __init__(self) -> None:
        self._name: str | None = None

    def request(self, name: str) -> None:
        """Record a stop (safe in a signal handler: one assignment)."""
        self._name = name

    def clear(self) -> None:
        self._name = None

    def check(self) -> None:
        """Raise StopRequested if a stop was asked for."""
        if self._name is not None:
            raise StopRequested(self._name)


TRAINING_STOP = StopSignal()
