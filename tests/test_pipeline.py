"""End to end: `dvc repro` of the smoke profile on a local corpus, in a temporary copy of the repo."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import ROOT, smoke_params
from pictures import assert_picture

pytestmark = pytest.mark.e2e
COPY = ["proxyrank", "stages", "dvc.yaml", ".dvc/config", ".dvc/plots_page.html", ".dvcignore", ".gitignore", "reports/ladder.csv"]


def _sh(cmd: list[str], cwd: Path, check: bool = True, home: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
           "DVC_NO_ANALYTICS": "1", "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t", **({"HOME": home} if home else {})}
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def _commit(folder: Path, message: str) -> None:
    _sh(["git", "add", "-A"], folder)
    _sh(["git", "commit", "-qm", message], folder)


def make_study(folder: Path, params: dict) -> Path:
    """A fresh git + DVC checkout of the project's pipeline with `params` as params.yaml."""
    folder.mkdir(parents=True)
    for name in COPY:
        src, dst = ROOT / name, folder / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst)  # with the .pyc files `make test` compiled (PYTHONDONTWRITEBYTECODE)
        else:
            shutil.copy(src, dst)
    (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    _sh(["git", "init", "-q"], folder)
    _commit(folder, "study")
    return folder


def _results(folder: Path) -> list[Path]:
    """What two runs of one study must agree on byte for byte: dvc.lock (every output's hash) and reports/."""
    return [folder / "dvc.lock", *sorted(p for p in (folder / "reports").rglob("*") if p.is_file())]


@pytest.fixture(scope="module")
def study(tmp_path_factory, local_corpus) -> Path:
    folder = make_study(tmp_path_factory.mktemp("e2e") / "study", smoke_params(local_corpus))
    _sh(["dvc", "repro"], folder)
    return folder


def test_repro_produces_reports(study):
    metrics = json.loads((study / "reports" / "metrics.json").read_text())
    assert metrics["n_recipes"] == 6 and metrics["n_pairs"] == 15
    assert set(metrics) >= {"gpt2", "opt"}
    assert -1 <= metrics["gpt2"]["spearman_standard"] <= 1
    runs = pd.read_csv(study / "reports" / "runs.csv")
    assert len(runs) == 6 * (3 + 2 + 2)
    assert set(runs.role) == {"proxy", "reference"} and runs.loss_mean.notna().all()
    assert {"loss_code", "loss_techdocs", "loss_wiki"} <= set(runs.columns)
    report = (study / "reports" / "report.md").read_text()
    assert "## Headline" in report and "figures/spearman_vs_lr.png" in report
    assert "### The web-like crawl" in report and "| corpus-dclm | corpus | crawl |" in report
    pngs = list((study / "reports" / "figures").glob("*.png"))
    assert len(pngs) >= 8
    for png in pngs:
        assert_picture(png)
    for name in ("mix-natural", "corpus-c4", "corpus-dclm", "quality-head", "dedup-aggressive"):
        m = json.loads((study / "reports" / "recipes" / f"{name}.json").read_text())
        assert m["tokens"] == 40960, name
    dclm = json.loads((study / "reports" / "recipes" / "corpus-dclm.json").read_text())
    assert dclm["removed"]["dclm_classifier"]["docs"] > 0 and "gopher_dup_line_frac" in dclm["removed"]
    assert json.loads((study / "reports" / "curate.json").read_text())["classifier_heldout_accuracy"] > 0.5
    # beyond the paper: the zero-training proxy, the theorem simulated, the frontier
    aligned = pd.read_csv(study / "reports" / "alignment.csv")
    assert len(aligned) == 6 * 2 * 2 and set(aligned.state) == {"init", "warm"}  # recipes x families x states
    assert len(json.loads((study / "reports" / "theory.json").read_text())) == 2  # the smoke profile's worlds
    assert {"frontier_tokens", "alignment_spearman_init", "alignment_spearman_warm"} <= set(metrics["gpt2"])
    for section in ("## Compute-reliability frontier", "## Zero-training proxy", "## The theorem, simulated"):
        assert section in report


def test_the_tuned_references_load_with_from_pretrained(study):
    """data/models/<recipe> is the tuned reference (best seed-mean LR, as the analysis picks it), loadable
    by transformers alone: its validation loss is the one the references stage recorded, bit for bit."""
    import contextlib

    import numpy as np
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from proxyrank.data import tokens
    from proxyrank.training.loop import evaluate

    runs = pd.read_csv(study / "reports" / "runs.csv")
    ref = runs[runs.role == "reference"]
    tuned = ref.groupby(["recipe", "lr"]).loss_mean.mean().groupby("recipe").idxmin()
    exported = json.loads((study / "data" / "models" / "export.json").read_text())
    assert {r["recipe"]: r["lr"] for r in exported} == {recipe: lr for recipe, lr in tuned}
    row = exported[0]
    folder = study / "data" / "models" / row["recipe"]
    model, tok = AutoModelForCausalLM.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)
    text = "def main():\n    return 0  # The quick brown fox"
    assert tok(text)["input_ids"] == tokens.load(study / "data" / "tokenizer").encode(text).ids
    params = yaml.safe_load((study / "params.yaml").read_text())
    valid = {d: np.load(study / "data" / "tokens" / "valid" / f"{d}.npy") for d in params["split"]["valid_domains"]}
    losses = evaluate(model, valid, params["train"]["seq_len"], params["train"]["batch_size"] * 4,
                      torch.device("cpu"), contextlib.nullcontext)
    record = json.loads((study / "data" / "runs" / "references" / row["recipe"] / f"{row['run_id']}.json").read_text())
    assert float(np.mean(list(losses.values()))) == record["loss_mean"] == row["loss_mean"]


