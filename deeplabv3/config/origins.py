"""Where each value of a config came from, so an error can name the file or ``--set`` the user has to edit.

Loading records, for every dotted key, the file that last set it or the override (``--set KEY=VALUE``) that did.
A validated :class:`~deeplabv3.config.schema.Config` keeps that record (:func:`remember`; it is not a field, so it
is neither compared nor saved), which lets checks that need more than the config -- a file that must exist, the
size of the data set -- name the origin as well (:func:`key_error`).
"""
from __future__ import annotations

from types import MappingProxyType
from typing import Any, Mapping, Sequence, TypeVar, Union

from .schema import ConfigError

Origins = Mapping[str, Any]
Keys = Union[str, Sequence[str]]
T = TypeVar("T")
_ATTRIBUTE = "_origins"
UNKNOWN = "config"


def where(dotted: str, origins: Origins) -> str:
    """The file (or override) that set ``dotted`` or its closest enclosing section; ``config`` for a default."""
    parts = dotted.split(".")
    for n in range(len(parts), 0, -1):
        origin = origins.get(".".join(parts[:n]))
        if origin is not None:
            return str(origin)
    return UNKNOWN


def locate(keys: Keys, origins: Origins) -> str:
    """The distinct origins of ``keys`` (``--set x=1, a.yaml``); ``config`` if all are defaults.

    Overrides come first: applied last, they are the likeliest to have broken a rule between keys.
    """
    found = []
    for key in ([keys] if isinstance(keys, str) else keys):
        origin = where(key, origins)
        if origin != UNKNOWN and origin not in found:
            found.append(origin)
    found.sort(key=lambda origin: not origin.startswith("--set"))
    return ", ".join(found) or UNKNOWN


def remember(cfg: T, origins: Origins) -> T:
    """Attach ``origins`` to the frozen ``cfg`` (returned for chaining)."""
    object.__setattr__(cfg, _ATTRIBUTE, MappingProxyType(dict(origins)))
    return cfg


def origins_of(cfg: Any) -> Origins:
    """The origins a loaded config remembers (empty for one built by hand)."""
    return getattr(cfg, _ATTRIBUTE, MappingProxyType({}))


def key_error(cfg: Any, keys: Keys, message: str) -> ConfigError:
    """A :class:`ConfigError` for ``message`` about ``keys``, prefixed with where those keys were set."""
    return ConfigError(f"{locate(keys, origins_of(cfg))}: {message}")
