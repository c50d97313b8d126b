"""Artifacts pulled from a remote, fetched from a registry or handed over by another job are data,
never code: a static scan of the package, and behavioural tests with hostile inputs."""
from __future__ import annotations

import ast
import hashlib
import http.server
import io
import os
import tarfile
import threading
from functools import partial
from pathlib import Path

import pytest
import yaml

from proxyrank.errors import ParamsError
from proxyrank.data.corpus import ChecksumError, fetch, load_sources

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "proxyrank"
SOURCES = sorted(PACKAGE.rglob("*.py"))

# --------------------------------------------------------------------------- the static scan

UNSAFE_MODULES = {"pickle", "cPickle", "_pickle", "marshal", "shelve", "dill", "cloudpickle", "joblib"}
UNSAFE_CALLS = {"eval", "exec", "builtins.eval", "builtins.exec", "os.system", "os.popen",
                "yaml.unsafe_load", "yaml.full_load", "yaml.full_load_all", "yaml.unsafe_load_all"}
SAFE_LOADERS = {"SafeLoader", "CSafeLoader", "BaseLoader", "CBaseLoader"}


def _aliases(tree: ast.AST) -> dict[str, str]:
    """Local name -> what it is bound to by an import (`np` -> numpy, `loads` -> pickle.loads)."""
    names = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                names[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module:
            for a in node.names:
                names[a.asname or a.name] = f"{node.module}.{a.name}"
    return names


def _dotted(node: ast.AST, aliases: dict[str, str]) -> str:
    """`np.load` -> `numpy.load`: the attribute chain with its first name resolved through imports."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return ".".join(["?", *reversed(parts)])
    return ".".join([aliases.get(node.id, node.id), *reversed(parts)])


def _is_const(node: ast.AST | None, value) -> bool:
    return isinstance(node, ast.Constant) and node.value is value


def _import_problems(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Import):
        mods = [a.name for a in node.names]
    elif isinstance(node, ast.ImportFrom):
        mods = [node.module or ""]
    else:
        return []
    return [f"imports {m}" for m in mods if m.split(".")[0] in UNSAFE_MODULES]


def _call_problems(call: ast.Call, aliases: dict[str, str]) -> list[str]:
    """What is unsafe about one call: loaders that run code or unpickle, shells, remote code."""
    name = _dotted(call.func, aliases)
    kw = {k.arg: k.value for k in call.keywords}
    splat = None in kw  # **kwargs could carry anything
    short = name.split(".")[-1]
    found = []
    if name in UNSAFE_CALLS or name.split(".")[0] in UNSAFE_MODULES:
        found.append(name)
    if name in ("__import__", "importlib.import_module") and call.args and \
            isinstance(call.args[0], ast.Constant) and str(call.args[0].value).split(".")[0] in UNSAFE_MODULES:
        found.append(f"{name}({call.args[0].value!r})")
    if short == "read_pickle":
        found.append(name)
    if name == "torch.load" and (not _is_const(kw.get("weights_only"), True) or splat):
        found.append("torch.load without weights_only=True")
    if name == "numpy.load" and (not _is_const(kw.get("allow_pickle"), False) or splat):
        found.append("numpy.load without allow_pickle=False")
    if name in ("yaml.load", "yaml.load_all"):
        loader = kw.get("Loader", call.args[1] if len(call.args) > 1 else None)
        if loader is None or _dotted(loader, aliases).split(".")[-1] not in SAFE_LOADERS:
            found.append(f"{name} without a SafeLoader")
    if "shell" in kw and not _is_const(kw["shell"], False):
        found.append(f"{name} with shell={ast.unparse(kw['shell'])}")
    if "trust_remote_code" in kw and not _is_const(kw["trust_remote_code"], False):
        found.append(f"{name} with trust_remote_code")
    return found


def violations(source: str, filename: str = "<snippet>") -> list[str]:
    """Every unsafe import or call in `source`, as `file:line: what`."""
    tree = ast.parse(source, filename)
    aliases = _aliases(tree)
    out = []
    for node in ast.walk(tree):
        problems = _import_problems(node) + (_call_problems(node, aliases) if isinstance(node, ast.Call) else [])
        out += [f"{filename}:{node.lineno}: {p}" for p in problems]
    return out


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_no_unsafe_loading_or_execution(path):
    """No pickle-family module, no code-running loader, no shell, no remote code in the package."""
    assert violations(path.read_text(), path.name) == []


BAD = {
    "import pickle": "imports pickle",
    "import pickle as p\np.loads(b)": "imports pickle",
    "from pickle import loads\nloads(b)": "pickle.loads",
    "from _pickle import loads": "imports _pickle",
    "import marshal": "imports marshal",
    "import shelve": "imports shelve",
    "from dill import load": "imports dill",
    "importlib.import_module('pickle')": "import_module('pickle')",
    "import pandas as pd\npd.read_pickle(p)": "pandas.read_pickle",
    "df.read_pickle(p)": "df.read_pickle",
    "import torch\ntorch.load(f)": "torch.load without weights_only=True",
    "from torch import load\nload(f, weights_only=False)": "torch.load without weights_only=True",
    "import numpy as np\nnp.load(f, allow_pickle=True)": "numpy.load without allow_pickle=False",
    "from numpy import load as L\nL(f)": "numpy.load without allow_pickle=False",
    "eval(s)": "eval",
    "exec(s)": "exec",
    "import yaml\nyaml.load(s)": "yaml.load without a SafeLoader",
    "import yaml\nyaml.load(s, Loader=yaml.FullLoader)": "yaml.load without a SafeLoader",
    "import yaml\nyaml.unsafe_load(s)": "yaml.unsafe_load",
    "import subprocess\nsubprocess.run(cmd, shell=True)": "subprocess.run with shell=True",
    "from subprocess import Popen\nPopen(cmd, shell=flag)": "subprocess.Popen with shell=flag",
    "import os\nos.system(cmd)": "os.system",
    "load_dataset(name, trust_remote_code=True)": "load_dataset with trust_remote_code",
}
GOOD = ["import torch\ntorch.load(f, weights_only=True)", "import numpy as np\nnp.load(f, allow_pickle=False)",
        "import yaml\nyaml.load(s, Loader=yaml.SafeLoader)", "import yaml\nyaml.safe_load(s)",
        "import subprocess\nsubprocess.run(['ls'], check=True)", "model.eval()", "import ast\nast.literal_eval(s)"]


@pytest.mark.parametrize("snippet", BAD, ids=list(BAD))
def test_the_scan_catches_each_unsafe_form(snippet):
    """Every form above is found, however it is imported or aliased (a string scan misses most)."""
    found = violations(snippet)
    assert any(BAD[snippet] in v for v in found), found


def test_the_scan_passes_the_safe_forms_and_sees_the_package_calls():
    assert [v for s in GOOD for v in violations(s)] == []
    calls = set()
    for path in SOURCES:
        tree = ast.parse(path.read_text())
        aliases = _aliases(tree)
        calls |= {_dotted(c.func, aliases) for c in ast.walk(tree) if isinstance(c, ast.Call)}
    assert {"numpy.load", "yaml.safe_load", "subprocess.run"} <= calls  # the package's own calls resolve


def test_atomic_outputs_get_the_permissions_open_would_give(tmp_path):
    """mkstemp / mkdtemp make owner-only temporaries; the outputs they become must not stay so."""
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


# --------------------------------------------------------------------------- a hostile sdist

def _hostile_sdist(folder: Path, marker: Path) -> Path:
    """hostile-1.0.tar.gz: its in-tree build backend (no build requirements, so pip runs it
    offline) and its setup.py write `marker` the moment either is imported; the backend then
    gives valid metadata, so `pip download` succeeds as with a real package."""
    payload = f"open({str(marker)!r}, 'w').write('built')\n"
    backend = payload + ("import os\n"
                         "def get_requires_for_build_wheel(config_settings=None):\n    return []\n"
                         "def prepare_metadata_for_build_wheel(directory, config_settings=None):\n"
                         "    os.mkdir(os.path.join(directory, 'hostile-1.0.dist-info'))\n"
                         "    with open(os.path.join(directory, 'hostile-1.0.dist-info', 'METADATA'), 'w') as f:\n"
                         "        f.write('Metadata-Version: 2.1\\nName: hostile\\nVersion: 1.0\\n')\n"
                         "    return 'hostile-1.0.dist-info'\n")
    files = {"pyproject.toml": '[build-system]\nrequires = []\nbuild-backend = "backend"\nbackend-path = ["."]\n',
             "backend.py": backend, "setup.py": payload,
             "PKG-INFO": "Metadata-Version: 2.1\nName: hostile\nVersion: 1.0\n"}
    path = folder / "hostile-1.0.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for name, text in files.items():
            info = tarfile.TarInfo(f"hostile-1.0/{name}")
            info.size = len(text.encode())
            tar.addfile(info, io.BytesIO(text.encode()))
    return path


@pytest.fixture
def hostile_index(tmp_path, monkeypatch):
    """A PEP 503 index on 127.0.0.1 serving only hostile-1.0.tar.gz, set as pip's only index
    (PIP_* variables, which `pip download` and fetch both read); stopped when the test ends."""
    marker = tmp_path / "marker"
    root = tmp_path / "index"
    (root / "files").mkdir(parents=True)
    sdist = _hostile_sdist(root / "files", marker)
    digest = hashlib.sha256(sdist.read_bytes()).hexdigest()
    (root / "simple" / "hostile").mkdir(parents=True)
    (root / "simple" / "hostile" / "index.html").write_text(
        f'<html><body><a href="../../files/{sdist.name}#sha256={digest}">{sdist.name}</a></body></html>')
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        monkeypatch.setenv("PIP_INDEX_URL", f"http://127.0.0.1:{server.server_address[1]}/simple/")
        for var in ("PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS"):
            monkeypatch.setenv(var, "")
        monkeypatch.setenv("PIP_NO_CACHE_DIR", "1")
        yield marker, digest
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def _sdist_manifest(folder: Path, sha: str):
    spec = {"registry": "pypi-sdist", "package": "hostile", "version": "1.0", "file": "hostile-1.0.tar.gz",
            "sha256": sha, "licence": "none", "parsers": {}}
    (folder / "sources.yaml").write_text(yaml.safe_dump({"hostile": spec}))
    return load_sources(folder / "sources.yaml")


@pytest.mark.parametrize("allow_missing", [False, True])
def test_a_hostile_sdist_with_the_wrong_hash_is_refused_without_running(tmp_path, hostile_index, allow_missing):
    """The mismatch stops fetch even with allow_missing, names both hashes and says nothing ran;
    and the package's build code never ran (`pip download` would have built its metadata first)."""
    marker, digest = hostile_index
    sources = _sdist_manifest(tmp_path, "0" * 64)
    try:
        fetch(sources, ["hostile"], tmp_path / "raw", allow_missing=allow_missing)
        error = None
    except ChecksumError as e:
        error = e
    assert not marker.exists(), "the sdist's build code ran during fetch"
    assert error is not None, "a checksum mismatch must stop fetch, whatever allow_missing says"
    msg = str(error)
    assert "hostile: checksum mismatch for hostile-1.0.tar.gz" in msg and "0" * 64 in msg and digest in msg
    assert "nothing was unpacked, built or run" in msg and "127.0.0.1" in msg and "Install" not in msg
    assert not list((tmp_path / "raw").iterdir())


def test_a_hostile_sdist_with_the_right_hash_is_fetched_but_never_built(tmp_path, hostile_index):
    marker, digest = hostile_index
    sources = _sdist_manifest(tmp_path, digest)
    assert fetch(sources, ["hostile"], tmp_path / "raw", allow_missing=False) == []
    assert not marker.exists(), "the sdist's build code ran during fetch"
    assert hashlib.sha256((tmp_path / "raw" / "hostile-1.0.tar.gz").read_bytes()).hexdigest() == digest


# --------------------------------------------------------------------------- a hostile job state

def _snapshot(root: Path) -> dict[str, str]:
    """Every entry under root (not following links): its kind and content hash or link target."""
    out = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            rel = path.relative_to(root).as_posix()
            out[rel] = (f"link:{os.readlink(path)}" if path.is_symlink() else "dir" if path.is_dir()
                        else hashlib.sha256(path.read_bytes()).hexdigest())
    return out


def _merge_workspace(tmp_path: Path) -> Path:
    """A workspace with the project's dvc.yaml, a dvc.lock, a package file and a git hooks folder."""
    root = tmp_path / "work"
    (root / "proxyrank").mkdir(parents=True)
    (root / ".git" / "hooks").mkdir(parents=True)
    (root / "dvc.yaml").write_text((ROOT / "dvc.yaml").read_text())
    (root / "dvc.lock").write_text(yaml.safe_dump({"schema": "2.0", "stages": {"report": {"cmd": "r"}}}))
    (root / "proxyrank" / "__main__.py").write_text("print('the real one')\n")
    return root


def _state(tmp_path: Path, extra: dict[str, str]) -> Path:
    """A job state for recipe@a (its declared output reports/recipes/a.json) plus `extra` files."""
    state = tmp_path / "state"
    entry = {"cmd": "python -m proxyrank recipe a", "outs": [{"path": "reports/recipes/a.json", "md5": "a"}]}
    (state / "reports" / "recipes").mkdir(parents=True)
    (state / "dvc.lock").write_text(yaml.safe_dump({"schema": "2.0", "stages": {"recipe@a": entry}}))
    (state / "reports" / "recipes" / "a.json").write_text("[1]")
    for rel, text in extra.items():
        (state / rel).parent.mkdir(parents=True, exist_ok=True)
        (state / rel).write_text(text)
    return state


@pytest.mark.parametrize("attack", ["package", "git-hook", "nested-lock", "file-link", "folder-link", "stage-name"])
def test_a_hostile_job_state_is_refused_and_nothing_is_written(tmp_path, attack):
    """lock merge copies only the declared `cache: false` outputs of the merged stages; a file
    aimed at the package or .git, a symlink out of the state, or a stage name that climbs out of
    reports/ is refused by name, and the workspace is left exactly as it was."""
    from proxyrank.tools.scale import merge_state

    root = _merge_workspace(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.json").write_text("secret")
    extra = {"package": {"proxyrank/__main__.py": "import os; os.system('id')\n"},
             "git-hook": {".git/hooks/pre-commit": "#!/bin/sh\nid\n"},
             "nested-lock": {"reports/dvc.lock": "stages: {}\n"}}.get(attack, {})
    state = _state(tmp_path, extra)
    offender = {"package": "proxyrank/__main__.py", "git-hook": ".git/hooks/pre-commit",
                "nested-lock": "reports/dvc.lock", "file-link": "reports/recipes/b.json",
                "folder-link": "reports/recipes/c",
                "stage-name": "reports/recipes/../../proxyrank/__main__.json"}[attack]
    if attack == "file-link":
        lock = yaml.safe_load((state / "dvc.lock").read_text())
        lock["stages"]["recipe@b"] = {"cmd": "python -m proxyrank recipe b"}
        (state / "dvc.lock").write_text(yaml.safe_dump(lock))
        (state / offender).symlink_to(outside / "secret.json")
    elif attack == "folder-link":
        (state / offender).symlink_to(outside, target_is_directory=True)
    elif attack == "stage-name":
        lock = yaml.safe_load((state / "dvc.lock").read_text())
        lock["stages"]["recipe@../../proxyrank/__main__"] = {"cmd": "x"}
        (state / "dvc.lock").write_text(yaml.safe_dump(lock))
        (state / "proxyrank").mkdir()
        (state / "proxyrank" / "__main__.json").write_text("{}")
    before = _snapshot(root)
    with pytest.raises(ParamsError) as e:
        merge_state([state], root)
    assert offender in str(e.value)
    assert _snapshot(root) == before
    assert (outside / "secret.json").read_text() == "secret"


def test_a_symlink_in_the_workspace_is_not_written_through(tmp_path):
    """reports/ pointing elsewhere would carry the merged file out of the workspace: refused."""
    from proxyrank.tools.scale import merge_state

    root = _merge_workspace(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "reports").symlink_to(outside, target_is_directory=True)
    state = _state(tmp_path, {})
    before = _snapshot(root)
    with pytest.raises(ParamsError, match="reports: a symlink in this workspace"):
        merge_state([state], root)
    assert _snapshot(root) == before and not list(outside.iterdir())
