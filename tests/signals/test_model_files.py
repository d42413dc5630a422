"""Damaged but re-signed model files: refused by name, and the process that loads them lives.

Each damaged file is first given to the raw library in a throw-away process (the witness) to
show what it does without our checks — a crash or an exception — then to the daemon's loading
path in another process, which must exit normally, name the model and load the others.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from ml_fixtures import (  # noqa: F401 (trained_fixture is the fixture `trained`)
    copy_data_dir,
    trained_fixture,
)

from quantum_trader.signals.model_set import MANIFEST_FILE, current_set, sha256_hex
from quantum_trader.signals.models.model_files import probe_result
from quantum_trader.signals.training import TrainingResult

HERE = Path(__file__).resolve().parent
Trained = tuple[Path, TrainingResult]

LOAD = """
import json, sys
from pathlib import Path
from structlog.testing import capture_logs
from ml_fixtures import TINY, settings_for
from quantum_trader.signals.loading import load_ensemble
trees = TINY.model_copy(update={"models": ("xgboost", "lightgbm"), "min_models": 1})
for name in sys.argv[1:]:
    data_dir = Path(name)
    with capture_logs() as logs:
        ensemble = load_ensemble(data_dir / "models", settings_for(data_dir, ensemble=trees))
    failed = {e["model"]: e["reason"] for e in logs if e["event"] == "model_load_failed"}
    print(json.dumps({"loaded": list(ensemble.model_names), "failed": failed}), flush=True)
"""

RAW = {
    "xgboost": "import xgboost as x, numpy as np; b = x.Booster(); "
    "b.load_model(bytearray(open(sys.argv[1], 'rb').read())); "
    "print(b.inplace_predict(np.zeros((1, 45))))",
    "lightgbm": "import lightgbm as l, numpy as np; "
    "b = l.Booster(model_str=open(sys.argv[1], encoding='utf-8').read()); "
    "print(b.predict(np.zeros((1, 45))))",
}


def run(code: str, *arguments: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "PYTHONPATH": str(HERE)}
    return subprocess.run(
        [sys.executable, "-c", code, *arguments],
        capture_output=True,
        text=True,
        timeout=120,
        env=environment,
        check=False,
    )


def first_field(text: str, field: str, change: Callable[[str], str]) -> str:
    start = text.index(f"\n{field}=") + len(field) + 2
    end = text.index("\n", start)
    return text[:start] + change(text[start:end]) + text[end:]


def flip_byte(payload: bytes) -> bytes:
    """One byte made non-ASCII: the file is no longer UTF-8 text."""
    return payload[:300] + bytes([payload[300] ^ 0x80]) + payload[301:]


def xgboost_child_out_of_range(payload: bytes) -> bytes:
    return payload.replace(b'"left_children":[', b'"left_children":[9999', 1)


def lightgbm_child_out_of_range(payload: bytes) -> bytes:
    text = payload.decode()
    return first_field(text, "left_child", lambda v: "99" + v).encode()


def lightgbm_child_same_size(payload: bytes) -> bytes:
    """A child index changed digit for digit: every declared size still holds."""
    text = payload.decode()
    return first_field(text, "left_child", lambda v: "9" + v[1:]).encode()


def resign(data_dir: Path, model: str, damage: Callable[[bytes], bytes]) -> Path:
    directory = current_set(data_dir / "models")
    assert directory is not None
    manifest_path = directory / MANIFEST_FILE
    manifest = json.loads(manifest_path.read_text())
    entry = next(m for m in manifest["models"] if m["name"] == model)
    path: Path = directory / str(entry["file"])
    payload = damage(path.read_bytes())
    path.write_bytes(payload)
    entry["sha256"], entry["size_bytes"] = sha256_hex(payload), len(payload)
    manifest_path.write_text(json.dumps(manifest))
    return path


DAMAGES: list[tuple[str, Callable[[bytes], bytes], bool]] = [
    ("xgboost", flip_byte, False),  # raw: UnicodeDecodeError
    ("xgboost", xgboost_child_out_of_range, True),  # raw: SIGSEGV
    ("lightgbm", lightgbm_child_out_of_range, True),  # raw: abort
    ("lightgbm", flip_byte, False),
    ("lightgbm", lightgbm_child_same_size, False),  # raw: silently different predictions
]


@pytest.mark.slow
def test_damaged_resigned_tree_models_are_refused_by_name_and_the_process_lives(
    trained: Trained, tmp_path: Path
) -> None:
    data_dirs = []
    for index, (model, damage, raw_crashes) in enumerate(DAMAGES):
        data_dir = copy_data_dir(trained[0], tmp_path / str(index))
        path = resign(data_dir, model, damage)
        if raw_crashes:
            witness = run(f"import sys; {RAW[model]}", str(path))
            assert witness.returncode < 0, witness  # what our checks stand between
        data_dirs.append(str(data_dir))
    loading = run(LOAD, *data_dirs)  # one process loads every damaged set in turn
    assert loading.returncode == 0, loading.stderr
    results = [json.loads(line) for line in loading.stdout.strip().splitlines()]
    assert len(results) == len(DAMAGES)
    for (model, _, _), result in zip(DAMAGES, results, strict=True):
        assert list(result["failed"]) == [model]
        assert result["failed"][model].startswith(f"{model}: corrupt model file")
        assert result["loaded"] == [m for m in ("xgboost", "lightgbm") if m != model]


def test_a_crash_in_the_trial_load_is_pinned_on_the_model_it_was_loading() -> None:
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import os, signal\n"
            "print('loading xgboost', flush=True)\n"
            "print('xgboost: ok', flush=True)\n"
            "print('loading lightgbm', flush=True)\n"
            "os.kill(os.getpid(), signal.SIGSEGV)\n",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    refused = probe_result(child, ["xgboost", "lightgbm"])
    assert refused == {"lightgbm": "a trial load crashed the model library (signal 11)"}
