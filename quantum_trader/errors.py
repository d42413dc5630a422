"""Exceptions, grouped by what the caller must do.

- ConfigurationError: fix the configuration; the CLI exits with code 2.
- UsageError: the command cannot run as asked (another daemon holds the data directory, an
  unknown symbol); the CLI exits with code 2.
- RetryLater: a transient fault (network, rate limit, exchange busy); idempotent calls retry.
  RateLimited (HTTP 429) and IpBanned (HTTP 418) say how long to wait before sending anything.
- OperatorActionRequired: a person must act (bad keys, wrong account mode, reconciliation
  mismatch); the daemon fails closed. DamagedState: a saved state row does not read back.
- StorageFailed: the database or the data directory refused a write for a reason that does
  not pass by itself (the disk full, an I/O error); the daemon stops, exit 1.
  StorageBusy: another program held the database's write lock too long (a sqlite3 shell
  or a database browser in a transaction); the same, once that program is done.
- OrderRejected: the exchange refused this order; do not resend it as it is.
- OrderStateUnknown: the request may or may not have reached the exchange; look the client
  order id up before doing anything else with it.
- MarketDataError: market data is missing, malformed or names an unknown symbol.
- ModelArtifactError: a model file is corrupt, mismatched or unsafe; that model abstains.
"""

from __future__ import annotations

import errno
from collections.abc import Sequence
from datetime import datetime

from quantum_trader.domain.enums import ReasonCode


class QuantumTraderError(Exception):
    """Root of every error this program raises on purpose."""


class ConfigurationError(QuantumTraderError):
    """One or more settings are invalid. `problems` holds one line per problem."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(self.problems))


class UsageError(QuantumTraderError):
    """The command cannot run as it was asked; running it differently (or later) would."""


class RetryLater(QuantumTraderError):
    """A transient failure: the same idempotent call may succeed later."""


class RateLimited(RetryLater):
    """The exchange refused the request for its rate limit (HTTP 429); nothing was executed.

    `retry_after_s` is the exchange's Retry-After (None if it sent none): send nothing to it
    before that, or the IP gets banned.
    """

    def __init__(self, message: str, retry_after_s: float | None) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(message)


class IpBanned(RateLimited):
    """The exchange banned this IP (HTTP 418) until `until` (UTC); nothing was executed and
    nothing may be sent to it before then."""

    def __init__(self, message: str, until: datetime) -> None:
        self.until = until
        super().__init__(message, None)


class OperatorActionRequired(QuantumTraderError):
    """The daemon cannot continue safely without a person."""


class DamagedState(OperatorActionRequired):
    """A row of the database's saved state does not read back (edited by hand, or damaged):
    the daemon does not start on a guess, since most of that state is what keeps it safe (a
    governor's halt, the day's drawdown, the ids its orders carry)."""

    def __init__(self, namespace: str, key: str, error: Exception) -> None:
        self.namespace, self.key = namespace, key
        super().__init__(
            f"saved state {namespace}/{key} in the database cannot be read "
            f"({type(error).__name__}: {error}): it was edited or damaged, and the database is "
            f"left as it is: restore the database from a backup, or delete that row (table "
            f"state, namespace '{namespace}', key '{key}') to start that state afresh"
        )


class StorageFailed(QuantumTraderError):
    """A write to the database or the data directory failed for a reason that does not pass
    by itself (the disk full, an I/O error, the file made read-only or damaged underneath).
    Nothing more can be booked, and an order must not be sent whose intent cannot be saved
    first: the daemon stops. Its message says what to free or repair; the next start
    reconciles with the exchange, whose protective stops stay in place meanwhile."""


class StorageBusy(StorageFailed):
    """Another program held the database's write lock for longer than the busy timeout
    (SQLite's SQLITE_BUSY): the write was not made. It passes once that program ends its
    transaction, but the daemon cannot wait for that: every loop's bookings queue behind the
    lock, and a step that went on without its write would leave the books in memory ahead of
    the file. So it is a StorageFailed: the daemon stops as for the disk full (its stops stay
    on the exchange), and a start or a command meeting it says so in one line."""


# A file write failing so fails again until a person acts (the database's own failures arrive
# as StorageFailed): the disk or quota full, a file-size limit, a read-only or failing disk.
LASTING_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EIO})


def lasting_failure(error: BaseException) -> StorageFailed | None:
    """`error` as StorageFailed when it is a write failure that lasts; None otherwise."""
    if isinstance(error, StorageFailed):
        return error
    if isinstance(error, OSError) and error.errno in LASTING_ERRNOS:
        where = str(error.filename) if error.filename else "a file"
        return StorageFailed(
            f"{where} could not be written ({error.strerror}): free space or repair the disk"
        )
    return None


def socket_race(error: BaseException) -> bool:
    """Whether `error` is the event loop refusing a new socket whose fd number an old
    transport still holds (uvloop's and asyncio's `sock_connect`, reached through aiohttp as a
    plain RuntimeError: MagicStack/uvloop#653, aio-libs/aiohttp#10506): a connection not made,
    a transient network failure, not a fault of ours."""
    return isinstance(error, RuntimeError) and "is used by transport" in str(error)


class OrderRejected(QuantumTraderError):
    """The exchange refused the order; `reason` is the stable code for logs and the database."""

    def __init__(self, reason: ReasonCode, message: str) -> None:
        self.reason = reason
        super().__init__(f"{reason}: {message}")


class OrderStateUnknown(QuantumTraderError):
    """The outcome of an order request is unknown: reconcile by client order id."""

    def __init__(self, client_order_id: str, message: str) -> None:
        self.client_order_id = client_order_id
        super().__init__(f"order {client_order_id}: {message}")


class MarketDataError(QuantumTraderError):
    """Market data is missing, malformed (NaN, non-positive prices) or for an unknown symbol."""


class ModelArtifactError(QuantumTraderError):
    """A model artifact cannot be used: corrupt, mismatched, or not produced by this program."""
