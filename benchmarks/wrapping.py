"""Timing wraps for the benchmarks that time our own code where it runs."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any, TypeVar

_T = TypeVar("_T")


def around(owner: Any, name: str, begin: Callable[[], _T], end: Callable[[_T], None]) -> None:
    """Replace `owner.name` by the same callable (a coroutine function stays one) that calls
    `begin()` before each call and `end` with what it returned after the call, however the
    call ends."""
    method: Callable[..., Any] = getattr(owner, name)
    if asyncio.iscoroutinefunction(method):

        @functools.wraps(method)
        async def awaited(*args: Any, **kwargs: Any) -> Any:
            begun = begin()
            try:
                return await method(*args, **kwargs)
            finally:
                end(begun)

        setattr(owner, name, awaited)
        return

    @functools.wraps(method)
    def called(*args: Any, **kwargs: Any) -> Any:
        begun = begin()
        try:
            return method(*args, **kwargs)
        finally:
            end(begun)

    setattr(owner, name, called)
