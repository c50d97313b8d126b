"""The project's one error type.

A `ProxyrankError` is a problem the user can fix (a params key, a source, an input file, a state
on disk); its message names the key or file, the value and the fix. The CLI and every stage print
it as one line on stderr and exit 2. Anything else is a bug: it keeps its traceback and exits 1.

The subclasses keep `ValueError` (or `RuntimeError`) as a second base so that callers and tests
that catch the builtin keep working; the stage wrapper catches `ProxyrankError` only, so a
ValueError raised by numpy or pandas is never mistaken for bad input.
"""
from __future__ import annotations


class ProxyrankError(Exception):
    """A problem with the user's input or state: one line on stderr, exit 2."""


class ParamsError(ProxyrankError, ValueError):
    """A params.yaml (or profile, or override) key with a wrong value."""


class DataError(ProxyrankError, ValueError):
    """An input file, archive, source or table that cannot be used as it is."""


class FetchError(ProxyrankError, RuntimeError):
    """A source that could not be downloaded or verified."""


class CommandError(ProxyrankError, RuntimeError):
    """A command the tools run for the user (`dvc repro`, `git`, a training worker) failed; the
    message says which and where its log is."""