def test_a_recipe_added_in_params_builds_without_code_changes(study, tmp_path):
    """Only the new recipe's stages (and the summaries) are out of date; then it is in the results.
    A teammate who declares the same recipe in a clone of the commit before it restores its proxies
    and reference from the run-cache shared through a DVC remote, and trains nothing."""
    params = yaml.safe_load((study / "params.yaml").read_text())
    _sh(["dvc", "remote", "add", "team", str(tmp_path / "team")], study)  # in .dvc/config: every commit has it
    _commit(study, "before mine")
    try:
        added = json.loads(json.dumps(params))
        added["recipes"]["mine"] = {"group": "quality", "source": "crawl", "dedup": "minhash",
                                    "buckets": {"middle": 2, "tail": 1}}
        (study / "params.yaml").write_text(yaml.safe_dump(added, sort_keys=False))
        status = _sh(["dvc", "status"], study).stdout
        assert "recipe@mine" in status and "proxies@mine" in status
        assert "recipe@mix-natural" not in status and "proxies@corpus-c4" not in status
        _sh(["dvc", "repro", "collect"], study)
        m = json.loads((study / "reports" / "recipes" / "mine.json").read_text())
        assert m["shares"] == {"middle": 0.6667, "tail": 0.3333} and m["tokens"] == 40960
        assert "mine" in set(pd.read_csv(study / "reports" / "runs.csv").recipe)

        _commit(study, "mine")
        _sh(["dvc", "push", "-r", "team", "--run-cache"], study)  # the tree holds every output of both commits
        mate = tmp_path / "mate"
        _sh(["git", "clone", "-q", str(study), str(mate)], tmp_path)
        _sh(["git", "checkout", "-q", "HEAD~1"], mate)
        _sh(["dvc", "pull", "-r", "team", "--run-cache"], mate)
        # the run-cache records name directory outputs that `pull --run-cache` leaves behind
        # (DVC 3.67); the committed history's outputs bring them
        _sh(["dvc", "fetch", "-r", "team", "--all-commits"], mate)
        (mate / "params.yaml").write_text(yaml.safe_dump(added, sort_keys=False))
        out = _sh(["dvc", "repro", "collect"], mate).stdout
        for stage in ("proxies@mine", "references@mine"):
            assert f"Stage '{stage}' is cached - skipping run" in out, out[-2000:]
        assert " to train" not in out, out[-2000:]
        assert (mate / "reports" / "runs.csv").read_bytes() == (study / "reports" / "runs.csv").read_bytes()
    finally:  # removing a recipe: drop it from params and delete its outputs (README)
        (study / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        for out in ("data/recipes/mine", "data/runs/proxies/mine", "data/runs/references/mine"):
            shutil.rmtree(study / out, ignore_errors=True)
        (study / "reports" / "recipes" / "mine.json").unlink(missing_ok=True)
        _sh(["dvc", "repro"], study)


def test_second_repro_does_nothing(study):
    status = _sh(["dvc", "status"], study).stdout
    assert "up to date" in status
    again = _sh(["dvc", "repro"], study).stdout
    assert "Running stage" not in again


def test_bad_params_stop_cleanly_and_lose_nothing(study):
    before = (study / "reports" / "metrics.json").read_bytes()
    params = yaml.safe_load((study / "params.yaml").read_text())
    try:
        bad = json.loads(json.dumps(params))
        bad["proxies"][0]["lrs"] = [3e-3, 0.0, 1e-5]
        (study / "params.yaml").write_text(yaml.safe_dump(bad, sort_keys=False))
        proc = _sh(["dvc", "repro"], study, check=False)
        assert proc.returncode != 0
        assert "proxies[0].lrs[1]: must be > 0" in proc.stdout + proc.stderr
        bad = json.loads(json.dumps(params))
        bad["recipes"]["mix-uniform"]["weights"] = "unifrom"
        (study / "params.yaml").write_text(yaml.safe_dump(bad, sort_keys=False))
        proc = _sh(["dvc", "repro"], study, check=False)
        assert "recipes.mix-uniform.weights: 'unifrom' is not allowed" in proc.stdout + proc.stderr
    finally:
        (study / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    proc = _sh([sys.executable, "-m", "stages.proxies", "no-such-recipe"], study, check=False)
    assert proc.returncode == 2 and "unknown recipe 'no-such-recipe'; declared: mix-natural" in proc.stderr
    assert not list(study.glob("reports/**/*.tmp")) and not list(study.glob("data/**/.*.tmp"))
    # DVC removes a stage's outputs before running it; with the params fixed, the next repro
    # takes them back from the run-cache or the resume store instead of training again.
    again = _sh(["dvc", "repro"], study).stdout
    assert " to train " not in again.replace(" 0 to train ", "")
    assert (study / "reports" / "metrics.json").read_bytes() == before
    assert "up to date" in _sh(["dvc", "status"], study).stdout


def test_results_travel_through_a_remote_to_a_fresh_clone(study, tmp_path):
    """Push to a local-folder remote, clone, pull: the clone is complete and reruns nothing."""
    _sh(["dvc", "remote", "add", "-d", "shared", str(tmp_path / "remote")], study)
    _commit(study, "results")
    _sh(["dvc", "push", "--run-cache"], study)
    clone = tmp_path / "clone"
    _sh(["git", "clone", "-q", str(study), str(clone)], tmp_path)
    _sh(["dvc", "pull"], clone)
    assert "up to date" in _sh(["dvc", "status"], clone).stdout
    assert "Running stage" not in _sh(["dvc", "repro"], clone).stdout
    for name in ("metrics.json", "runs.csv", "report.md"):
        assert (clone / "reports" / name).read_bytes() == (study / "reports" / name).read_bytes()
    assert (clone / "data" / "recipes" / "mix-natural" / "train.npy").read_bytes() == \
        (study / "data" / "recipes" / "mix-natural" / "train.npy").read_bytes()


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
    shutil.rmtree(other / "data" / ".resume")
    shutil.rmtree(other / "data" / "timings", ignore_errors=True)
    stage = "proxies@corpus-dclm"
    _killed_at("train.run", ["dvc", "repro", "-f", "-s", stage], other, timeout=300)
    assert list((other / "data" / ".resume").glob("*.json")), "killed before the first run's record"
    assert not (other / "data" / "runs" / "proxies" / "corpus-dclm").exists()
    out = _sh(["dvc", "repro", "-f", "-s", stage], other).stdout  # forced: not from the run-cache
    assert re.search(r" runs, [1-9][0-9]* resumed, ", out), out[-3000:]  # the killed stage's finished run
    assert "up to date" in _sh(["dvc", "status"], other).stdout  # the same output hash: nothing downstream
    assert not list(other.glob("**/.*.tmp"))
    names = sorted({p.relative_to(root).as_posix() for root in (study, other) for p in _results(root)})
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
    target = other / "data" / "recipes" / "corpus-c4" / "train.npy"
    good = target.read_bytes()
    target.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
    assert "recipe@corpus-c4" in _sh(["dvc", "status"], other).stdout
    _sh(["dvc", "repro"], other)
    assert target.read_bytes() == good
    lock = yaml.safe_load((other / "dvc.lock").read_text())
    md5 = next(o["md5"] for o in lock["stages"]["crawl"]["outs"] if o["path"] == "data/crawl.parquet")
    obj = other / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]
    obj.chmod(0o644)
    obj.write_bytes(b"not the crawl")
    (other / "data" / "crawl.parquet").unlink()
    _sh(["dvc", "checkout"], other, check=False)
    assert "crawl" in _sh(["dvc", "status"], other).stdout  # the corrupt copy is not taken as valid
    _sh(["dvc", "repro"], other)
    assert (other / "data" / "crawl.parquet").read_bytes() == (study / "data" / "crawl.parquet").read_bytes()
    assert (other / "reports" / "metrics.json").read_bytes() == (study / "reports" / "metrics.json").read_bytes()


def test_ssh_remote_carries_results_and_run_cache_to_a_fresh_clone(study, ssh_server, tmp_path):
    """Push results and run-cache over SSH (a real OpenSSH server), clone, pull: the clone is up to
    date with the study's metrics (restoring a changed-back recipe from a pulled run-cache: the
    recipe test above); a remote that does not answer is an error, not a silent success."""
    home = ssh_server["home"]
    _sh(["dvc", "remote", "add", "sshr", f"{ssh_server['url']}{tmp_path / 'ssh-remote'}"], study)
    _sh(["dvc", "remote", "modify", "--local", "sshr", "keyfile", ssh_server["keyfile"]], study)
    _commit(study, "ssh remote")
    _sh(["dvc", "push", "-r", "sshr", "--run-cache"], study, home=home)
    clone = tmp_path / "clone"
    _sh(["git", "clone", "-q", str(study), str(clone)], tmp_path)
    _sh(["dvc", "remote", "modify", "--local", "sshr", "keyfile", ssh_server["keyfile"]], clone)
    _sh(["dvc", "pull", "-r", "sshr", "--run-cache"], clone, home=home)
    assert "up to date" in _sh(["dvc", "status"], clone).stdout
    assert (clone / "reports" / "metrics.json").read_bytes() == (study / "reports" / "metrics.json").read_bytes()
    assert list((clone / ".dvc" / "cache" / "runs").rglob("*")), "no run-cache entry came over SSH"

    dead = ssh_server["url"].rsplit(":", 1)[0] + ":1"  # nothing listens on port 1
    _sh(["dvc", "remote", "add", "dead", f"{dead}{tmp_path}/x"], study)
    proc = _sh(["dvc", "push", "-r", "dead"], study, check=False, home=home)
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
    _sh(["dvc", "repro"], other)  # DVC may restore the stage from its run-cache: no code of ours runs
    left = [str(p.relative_to(other)) for p in [*other.glob("data/**/.*.tmp"), *other.glob("data/**/.*.old-*")]]
    if left:  # a killed write's leftovers are outside every hash (.dvcignore), and go when the stage reruns
        ignored = _sh(["dvc", "check-ignore", *left], other).stdout.split()
        assert sorted(ignored) == sorted(left), (left, ignored)
        assert not [p for p in left if ".old-" in p and not p.endswith(".tmp")], left  # nothing to restore
    # every stage's hashes as in the study (whose lock may still list a recipe an earlier test removed)
    lock = yaml.safe_load((other / "dvc.lock").read_text())["stages"]
    expected = yaml.safe_load((study / "dvc.lock").read_text())["stages"]
    assert lock == {name: expected[name] for name in lock} and stage in lock
    assert (other / "reports" / "metrics.json").read_bytes() == (study / "reports" / "metrics.json").read_bytes()
