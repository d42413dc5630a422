"""Operator requests: filed by a CLI process, carried out by the daemon (the one writer)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from quantum_trader.errors import OperatorActionRequired
from quantum_trader.ports import Repository
from quantum_trader.storage.sqlite import SqliteRepository

NAMESPACE = "operator"


async def file_request(database: Path, kind: str, at: datetime, operator: str = "operator") -> None:
    if not database.is_file():  # noqa: ASYNC240 - one stat before opening, CLI only
        raise OperatorActionRequired(f"no database at {database}: has the daemon run here?")
    repository = await SqliteRepository.open(database)
    try:
        await repository.save_state(
            NAMESPACE, kind, {"requested_at": at.isoformat(), "by": operator}
        )
    finally:
        await repository.close()


async def take_requests(repository: Repository) -> dict[str, dict[str, Any]]:
    """The pending requests, each removed as it is taken (an empty payload marks it done)."""
    pending = {k: v for k, v in (await repository.load_state(NAMESPACE)).items() if v}
    for kind in pending:
        await repository.save_state(NAMESPACE, kind, {})
    return pending
