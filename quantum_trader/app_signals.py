"""The signal source the composition root wires in, and what a run must say about it.

The ensemble when enough trained models load (or when asked for), else the rule agent; its
health for the governor; and the warnings of a run whose models learned from its own window
or never saw some of its symbols.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from quantum_trader.config import Settings
from quantum_trader.cycle import HealthFn
from quantum_trader.errors import ConfigurationError
from quantum_trader.log import get_logger
from quantum_trader.market.replay import FundingSeries
from quantum_trader.market.setup import open_store
from quantum_trader.ports import SignalSource
from quantum_trader.signals.model_set import models_dir_in
from quantum_trader.signals.rules import RuleAgent

if TYPE_CHECKING:
    from quantum_trader.market.live_universe import UniverseChange
    from quantum_trader.signals.ensemble import Ensemble

log = get_logger("app")


def choose_signal_source(
    settings: Settings,
    funding: Mapping[str, FundingSeries] | None = None,
    said: list[str] | None = None,
) -> SignalSource:
    """The ensemble when enough trained models load (or when asked for), else the rule agent.

    `funding` is the funding history the ensemble's funding feature reads, per symbol; None
    loads the recorded funding of `settings.market.symbols` from the candle store. When
    trained models are there but not used, one line says why in `said` (a backtest's report
    shows it: its log shows warnings of missing inputs only).
    """
    wanted = settings.signals.source
    if wanted == "rules":
        return RuleAgent(settings.signals)
    not_used: list[str] = []
    ensemble = _load_ensemble(settings, funding, not_used)
    if ensemble is not None:
        return ensemble
    if said is not None and not_used:
        said.append(f"trained models not used: {'; '.join(not_used)}; the rule agent trades")
    if wanted == "ensemble":
        raise ConfigurationError(
            [
                f"signals.source: 'ensemble' needs at least {settings.ensemble.min_models} "
                f"loadable trained models in {models_dir_in(settings.data_dir)}"
                " (run `quantum-trader train` first)"
            ]
        )
    return RuleAgent(settings.signals)


def _load_ensemble(
    settings: Settings, funding: Mapping[str, FundingSeries] | None, not_used: list[str]
) -> SignalSource | None:
    """The ensemble of the models that load, or None when fewer than `min_models` do (and
    then why in `not_used`, when a set was there)."""
    models_dir = models_dir_in(settings.data_dir)
    if not models_dir.exists():  # never trained; a file there is refused (current_set)
        return None
    from quantum_trader.signals.ensemble import recorded_funding  # heavy
    from quantum_trader.signals.loading import load_ensemble

    ensemble = load_ensemble(models_dir, settings, not_used=not_used)
    if ensemble is None:
        return None
    if len(ensemble.model_names) < settings.ensemble.min_models:
        not_used.append(
            f"{_tried(ensemble, settings)} in {models_dir} loaded "
            f"({', '.join(ensemble.model_names)}), fewer than ensemble.min_models "
            f"({settings.ensemble.min_models}); see model_load_failed"
        )
        log.warning(
            "ensemble_unavailable",
            loaded=list(ensemble.model_names),
            min_models=settings.ensemble.min_models,
            fallback="rules" if settings.signals.source is None else "none",
        )
        return None
    if funding is None:
        funding = recorded_funding(open_store(settings), settings.market.symbols)
    ensemble.set_funding(funding)
    log.info("ensemble_loaded", models=list(ensemble.model_names), models_dir=str(models_dir))
    return ensemble


def _tried(ensemble: Ensemble, settings: Settings) -> str:
    """'N of the M models' the set lists and the settings take (not the settings' count:
    a set of two models under the default four is not two models short)."""
    taken = [name for name in ensemble.listed if name in settings.ensemble.models]
    tried = f"{len(ensemble.model_names)} of the {len(taken)} models"
    if len(taken) < len(ensemble.listed):
        tried += f" ensemble.models takes of the {len(ensemble.listed)}"
    return tried


def source_health(source: SignalSource) -> HealthFn:
    """The signal source's health for the governor (the ensemble reports stale models)."""
    report = getattr(source, "health", None)
    if not callable(report):
        return lambda now: "HEALTHY"
    return lambda now: str(report(now)[0])


def said_in_sample(
    settings: Settings, source: SignalSource, window: tuple[datetime, datetime]
) -> None:
    """Warn (`replay_in_sample`) when the paper replay over `window` is traded by models that
    learned from part of it: the run goes on, but its results are in-sample."""
    if isinstance(source, RuleAgent):
        return
    from quantum_trader.report.provenance import in_sample_replay  # only with trained models
    from quantum_trader.signals.ensemble import Ensemble

    if isinstance(source, Ensemble):
        warning = in_sample_replay(source.metadata, models_dir_in(settings.data_dir), window)
        if warning is not None:
            log.warning("replay_in_sample", detail=warning)


def said_not_trained_on(
    settings: Settings, source: SignalSource, symbols: Sequence[str]
) -> list[str]:
    """Warn (`symbols_not_trained_on`) when the ensemble trades symbols its models did not
    learn from; return the caveat line (none otherwise). Not refused: a user may try how the
    models transfer, but the run must say it."""
    if isinstance(source, RuleAgent):
        return []
    from quantum_trader.report.provenance import TRAIN_ON_THEM, not_trained_on, not_trained_on_line
    from quantum_trader.signals.ensemble import Ensemble

    if not isinstance(source, Ensemble):
        return []
    untrained, trained = not_trained_on(source.metadata, symbols)
    if not untrained:
        return []
    line = not_trained_on_line(untrained, trained, models_dir_in(settings.data_dir))
    log.warning(
        "symbols_not_trained_on",
        symbols=list(untrained),
        trained_on=list(trained),
        hint=TRAIN_ON_THEM,
        detail=line,
    )
    return [line]


def saying_not_trained_on(
    settings: Settings, source: SignalSource
) -> Callable[[UniverseChange], None]:
    """A universe listener saying `symbols_not_trained_on` for joining symbols the models never
    saw: a testnet/live universe is re-resolved while the daemon runs, after the start's check."""

    def joined(change: UniverseChange) -> None:
        if change.added:
            said_not_trained_on(settings, source, change.added)

    return joined
