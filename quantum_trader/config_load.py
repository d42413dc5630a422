"""`load_settings`: the settings from the TOML file and the environment (config.py's sources).

Unknown `QT_` variables and files that are not TOML are refused before pydantic reads them;
every problem becomes one line naming the setting and where it was set, raised as
ConfigurationError (the CLI exits 2). Secrets are never shown.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_settings import SettingsError

from quantum_trader.config import DEFAULT_CONFIG_PATH, ENV_PREFIX, Settings, toml_path
from quantum_trader.errors import ConfigurationError
from quantum_trader.settings_base import read_toml, redact_url


def load_settings(
    config_path: Path | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Build the settings from the TOML file and the environment, or raise ConfigurationError.

    An explicit `config_path` must exist; the default path is used only when present.
    """
    env = os.environ if environ is None else environ
    path = _resolve_config_path(config_path)
    problems = _unknown_env_variables(env)
    if path is not None:
        problems += _toml_problems(path)
    if problems:
        raise ConfigurationError(problems)
    token = toml_path.set(path)
    try:
        return Settings()
    except ValidationError as error:
        raise ConfigurationError(_describe(error, env, path)) from None
    except SettingsError as error:  # a value pydantic-settings could not even decode
        raise ConfigurationError([f"{error} (check the QT_ environment variables)"]) from None
    finally:
        toml_path.reset(token)


def _resolve_config_path(config_path: Path | None) -> Path | None:
    if config_path is None:
        return DEFAULT_CONFIG_PATH if DEFAULT_CONFIG_PATH.is_file() else None
    if config_path.is_dir() or not config_path.name:
        raise ConfigurationError([f"--config {config_path}: a directory; name the TOML file"])
    if not config_path.is_file() and os.path.lexists(config_path):  # /dev/null, a FIFO
        raise ConfigurationError(
            [f"--config {config_path}: not a regular file; name the TOML file"]
        )
    if not config_path.is_file():
        raise ConfigurationError([f"config file not found: {config_path} (--config)"])
    return config_path


def _toml_problems(path: Path) -> list[str]:
    try:
        read_toml(path)
    except ValueError as error:
        return [f"config file {path} is not valid TOML: {error}"]
    except OSError as error:
        return [f"config file {path} cannot be read: {error.strerror}"]
    return []


# The settings that are sections of their own (every one but data_dir).
_SECTIONS: dict[str, type[BaseModel]] = {
    name: info.annotation
    for name, info in Settings.model_fields.items()
    if isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel)
}


def _unknown_env_variables(env: Mapping[str, str]) -> list[str]:
    """pydantic-settings ignores QT_ variables that match no section; we refuse them."""
    known = set(Settings.model_fields)
    problems = []
    for name in sorted(env):
        if not name.upper().startswith(ENV_PREFIX):
            continue
        head, nested, _ = name[len(ENV_PREFIX) :].partition("__")
        head = head.lower()
        if head not in known:
            problems.append(f"{name}: unknown setting '{head}' (environment variable)")
        elif not nested and head in _SECTIONS and not env[name].lstrip().startswith("{"):
            example = f"{name.upper()}__{next(iter(_SECTIONS[head].model_fields)).upper()}"
            problems.append(
                f"{name}: names the whole [{head}] section; set one of its settings, e.g. "
                f"{example} (environment variable)"
            )
    return problems


def _describe(error: ValidationError, env: Mapping[str, str], path: Path | None) -> list[str]:
    lines = []
    for item in error.errors():
        location = ".".join(str(part) for part in item["loc"]) or "settings"
        origin = _origin(item["loc"], env, path)
        message = item["msg"].removeprefix("Value error, ")
        if not item["loc"]:  # a rule between sections: each line names its own settings
            lines.extend(message.splitlines())
            continue
        if item["type"] == "extra_forbidden":
            message = "unknown setting (misspelt?)"
        if item["type"] == "model_type":  # `market = 5`: a value where a table belongs
            message = _section_as_value(location, item["ctx"]["class_name"])
            origin = origin or (
                f"config file {path}" if path and _file_sets(path, item["loc"]) else ""
            )
        shown = "" if _is_secret(location) or item["type"] == "extra_forbidden" else item["input"]
        if isinstance(shown, str):
            shown = redact_url(shown)
        got = f"; got {shown!r}" if shown not in ("", None) and not isinstance(shown, dict) else ""
        lines.append(f"{location}: {message}{got}" + (f" [{origin}]" if origin else ""))
    return lines


def _section_as_value(location: str, class_name: str) -> str:
    node: Any = Settings
    for part in location.split("."):
        node = node.model_fields[part].annotation if part in node.model_fields else None
        if not (isinstance(node, type) and issubclass(node, BaseModel)):
            return f"expected a table of settings ({class_name})"
    first = next(iter(node.model_fields))
    return (
        f"names the whole [{location}] section; write its settings under a [{location}] "
        f"table, e.g. [{location}] {first} = ..."
    )


def _origin(location: tuple[int | str, ...], env: Mapping[str, str], path: Path | None) -> str:
    """The variable that set the value (or an item of it), else the config file if it sets
    it; "" for a default (a rule between two settings checks the default of one of them)."""
    if not location:
        return ""
    if len(location) == 1:  # a top-level setting, or a cross-field check of a whole section
        variable = ENV_PREFIX + str(location[0]).upper()
        if variable in env:
            return variable
        if location[0] in _SECTIONS:  # no single origin
            return ""
    for end in range(len(location), 1, -1):
        variable = ENV_PREFIX + "__".join(str(part).upper() for part in location[:end])
        if variable in env:
            return variable
    return f"config file {path}" if path and _file_sets(path, location) else ""


def _file_sets(path: Path, location: tuple[int | str, ...]) -> bool:
    """Whether the TOML file gives the setting at `location` (a section's key, or an item of
    a list or mapping it sets); already read once, so it parses."""
    node: Any = read_toml(path)
    for part in location[:2]:
        if not isinstance(node, dict) or str(part) not in node:
            return False
        node = node[str(part)]
    return True


def _is_secret(location: str) -> bool:
    secret = ("api_key", "api_secret", "token", "webhook_url", "telegram_api_url")
    return location.endswith(secret) or location in ("exchange", "server", "notify")
