"""Loading user plug-ins named on the command line: ``package.module:Name`` builds ``Name()``."""

from __future__ import annotations

import importlib
import re

from kinetoscope.errors import KinetoscopeError

_SPEC = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


def is_import_spec(text: str) -> bool:
    """Whether ``text`` reads as ``module:Name`` (a path never does: no slash, one colon)."""
    return bool(_SPEC.match(text))


def build(spec: str, flag: str, protocol: type, **options) -> object:
    """``Name(**options)`` from ``module:Name``, checked against ``protocol``; KinetoscopeError otherwise."""
    module_name, _, attribute = spec.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as err:
        raise KinetoscopeError(f"{flag} {spec}: cannot import it ({err})") from None
    instance = factory(**options)
    if not isinstance(instance, protocol):
        raise KinetoscopeError(f"{flag} {spec}: builds a {type(instance).__name__}, which lacks {protocol.__name__}'s method")
    return instance
