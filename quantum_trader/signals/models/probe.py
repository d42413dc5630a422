"""Child process of `model_files.probe_in_child`: load each model file and predict one row.

Usage: python -m quantum_trader.signals.models.probe N_INPUTS NAME=PATH@SHA256 ...
Prints `loading NAME`, then `NAME: ok` or `NAME: <why>`, for each model in turn. A crash of a
model library kills only this process; the parent pins it on the model it was loading.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np

from quantum_trader.errors import ModelArtifactError
from quantum_trader.signals.models.base import LIGHTGBM, XGBOOST, Batch


def _probe(name: str, payload: bytes, n_inputs: int) -> None:
    n_features = n_inputs - 1
    batch = Batch(
        np.zeros((1, n_features)), np.ones(1, np.bool_), None, np.zeros(1, np.bool_), np.ones(1)
    )
    if name == XGBOOST:
        from quantum_trader.signals.models.xgboost_model import XGBoostModel

        XGBoostModel.from_bytes(payload, n_inputs).scores(batch)
    elif name == LIGHTGBM:
        from quantum_trader.signals.models.lightgbm_model import LightGBMModel

        LightGBMModel.from_bytes(payload, n_inputs).scores(batch)
    else:
        raise ModelArtifactError(f"{name}: no trial load for this model")


def main(arguments: list[str]) -> int:
    # XGBoost and LightGBM import scikit-learn (and SciPy) when present, for wrappers a trial
    # load never uses; that import takes longer than the load itself.
    sys.modules.setdefault("sklearn", None)  # type: ignore[arg-type]
    n_inputs = int(arguments[0])
    for argument in arguments[1:]:
        name, rest = argument.split("=", 1)
        path, sha256 = rest.rsplit("@", 1)
        print(f"loading {name}", flush=True)
        try:
            payload = Path(path).read_bytes()
            if hashlib.sha256(payload).hexdigest() != sha256:
                raise ModelArtifactError(f"{name}: the file changed while it was being checked")
            _probe(name, payload, n_inputs)
        except (ModelArtifactError, OSError) as error:
            print(f"{name}: {str(error).removeprefix(name + ': ')}", flush=True)
            continue
        print(f"{name}: ok", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
