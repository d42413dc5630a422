"""Charts drawn in a chart process: the same files as drawn in process, whatever the process
does (killed, a wrong answer, Ctrl-C), and no process outlives the run that started it."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import pickle
import signal
import subprocess
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
import uvloop
from daemon_harness import eventually, ignores_terminal_signals, niceness, ten_lower_than_ours
from report_builders import TWO, utc
from structlog.testing import capture_logs

from quantum_trader.backtest import (
    DATABASE_FILE,
    BacktestRequest,
    prepare_replay,
    replay_into,
    run_backtest,
)
from quantum_trader.config import MarketSettings, Settings
from quantum_trader.errors import ConfigurationError
from quantum_trader.helper_process import FALLBACK_WARNINGS, helper_command, helper_environment
from quantum_trader.report.build import build_report
from quantum_trader.report.chart_inputs import CHART_NAMES, chart_inputs
from quantum_trader.report.chart_process import ASIDE, ChartProcess, chart_process
from quantum_trader.report.load import RunData, load_run
from quantum_trader.report.model import BacktestReport, RunContext
from quantum_trader.report.publish import send_charts, write_outputs

Run = tuple[BacktestReport, RunData, RunContext]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """A replayed week of two symbols (rule signals), read back as the report reads it."""
    work = tmp_path_factory.mktemp("run")
    settings = Settings(
        data_dir=work / "data", signals={"source": "rules"}, market=MarketSettings(symbols=TWO)
    )
    request = BacktestRequest(utc(2025, 9, 10), utc(2025, 9, 17), out_dir=work)
    settings, replay = prepare_replay(settings, request)

    async def replayed() -> Run:
        context = (await replay_into(settings, replay, work, asyncio.Event())).context
        data = await load_run(work / DATABASE_FILE)
        return build_report(data, context), data, context

    return asyncio.run(replayed())


def files(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes() for p in directory.rglob("*") if p.is_file()
    }


def _on_asyncios_own_loop(coroutine: Coroutine[Any, Any, None]) -> None:
    policy = asyncio.get_event_loop_policy()
    asyncio.set_event_loop_policy(asyncio.DefaultEventLoopPolicy())  # with its child watcher
    try:
        asyncio.run(coroutine)
    finally:
        asyncio.set_event_loop_policy(policy)


# The event loops the chart process's parent may run on: the commands' (uvloop, also the
# tests' since conftest.py) and asyncio's own. Their pipes fail differently (a dead child's:
# RuntimeError on uvloop, OSError on asyncio's).
LOOPS: dict[str, Callable[[Coroutine[Any, Any, None]], None]] = {
    "uvloop": uvloop.run,
    "asyncio": _on_asyncios_own_loop,
}


def written(
    run: Run,
    out: Path,
    aside: Callable[[], Coroutine[Any, Any, ChartProcess | None]],
    loop: str = "asyncio",
) -> dict[str, bytes]:
    """The report's files as write_outputs writes them with the chart process `aside` makes,
    on the event loop named `loop` (LOOPS)."""
    out.mkdir()

    async def write() -> None:
        process = await aside()
        try:
            report, data, context = run
            await write_outputs(report, await send_charts(data, context, process), out, process)
        finally:
            if process is not None:
                await process.close()

    LOOPS[loop](write())
    return files(out)


async def stand_in(script: str) -> asyncio.subprocess.Process:
    """A process run as `ChartProcess.start` runs the real one, on `script`."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        script,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def no_process() -> None:
    return None


def test_the_charts_are_sent_the_reports_own_figures(run: Run) -> None:
    """Sent before the report is built, computed from the same run: its table by symbol and
    its sample stamp."""
    report, data, context = run
    inputs = chart_inputs(data, context)
    assert inputs.by_symbol == report.by_symbol
    assert inputs.by_symbol  # a week of two symbols traded
    assert inputs.stamp == report.sample


