"""Operator requests: filed by a CLI process, carried out by the daemon (the one writer).

A request is one row of the state namespace `operator` (key: its kind, payload: when it was
filed, on the wall clock, and by whom). The daemon takes the pending ones oldest first, drops
those it must not act on (filed before it started, or older than
`operator.request_max_age_s`) with one `operator_request_dropped` line each, and deletes each
row once it is done: nothing is replayed after a restart.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

from quantum_trader.errors import OperatorActionRequired
from quantum_trader.log import get_logger
from quantum_trader.ports import Repository
from quantum_trader.record import record
from quantum_trader.storage.sqlite import SqliteRepository

log = get_logger("operator")
NAMESPACE = "operator"


class RequestKind(StrEnum):
    """The requests the CLI files (`lift_blacklist:<symbol>` carries its symbol in the key)."""

    CLOSE_ALL = "close_all"
    PAUSE = "pause"
    RESUME = "resume"
    RESET_HALT = "reset_halt"
    LIFT_BLACKLIST = "lift_blacklist:"


class DropReason(StrEnum):
    FILED_BEFORE_START = "filed_before_start"
    TOO_OLD = "too_old"
    UNREADABLE = "unreadable"


@record
class Request:
    """One pending request. `filed_at` is wall-clock time (timezone-aware)."""

    key: str
    filed_at: datetime
    by: str
    detail: str = ""


@record
class RequestWindow:
    """Which requests a daemon acts on: filed at or after `started_at` (wall clock, taken
    before the daemon held its data directory) and at most `max_age_s` old."""

    started_at: datetime
    max_age_s: float

    def drop_reason(self, request: Request, wall_now: datetime) -> DropReason | None:
        if request.filed_at < self.started_at:
            return DropReason.FILED_BEFORE_START
        if wall_now - request.filed_at > timedelta(seconds=self.max_age_s):
            return DropReason.TOO_OLD
        return None


async def file_request(
    database: Path, kind: str, at: datetime, operator: str = "operator", detail: str = ""
) -> None:
    """Write the request `kind` filed at `at` (wall clock); a newer one of the same kind
    replaces an older one still pending."""
    if not database.is_file():  # noqa: ASYNC240 - one stat before opening, CLI only
        raise OperatorActionRequired(f"no database at {database}: has the daemon run here?")
    repository = await SqliteRepository.open(database)
    try:
        payload = {"requested_at": at.isoformat(), "by": operator, "detail": detail}
        await repository.save_state(NAMESPACE, kind, payload)
    finally:
        await repository.close()


async def pending_requests(repository: Repository) -> list[Request | str]:
    """The pending requests, oldest first; the key of each row that cannot be read (a done
    marker `{}` left by an older version, or a damaged row) comes as a plain string."""
    found: list[Request | str] = []
    for key, payload in (await repository.load_state(NAMESPACE)).items():
        request = _parse(key, payload)
        found.append(request if request is not None else key)
    requests = sorted((r for r in found if isinstance(r, Request)), key=lambda r: r.filed_at)
    return [*(k for k in found if isinstance(k, str)), *requests]


async def take_due(
    repository: Repository, window: RequestWindow | None, wall_now: datetime
) -> list[Request]:
    """The requests to act on now, oldest first. Stale and unreadable rows are deleted here,
    one log line each; with no `window` (no daemon start known) every request is stale."""
    due: list[Request] = []
    for item in await pending_requests(repository):
        if isinstance(item, str):
            await repository.delete_state(NAMESPACE, item)
            log.info("operator_request_dropped", request=item, why=DropReason.UNREADABLE)
            continue
        why = (
            DropReason.FILED_BEFORE_START if window is None else window.drop_reason(item, wall_now)
        )
        if why is None:
            due.append(item)
            continue
        await repository.delete_state(NAMESPACE, item.key)
        log.warning(
            "operator_request_dropped",
            request=item.key,
            requested_at=item.filed_at.isoformat(),
            by=item.by,
            why=why,
            started_at=None if window is None else window.started_at.isoformat(),
        )
    return due


async def done(repository: Repository, request: Request) -> None:
    """Delete a request that has been carried out."""
    await repository.delete_state(NAMESPACE, request.key)
    log.info("operator_request_done", request=request.key, by=request.by)


def _parse(key: str, payload: dict[str, Any]) -> Request | None:
    try:
        filed_at = datetime.fromisoformat(str(payload["requested_at"]))
    except (KeyError, ValueError):
        return None
    if filed_at.tzinfo is None:
        return None
    return Request(
        key, filed_at, str(payload.get("by", "operator")), str(payload.get("detail", ""))
    )
