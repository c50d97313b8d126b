"""Artifacts pulled from a remote or fetched from a registry are data, never code."""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "proxyrank"
SOURCES = sorted(PACKAGE.glob("*.py"))


def _calls(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call):
            yield node


def _name(call: ast.Call) -> str:
    f = call.func
    parts = []
    while isinstance(f, ast.Attribute):
        parts.append(f.attr)
        f = f.value
    if isinstance(f, ast.Name):
        parts.append(f.id)
    return ".".join(reversed(parts))


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_no_unsafe_loading_or_execution(path):
    """No pickle, no torch.load, no yaml.load / eval / exec, numpy loads without pickle,
    and subprocesses get argument lists, never a shell string built from params."""
    source = path.read_text()
    assert "import pickle" not in source and "torch.load" not in source
    for call in _calls(path):
        name = _name(call)
        assert name not in ("eval", "exec", "yaml.load", "pickle.load", "pickle.loads"), f"{path.name}: {name}"
        keywords = {k.arg: k.value for k in call.keywords}
        if name.startswith("subprocess.") or name in ("_run", "Popen"):
            shell = keywords.get("shell")
            assert shell is None or (isinstance(shell, ast.Constant) and shell.value is False), \
                f"{path.name}:{call.lineno}: shell=True"
        if name in ("np.load", "numpy.load"):
            pickle = keywords.get("allow_pickle")
            assert isinstance(pickle, ast.Constant) and pickle.value is False, \
                f"{path.name}:{call.lineno}: np.load without allow_pickle=False"


def test_the_scan_sees_the_calls_it_checks():
    """The checks above would catch a violation (they are not vacuous)."""
    calls = {_name(c) for p in SOURCES for c in _calls(p)}
    assert {"np.load", "yaml.safe_load", "subprocess.run"} <= calls
    bad = ast.parse("np.load(f)\nsubprocess.run(cmd, shell=True)\nyaml.load(s)")
    names = [_name(c) for c in ast.walk(bad) if isinstance(c, ast.Call)]
    assert names == ["np.load", "subprocess.run", "yaml.load"]


def test_atomic_outputs_get_the_permissions_open_would_give(tmp_path):
    """mkstemp / mkdtemp make owner-only temporaries; the outputs they become must not stay so."""
    import os

    from proxyrank.files import atomic_dir, write_json

    old = os.umask(0o022)
    try:
        write_json(tmp_path / "a.json", {"x": 1})
        with atomic_dir(tmp_path / "d") as d:
            (d / "f").write_text("x")
    finally:
        os.umask(old)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o755
