"""The study store: URLs, one clear line for a bad one, and a study made for another search."""

from __future__ import annotations

from pathlib import Path

import pytest

from quantum_trader.errors import ConfigurationError, UsageError
from quantum_trader.optimize.study import (
    StudyRequest,
    _seed,
    open_storage,
    open_study,
    split,
    storage_url,
)
from quantum_trader.settings_base import redact_url


def request(tmp_path: Path, spec: dict[str, object], multi: bool = False) -> StudyRequest:
    return StudyRequest(f"sqlite:///{tmp_path / 'studies.db'}", "s", 4, 1, multi, spec)


def test_trials_are_shared_evenly_between_workers_and_none_is_left_empty() -> None:
    assert split(10, 2) == [5, 5]
    assert split(5, 2) == [3, 2]
    assert split(1, 4) == [1]


def test_workers_and_resumed_runs_draw_from_different_seeds_and_one_seed_is_repeatable() -> None:
    seeds = {_seed(7, existing, worker) for existing in (0, 3) for worker in (0, 1)}
    assert len(seeds) == 4
    assert _seed(7, 0, 0) == _seed(7, 0, 0)
    assert _seed(None, 0, 0) is None


def test_a_plain_postgresql_url_means_psycopg_3() -> None:
    assert storage_url("postgresql://u:p@db/qt") == "postgresql+psycopg://u:p@db/qt"
    assert storage_url("sqlite:///x.db") == "sqlite:///x.db"


def test_an_unsupported_or_unreachable_store_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="use sqlite:///PATH"):
        open_storage("mysql://localhost/qt")
    with pytest.raises(UsageError, match="--storage: cannot open the study store"):
        open_storage("postgresql://nobody@127.0.0.1:1/qt")
    (tmp_path / "a-file").write_text("")
    with pytest.raises(UsageError, match=r"--storage: cannot create .*a-file for the study"):
        open_storage(f"sqlite:///{tmp_path / 'a-file' / 'studies.db'}")


def test_joining_a_study_made_for_another_search_is_refused_naming_what_differs(
    tmp_path: Path,
) -> None:
    storage = open_storage(request(tmp_path, {}).storage)
    open_study(request(tmp_path, {"space": [1], "score": "sharpe"}), storage)
    again = open_study(request(tmp_path, {"space": [1], "score": "sharpe"}), storage)
    assert again.study_name == "s"
    with pytest.raises(UsageError, match=r"another search \(differs in space\)"):
        open_study(request(tmp_path, {"space": [2], "score": "sharpe"}), storage)
    with pytest.raises(UsageError, match="--study s"):
        open_study(request(tmp_path, {"space": [1], "score": "sharpe"}, multi=True), storage)


def test_a_storage_password_is_never_in_a_message() -> None:
    with pytest.raises(ConfigurationError) as caught:
        open_storage("mysql://qt:s3cret@db/qt")
    assert "s3cret" not in str(caught.value)
    with pytest.raises(UsageError) as unreachable:
        open_storage("postgresql://qt:s3cret@127.0.0.1:1/qt")
    assert "s3cret" not in str(unreachable.value)
    assert redact_url("postgresql://qt:s3cret@db/qt") == "postgresql://qt:***@db/qt"
