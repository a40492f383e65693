"""One registry: family name -> model class (its config class rides on it).

    from genlab.registry import get, register
    VAE = get("vae"); cfg = VAE.config_class()

``register`` is public so a user can add a family of their own; every family
registered here is exercised by the same parametrised tests.
"""

from __future__ import annotations

from genlab.errors import ConfigError

_FAMILIES: dict[str, type] = {}


def register(cls: type) -> type:
    """Class decorator: make a GenerativeModel subclass reachable by name."""
    _FAMILIES[cls.family] = cls
    return cls


def get(name: str) -> type:
    _load_builtins()
    if name not in _FAMILIES:
        raise ConfigError(f"unknown model family {name!r}; known: {', '.join(names())}")
    return _FAMILIES[name]


def names() -> list[str]:
    _load_builtins()
    return sorted(_FAMILIES)


def _load_builtins() -> None:
    import genlab.models  # noqa: F401  (importing registers the built-in families)
