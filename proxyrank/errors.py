"""The project's one error type.

A `ProxyrankError` is a problem the user can fix (a params key, a source, an input file, a state
on disk); its message names the key or file, the value and the fix. The CLI and every stage print
it as one line on stderr and exit with its `exit_code`, as command-line tools do: 2 for a usage
error (a params key or an option given wrong: ParamsError, and argparse's own errors), 1 for a
runtime error (data, a download, a command that failed). Anything else is a bug: it keeps its
traceback (and Python exits 1).

The subclasses keep `ValueError` (or `RuntimeError`) as a second base so that callers and tests
that catch the builtin keep working; the stage wrapper catches `ProxyrankError` only, so a
ValueError raised by numpy or pandas is never mistaken for bad input.
"""
from __future__ import annotations


class ProxyrankError(Exception):
    """A problem with the user's input or state: one line on stderr, exit 1 (a runtime error)."""

    exit_code = 1


class ParamsError(ProxyrankError, ValueError):
    """A params.yaml (or profile, or override) key, or a command-line option, with a wrong value:
    a usage error, exit 2."""

    exit_code = 2


class DataError(ProxyrankError, ValueError):
    """An input file, archive, source or table that cannot be used as it is."""


class FetchError(ProxyrankError, RuntimeError):
    """A source that could not be downloaded or verified."""


class CommandError(ProxyrankError, RuntimeError):
    """A command the tools run for the user (`dvc repro`, `git`, a training worker) failed; the
    message says which and where its log is."""
