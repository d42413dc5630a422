"""Settings: one pydantic-settings root, a frozen section per component.

Sources, strongest first: keyword arguments (tests), `QT_` environment variables (nested with
`__`), the TOML file (`--config`, default `config/default.toml`). Unknown keys are rejected, in
the file and in the environment. Reading them, and every problem as one line naming the
setting: config_load.py.
"""

from __future__ import annotations

from contextvars import ContextVar
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from quantum_trader.domain import ExchangeMode
from quantum_trader.gates.settings import (
    AnalyticsSettings,
    BalancerSettings,
    GovernorSettings,
    OrchestratorSettings,
    PerformanceSettings,
    RegimeSettings,
    RiskGuardSettings,
)
from quantum_trader.keeper.settings import KeeperSettings
from quantum_trader.market.settings import UniverseSettings
from quantum_trader.monitor.settings import MonitorSettings
from quantum_trader.ops.settings import NotifySettings, OperatorSettings, ServerSettings
from quantum_trader.settings_base import (
    DAY_S,
    MAX_USDT,
    YEAR_S,
    CommaList,
    Section,
    at_least,
)
from quantum_trader.signals.settings import EnsembleSettings, SignalsSettings
from quantum_trader.sizing.settings import CostSettings, SizingSettings

ENV_PREFIX = "QT_"
YEAR_MS = YEAR_S * 1000
# Beyond twice the monitor's tick, how long an operator request may wait: the command's own
# start after it stamped the request (quick_check of a large database) and a tick running late.
OPERATOR_REQUEST_SLACK_S = 10.0
# Simulated seconds per real second; far beyond it the simulated clock leaves the calendar.
MAX_REPLAY_SPEED = 1_000_000.0
DEFAULT_CONFIG_PATH = Path("config/default.toml")
# Beyond the receive window, before an order Binance does not know counts as never accepted:
# the request's travel and the clock offset left after the keeper's time sync.
RECV_WINDOW_MARGIN_S = 5.0
DEFAULT_SYMBOLS = (
    "BTC/USDT:USDT",
    "ETH/USDT:USDT",
    "SOL/USDT:USDT",
    "BNB/USDT:USDT",
    "XRP/USDT:USDT",
    "DOGE/USDT:USDT",
    "BCH/USDT:USDT",
    "INJ/USDT:USDT",
)


class ExchangeSettings(Section):
    mode: ExchangeMode = ExchangeMode.PAPER
    api_key: SecretStr | None = None
    api_secret: SecretStr | None = None
    i_understand_live_risk: bool = False
    request_timeout_s: float = Field(10.0, gt=0, le=300)
    paper_initial_balance_usdt: float = Field(10_000.0, gt=0, le=MAX_USDT)
    paper_order_latency_s: float = Field(0.0, ge=0, le=10)
    # A Binance-compatible stand-in or proxy: base addresses without /fapi or /ws ("" = Binance).
    rest_url: str = ""
    ws_url: str = ""
    recv_window_ms: int = Field(5000, ge=1000, le=60_000)
    stream_silence_s: float = Field(10.0, gt=0, le=YEAR_S)
    stream_backoff_max_s: float = Field(60.0, gt=0, le=YEAR_S)
    listen_key_keepalive_s: float = Field(1800.0, gt=0, le=3300)
    # Mark prices and the account from Binance's websocket streams, REST only to check them
    # (off: REST on every monitor tick, ≈ 10 × the request weight).
    use_streams: bool = True

    @field_validator("rest_url", "ws_url")
    @classmethod
    def _check_base_url(cls, value: str, info: ValidationInfo) -> str:
        schemes = ("ws://", "wss://") if info.field_name == "ws_url" else ("http://", "https://")
        if value and (not value.startswith(schemes) or "?" in value or "#" in value):
            raise ValueError(
                f"must be empty (Binance) or a base address like {schemes[0]}127.0.0.1:8080 "
                f"({' or '.join(schemes)}, no query string)"
            )
        if "@" in value.split("://", 1)[-1].split("/", 1)[0]:
            # Every request's error and retry line names the address: a password would be
            # printed with it.
            raise ValueError(
                "must not carry a user or password (user:password@): the address is printed "
                "in errors and logs; give the proxy's address without them"
            )
        return value.rstrip("/")

    @model_validator(mode="after")
    def _check_mode(self) -> ExchangeSettings:
        if self.mode is ExchangeMode.LIVE and not self.i_understand_live_risk:
            raise ValueError(
                "mode=live trades real money; set exchange.i_understand_live_risk = true "
                "(QT_EXCHANGE__I_UNDERSTAND_LIVE_RISK=true) to confirm"
            )
        if self.mode is not ExchangeMode.PAPER and (
            _blank(self.api_key) or _blank(self.api_secret)
        ):
            raise ValueError(
                f"mode={self.mode} needs exchange.api_key and exchange.api_secret "
                "(QT_EXCHANGE__API_KEY, QT_EXCHANGE__API_SECRET)"
            )
        return self


