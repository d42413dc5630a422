"""Check a tree model's file before the native library parses a byte of it.

A file whose sha256 matches its manifest can still be damaged (a tool that re-signed what it
broke), and XGBoost's and LightGBM's parsers trust their input: a damaged XGBoost file raised a
UnicodeDecodeError, a damaged LightGBM file crashed the process with SIGSEGV. So the text is
decoded and parsed here, and every tree is checked for a consistent structure: array lengths,
child indices that form a tree (each child after its parent, each node reached once), feature
indices within the model's inputs, finite numbers, and (LightGBM) the declared tree sizes.
Whatever is left is caught by a trial load in a child process (`probe_in_child`): a crash there
costs a refused model, not the daemon. A failure is a ModelArtifactError naming the model.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from quantum_trader.errors import ModelArtifactError

MAX_MODEL_BYTES = 256 * 2**20
PROBE_TIMEOUT_S = 60.0
_XGB_NODE_ARRAYS = (
    "left_children",
    "right_children",
    "parents",
    "split_indices",
    "split_conditions",
    "default_left",
    "split_type",
    "base_weights",
    "loss_changes",
    "sum_hessian",
)
_LGB_INTERNAL = (
    "split_feature",
    "split_gain",
    "threshold",
    "decision_type",
    "left_child",
    "right_child",
    "internal_value",
    "internal_weight",
    "internal_count",
)
_LGB_LEAF = ("leaf_value", "leaf_weight", "leaf_count")
_LGB_CATEGORICAL_BIT = 1


def _fail(model: str, why: str) -> ModelArtifactError:
    return ModelArtifactError(f"{model}: corrupt model file ({why})")


def _text(model: str, payload: bytes) -> str:
    if not 0 < len(payload) <= MAX_MODEL_BYTES:
        raise _fail(model, f"{len(payload)} bytes")
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError as error:
        raise _fail(model, f"not UTF-8 text at byte {error.start}") from error


def check_tree_shape(
    model: str, left: Sequence[int], right: Sequence[int], is_leaf_ref: Any, n: int
) -> None:
    """Children of node i are after i, each referenced once; `is_leaf_ref(c)` marks leaf refs."""
    seen: set[int] = set()
    for node, children in enumerate(zip(left, right, strict=True)):
        for child in children:
            if is_leaf_ref(child):
                continue
            if not node < child < n or child in seen:
                raise _fail(model, f"node {node} points at node {child}")
            seen.add(child)


def check_xgboost_json(payload: bytes, n_inputs: int) -> None:
    """Refuse an XGBoost JSON model that is not a consistent binary gbtree over n_inputs."""
    model = "xgboost"
    try:
        learner = json.loads(_text(model, payload))["learner"]
        n_features = int(learner["learner_model_param"]["num_feature"])
        booster = learner["gradient_booster"]
        trees = booster["model"]["trees"]
        declared = int(booster["model"]["gbtree_model_param"]["num_trees"])
        objective = str(learner["objective"]["name"])
    except (ValueError, KeyError, TypeError) as error:
        raise _fail(model, f"unreadable JSON: {error!r}") from error
    if booster.get("name") != "gbtree" or objective != "binary:logistic":
        raise _fail(model, f"unexpected booster {booster.get('name')!r} / {objective!r}")
    if n_features != n_inputs:
        raise ModelArtifactError(f"{model}: model expects {n_features} inputs, not {n_inputs}")
    if not isinstance(trees, list) or len(trees) != declared or declared == 0:
        raise _fail(model, f"{len(trees)} trees, {declared} declared")
    for index, tree in enumerate(trees):
        try:
            _check_xgboost_tree(tree, n_inputs)
        except (ValueError, KeyError, TypeError) as error:
            raise _fail(model, f"tree {index}: {error!r}") from error


def _check_xgboost_tree(tree: Mapping[str, Any], n_inputs: int) -> None:
    n = int(tree["tree_param"]["num_nodes"])
    if n < 1 or any(len(tree[key]) != n for key in _XGB_NODE_ARRAYS):
        raise ValueError(f"arrays do not have {n} nodes")
    if tree.get("categories_nodes") or any(int(t) != 0 for t in tree["split_type"]):
        raise ValueError("categorical splits")
    left = [int(c) for c in tree["left_children"]]
    right = [int(c) for c in tree["right_children"]]
    for node in range(n):
        if (left[node] == -1) != (right[node] == -1):
            raise ValueError(f"node {node} has one child")
        if left[node] != -1 and not 0 <= int(tree["split_indices"][node]) < n_inputs:
            raise ValueError(f"node {node} splits on input {tree['split_indices'][node]}")
        if not math.isfinite(float(tree["split_conditions"][node])):
            raise ValueError(f"node {node} has a non-finite value")
    check_tree_shape("xgboost", left, right, lambda c: c == -1, n)


def check_lightgbm_text(payload: bytes, n_inputs: int) -> None:
    """Refuse a LightGBM text model that is not a consistent numerical binary model."""
    model = "lightgbm"
    text = _text(model, payload)
    end = text.find("\nend of trees\n")
    first = text.find("\nTree=")
    if not text.startswith("tree\n") or end < 0 or not 0 < first < end:
        raise _fail(model, "incomplete model text")
    header = dict(line.split("=", 1) for line in text[:first].splitlines()[1:] if "=" in line)
    try:
        sizes = [int(s) for s in header["tree_sizes"].split()]
        max_feature = int(header["max_feature_idx"])
        per_iteration = int(header["num_tree_per_iteration"])
    except (KeyError, ValueError) as error:
        raise _fail(model, f"header: {error!r}") from error
    if max_feature != n_inputs - 1:
        raise ModelArtifactError(f"{model}: model expects {max_feature + 1} inputs, not {n_inputs}")
    blocks = text[first + 1 : end + 1].split("Tree=")[1:]
    if per_iteration != 1 or not blocks or len(blocks) != len(sizes):
        raise _fail(model, f"{len(blocks)} trees, {len(sizes)} declared")
    for index, (block, size) in enumerate(zip(blocks, sizes, strict=True)):
        if len(("Tree=" + block).encode()) != size:
            raise _fail(model, f"tree {index} is not {size} bytes long")
        try:
            _check_lightgbm_tree(block, max_feature)
        except (ValueError, KeyError) as error:
            raise _fail(model, f"tree {index}: {error!r}") from error


def _check_lightgbm_tree(block: str, max_feature: int) -> None:
    fields = dict(line.split("=", 1) for line in block.splitlines()[1:] if "=" in line)
    leaves = int(fields["num_leaves"])
    if leaves < 1 or int(fields.get("num_cat", "0")) != 0:
        raise ValueError(f"{leaves} leaves, categorical splits")
    arrays = {key: fields.get(key, "").split() for key in (*_LGB_INTERNAL, *_LGB_LEAF)}
    if any(len(arrays[key]) != leaves for key in _LGB_LEAF if key in fields):
        raise ValueError(f"leaf arrays do not have {leaves} leaves")
    if "leaf_value" not in fields or leaves == 1:
        return
    if any(len(arrays[key]) != leaves - 1 for key in _LGB_INTERNAL if key in fields):
        raise ValueError(f"node arrays do not have {leaves - 1} nodes")
    for feature, decision in zip(arrays["split_feature"], arrays["decision_type"], strict=True):
        if not 0 <= int(feature) <= max_feature or int(decision) & _LGB_CATEGORICAL_BIT:
            raise ValueError(f"split on input {feature} with decision type {decision}")
    numbers = [float(x) for x in (*arrays["threshold"], *arrays["leaf_value"])]
    if not all(math.isfinite(x) for x in numbers):
        raise ValueError("a non-finite threshold or leaf value")
    left = [int(c) for c in arrays["left_child"]]
    right = [int(c) for c in arrays["right_child"]]
    leaf_refs = [~c for c in (*left, *right) if c < 0]
    if sorted(leaf_refs) != list(range(leaves)):
        raise ValueError("leaves are not each reached once")
    check_tree_shape("lightgbm", left, right, lambda c: c < 0, leaves - 1)


def probe_in_child(files: Mapping[str, tuple[Path, str]], n_inputs: int) -> subprocess.Popen[bytes]:
    """Start a child process that loads each model's (file, sha256) and predicts one row.

    Collect its verdict with `probe_result`. Start it early: it runs while the parent works.
    """
    arguments = [f"{name}={path}@{sha}" for name, (path, sha) in files.items()]
    return subprocess.Popen(  # noqa: S603 (our own interpreter and module, no shell)
        [sys.executable, "-m", "quantum_trader.signals.models.probe", str(n_inputs), *arguments],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def probe_result(child: subprocess.Popen[bytes], names: Sequence[str]) -> dict[str, str]:
    """The child's verdict: model → why it cannot be used (empty when every model loaded).

    The child prints `loading NAME` before each model and `NAME: ok` or `NAME: <why>` after
    it, so a crash is pinned on the model it was loading.
    """
    try:
        out, err = child.communicate(timeout=PROBE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        child.kill()
        child.communicate()
        return dict.fromkeys(names, f"a trial load took over {PROBE_TIMEOUT_S:g} s")
    lines = out.decode(errors="replace").splitlines()
    verdicts = dict(line.split(": ", 1) for line in lines if ": " in line)
    refused = {name: why for name, why in verdicts.items() if why != "ok"}
    if child.returncode == 0:
        return refused
    started = [line.removeprefix("loading ") for line in lines if line.startswith("loading ")]
    unfinished = [name for name in started if name not in verdicts] or list(names)
    if child.returncode < 0:
        why = f"a trial load crashed the model library (signal {-child.returncode})"
    else:
        tail = err.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
        why = f"a trial load failed ({tail[0]})"
    return {**refused, unfinished[0]: why}
