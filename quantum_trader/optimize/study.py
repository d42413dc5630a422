"""The study: Optuna's store, samplers and pruner, and the worker processes that share it.

Storage is Optuna's RDBStorage. Locally it is a SQLite file: every write is one short
transaction (a trial's creation, a parameter, a fold's report) and a trial lasts seconds to
minutes, so K local workers wait on SQLite's lock for milliseconds; the busy timeout (60 s)
makes a writer wait for the lock instead of failing with "database is locked". Trial numbers
stay unique because Optuna numbers a trial inside the transaction that inserts it, and SQLite
lets one writer in at a time. For many machines the same command takes a PostgreSQL URL
(`postgresql://…`, the `cluster` extra installs psycopg): every machine runs `optimize` with
the same `--storage` and `--study` and they fill the same study.

A heartbeat marks each running trial alive; a trial whose worker died (kill -9, a lost
machine) is failed by the next worker once its heartbeat is older than the grace period, and
a failed trial does not count toward `--trials`.

Seeds: each worker's sampler is seeded from (seed, trials already in the study, worker
index): one worker reproduces a study exactly; a resumed study draws new points instead of
repeating the interrupted run's first ones; two workers never draw the same random start-up
points. With several workers the order in which trials reach the store depends on timing, so
a parallel study is not reproducible (each trial still is: its settings give its score).
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Literal

import numpy as np
import optuna
from optuna.storages import RDBStorage
from optuna.trial import FrozenTrial, TrialState

from quantum_trader.backtest import BacktestInterrupted
from quantum_trader.errors import ConfigurationError, UsageError
from quantum_trader.optimize.objective import Evaluation, Objective, Stop
from quantum_trader.record import record
from quantum_trader.settings_base import redact_url
from quantum_trader.stop_signals import on_stop_signals

COUNTED = (TrialState.COMPLETE, TrialState.PRUNED)
SQLITE_BUSY_TIMEOUT_S = 60
HEARTBEAT_S = 30
GRACE_S = 120
SPEC_ATTR = "quantum_trader_spec"
INTERRUPTED_EXIT = 130
PARENT_CHECK_S = 1.0
# A worker's peak RSS with 2 symbols and 2-day blocks (≈ 405 MB, 2026-12-03, docs/OPTIMIZE.md).
WORKER_RSS_MB = 400


@record
class StudyRequest:
    """The study to create or join, and how many finished trials it should reach."""

    storage: str
    name: str
    trials: int
    seed: int | None
    multi: bool
    spec: dict[str, Any]


@record
class WorkerJob:
    request: StudyRequest
    evaluation: Evaluation
    quota: int
    worker: int
    progress_bar: bool


def storage_url(url: str) -> str:
    """`postgresql://` means psycopg 3 (the `cluster` extra), not SQLAlchemy's psycopg2."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def open_storage(url: str) -> RDBStorage:
    """Optuna's RDBStorage for `url`, with the busy timeout for SQLite; UsageError else."""
    url = storage_url(url)
    if url.startswith("sqlite:///"):
        folder = Path(url.removeprefix("sqlite:///")).parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            why = error.strerror or str(error)
            raise UsageError(
                f"--storage: cannot create {folder} for the study store ({why}); choose a "
                "writable place"
            ) from None
        engine: dict[str, Any] = {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S}}
    elif url.startswith("postgresql+psycopg://"):
        engine = {"pool_pre_ping": True}
    else:
        raise ConfigurationError(
            [
                f"--storage {redact_url(url)}: use sqlite:///PATH (one machine) or "
                "postgresql://… (a cluster)"
            ]
        )
    try:
        with warnings.catch_warnings():  # the heartbeat is "experimental" since Optuna 2.9
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return RDBStorage(
                url, engine_kwargs=engine, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S
            )
    except ImportError:
        raise UsageError(
            f"--storage {url.split('://')[0]}: its driver is not installed; for PostgreSQL "
            "install the cluster extra: pip install 'quantum-trader[cluster]'"
        ) from None
    except Exception as error:  # SQLAlchemy's connection and URL errors share no base
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise UsageError(
            f"--storage: cannot open the study store: {redact_url(first, url)}"
        ) from None


def sampler(request: StudyRequest, existing: int, worker: int) -> optuna.samplers.BaseSampler:
    seed = _seed(request.seed, existing, worker)
    if request.multi:
        return optuna.samplers.NSGAIISampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def _seed(seed: int | None, existing: int, worker: int) -> int | None:
    if seed is None:
        return None
    return int(np.random.SeedSequence([seed, existing, worker]).generate_state(1)[0])


def open_study(
    request: StudyRequest, storage: RDBStorage, existing: int = 0, worker: int = 0
) -> optuna.Study:
    """Create the study or join it; UsageError when it was made for another search."""
    directions: list[Literal["minimize", "maximize"]] = (
        ["maximize", "minimize"] if request.multi else ["maximize"]
    )
    try:
        study = optuna.create_study(
            storage=storage,
            study_name=request.name,
            directions=directions,
            sampler=sampler(request, existing, worker),
            pruner=optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=0),
            load_if_exists=True,
        )
    except ValueError as error:  # other directions than the stored study's
        raise UsageError(f"--study {request.name}: {error}") from None
    if [d.name.lower() for d in study.directions] != directions:
        raise UsageError(
            f"--study {request.name}: this study was created with other objectives "
            f"({', '.join(d.name.lower() for d in study.directions)}); use a new --study name"
        )
    stored = study.user_attrs.get(SPEC_ATTR)
    if stored is None:
        study.set_user_attr(SPEC_ATTR, request.spec)
    elif stored != request.spec:
        differing = sorted(k for k in request.spec if stored.get(k) != request.spec[k])
        raise UsageError(
            f"--study {request.name}: this study was created for another search (differs in "
            f"{', '.join(differing)}); use a new --study name or the original command"
        )
    return study


