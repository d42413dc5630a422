"""What a kept paper account (`data_dir/paper_exchange.json`) says about the settings a
`run` starts with: recorded data without a symbol it holds, or symbols that leave one out, are
refused (exit 2) naming the setting; a starting balance it did not begin with is said once (the
setting makes a fresh account only).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path

from quantum_trader.config import Settings
from quantum_trader.domain import MarketRules
from quantum_trader.errors import ConfigurationError
from quantum_trader.execution.paper import PaperExchange
from quantum_trader.execution.paper_state import load_state
from quantum_trader.log import get_logger
from quantum_trader.market.source import MarketData

log = get_logger("app")


def refuse_symbols_left_out(
    settings: Settings, state_path: Path, rules: Mapping[str, MarketRules]
) -> None:
    """ConfigurationError when the symbols this run trades leave out a symbol the account
    holds a position or a resting stop on (was: the paper exchange's own refusal, exit 1,
    saying the prices were not recorded, though only the setting had changed). A damaged
    account is refused by `load_state`, as before."""
    state = load_state(state_path)
    if state is None:
        return
    held = state.symbols_held()
    left_out = sorted(held - set(rules))
    if left_out:
        raise ConfigurationError(
            [
                f"market.symbols: leaves out {', '.join(left_out)}, which the paper account "
                f"{state_path} holds positions or stops on: list them again (market.symbols, "
                "QT_MARKET__SYMBOLS) so that the daemon manages them to their exit, or stop it "
                "and move paper_exchange.json aside together with quantum_trader.db (and its "
                "-wal and -shm files) to start afresh"
            ]
        )


def refuse_held_symbols_unrecorded(settings: Settings, state_path: Path, data: MarketData) -> None:
    """ConfigurationError when the recorded data (market.replay_dir, say, changed) has no
    candles of a symbol the account holds a position or a resting stop on: the daemon could
    not price or manage it (was: `unknown symbol` with a fixed list, not saying the account
    holds it; with the universe rule, `market.symbols: leaves out`, whose advice then failed)."""
    state = load_state(state_path)
    if state is None:
        return
    timeframe = settings.market.timeframe
    store = data.store()
    missing = sorted(
        s for s in state.symbols_held() if not store.candle_path(s, timeframe).is_file()
    )
    if not missing:
        return
    symbols = ", ".join(missing)
    raise ConfigurationError(
        [
            f"{data.origin}: {data.directory} has no {timeframe} candles of {symbols}, which the "
            f"paper account {state_path} holds positions or stops on: point market.replay_dir "
            "(QT_MARKET__REPLAY_DIR) back at the data they were traded on, or add their "
            f"candles there (quantum-trader download-data --symbols {','.join(missing)} "
            f"--timeframe {timeframe}, or import-data), so that the daemon manages them to "
            "their exit; or stop it and move paper_exchange.json aside together with "
            "quantum_trader.db (and its -wal and -shm files) to start afresh"
        ]
    )


def said_kept_balance(settings: Settings, exchange: PaperExchange, state_path: Path) -> None:
    """One warning when a kept paper account began with another balance than the setting,
    which makes a fresh account only (a changed setting was ignored without a word)."""
    totals = exchange.totals
    began = totals.wallet_usdt - totals.realized_pnl_usdt + totals.fees_usdt + totals.funding_usdt
    wanted = Decimal(repr(settings.exchange.paper_initial_balance_usdt))
    if began == wanted:
        return
    began_text, wanted_text = (format(x.normalize(), "f") for x in (began, wanted))
    log.warning(
        "paper_initial_balance_not_applied",
        setting=wanted_text,
        account_started_with=began_text,
        hint=(
            f"exchange.paper_initial_balance_usdt ({wanted_text}) makes a fresh paper account "
            f"only; {state_path} was started with {began_text} USDT and is kept: to start "
            "afresh with the new balance, stop the daemon and move paper_exchange.json aside "
            "together with quantum_trader.db (and its -wal and -shm files)"
        ),
    )
