"""Shared fixtures: a small local corpus of real text (this Python's own stdlib) in jsonl form."""
from __future__ import annotations

import ast
import gzip
import json
import os
import sysconfig
from pathlib import Path

import pytest
import yaml

from proxyrank.files import sha256

ROOT = Path(__file__).resolve().parents[1]


def pytest_configure(config):
    """`make test` runs two pytest-xdist workers on two cores: each one's torch gets one thread (torch
    reads OMP_NUM_THREADS when first imported; two 2-thread torch processes side by side thrash)."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        os.environ.setdefault("OMP_NUM_THREADS", "1")


def pytest_collection_modifyitems(items):
    """tests/test_pipeline.py first: it builds the shared smoke study (tests/studies.py). `make test`
    hands out whole files (`--dist loadfile`) in this order (`--no-loadscope-reorder`): that file
    on one worker, the unit tests on the other, and last the other files that start from the smoke
    study, which is built by the time a worker gets to them (either worker then takes them).
    (`--dist loadgroup` would group finer, but pytest-xdist 3.8 cannot rename pytest 9.2's node ids.)"""
    e2e_files = {item.path for item in items if item.get_closest_marker("e2e")}  # a file goes whole

    def order(item) -> int:
        if item.path.name == "test_pipeline.py":
            return 0
        return 2 if item.path in e2e_files else 1
    items.sort(key=order)


@pytest.fixture(scope="session")
def smoke_study(tmp_path_factory, local_corpus) -> Path:
    """The session's smoke study, built once for every worker: read it, never change it."""
    from studies import shared_smoke_study
    return shared_smoke_study(tmp_path_factory, local_corpus)


@pytest.fixture
def study(smoke_study, tmp_path) -> Path:
    """A private copy of the smoke study, to change at will."""
    from studies import copy_study
    return copy_study(smoke_study, tmp_path / "study")


def _stdlib_files(limit: int) -> list[Path]:
    return sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py"))[:limit]


def _corpus_docs() -> dict[str, list[dict]]:
    """Three domains of real English and code from the running Python, no network needed."""
    from pydoc_data.topics import topics

    code, docstrings = [], []
    for path in _stdlib_files(120):
        text = path.read_text(errors="replace")
        code.append({"id": path.stem, "text": text})
        try:
            tree = ast.parse(text)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.Module)):
                doc = ast.get_docstring(node)
                if doc and len(doc) > 80:
                    name = getattr(node, "name", "module")
                    docstrings.append({"id": f"{path.stem}.{name}.{len(docstrings)}", "text": doc,
                                       "group": path.stem})
    techdocs = [{"id": k, "text": v} for k, v in sorted(topics.items())]
    return {"code": code, "techdocs": techdocs, "wiki": docstrings}


def write_local_corpus(folder: Path) -> Path:
    """jsonl.gz archives plus a sources manifest (local registry, real SHA-256s); returns its path."""
    folder.mkdir(parents=True, exist_ok=True)
    manifest = {}
    for domain, docs in _corpus_docs().items():
        archive = folder / f"{domain}.jsonl.gz"
        with gzip.GzipFile(archive, "wb", mtime=0) as f:
            f.write("".join(json.dumps(d) + "\n" for d in docs).encode())
        manifest[f"local-{domain}"] = {"registry": "local", "path": archive.name, "file": archive.name,
                                       "sha256": sha256(archive), "licence": "PSF-2.0",
                                       "parsers": {"jsonl": domain}}
    path = folder / "sources.yaml"
    path.write_text(yaml.safe_dump(manifest))
    return path


def smoke_params(manifest: Path) -> dict:
    """The smoke profile pointed at the local corpus."""
    from proxyrank.config import read_params

    params = read_params(ROOT / "profiles" / "smoke.yaml")  # params.yaml with the profile's overrides
    params["corpus"] = {"sources": [f"local-{d}" for d in ("code", "techdocs", "wiki")],
                        "manifest": str(manifest), "allow_missing": False}
    params["split"] = {"valid_domains": ["code", "techdocs", "wiki"], "valid_chars": 20000}
    params["crawl"]["domains"] = ["code", "techdocs", "wiki"]
    return params


@pytest.fixture(scope="session")
def local_corpus(tmp_path_factory) -> Path:
    return write_local_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture
def params_dict(local_corpus) -> dict:
    return smoke_params(local_corpus)


SSHD = Path("/usr/sbin/sshd")


@pytest.fixture(scope="session")
def ssh_server(tmp_path_factory):
    """A real OpenSSH server on 127.0.0.1 (Debian's openssh-server; .ci/run installs it), with a
    throwaway host key, a client key and a HOME whose known_hosts pins the host key."""
    import getpass
    import shutil
    import socket
    import subprocess
    import time

    if not SSHD.exists():
        if os.environ.get("PROXYRANK_REQUIRE_SSH"):
            pytest.fail("sshd is missing: apt-get install openssh-server")
        pytest.skip("MISSING: no /usr/sbin/sshd, the SSH remote is untested here (apt-get install openssh-server)")
    d = tmp_path_factory.mktemp("ssh")
    for name in ("host", "client"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / name)], check=True)
    shutil.copy(d / "client.pub", d / "authorized_keys")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (d / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {d / 'host'}\nPidFile {d / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {d / 'authorized_keys'}\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        f"PubkeyAuthentication yes\nPermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\n"
        f"Subsystem sftp internal-sftp\n")
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation directory
    home = d / "home"
    (home / ".ssh").mkdir(parents=True)
    host_key = (d / "host.pub").read_text().split()
    (home / ".ssh" / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_key[0]} {host_key[1]}\n")
    proc = subprocess.Popen([str(SSHD), "-D", "-e", "-f", str(d / "sshd_config")],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"sshd did not start: {proc.stdout.read().decode(errors='replace')}")
            time.sleep(0.1)
    yield {"url": f"ssh://{getpass.getuser()}@127.0.0.1:{port}", "keyfile": str(d / "client"), "home": str(home)}
    proc.terminate()
    proc.wait(timeout=10)
