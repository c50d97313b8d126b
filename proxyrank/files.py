"""Atomic file output: a killed stage never leaves a half-written file that DVC could cache.

A replaced output is written whole into a temporary sibling and fsynced, then renamed into place,
so the real path holds the complete old or the complete new output at every instant (a kill -9
or a power cut in between leaves one of the two, and the next call clears what is left beside it).
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import math
import os
import secrets
import shutil
import signal
import tempfile
from pathlib import Path

KILL_ENV = "PROXYRANK_KILL_AT"


def kill_point(name: str) -> None:
    """Die by SIGKILL here when the environment variable PROXYRANK_KILL_AT equals `name`.

    The kill tests stop a stage at a named step (instead of after a timed sleep, which can land
    anywhere, imports included). The whole process group goes, as with `kill -9` of a job, so
    forked workers die with their parent: start the process in its own session.
    """
    if os.environ.get(KILL_ENV) == name:
        os.killpg(os.getpgrp(), signal.SIGKILL)
        os.kill(os.getpid(), signal.SIGKILL)  # not reached: the group includes this process


def _fsync(path: str | Path) -> None:
    """Flush a file's bytes or a directory's entries to disk: a rename is only as durable as both."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as e:  # some file systems cannot fsync a directory; nothing more can be done there
        if e.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    """fsync every file and directory under `root` (links are left alone: they point elsewhere)."""
    for folder, _, names in os.walk(root):
        for name in names:
            if not os.path.islink(os.path.join(folder, name)):
                _fsync(os.path.join(folder, name))
        _fsync(folder)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _drop_stale(path: Path) -> None:
    """Remove temporaries a killed process left beside `path`, before they reach a DVC output."""
    for stale in path.parent.glob(f".{path.name}.*.tmp"):
        _remove(stale)