def finished(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=COUNTED))


def stop_at(target: int) -> Callable[[optuna.Study, FrozenTrial], None]:
    """Stop this worker once the study holds `target` finished trials (other machines')."""

    def callback(study: optuna.Study, trial: FrozenTrial) -> None:
        del trial
        if finished(study) >= target:
            study.stop()

    return callback


class _NoTracebackOfAStop(logging.Filter):
    """Optuna logs a failed trial with its traceback; a trial cut short by SIGTERM/SIGINT is
    no error, and the command says so in its own line."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], BacktestInterrupted))


# The logger Optuna's `study.optimize` reports a failed trial on.
OPTUNA_TRIAL_LOGGER = "optuna.study._optimize"


def run_worker(job: WorkerJob, stop: Stop | None = None) -> None:
    """Run up to `job.quota` trials of the study in this process. SIGTERM, SIGINT and SIGHUP
    (stop_signals.py), or a `stop` already requested, stop the running trial at its next
    backtest step (Optuna records it as failed) and raise BacktestInterrupted."""
    stop = stop or Stop()
    handlers = ExitStack()
    handlers.enter_context(on_stop_signals(lambda _signal: stop.request()))
    quiet = _NoTracebackOfAStop()
    logging.getLogger(OPTUNA_TRIAL_LOGGER).addFilter(quiet)
    try:
        storage = open_storage(job.request.storage)
        probe = optuna.load_study(study_name=job.request.name, storage=storage)
        study = open_study(job.request, storage, len(probe.trials), job.worker)
        study.optimize(
            Objective(job.evaluation, stop),
            n_trials=job.quota,
            callbacks=[stop_at(job.request.trials)],
            show_progress_bar=job.progress_bar,
            gc_after_trial=True,
        )
    finally:
        logging.getLogger(OPTUNA_TRIAL_LOGGER).removeFilter(quiet)
        handlers.close()


def worker_process(job: WorkerJob, parent: int) -> None:
    """Entry point of a spawned worker: quiet logs, then `run_worker`; exit 130 when stopped,
    by a signal or by the death of `parent` (the command's process)."""
    from quantum_trader.log import configure_logging

    configure_logging(job.evaluation.base.log.format, "ERROR")
    stop = Stop()
    watch = threading.Thread(
        target=_stop_when_orphaned, args=(parent, stop), name="parent-watch", daemon=True
    )
    watch.start()
    try:
        run_worker(job, stop)
    except BacktestInterrupted:
        sys.exit(INTERRUPTED_EXIT)


def _stop_when_orphaned(parent: int, stop: Stop) -> None:
    """A worker whose command was killed (kill -9) is adopted by another process: it stops at
    its next backtest step instead of running its share of the trials unseen."""
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_S)
    stop.request()


def run_workers(jobs: list[WorkerJob], poll: Callable[[], None]) -> list[int]:
    """Start one spawned process per job, call `poll` about once a second until they end,
    forward a stop signal to them as SIGTERM; return their exit codes."""
    context = multiprocessing.get_context("spawn")
    parent = os.getpid()
    processes = [context.Process(target=worker_process, args=(job, parent)) for job in jobs]
    for process in processes:
        process.start()

    def forward(_signal: signal.Signals) -> None:
        for process in processes:
            if process.is_alive() and process.pid is not None:
                _stop(process.pid)

    with on_stop_signals(forward):
        while any(p.is_alive() for p in processes):
            for process in processes:
                process.join(timeout=1.0 / len(processes))
            poll()
    return [p.exitcode if p.exitcode is not None else 1 for p in processes]


def _stop(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)


def usable_cores() -> int:
    """The cores this process may run on (its affinity where the system has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def cap_workers(asked: int, cores: int) -> tuple[int, str | None]:
    """At most one worker per core, and the line saying so when `asked` was more: a trial is a
    CPU-bound backtest, so more workers only share the cores, each a process of its own."""
    if asked <= cores:
        return asked, None
    return cores, (
        f"optimize: --workers {asked} capped at {cores}, the cores this process may use (a "
        f"trial is a CPU-bound backtest; each worker is a process of ≈ {WORKER_RSS_MB} MB)"
    )


def memory_warning(workers: int, available_bytes: int) -> str | None:
    """A line when `workers` processes of ≈ WORKER_RSS_MB each may not fit in the memory
    available; None when they do. A warning, not a cap: the size grows with the symbols."""
    needed_mb = workers * WORKER_RSS_MB
    available_mb = available_bytes // 1_000_000
    if workers < 2 or needed_mb <= available_mb:
        return None
    return (
        f"optimize: {workers} workers need ≈ {needed_mb} MB ({WORKER_RSS_MB} MB each), "
        f"{available_mb} MB of memory is available now; fewer --workers if the system swaps"
    )


def split(remaining: int, workers: int) -> list[int]:
    """Trials per worker: `remaining` spread as evenly as possible, none empty."""
    count = min(workers, remaining)
    return [remaining // count + (1 if i < remaining % count else 0) for i in range(count)]
