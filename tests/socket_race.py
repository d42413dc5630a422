"""An aiohttp connector that refuses connections as the event loop does in its socket race."""

from __future__ import annotations

from typing import Any

import aiohttp

# What uvloop's (and asyncio's) sock_connect raises when a closed socket's fd number is still
# held by its old transport (MagicStack/uvloop#653), reached through aiohttp unwrapped.
FD_RACE = "File descriptor 75 is used by transport <TCPTransport closed=False reading=True>"


class RacingConnector(aiohttp.TCPConnector):
    """Refuses its first `refusals` connections with RuntimeError(`message`), before anything
    is sent; connects normally after."""

    def __init__(self, refusals: int, message: str = FD_RACE) -> None:
        super().__init__()
        self.refusals, self.message = refusals, message

    async def connect(self, *args: Any, **kwargs: Any) -> Any:  # request, traces, timeout
        if self.refusals > 0:
            self.refusals -= 1
            raise RuntimeError(self.message)
        return await super().connect(*args, **kwargs)