def _recover(path: Path) -> None:
    """Clear what a killed replacement of `path` left beside it, losing nothing.

    Temporaries never became the output and go. A moved-aside old output (`.NAME.old-*`) is
    complete (a deletion renames it to a temporary first): if the kill came between the two
    renames, so `path` is missing, it goes back to `path`; otherwise the new output is in place
    and the old one goes.
    """
    _drop_stale(path)
    for old in sorted(path.parent.glob(f".{path.name}.old-*")):
        if os.path.lexists(path):
            _remove(old)
        else:
            os.rename(old, path)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | Path):
    """Yield a temporary sibling path; rename it onto `path` only if the block succeeds.

    The temporary is fsynced before the rename and the directory after it, so after a crash the
    path holds the old or the new bytes, never an empty or partial file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _drop_stale(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; the output gets what open() would give
    try:
        yield tmp
        _fsync(tmp)
        os.replace(tmp, path)
        _fsync(path.parent)
        kill_point("atomic_path.replaced")
    finally:
        tmp.unlink(missing_ok=True)


def _swap(new: Path, path: Path) -> Path | None:
    """Rename `new` onto `path`, moving the old output aside first (a directory cannot be renamed
    onto a non-empty one, and deleting it first would leave a half-deleted output to a kill).
    Returns the moved-aside old output, for the caller to delete once `path` is the new one."""
    old = None
    if os.path.lexists(path):
        old = path.parent / f".{path.name}.old-{secrets.token_hex(4)}"
        os.rename(path, old)
    kill_point("atomic_dir.moved_aside")
    try:
        os.rename(new, path)
    except BaseException:
        if old is not None:
            os.rename(old, path)  # the new output did not go in: the old one is the output again
        raise
    _fsync(path.parent)
    kill_point("atomic_dir.replaced")
    return old


def _discard(old: Path) -> None:
    """Delete a replaced output, renamed to a temporary first: a kill during a long delete then
    leaves a `.tmp` that the next call drops, never a partial `.old-*` that could be restored."""
    trash = old.with_name(f"{old.name}.tmp")
    os.rename(old, trash)
    _remove(trash)


@contextlib.contextmanager
def atomic_dir(path: str | Path):
    """Yield a temporary sibling directory that replaces `path` whole when the block succeeds.

    Order: write and fsync the temporary, move the old output aside, rename the new one in, fsync
    the parent, delete the old one. A call first repairs what a killed call left (`_recover`).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _recover(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700
    old = None
    try:
        yield tmp
        _fsync_tree(tmp)
        kill_point("atomic_dir.written")
        old = _swap(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    if old is not None:
        _discard(old)


def json_number(x) -> float | None:
    """A statistic as JSON will hold it: a plain float, or None where it is undefined (NaN).

    The one NaN -> None rule of the analyses (metrics, validity, score). It makes every number a
    float (a numpy float or an int alike), and leaves an infinity as it is: write_json's `_clean`
    writes that as null too, but only in the file (the dict the analysis returns keeps it)."""
    return None if x is None or math.isnan(x) else float(x)


def _clean(obj):
    """JSON has no NaN or infinity: write null, so every consumer (DVC, browsers) can parse the file.

    Unlike json_number this walks a whole object, keeps each value's type and drops infinities too:
    it is the writer's last guard, not the analyses' rule for an undefined statistic."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def write_json(path: str | Path, obj) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(_clean(obj), indent=2, sort_keys=False) + "\n")


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_yaml(path: str | Path):
    """Every YAML file the project reads (params, profiles, manifests, candidates, dvc files), read strictly.

    PyYAML quietly keeps the last of two equal keys (a recipe declared twice silently became the
    other recipe) and, following YAML 1.1, reads `1e-2` as text because its float needs a dot; the
    loader here refuses the one and reads the other as the float YAML 1.2 and every reader means.
    Errors (yaml.YAMLError) name the file: a duplicate key with both lines, a file not in UTF-8
    with the fix. Safe: a SafeLoader subclass, no Python objects.
    """
    import io
    import re

    import yaml

    class StrictLoader(yaml.SafeLoader):
        def construct_mapping(self, node, deep=False):
            lines = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *base` may be overridden on purpose
                    continue
                key = self.construct_object(key_node, deep=deep)
                line = key_node.start_mark.line + 1
                try:
                    if key in lines:
                        raise yaml.YAMLError(f"{self.name}: key {key!r} given twice, on line {lines[key]} and "
                                             f"line {line}; YAML would silently keep only the second: keep one")
                except TypeError:  # an unhashable key: SafeLoader's own error says so
                    continue
                lines[key] = line
            return super().construct_mapping(node, deep)

    StrictLoader.add_implicit_resolver("tag:yaml.org,2002:float",  # YAML 1.2: 1e-2, 1E5, 2.5e3
                                       re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
                                       list("-+0123456789"))
    raw = Path(path).read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise yaml.YAMLError(f"{path}: not UTF-8 text (byte {raw[e.start]:#04x} on line {line}); save it as "
                             f"UTF-8") from None
    stream = io.StringIO(text)
    stream.name = str(path)  # so every mark, and so every error, names the file
    loader = StrictLoader(stream)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def read_yaml_mapping(path: str | Path, what: str, error: type[Exception], *, expected: str = "a mapping at the top level",
                      empty_ok: bool = False) -> dict:
    """The mapping a YAML file holds (a params file, profile, manifest, candidates file, dvc.lock),
    read by load_yaml; any failure is one `error` whose message starts with the file's path.

    `what` names the file in a read error ("the candidates file"), `expected` says what the top
    level must be. With `empty_ok` an empty file is {} (a dvc.lock before any stage ran)."""
    import yaml

    path = Path(path)
    try:
        data = load_yaml(path)
    except OSError as e:
        raise error(f"{path}: cannot read {what} ({e.strerror or e})") from None
    except yaml.MarkedYAMLError as e:  # PyYAML's own: its mark names the line
        raise error(f"{path}: not valid YAML: {e}") from None
    except yaml.YAMLError as e:  # load_yaml's (a key given twice, not UTF-8): it names the file already
        raise error(str(e)) from None
    if data is None and empty_ok:
        return {}
    if not isinstance(data, dict):
        raise error(f"{path}: expected {expected}")
    return data
