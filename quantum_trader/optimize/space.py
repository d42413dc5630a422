"""The search space: a TOML file of dotted setting paths and their ranges, checked up front.

```toml
[space]
"orchestrator.min_confidence_trending" = { low = 0.10, high = 0.60 }
"sizing.default_leverage" = { low = 1, high = 5 }             # an int setting: int range
"sizing.risk_per_trade" = { low = 0.005, high = 0.02, log = true }
"monitor.trail_atr_balanced" = { low = 0.5, high = 1.5, step = 0.25 }
"monitor.trail_mode_trend_follow" = { choices = ["AGGRESSIVE", "BALANCED", "LOOSE"] }
```

Every path must name one setting of a trading section (what the daemon decides with, not
where it connects or logs); a range must lie within the setting's own bounds (its pydantic
`ge`/`gt`/`le`/`lt`) and every choice must be a value the setting accepts. Any problem is a
ConfigurationError (one line each, exit 2). Rules between settings (`at_least`, the sizer
against the risk guard) depend on the combination, so a drawn combination that breaks one is
refused per trial (the trial is pruned and the rule named), not here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import annotated_types
from pydantic import BaseModel, ValidationError

from quantum_trader.config import Settings
from quantum_trader.errors import ConfigurationError
from quantum_trader.record import record
from quantum_trader.settings_base import read_toml

Scalar = int | float | str | bool
Kind = Literal["float", "int", "categorical"]
# Sections whose settings decide trades. Costs model the world (not a choice), the others
# say where to connect, what to read and how to log.
SEARCHABLE = (
    "executor",
    "monitor",
    "signals",
    "sizing",
    "risk",
    "orchestrator",
    "balancer",
    "governor",
    "regime",
    "performance",
    "keeper",
    "analytics",
)
KEYS = {"low", "high", "log", "step", "choices"}
# Settings the study sets itself (runner.trial_base): a drawn value would contradict it.
FIXED = {"signals.source": "the study scores the rule agent (docs/OPTIMIZE.md)"}


@record
class Parameter:
    """One searched setting: a numeric range (`low` ≤ value ≤ `high`) or a set of choices."""

    path: str
    kind: Kind
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Scalar, ...] = ()

    def describe(self) -> dict[str, Any]:
        """The parameter as plain data (results JSON, the study's attributes)."""
        if self.kind == "categorical":
            return {"path": self.path, "kind": self.kind, "choices": list(self.choices)}
        return {
            "path": self.path,
            "kind": self.kind,
            "low": self.low,
            "high": self.high,
            "log": self.log,
            "step": self.step,
        }


@record
class SearchSpace:
    parameters: tuple[Parameter, ...]

    def describe(self) -> list[dict[str, Any]]:
        return [p.describe() for p in self.parameters]


def load_space(path: Path, base: Settings) -> SearchSpace:
    """Read and check the space file against the settings' fields; ConfigurationError else."""
    try:
        document = read_toml(path)
    except FileNotFoundError:
        raise ConfigurationError([f"--space: file not found: {path}"]) from None
    except ValueError as error:
        raise ConfigurationError([f"--space: {path} is not valid TOML: {error}"]) from None
    except OSError as error:
        raise ConfigurationError([f"--space: {path} cannot be read: {error.strerror}"]) from None
    table = document.get("space")
    if set(document) != {"space"} or not isinstance(table, dict) or not table:
        raise ConfigurationError(
            [f'--space: {path} must hold one [space] table of "section.setting" = {{...}} entries']
        )
    problems: list[str] = []
    parameters = []
    for name, spec in table.items():
        try:
            parameters.append(parse_parameter(name, spec, base))
        except ValueError as error:
            problems.append(f"--space {path}: {name}: {error}")
    if problems:
        raise ConfigurationError(problems)
    return SearchSpace(tuple(parameters))


def parse_parameter(path: str, spec: object, base: Settings) -> Parameter:
    """One entry of the [space] table, checked against the setting it names (ValueError)."""
    if not isinstance(spec, dict):
        raise ValueError("expected an inline table like { low = 0.1, high = 0.5 }")
    unknown = sorted(set(spec) - KEYS)
    if unknown:
        raise ValueError(f"unknown key(s) {unknown}; use low/high (log, step) or choices")
    if path in FIXED:
        raise ValueError(f"{FIXED[path]}; {path} cannot be searched")
    owner, field = resolve_path(path)
    annotation = owner.model_fields[field].annotation
    if "choices" in spec:
        parameter = _categorical(path, spec, annotation)
    else:
        parameter = _numeric(path, spec, annotation, _bounds(owner, field))
    for value in _endpoints(parameter):
        check_alone(base, parameter.path, value)
    return parameter


def resolve_path(path: str) -> tuple[type[BaseModel], str]:
    """The section model and field a dotted path names, or ValueError saying what exists."""
    parts = path.split(".")
    if parts[0] not in SEARCHABLE:
        raise ValueError(f"not a searchable section; use one of: {', '.join(SEARCHABLE)}")
    model: type[BaseModel] = Settings
    for index, part in enumerate(parts):
        fields = model.model_fields
        if part not in fields:
            where = ".".join(parts[:index]) or "settings"
            raise ValueError(
                f"unknown setting {part!r} in {where} (see `quantum-trader config show`)"
            )
        annotation = fields[part].annotation
        last = index == len(parts) - 1
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            if last:
                raise ValueError("names a section, not a setting")
            model = annotation
        elif not last:
            raise ValueError(f"{'.'.join(parts[: index + 1])} is a setting, not a section")
    return model, parts[-1]


def _numeric(
    path: str, spec: Mapping[str, Any], annotation: object, bounds: tuple[str, ...]
) -> Parameter:
    if annotation not in (int, float):
        raise ValueError("not a numeric setting: give choices = [...] instead of low/high")
    low, high = spec.get("low"), spec.get("high")
    if not all(_is_number(v) for v in (low, high)):
        raise ValueError("low and high must both be numbers")
    assert isinstance(low, int | float)
    assert isinstance(high, int | float)
    kind: Kind = "int" if annotation is int else "float"
    if kind == "int" and not (isinstance(low, int) and isinstance(high, int)):
        raise ValueError(f"an int setting: low and high must be integers, got {low}, {high}")
    if not low < high:
        raise ValueError(f"low must be below high, got {low} .. {high}")
    log, step = spec.get("log", False), spec.get("step")
    if not isinstance(log, bool):
        raise ValueError("log must be true or false")
    if step is not None and (not _is_number(step) or step <= 0 or (log and step)):
        raise ValueError("step must be a positive number, and cannot go with log = true")
    if step is not None and step > high - low:
        # Optuna would search low alone, with a warning on the log only.
        raise ValueError(f"step {step} is wider than the range {low} .. {high}")
    if log and low <= 0:
        raise ValueError(f"log = true needs low > 0, got {low}")
    outside = [b for b in bounds if not _within(b, low) or not _within(b, high)]
    if outside:
        raise ValueError(
            f"range {low} .. {high} is outside the setting's bounds ({', '.join(bounds)})"
        )
    return Parameter(path, kind, float(low), float(high), log, float(step) if step else None)


def _categorical(path: str, spec: Mapping[str, Any], annotation: object) -> Parameter:
    choices = spec["choices"]
    extra = sorted(set(spec) - {"choices"})
    if extra:
        raise ValueError(f"choices cannot go with {extra}")
    if not isinstance(choices, list) or not choices:
        raise ValueError("choices must be a non-empty list")
    if not all(isinstance(c, int | float | str | bool) for c in choices):
        raise ValueError("choices must be numbers, strings or booleans")
    if len(set(map(repr, choices))) != len(choices):
        raise ValueError("choices must not repeat")
    del annotation  # each choice is validated by the setting itself (check_alone)
    return Parameter(path, "categorical", choices=tuple(choices))


def _bounds(owner: type[BaseModel], field: str) -> tuple[str, ...]:
    """The setting's own numeric bounds as text: `> 0`, `<= 1`."""
    signs = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}
    found = []
    for item in owner.model_fields[field].metadata:
        for name, sign in signs.items():
            value = getattr(item, name, None)
            if isinstance(item, annotated_types.BaseMetadata) and value is not None:
                found.append(f"{sign} {value}")
    return tuple(found)


