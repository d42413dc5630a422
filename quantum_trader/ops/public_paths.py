"""Texts for the public /health: files named relative to the data directory or by role.

/health needs no token, so its problem lines must not tell whoever reaches the port how the
host is laid out. A path under a known place becomes the place's name and the rest
(`data_dir/market`, `the bundled sample`); any other absolute path keeps only its last part.
The token-protected /status and the logs keep the full text.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path, PurePosixPath

from quantum_trader.config import Settings
from quantum_trader.market.candle_store import bundled_sample_dir

Place = tuple[str, str]  # an absolute directory, and what the public text calls it
_PATH_CHAR = r"[^\s:;,()'\"`]"
# An absolute path not inside a word, a URL or a symbol (BTC/USDT:USDT, 1/3, http://host/x).
_ABSOLUTE = re.compile(rf"(?<![\w.:/~-])/{_PATH_CHAR}+")


def public_places(settings: Settings) -> list[Place]:
    """The directories a problem line may name: the data directory, the configured market
    data and the sample shipped in the package, each as given and resolved (symlinks)."""
    named = [(settings.data_dir, "data_dir"), (bundled_sample_dir(), "the bundled sample")]
    if settings.market.replay_dir is not None:
        named.append((settings.market.replay_dir, "market.replay_dir"))
    places: dict[str, str] = {}
    for path, name in named:
        for form in (path.absolute(), path.resolve()):
            if form != Path(form.anchor):  # "/" would swallow every path
                places.setdefault(str(form), name)
    # The longest first: a place inside another is named by its own name.
    return sorted(places.items(), key=lambda place: len(place[0]), reverse=True)


def without_absolute_paths(text: str, places: Sequence[Place]) -> str:
    """`text` with each path under a place named by the place, and any other absolute path
    by its last part."""
    for directory, name in places:
        inside = re.compile(
            rf"(?<!{_PATH_CHAR}){re.escape(directory)}(/{_PATH_CHAR}*)?(?!{_PATH_CHAR})"
        )
        text = inside.sub(_named(name), text)
    return _ABSOLUTE.sub(lambda found: PurePosixPath(found.group()).name or "/", text)


def _named(name: str) -> Callable[[re.Match[str]], str]:
    return lambda found: name + (found.group(1) or "").rstrip("/")
