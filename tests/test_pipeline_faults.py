"""End to end, when things go wrong: kill -9 in a training or a data stage, a corrupted output or
cache file, an SSH remote (and a dead one). Each test works on its own copy of the session's smoke
study (tests/studies.py); this file runs after the unit tests, when the study is built."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from studies import commit, results, sh

pytestmark = pytest.mark.e2e


def _killed_at(point: str, cmd: list[str], cwd: Path, timeout: float) -> None:
    """Run `cmd` with PROXYRANK_KILL_AT=point: at that named point the stage sends SIGKILL to its
    process group, DVC included (files.kill_point). Fails if the command got past the point."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
           "PROXYRANK_KILL_AT": point}
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, start_new_session=True, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        out = proc.communicate(timeout=timeout)[0]
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # its own session: the group id is its PID
        proc.communicate()
        raise AssertionError(f"{' '.join(cmd)}: {point} not reached in {timeout} s") from None
    killed = proc.returncode == -signal.SIGKILL or "exited with -9" in out or "exited with 137" in out
    assert killed, f"{' '.join(cmd)} was not killed at {point} (exit {proc.returncode}):\n{out[-3000:]}"


def _lock_stages_differing(a: Path, b: Path) -> str:
    la, lb = (yaml.safe_load((x / "dvc.lock").read_text())["stages"] for x in (a, b))
    changed = sorted(k for k in la.keys() | lb.keys() if la.get(k) != lb.get(k))
    return f"stages whose entries differ: {changed}" if changed else "the same entries in another order"


def test_killed_training_resumes_to_bit_identical_results(study, tmp_path):
    """A training stage killed (-9, DVC included) right after its first run finished, then rerun
    (forced, so not from DVC's run-cache), resumes that run from its record, trains the rest in fresh processes,
    and ends with the same dvc.lock (every output's hash) and reports/ as the uninterrupted study:
    runs are deterministic, resume exactly, and no output holds a wall time (those go to
    data/timings/, which no output includes). A copy of the study with no resume records stands in
    for a second study from scratch (the data stages' reruns: the kill -9 tests below)."""
    other = tmp_path / "copy"
    shutil.copytree(study, other, symlinks=True)
    shutil.rmtree(other / "data" / ".resume", ignore_errors=True)  # (the study trained in its array tasks' clones)
    shutil.rmtree(other / "data" / "timings", ignore_errors=True)
    stage = "proxies@corpus-dclm"
    _killed_at("train.run", ["dvc", "repro", "-f", "-s", stage], other, timeout=300)
    assert list((other / "data" / ".resume").glob("*.json")), "killed before the first run's record"
    assert not (other / "data" / "runs" / "proxies" / "corpus-dclm").exists()
    out = sh(["dvc", "repro", "-f", "-s", stage], other).stdout  # forced: not from the run-cache
    assert re.search(r" runs, [1-9][0-9]* resumed, ", out), out[-3000:]  # the killed stage's finished run
    assert "up to date" in sh(["dvc", "status"], other).stdout  # the same output hash: nothing downstream
    assert not list(other.glob("**/.*.tmp"))
    names = sorted({p.relative_to(root).as_posix() for root in (study, other) for p in results(root)})
    differ = [n for n in names if not ((study / n).is_file() and (other / n).is_file()
                                       and (study / n).read_bytes() == (other / n).read_bytes())]
    assert not differ, (f"differ between the study and the killed-and-resumed copy (or exist in one only): "
                        f"{differ}" + (f"; dvc.lock: {_lock_stages_differing(study, other)}"
                                       if "dvc.lock" in differ else ""))
    # the wall times are kept, apart: a line per training run that wrote a resume record
    lines = [json.loads(line) for path in (other / "data" / "timings").glob("*.jsonl")
             for line in path.read_text().splitlines()]
    timed = {r["fingerprint"] for r in lines if r.get("kind") == "run"}
    assert {p.stem for p in (other / "data" / ".resume").glob("*.json")} <= timed
    assert any(r.get("kind") == "stage" and r.get("stage") == stage for r in lines)  # and each stage's