def _within(bound: str, value: float) -> bool:
    sign, limit = bound.split(" ")
    number = float(limit)
    return {
        ">": value > number,
        ">=": value >= number,
        "<": value < number,
        "<=": value <= number,
    }[sign]


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _endpoints(parameter: Parameter) -> tuple[Scalar, ...]:
    if parameter.kind == "categorical":
        return parameter.choices
    assert parameter.low is not None
    assert parameter.high is not None
    if parameter.kind == "int":
        return (int(parameter.low), int(parameter.high))
    return (parameter.low, parameter.high)


def check_alone(base: Settings, path: str, value: Scalar) -> None:
    """Refuse a value the setting itself refuses (type, bounds, a closed set); ValueError.

    Rules between this setting and others (pydantic "value_error"s) are left to the
    combination drawn in a trial (`apply`)."""
    try:
        Settings.model_validate(_with(base, {path: value}))
    except ValidationError as error:
        for item in error.errors():
            if ".".join(map(str, item["loc"])) == path and item["type"] != "value_error":
                raise ValueError(f"{value!r} is refused by the setting: {item['msg']}") from None


def apply(base: Settings, values: Mapping[str, Any]) -> Settings:
    """`base` with each dotted path set to its value, validated whole (ConfigurationError)."""
    try:
        return Settings.model_validate(_with(base, values))
    except ValidationError as error:
        raise ConfigurationError(_lines(error)) from None


def _with(base: Settings, values: Mapping[str, Any]) -> dict[str, Any]:
    data = base.model_dump()
    for path, value in values.items():
        *sections, field = path.split(".")
        node = data
        for section in sections:
            node = node[section]
        node[field] = value
    return data


def _lines(error: ValidationError) -> list[str]:
    lines: list[str] = []
    for item in error.errors():
        location = ".".join(str(part) for part in item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        lines.extend(f"{location}: {m}" if location else m for m in message.splitlines())
    return lines