@pytest.fixture(scope="module")
def drawn_here(run: Run, tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    return written(run, tmp_path_factory.mktemp("here") / "out", no_process)


@pytest.mark.parametrize("loop", LOOPS)
def test_its_charts_are_the_ones_drawn_in_process(
    run: Run, drawn_here: dict[str, bytes], tmp_path: Path, loop: str
) -> None:
    with capture_logs() as logs:
        aside = written(run, tmp_path / "out", ChartProcess.start, loop)
    assert {f"charts/{name}.png" for name in CHART_NAMES} <= set(aside)
    assert set(ASIDE) == set(CHART_NAMES)  # every one drawn there
    assert aside == drawn_here  # every chart, the page that inlines them and report.json
    assert not [entry for entry in logs if entry["log_level"] == "warning"]


def test_a_chart_process_started_beside_another_checkout_is_this_ones(
    run: Run, drawn_here: dict[str, bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "quantum_trader").mkdir()
    (tmp_path / "quantum_trader" / "__init__.py").write_text("raise ImportError('a decoy')\n")
    monkeypatch.chdir(tmp_path)  # what `python -m` would put first on the child's path
    with capture_logs() as logs:
        assert written(run, tmp_path / "out", ChartProcess.start) == drawn_here
    assert not [entry for entry in logs if entry["log_level"] == "warning"]


STAND_IN = """
import os, sys
{change}
from quantum_trader.report.chart_process import main
main()
"""


@pytest.mark.parametrize(
    "change",
    [
        "def fork(): raise OSError('no fork')",
        "real = os.fork\ndef fork():\n    pid = real()\n    if pid == 0:\n        os._exit(3)\n"
        "    return pid",  # a fork that dies without drawing
    ],
)
def test_a_chart_process_whose_fork_fails_draws_that_chart_itself(
    run: Run, drawn_here: dict[str, bytes], tmp_path: Path, change: str
) -> None:
    async def forkless() -> ChartProcess:  # the real child, its os.fork replaced by `change`
        return ChartProcess(await stand_in(STAND_IN.format(change=f"{change}\nos.fork = fork")))

    with capture_logs() as logs:
        assert written(run, tmp_path / "out", forkless) == drawn_here
    assert not [entry for entry in logs if entry["log_level"] == "warning"]


WITHOUT_THE_LIBRARY = """
import asyncio, pickle, sys
from pathlib import Path
from quantum_trader.report.chart_process import ChartProcess
from quantum_trader.report.publish import send_charts, write_outputs

run = pickle.loads(Path(sys.argv[1]).read_bytes())

async def main():
    process = await ChartProcess.start()
    try:
        report, data, context = run
        charts = await send_charts(data, context, process)
        await write_outputs(report, charts, Path(sys.argv[2]), process)
    finally:
        await process.close()

asyncio.run(main())
print("matplotlib" in sys.modules)
"""


def test_the_backtest_process_never_loads_the_chart_library(
    run: Run, drawn_here: dict[str, bytes], tmp_path: Path
) -> None:
    (tmp_path / "run.pkl").write_bytes(pickle.dumps(run))
    (tmp_path / "out").mkdir()
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            WITHOUT_THE_LIBRARY,
            str(tmp_path / "run.pkl"),
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert done.stdout.strip() == "False"
    assert files(tmp_path / "out") == drawn_here


@pytest.mark.parametrize("loop", LOOPS)
def test_a_killed_chart_process_has_its_charts_drawn_in_process(
    run: Run, drawn_here: dict[str, bytes], tmp_path: Path, loop: str
) -> None:
    async def killed() -> ChartProcess | None:  # the real child, dead before its job is sent
        child = await asyncio.create_subprocess_exec(
            *helper_command("quantum_trader.report.chart_process"),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=helper_environment(),
        )
        os.kill(child.pid, signal.SIGKILL)
        await child.wait()
        return ChartProcess(child)

    with capture_logs() as logs:
        assert written(run, tmp_path / "out", killed, loop) == drawn_here
    warnings = [entry for entry in logs if entry["event"] == "chart_process_failed"]
    assert len(warnings) == 1
    assert "exit code -9" in warnings[0]["error"]


@pytest.mark.parametrize(
    "answer",
    [
        "sys.stdout.buffer.write(b'not a chart')",
        "sys.stdout.buffer.write((9).to_bytes(8, 'big') + b'\\x89PNG\\r\\n\\x1a\\n!')",  # one
        "",  # nothing
        "raise SystemExit('drawing failed')",
    ],
)
def test_a_chart_process_without_its_charts_has_them_drawn_in_process(
    run: Run, drawn_here: dict[str, bytes], tmp_path: Path, answer: str
) -> None:
    async def wrong() -> ChartProcess:  # a stand-in child that reads its job, answers `answer`
        return ChartProcess(await stand_in(f"import sys; sys.stdin.buffer.read(); {answer}"))

    with capture_logs() as logs:
        assert written(run, tmp_path / "out", wrong) == drawn_here
    assert [entry["event"] for entry in logs if entry["log_level"] == "warning"] == [
        "chart_process_failed"
    ]
    assert "chart_process_failed" in FALLBACK_WARNINGS  # shown by the backtest command


def test_a_chart_process_that_never_answers_has_its_charts_drawn_in_process(
    run: Run, drawn_here: dict[str, bytes], tmp_path: Path
) -> None:
    pid = 0

    async def stuck() -> ChartProcess:  # a stand-in child that reads its job, then hangs
        nonlocal pid
        child = await stand_in("import sys, time; sys.stdin.buffer.read(); time.sleep(600)")
        pid = child.pid
        return ChartProcess(child, answer_within_s=0.5)

    with capture_logs() as logs:
        assert written(run, tmp_path / "out", stuck) == drawn_here
    warnings = [entry for entry in logs if entry["log_level"] == "warning"]
    assert [entry["error"] for entry in warnings] == ["no answer within 0.5 s"]
    with pytest.raises(ProcessLookupError):  # ended and reaped, not left hanging
        os.kill(pid, 0)


@pytest.mark.parametrize("loop", LOOPS)
def test_a_chart_process_that_does_not_read_its_job_is_given_up_on(run: Run, loop: str) -> None:
    """A job larger than any pipe, to a process that never reads it (frozen, stopped): the
    hand-over gives up after the wait, the process is ended, the charts are left to the
    command with one warning (it used to wait for good)."""
    _, data, context = run
    job = dataclasses.replace(chart_inputs(data, context), stamp="x" * (4 << 20))
    outcome: list[object] = []

    async def scenario() -> None:
        child = await stand_in("import time; time.sleep(600)")
        process = ChartProcess(child, answer_within_s=0.5)
        await process.send(job)
        outcome.extend([child.pid, await process.answer()])

    with capture_logs() as logs:
        LOOPS[loop](scenario())
    pid, answer = outcome
    assert answer is None
    warnings = [entry for entry in logs if entry["log_level"] == "warning"]
    assert [entry["error"] for entry in warnings] == ["not reading its job within 0.5 s"]
    with pytest.raises(ProcessLookupError):  # ended and reaped
        os.kill(int(str(pid)), 0)


def test_ctrl_c_reaching_the_chart_process_does_not_stop_it(
    run: Run, drawn_here: dict[str, bytes], tmp_path: Path
) -> None:
    async def interrupted() -> ChartProcess | None:
        process = await ChartProcess.start()
        assert process is not None
        # It yields the CPU to the backtest's process, whose run needs it first (set first).
        lower = ten_lower_than_ours()
        eventually(lambda: niceness(process.pid) == lower, 60, "the chart process at nice +10")
        eventually(lambda: ignores_terminal_signals(process.pid), 60, "ignoring SIGINT, SIGHUP")
        os.kill(process.pid, signal.SIGINT)  # a terminal's Ctrl-C reaches the process group
        return process

    with capture_logs() as logs:
        assert written(run, tmp_path / "out", interrupted) == drawn_here
    assert not [entry for entry in logs if entry["log_level"] == "warning"]


@pytest.mark.parametrize("fails", [False, True])
def test_no_chart_process_outlives_the_block_that_started_it(fails: bool) -> None:
    async def block() -> int:
        pid = 0
        try:
            async with chart_process(True) as process:
                assert process is not None
                pid = process.pid
                if fails:
                    raise RuntimeError("the replay failed")
        except RuntimeError:
            pass
        return pid

    pid = asyncio.run(block())
    assert pid > 0
    with pytest.raises(ProcessLookupError):  # ended and reaped
        os.kill(pid, 0)


def children() -> set[int]:
    """This process's children that have not been reaped (Linux: /proc)."""
    mine = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # it ended meanwhile
            continue
        if int(fields[1]) == os.getpid():
            mine.add(int(stat.parent.name))
    return mine


def test_a_refused_backtest_leaves_no_chart_process(tmp_path: Path) -> None:
    """The chart process starts with the command, before the window is checked; a refusal
    ends it unused (and writes nothing)."""
    settings = Settings(data_dir=tmp_path / "data", signals={"source": "rules"})
    nothing_recorded = BacktestRequest(
        utc(2030, 1, 1), utc(2030, 1, 2), out_dir=tmp_path / "out", helper_processes=True
    )
    before = children()
    with pytest.raises(ConfigurationError, match="nothing to replay"):
        asyncio.run(run_backtest(settings, nothing_recorded))
    assert children() <= before  # none new (an earlier test's may have been reaped since)
    assert not (tmp_path / "out").exists()


def test_a_chart_process_only_when_wanted() -> None:
    async def block() -> ChartProcess | None:
        async with chart_process(False) as process:
            return process

    assert asyncio.run(block()) is None


CANNOT_START = """
import asyncio, sys
from structlog.testing import capture_logs
from quantum_trader.report.chart_process import ChartProcess

sys.executable = "/nonexistent/python3"  # an interpreter that is gone
with capture_logs() as logs:
    started = asyncio.run(ChartProcess.start())
print(started is None, [entry["event"] for entry in logs])
"""


def test_a_chart_process_that_cannot_start_leaves_the_charts_to_the_command() -> None:
    done = subprocess.run(
        [sys.executable, "-c", CANNOT_START], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "True ['chart_process_unavailable']"
    assert "chart_process_unavailable" in FALLBACK_WARNINGS
