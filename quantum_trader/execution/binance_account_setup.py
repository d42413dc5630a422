"""Setting up the Binance USD-M account, the account-setup half of the Exchange port
(`CcxtExchange`'s, which inherits it): one-way and single-asset modes checked at start-up,
ISOLATED margin and the leverage set on each symbol (POST /fapi/v1/marginType and
/fapi/v1/leverage: at start-up, when a symbol joins the universe, before each entry), and a
leverage Binance refuses to change on a symbol holding a position read back (GET
/fapi/v1/symbolConfig). Apart from ccxt_exchange.py, which reads the markets and the account,
because these calls change the account's settings. I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from quantum_trader.errors import MarketDataError, OperatorActionRequired
from quantum_trader.execution import binance_wire as wire
from quantum_trader.execution.adapter_part import AdapterPart
from quantum_trader.execution.binance_errors import Operation
from quantum_trader.log import get_logger

log = get_logger("ccxt_exchange")
MARGIN_TYPE_ALREADY_SET = frozenset({-4046})
# Binance refuses to change the leverage of a symbol that holds a position: -4161 (lower it in
# isolated margin), -2028 (lower it: margin insufficient), -2027 (raise it past the bracket).
LEVERAGE_HELD = frozenset({-4161, -2027, -2028})


class AccountSetup(AdapterPart):
    """The account-setup calls of `CcxtExchange`, which sets these attributes and gives
    `_read` and `_market_id` (its markets and retried reads: adapter_part.py)."""

    _id_by_symbol: dict[str, str]
    _leverage: dict[str, int]

    async def set_leverage(self, symbol: str, leverage: int) -> None:
        await self._set_leverage(symbol, leverage, frozenset())

    async def _set_leverage(self, symbol: str, leverage: int, refused: frozenset[int]) -> bool:
        """POST leverage; False when Binance answered one of the `refused` codes."""
        market_id = await self._market_id(symbol, Operation.ACCOUNT)
        params = {"symbol": market_id, "leverage": leverage}
        answer = await self._read(Operation.ACCOUNT, "fapiPrivatePostLeverage", params, refused)
        if answer is None:
            return False
        self._leverage.update(wire.parse_leverages(answer))
        return True

    async def prepare_account(
        self, symbols: Sequence[str], leverage: int, caps: Mapping[str, int] | None = None
    ) -> None:
        """Check one-way and single-asset modes, then set ISOLATED margin and `leverage`
        (at most `caps[symbol]`, the exchange's ceiling for the symbol, when given).

        Raises OperatorActionRequired, naming what to change, when the account is not usable.
        """
        dual = await self._read(Operation.ACCOUNT, "fapiPrivateGetPositionSideDual", {})
        if _flag(dual, "dualSidePosition"):
            raise OperatorActionRequired(
                "the Binance futures account is in hedge mode; switch it to one-way position "
                "mode (Preferences → Position Mode) before starting"
            )
        multi = await self._read(Operation.ACCOUNT, "fapiPrivateGetMultiAssetsMargin", {})
        if _flag(multi, "multiAssetsMargin"):
            raise OperatorActionRequired(
                "the Binance futures account uses multi-assets margin; switch it to "
                "single-asset mode before starting"
            )
        for symbol in symbols:
            await self.prepare_symbol(symbol, min(leverage, (caps or {}).get(symbol, leverage)))
        log.info("exchange_account_prepared", symbols=len(symbols), leverage=leverage)

    async def prepare_symbol(self, symbol: str, leverage: int) -> None:
        """Set ISOLATED margin and `leverage` on one symbol (a symbol joining the universe).

        A symbol holding a position whose leverage Binance refuses to change (`LEVERAGE_HELD`,
        e.g. a restart with a lower `sizing.default_leverage`) keeps the leverage it has,
        read back and logged (`leverage_kept`): the daemon starts and manages the position;
        the next entry on the symbol sets its own leverage."""
        await self._set_isolated(symbol)
        if await self._set_leverage(symbol, leverage, LEVERAGE_HELD):
            return
        market_id = self._id_by_symbol[symbol]
        params = {"symbol": market_id}
        config = await self._read(Operation.ACCOUNT, "fapiPrivateGetSymbolConfig", params)
        self._leverage.update(wire.parse_leverages(config))
        log.warning(
            "leverage_kept",
            symbol=symbol,
            wanted=leverage,
            kept=self._leverage.get(market_id),
            detail="Binance refuses to change the leverage of a symbol holding a position",
        )

    async def _set_isolated(self, symbol: str) -> None:
        market_id = await self._market_id(symbol, Operation.ACCOUNT)
        params = {"symbol": market_id, "marginType": "ISOLATED"}
        try:
            await self._read(
                Operation.ACCOUNT, "fapiPrivatePostMarginType", params, MARGIN_TYPE_ALREADY_SET
            )
        except OperatorActionRequired as error:
            message = f"cannot set ISOLATED margin on {symbol}: {error}"
            raise OperatorActionRequired(message) from error


def _flag(payload: Any, name: str) -> bool:
    value = wire.field(payload, name, name)
    if isinstance(value, bool):
        return value
    if str(value).lower() in {"true", "false"}:
        return str(value).lower() == "true"
    raise MarketDataError(f"{name}: expected true or false, got {value!r}")
