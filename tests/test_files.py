"""Atomic output: a kill at any point leaves the complete old or the complete new output, and the
next call clears what it left; every written file and directory entry is fsynced."""
import os
import shutil
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from proxyrank import files
from proxyrank.files import atomic_dir, atomic_path, kill_point, write_json, write_text

N = 40  # files per output: a mixture of old and new would show in any of them

REPLACE = """
import sys
from pathlib import Path
from proxyrank.files import atomic_dir
with atomic_dir(Path(sys.argv[1])) as tmp:
    for i in range({n}):
        (tmp / f"{{i}}.txt").write_text("new")
"""


def _fill(folder: Path, text: str) -> None:
    for i in range(N):
        (folder / f"{i}.txt").write_text(text)


def _output(path: Path, text: str) -> None:
    path.mkdir(parents=True)
    _fill(path, text)


def _holds(path: Path) -> str | None:
    """'old' or 'new' if `path` holds that output complete, None if it is missing; fails on a mixture."""
    if not path.exists():
        return None
    texts = {p.name: p.read_text() for p in path.iterdir()}
    assert sorted(texts) == sorted(f"{i}.txt" for i in range(N)) and len(set(texts.values())) == 1, texts
    return texts["0.txt"]


def _siblings(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir() if p != path)


def _kill_during_replace(path: Path, point: str) -> None:
    proc = subprocess.run([sys.executable, "-c", REPLACE.format(n=N), str(path)], start_new_session=True,
                          env={**os.environ, "PROXYRANK_KILL_AT": point}, timeout=120)
    assert proc.returncode == -signal.SIGKILL, f"not killed at {point} (exit {proc.returncode})"


@pytest.mark.parametrize("point,after_kill,after_next", [
    ("atomic_dir.written", "old", "old"),         # new copy complete in a temporary: dropped
    ("atomic_dir.moved_aside", None, "old"),      # between the two renames: the old copy goes back
    ("atomic_dir.replaced", "new", "new"),        # the old copy still beside it: deleted
])
def test_a_kill_at_each_step_leaves_old_or_new_and_the_next_call_cleans_up(tmp_path, point, after_kill,
                                                                           after_next):
    path = tmp_path / "out" / "data"
    _output(path, "old")
    _kill_during_replace(path, point)
    assert _holds(path) == after_kill
    assert _siblings(path), "a kill mid-replacement leaves a temporary or the old copy beside the output"
    with pytest.raises(RuntimeError), atomic_dir(path):  # the next call fails: nothing is lost
        raise RuntimeError("the next run fails")
    assert _holds(path) == after_next and _siblings(path) == []
    with atomic_dir(path) as tmp:  # the next call succeeds: the new output, nothing beside it
        _fill(tmp, "new")
    assert _holds(path) == "new" and _siblings(path) == []


