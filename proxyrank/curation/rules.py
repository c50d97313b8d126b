"""What the published rule families share (proxyrank.curation.c4, gopher_quality,
gopher_repetition): switching single rules off by name.

Each family's thresholds are a frozen dataclass built from params.yaml, and each of its rules has a
stable snake_case name; a rule is switched off by listing its name in the dataclass's ``skip``
(datatrove uses a ``None`` threshold for that, which a typed params file cannot express cleanly).
"""
from __future__ import annotations

from proxyrank.errors import ParamsError


def check_skip(rules: object, allowed: tuple[str, ...]) -> None:
    """A ParamsError if ``rules.skip`` names a rule the family does not have (a typo would
    otherwise silently keep the rule on)."""
    unknown = [name for name in rules.skip if name not in allowed]  # type: ignore[attr-defined]
    if unknown:
        raise ParamsError(f"{type(rules).__name__}.skip: unknown rule(s) "
                          f"{', '.join(map(repr, unknown))}; "
                          f"allowed: {', '.join(allowed)}")
