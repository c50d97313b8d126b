"""Checks that params sections run on themselves (in __post_init__): exact types, and a
ParamsError naming the field, the rule and the value (proxyrank.config prefixes the section)."""
from __future__ import annotations

import numbers
from dataclasses import fields

from proxyrank.errors import ParamsError


def fail_field(field: str, message: str, value) -> None:
    """A params section's own check failed: a ParamsError naming the field, the rule and the value
    (proxyrank.config prefixes the section's dotted key)."""
    raise ParamsError(f"{field}: {message}, got {value!r}")


def check_types(obj) -> None:
    """Every field of a params dataclass has its declared type (bool is not an int here)."""
    for f in fields(obj):
        value = getattr(obj, f.name)
        want = {"int": numbers.Integral, "float": numbers.Real, "bool": bool, "str": str}[f.type]
        if isinstance(value, bool) and f.type != "bool" or not isinstance(value, want):
            fail_field(f.name, f"expected {f.type}", value)