def test_a_kill_during_the_delete_of_the_old_output_never_leaves_a_mixture(tmp_path, monkeypatch):
    """kill -9 half way through deleting the old copy (the bug: it was deleted at the real path)."""
    path = tmp_path / "data"
    _output(path, "old")
    real_rmtree = shutil.rmtree

    def killed_half_way(target, *args, **kwargs):
        for p in sorted(Path(target).iterdir())[: N // 2]:
            p.unlink()
        raise KeyboardInterrupt("killed")  # stands for SIGKILL: nothing after it runs

    monkeypatch.setattr(shutil, "rmtree", killed_half_way)
    with pytest.raises(KeyboardInterrupt), atomic_dir(path) as tmp:
        _fill(tmp, "new")
    monkeypatch.setattr(shutil, "rmtree", real_rmtree)
    assert _holds(path) == "new"
    assert len(_siblings(path)) == 1 and _siblings(path)[0].endswith(".tmp")  # never restored as output
    shutil.rmtree(path)  # e.g. DVC removes the output before a rerun
    with pytest.raises(RuntimeError), atomic_dir(path):
        raise RuntimeError("the next run fails")
    assert not path.exists() and _siblings(path) == []  # the half-deleted copy did not come back


def test_a_failed_rename_puts_the_old_output_back(tmp_path, monkeypatch):
    path = tmp_path / "data"
    _output(path, "old")
    real = {name: getattr(os, name) for name in ("rename", "replace")}

    def refuse_new(name):
        def move(src, dst, *args, **kwargs):
            if str(src).endswith(".tmp") and Path(dst) == path:
                raise OSError("disk gone")
            return real[name](src, dst, *args, **kwargs)
        return move

    for name in real:
        monkeypatch.setattr(os, name, refuse_new(name))
    with pytest.raises(OSError, match="disk gone"), atomic_dir(path) as tmp:
        (tmp / "0.txt").write_text("new")
    assert _holds(path) == "old" and _siblings(path) == []


def test_atomic_dir_replaces_a_file_or_a_link_and_drops_what_a_killed_call_left(tmp_path):
    for kind in ("file", "link"):
        path = tmp_path / kind / "data"
        path.parent.mkdir()
        if kind == "file":
            path.write_text("a file")
        else:
            path.symlink_to(tmp_path / "elsewhere")
        (path.parent / ".data.abc.tmp").mkdir()  # a killed call's temporary
        with atomic_dir(path) as tmp:
            (tmp / "x").write_text("new")
        assert path.is_dir() and not path.is_symlink() and (path / "x").read_text() == "new"
        assert _siblings(path) == []


def _fsynced(monkeypatch) -> list[tuple[int, bool]]:
    """(inode, is a directory) of everything fsynced from now on."""
    seen, real = [], os.fsync

    def fsync(fd):
        st = os.fstat(fd)
        seen.append((st.st_ino, stat.S_ISDIR(st.st_mode)))
        return real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return seen


@pytest.mark.parametrize("writer", ["atomic_path", "write_json", "write_text"])
def test_a_single_file_and_its_directory_entry_are_fsynced(tmp_path, monkeypatch, writer):
    seen = _fsynced(monkeypatch)
    path = tmp_path / "out.json"
    if writer == "atomic_path":
        with atomic_path(path) as tmp:
            tmp.write_text("{}")
    else:
        {"write_json": lambda: write_json(path, {}), "write_text": lambda: write_text(path, "{}")}[writer]()
    assert (path.stat().st_ino, False) in seen and (tmp_path.stat().st_ino, True) in seen
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_every_file_of_a_directory_output_and_the_parent_are_fsynced(tmp_path, monkeypatch):
    seen = _fsynced(monkeypatch)
    path = tmp_path / "data"
    with atomic_dir(path) as tmp:
        (tmp / "sub").mkdir()
        for name in ("a", "sub/b"):
            (tmp / name).write_text(name)
    for p in (path / "a", path / "sub" / "b", path / "sub", path):
        assert (p.stat().st_ino, p.is_dir()) in seen, p
    assert (tmp_path.stat().st_ino, True) in seen


def test_kill_point_does_nothing_unless_named(monkeypatch):
    monkeypatch.setenv(files.KILL_ENV, "somewhere.else")
    kill_point("here")
    monkeypatch.delenv(files.KILL_ENV)
    kill_point("here")


def test_json_number_and_the_writer_turn_undefined_into_null(tmp_path):
    assert files.json_number(float("nan")) is None and files.json_number(None) is None
    assert files.json_number(3) == 3.0 and type(files.json_number(3)) is float
    write_json(tmp_path / "x.json", {"a": float("nan"), "b": [float("inf"), 1.5]})
    assert (tmp_path / "x.json").read_text() == '{\n  "a": null,\n  "b": [\n    null,\n    1.5\n  ]\n}\n'


def test_read_yaml_mapping_names_the_file_in_every_refusal(tmp_path):
    from proxyrank.errors import DataError

    path = tmp_path / "x.yaml"
    with pytest.raises(DataError, match=f"^{path}: cannot read the thing \\(No such file"):
        files.read_yaml_mapping(path, "the thing", DataError)
    path.write_text("a: [1\n")
    with pytest.raises(DataError, match=f"^{path}: not valid YAML"):
        files.read_yaml_mapping(path, "the thing", DataError)
    path.write_text("a: 1\na: 2\n")
    with pytest.raises(DataError, match=f"^{path}: key 'a' given twice, on line 1 and line 2"):
        files.read_yaml_mapping(path, "the thing", DataError)
    path.write_text("- 1\n")
    with pytest.raises(DataError, match=f"^{path}: expected a mapping of names"):
        files.read_yaml_mapping(path, "the thing", DataError, expected="a mapping of names")
    path.write_text("")
    assert files.read_yaml_mapping(path, "the thing", DataError, empty_ok=True) == {}
    with pytest.raises(DataError, match="expected a mapping at the top level"):
        files.read_yaml_mapping(path, "the thing", DataError)
