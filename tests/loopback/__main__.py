"""Run the stand-in on its own, in wall time, for a daemon in another process:

    PYTHONPATH=tests python -m loopback --port 9000 --seed 1 --symbols 8

prints one JSON line with its addresses ({"rest_url": ..., "ws_url": ...}) and serves until
interrupted. `--seed` moves mark prices along that seed's path (without it they stay put).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal

from quantum_trader.clock import LiveClock

from .markets import MarkPath, generated_markets
from .server import LoopbackBinance
from .state import LoopbackState


async def serve(port: int, seed: int | None, symbols: int) -> None:
    state = LoopbackState(markets={m.market_id: m for m in generated_markets(symbols)})
    state.mark_path = MarkPath(seed) if seed is not None else None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with LoopbackBinance(state, clock=LiveClock(), port=port) as server:
        print(json.dumps({"rest_url": server.base_url, "ws_url": server.ws_url}), flush=True)
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m loopback", description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="0: any free port")
    parser.add_argument("--seed", type=int, default=None, help="move mark prices on this path")
    parser.add_argument("--symbols", type=int, default=8, help="markets (8 real + generated)")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.port, args.seed, args.symbols))


if __name__ == "__main__":
    main()