def test_a_corrupted_output_or_cache_file_is_detected_and_rebuilt(study, tmp_path):
    """DVC re-hashes outputs against dvc.lock: a flipped byte in the workspace, or a cache object
    that no longer matches its hash, shows in `dvc status` and `dvc repro` rebuilds the stage."""
    other = tmp_path / "copy"
    shutil.copytree(study, other, symlinks=True)
    target = other / "data" / "recipes" / "quality-head" / "train.npy"
    good = target.read_bytes()
    target.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
    assert "recipe@quality-head" in sh(["dvc", "status"], other).stdout
    sh(["dvc", "repro"], other)
    assert target.read_bytes() == good
    lock = yaml.safe_load((other / "dvc.lock").read_text())
    md5 = next(o["md5"] for o in lock["stages"]["crawl"]["outs"] if o["path"] == "data/crawl.parquet")
    obj = other / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]
    obj.chmod(0o644)
    obj.write_bytes(b"not the crawl")
    (other / "data" / "crawl.parquet").unlink()
    sh(["dvc", "checkout"], other, check=False)
    assert "crawl" in sh(["dvc", "status"], other).stdout  # the corrupt copy is not taken as valid
    sh(["dvc", "repro"], other)
    assert (other / "data" / "crawl.parquet").read_bytes() == (study / "data" / "crawl.parquet").read_bytes()
    assert (other / "reports" / "metrics.json").read_bytes() == (study / "reports" / "metrics.json").read_bytes()


def test_ssh_remote_carries_results_and_run_cache_to_a_fresh_clone(study, ssh_server, tmp_path):
    """Push results and run-cache over SSH (a real OpenSSH server), clone, pull: the clone is up to
    date with the study's metrics (restoring a changed-back recipe from a pulled run-cache:
    tests/test_pipeline.py); a remote that does not answer is an error, not a silent success."""
    home = ssh_server["home"]
    sh(["dvc", "remote", "add", "sshr", f"{ssh_server['url']}{tmp_path / 'ssh-remote'}"], study)
    sh(["dvc", "remote", "modify", "--local", "sshr", "keyfile", ssh_server["keyfile"]], study)
    commit(study, "ssh remote")
    sh(["dvc", "push", "-r", "sshr", "--run-cache"], study, home=home)
    clone = tmp_path / "clone"
    sh(["git", "clone", "-q", str(study), str(clone)], tmp_path)
    sh(["dvc", "remote", "modify", "--local", "sshr", "keyfile", ssh_server["keyfile"]], clone)
    sh(["dvc", "pull", "-r", "sshr", "--run-cache"], clone, home=home)
    assert "up to date" in sh(["dvc", "status"], clone).stdout
    assert (clone / "reports" / "metrics.json").read_bytes() == (study / "reports" / "metrics.json").read_bytes()
    assert list((clone / ".dvc" / "cache" / "runs").rglob("*")), "no run-cache entry came over SSH"

    dead = ssh_server["url"].rsplit(":", 1)[0] + ":1"  # nothing listens on port 1
    sh(["dvc", "remote", "add", "dead", f"{dead}{tmp_path}/x"], study)
    proc = sh(["dvc", "push", "-r", "dead"], study, check=False, home=home)
    assert proc.returncode != 0 and "ERROR" in proc.stderr + proc.stdout


@pytest.mark.parametrize("stage,point,output", [  # each way a data stage writes (curate and tokens
    ("extract", "atomic_path.replaced", "data/docs"),  # write through atomic_dir too: tests/test_files.py)
    ("recipe@corpus-dclm", "atomic_dir.moved_aside", "data/recipes/corpus-dclm"),  # between its two renames
])
def test_kill_9_in_a_data_stage_then_repro_gives_identical_outputs(study, tmp_path, stage, point, output):
    """kill -9 while a data stage writes (training: see the test above): no half-written output
    survives, and the rerun writes exactly what the uninterrupted study wrote (same hashes in
    dvc.lock, same metrics)."""
    other = tmp_path / "copy"
    shutil.copytree(study, other, symlinks=True)
    _killed_at(point, ["dvc", "repro", "-f", "-s", stage], other, timeout=300)
    out, done = other / output, study / output  # DVC removed the output before the stage ran
    assert not out.exists() or len(list(out.iterdir())) < len(list(done.iterdir())), "killed too late"
    sh(["dvc", "repro"], other)  # DVC may restore the stage from its run-cache: no code of ours runs
    left = [str(p.relative_to(other)) for p in [*other.glob("data/**/.*.tmp"), *other.glob("data/**/.*.old-*")]]
    if left:  # a killed write's leftovers are outside every hash (.dvcignore), and go when the stage reruns
        ignored = sh(["dvc", "check-ignore", *left], other).stdout.split()
        assert sorted(ignored) == sorted(left), (left, ignored)
        assert not [p for p in left if ".old-" in p and not p.endswith(".tmp")], left  # nothing to restore
    # every stage's hashes as in the study
    lock = yaml.safe_load((other / "dvc.lock").read_text())["stages"]
    assert lock == yaml.safe_load((study / "dvc.lock").read_text())["stages"] and stage in lock
    assert (other / "reports" / "metrics.json").read_bytes() == (study / "reports" / "metrics.json").read_bytes()