def _a_directory(value: object, unset_means: str) -> object:
    """`value` unless it is an empty text, which a path would read as the working directory."""
    if isinstance(value, str) and not value.strip():
        raise ValueError(
            f"is empty, which would mean the working directory; unset it for {unset_means}, "
            "or name a directory"
        )
    return value


def _blank(secret: SecretStr | None) -> bool:
    """Unset, or set to nothing (`QT_EXCHANGE__API_KEY=` left in a template)."""
    return secret is None or not secret.get_secret_value().strip()


class MarketSettings(Section):
    """`replay_dir` None: `data_dir/market` when it holds candles, else the bundled sample
    (market.source). `symbols` is the universe when `universe.rule` is fixed."""

    source: Literal["replay", "exchange"] = "replay"
    symbols: CommaList[str] = DEFAULT_SYMBOLS
    timeframe: Literal["1m", "5m", "15m", "1h"] = "5m"
    replay_speed: float = Field(1.0, gt=0, le=MAX_REPLAY_SPEED)
    replay_dir: Path | None = None
    replay_start: datetime | None = None
    history_bars: int = Field(300, ge=50, le=100_000)
    universe: UniverseSettings = UniverseSettings()

    @field_validator("replay_dir", mode="before")
    @classmethod
    def _dir_not_empty(cls, value: object) -> object:
        """An empty value would be the working directory: refused, as for data_dir."""
        return _a_directory(value, "data_dir/market or the bundled sample")

    @field_validator("replay_start")
    @classmethod
    def _in_utc(cls, value: datetime | None) -> datetime | None:
        """An instant given without a time zone is UTC, as every time here is."""
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    @field_validator("symbols")
    @classmethod
    def _check_symbols(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("at least one symbol is required")
        bad = [s for s in value if "/" not in s or ":" not in s]
        if bad:
            raise ValueError(
                f"symbols must be ccxt perpetual symbols like BTC/USDT:USDT, got {bad}"
            )
        if len(set(value)) != len(value):
            raise ValueError("symbols must not repeat")
        return value


class ExecutorSettings(Section):
    interval_s: float = Field(30.0, gt=0, le=DAY_S)
    min_confidence: float = Field(0.20, ge=0, le=1)
    shutdown_grace_s: float = Field(10.0, gt=0, le=DAY_S)
    heartbeat_interval_s: float = Field(60.0, gt=0, le=DAY_S)
    # False runs the filter and the approval chain every cycle (cycle_inputs.py): the same
    # trades, each cycle's verdicts in its own words (a skipped cycle stands for the words of
    # the cycle it names, the balancer's figures included).
    skip_unchanged_cycles: bool = True


class BacktestSettings(Section):
    """A backtest has no operator. `operator_reset_after` (a duration: seconds, `HH:MM:SS` or
    ISO 8601 like `P1D`, `PT12H`) simulates one resetting a halt only an operator can end (the
    emergency shutdown) once it has lasted that long; None (default) never resets.
    `skip_quiet_steps`: repeat, instead of running, a step that would leave the account as
    it is, and spare a running step's keeper tick or cycle where they would (replay_quiet.py);
    the same results either way."""

    operator_reset_after: timedelta | None = None
    skip_quiet_steps: bool = True

    @field_validator("operator_reset_after", mode="before")
    @classmethod
    def _seconds(cls, value: object) -> object:
        """Read a bare number given as text (an environment variable) as seconds."""
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                return value
        return value

    @field_validator("operator_reset_after")
    @classmethod
    def _positive(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value <= timedelta(0):
            raise ValueError("must be a positive duration, e.g. 86400 or P1D")
        return value


class LogSettings(Section):
    """`format` None: JSON off a terminal, console on one. A warning that repeats (a loop
    overrun, a failing step) is logged once, then as one line per `repeat_summary_interval_s`
    with the count."""

    format: Literal["json", "console"] | None = None
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    repeat_summary_interval_s: float = Field(60.0, gt=0, le=DAY_S)


class HealthSettings(Section):
    latency_good_ms: float = Field(500.0, gt=0, le=YEAR_MS)
    latency_acceptable_ms: Annotated[
        float, Field(gt=0, le=YEAR_MS), at_least("latency_good_ms")
    ] = 1000.0
    max_error_rate: float = Field(0.05, ge=0, le=1)
    max_cpu_pct: float = Field(80.0, gt=0, le=100)
    max_memory_pct: float = Field(90.0, gt=0, le=100)
    critical_checks_to_shutdown: int = Field(3, ge=1)


# The TOML file `load_settings` (config_load.py) reads, for `Settings` to add as a source.
toml_path: ContextVar[Path | None] = ContextVar("toml_path", default=None)


class Settings(BaseSettings):
    """The whole configuration. Tests construct it directly: `Settings(executor=...)`."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        case_sensitive=False,
    )

    data_dir: Path = Path("data")
    exchange: ExchangeSettings = ExchangeSettings()
    market: MarketSettings = MarketSettings()
    executor: ExecutorSettings = ExecutorSettings()
    monitor: MonitorSettings = MonitorSettings()
    signals: SignalsSettings = SignalsSettings()
    ensemble: EnsembleSettings = EnsembleSettings()
    sizing: SizingSettings = SizingSettings()
    costs: CostSettings = CostSettings()
    risk: RiskGuardSettings = RiskGuardSettings()
    orchestrator: OrchestratorSettings = OrchestratorSettings()
    balancer: BalancerSettings = BalancerSettings()
    governor: GovernorSettings = GovernorSettings()
    regime: RegimeSettings = RegimeSettings()
    performance: PerformanceSettings = PerformanceSettings()
    keeper: KeeperSettings = KeeperSettings()
    analytics: AnalyticsSettings = AnalyticsSettings()
    health: HealthSettings = HealthSettings()
    backtest: BacktestSettings = BacktestSettings()
    log: LogSettings = LogSettings()
    server: ServerSettings = ServerSettings()
    notify: NotifySettings = NotifySettings()
    operator: OperatorSettings = OperatorSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        path = toml_path.get()
        if path is None:
            return (init_settings, env_settings)
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls, path))

    @field_validator("data_dir", mode="before")
    @classmethod
    def _not_empty(cls, value: object) -> object:
        """An empty value (`QT_DATA_DIR=`) would be the working directory: refused."""
        return _a_directory(value, "./data")

    @model_validator(mode="after")
    def _check_sections_agree(self) -> Settings:
        """Rules between sections: the sizer must not build orders the risk guard refuses; the
        keeper must not give an order up while Binance may still execute it."""
        problems = [
            f"sizing.{mine}: must be at most risk.{theirs} ({limit}), or the risk guard "
            f"refuses what the sizer builds; got {value}"
            for mine, theirs, value, limit in (
                ("max_leverage", "max_leverage", self.sizing.max_leverage, self.risk.max_leverage),
                (
                    "max_risk_fraction",
                    "max_risk_per_trade",
                    self.sizing.max_risk_fraction,
                    self.risk.max_risk_per_trade,
                ),
                (
                    "max_margin_fraction",
                    "max_margin_per_trade",
                    self.sizing.max_margin_fraction,
                    self.risk.max_margin_per_trade,
                ),
            )
            if value > limit
        ]
        grace, window_s = self.keeper.unknown_order_final_s, self.exchange.recv_window_ms / 1000
        if grace < window_s + RECV_WINDOW_MARGIN_S:
            problems.append(
                f"keeper.unknown_order_final_s: must be at least exchange.recv_window_ms in "
                f"seconds plus {RECV_WINDOW_MARGIN_S:g} ({window_s + RECV_WINDOW_MARGIN_S:g}): "
                f"Binance may still execute a delayed order that long after it was sent, and "
                f"the keeper would take it for never accepted and enter again; got {grace:g}"
            )
        problems.extend(self._operator_request_problems())
        if problems:
            raise ValueError("\n".join(problems))
        return self

    def _operator_request_problems(self) -> list[str]:
        """A request older than `operator.request_max_age_s` is dropped as too old: it must
        outlive two monitor ticks (real seconds: paper mode ticks on the replay's clock) and
        the filing command's start, or every request is dropped while the command said it
        was filed."""
        max_age, interval = self.operator.request_max_age_s, self.monitor.interval_s
        tick_s = interval
        tick = f"monitor.interval_s ({interval:g} s)"
        speed = self.market.replay_speed
        if self.exchange.mode is ExchangeMode.PAPER and speed != 1:
            tick_s = interval / speed
            tick = (
                f"monitor.interval_s ({interval:g} s of the replay's clock, {tick_s:g} s of "
                f"real time at market.replay_speed {speed:g})"
            )
        needed = 2 * tick_s + OPERATOR_REQUEST_SLACK_S
        if max_age >= needed:
            return []
        return [
            f"operator.request_max_age_s: must be at least twice {tick} plus "
            f"{OPERATOR_REQUEST_SLACK_S:g} s ({needed:g}), or the daemon drops every operator "
            f"request as too old before a monitor tick carries it out; got {max_age:g}"
        ]

    def redacted(self) -> dict[str, Any]:
        """The effective settings as plain data, secrets replaced by '**********'."""
        return self.model_dump(mode="json")
