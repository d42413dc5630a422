"""Base class for every component's settings: frozen, unknown keys rejected, numbers finite.

Also the shared pieces of the sections: list and mapping types that read the environment
(`CommaList`, `JsonMapping`), rules between two fields of a section (`at_least`, `at_most`,
`above`) and the upper bounds of durations (a year: far beyond any sensible value, well within
what dates can hold).
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    ValidationInfo,
    field_validator,
)
from pydantic_settings import NoDecode

T = TypeVar("T")
MAX_LEVERAGE = 125  # Binance USD-M's highest leverage on any symbol
DAY_S = 86_400.0
YEAR_S = 365 * DAY_S
YEAR_H = 365 * 24.0
MAX_USDT = 1e9  # an account or one order beyond any this program is made for; far below overflow
MAX_SEED = 2**31 - 1  # LightGBM's seed is a C int; XGBoost refuses 2**63
# Histories counted in days (training windows, EMAs of daily closes) may span years.
TEN_YEARS_DAYS = 3650


class Section(BaseModel):
    """A frozen settings section; a misspelt key is an error, not a silent default.

    NaN and infinities are refused everywhere, and defaults are validated too, so a rule
    between two fields holds whichever of them was set.
    """

    model_config = ConfigDict(
        frozen=True, extra="forbid", allow_inf_nan=False, validate_default=True
    )

    @field_validator("*", mode="before")
    @classmethod
    def _no_boolean_for_a_number(cls, value: object, info: ValidationInfo) -> object:
        """pydantic reads a TOML `true` as 1 for a number; a setting that is not a boolean
        refuses it (`default_leverage = true` traded at leverage 1 without a word)."""
        if isinstance(value, bool) and info.field_name is not None:
            annotation = cls.model_fields[info.field_name].annotation
            types = {annotation, *get_args(annotation)}
            if bool not in types and types & {int, float}:
                raise ValueError("expected a number, not a boolean")
        return value


def _split_list(value: object) -> object:
    """Read `a,b` or a JSON list `["a", "b"]` (the environment's two spellings) as a list."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith("["):
        return json.loads(text)
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _parse_mapping(value: object) -> object:
    """Read a JSON object given as text (the environment's spelling of a mapping)."""
    if not isinstance(value, str):
        return value
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        parsed = None
    if not isinstance(parsed, dict):
        raise ValueError('expected a JSON object such as {"BTC/USDT:USDT": "Layer1"}')
    return parsed


CommaList = Annotated[tuple[T, ...], NoDecode, BeforeValidator(_split_list)]
JsonMapping = Annotated[dict[str, T], NoDecode, BeforeValidator(_parse_mapping)]


def at_least(*names: str) -> AfterValidator:
    """The field must not be below the named fields (declared before it in the section)."""
    return AfterValidator(_compare(names, lambda value, bound: value >= bound, "at least"))


def at_most(*names: str) -> AfterValidator:
    """The field must not be above the named fields (declared before it in the section)."""
    return AfterValidator(_compare(names, lambda value, bound: value <= bound, "at most"))


def above(*names: str) -> AfterValidator:
    """The field must be strictly above the named fields (declared before it)."""
    return AfterValidator(_compare(names, lambda value, bound: value > bound, "above"))


def _compare(
    names: tuple[str, ...], holds: Callable[[Any, Any], bool], relation: str
) -> Callable[[Any, ValidationInfo], Any]:
    def check(value: Any, info: ValidationInfo) -> Any:
        for name in names:
            bound = info.data.get(name)  # absent when that field failed its own checks
            if bound is not None and not holds(value, bound):
                raise ValueError(f"must be {relation} {name} ({bound})")
        return value

    return check


def read_toml(path: Path) -> dict[str, Any]:
    """The TOML document in `path`; ValueError saying why it is not one (OSError as raised).

    Not UTF-8 (a UTF-16 editor's file, a binary) and a leading byte-order mark are named as
    such: the parser would only report an invalid first statement or a decoding failure."""
    data = path.read_bytes()
    if data.startswith(b"\xef\xbb\xbf"):
        raise ValueError("it starts with a byte-order mark; save it as UTF-8 without one")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(
            f"it is not UTF-8 text (byte {error.start}: {error.reason}); save it as UTF-8"
        ) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ValueError(str(error)) from None


def redact_url(text: str, url: str | None = None) -> str:
    """`text` with the password of `url` (default: `text` itself is the URL) replaced by ***:
    wherever a value that may be an address with `user:password@` is shown."""
    found = re.search(r"://[^:/@]*:([^@]+)@", url if url is not None else text)
    return text.replace(found.group(1), "***") if found else text
