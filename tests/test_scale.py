"""Spreading the training stages: dvc.yaml's cut, the shares, the Slurm scripts, and a real
split-then-merge through a local-folder DVC remote (the generated scripts run as Slurm would run them)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import ROOT
from proxyrank.config import parse_params
from proxyrank.errors import ParamsError
from proxyrank.tools.scale import SlurmJob, export_state, merge_state, pipeline, shared_remote, shares, write_slurm
from studies import copy_study, sh

def test_pipeline_is_cut_where_the_per_recipe_stages_begin_and_end():
    pipe = pipeline(ROOT / "dvc.yaml")
    assert pipe.per_recipe == ["recipe", "proxies", "references"]
    assert pipe.upstream == ["code", "fetch", "extract", "split", "tokenizer", "crawl", "curate", "tokens"]
    assert pipe.feeds == ["code", "split", "tokenizer", "crawl", "curate", "tokens"]
    assert pipe.uncached_outputs("recipe@mix-a") == ["reports/recipes/mix-a.json"]
    assert pipe.uncached_outputs("proxies@mix-a") == [] and pipe.uncached_outputs("split") == ["reports/split.json"]
    assert pipe.downstream == ["alignment", "theory", "export", "collect", "metrics", "figures", "report"]
    assert pipe.downstream_inputs(["a", "b"]) == ["data/code", "data/tokenizer", "data/tokens", "data/recipes/a", "data/recipes/b",
                                                  "data/runs/proxies/a", "data/runs/proxies/b",
                                                  "data/runs/references/a", "data/runs/references/b"]
    assert pipe.targets(["a", "b"], ("proxies",)) == ["proxies@a", "proxies@b"]
    assert pipe.command("proxies", "mix-a") == "python -m stages.proxies mix-a"


def test_shares_are_disjoint_and_cover_every_recipe():
    names = [f"r{i}" for i in range(23)]
    parts = shares(names, 4)
    assert sorted(sum(parts, [])) == sorted(names) and [len(s) for s in parts] == [6, 6, 6, 5]
    with pytest.raises(ParamsError, match="24 shares of 23 recipes: use 1 to 23"):
        shares(names, 24)


def test_the_shared_remote_must_travel_with_the_clones(tmp_path):
    (tmp_path / ".dvc").mkdir()
    config = tmp_path / ".dvc" / "config"
    config.write_text("[core]\n    analytics = false\n")
    with pytest.raises(ParamsError, match="no DVC remote"):
        shared_remote(tmp_path, None)
    config.write_text("[core]\n    remote = shared\n['remote \"shared\"']\n    url = ../remote\n")
    with pytest.raises(ParamsError, match="relative path '../remote'"):
        shared_remote(tmp_path, None)
    with pytest.raises(ParamsError, match="'other' is not in .dvc/config"):
        shared_remote(tmp_path, "other")
    config.write_text("[core]\n    remote = shared\n['remote \"shared\"']\n    url = s3://bucket/x\n")
    assert shared_remote(tmp_path, None) == "shared"


def test_slurm_scripts_carry_the_job_options(tmp_path, params_dict):
    """SlurmJob's options reach the scripts: resources in each header, the remote in every push and
    pull, the setup line first, DDP on the array's GPUs; the estimate uses the named GPU and MFU."""
    repo = tmp_path / "repo"
    (repo / ".dvc").mkdir(parents=True)
    (repo / ".dvc" / "config").write_text("[core]\n    remote = shared\n['remote \"shared\"']\n    url = /shared/r\n")
    (repo / "dvc.yaml").write_text((ROOT / "dvc.yaml").read_text())
    (repo / "params.yaml").write_text(yaml.safe_dump(params_dict, sort_keys=False))
    for args in (["init", "-q"], ["add", "."], ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x"]):
        subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)
    p = parse_params(params_dict)
    job = SlurmJob(gpus_per_task=2, ddp_references=True, remote="shared", partition="gpu", account="lab", cpus=4,
                   time_limit="0-01:00:00", workdir="/scratch", setup="module load cuda", mfu=0.5, gpu="A100")
    done = write_slurm(p, tmp_path / "jobs", 2, job, root=repo)
    assert done["files"] == ["finish.sbatch", "prep.sbatch", "submit.sh", "train.sbatch"] and done["remote"] == "shared"
    assert [t["recipes"] for t in done["tasks"]] == shares(list(p.recipes), 2)
    train = (tmp_path / "jobs" / "train.sbatch").read_text()
    for line in ("#SBATCH --time=0-01:00:00", "#SBATCH --cpus-per-task=4", "#SBATCH --gres=gpu:2",
                 "#SBATCH --array=0-1", "#SBATCH --partition=gpu", "#SBATCH --account=lab", "module load cuda",
                 'WORK="/scratch/proxyrank-', "gpus --single-item", "--ddp-references", "dvc pull -r shared",
                 "at MFU 0.5 on A100"):
        assert line in train, line
    prep = (tmp_path / "jobs" / "prep.sbatch").read_text()
    assert "#SBATCH --gres" not in prep and "dvc push --run-cache -r shared" in prep
    default = write_slurm(p, tmp_path / "default", 2, root=repo)
    text = (tmp_path / "default" / "train.sbatch").read_text()
    assert "#SBATCH --cpus-per-task=8" in text and "dvc repro -s" in text and " -r " not in text
    assert [t["hours"] for t in done["tasks"]] != [t["hours"] for t in default["tasks"]]


def _workspace(root: Path, stages: dict, files: dict[str, str]) -> Path:
    """A workspace holding the project's dvc.yaml, a dvc.lock with `stages`, and `files`."""
    root.mkdir(parents=True)
    (root / "dvc.yaml").write_text((ROOT / "dvc.yaml").read_text())
    (root / "dvc.lock").write_text(yaml.safe_dump({"schema": "2.0", "stages": stages}, sort_keys=False))
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def test_lock_export_and_merge_join_jobs_and_refuse_disagreement(tmp_path):
    split = {"cmd": "python -m proxyrank split", "outs": [{"path": "reports/split.json", "md5": "s"}]}
    job = {"cmd": "python -m proxyrank recipe a", "outs": [{"path": "reports/recipes/a.json", "md5": "a"}]}
    other = {"cmd": "python -m proxyrank recipe b", "outs": [{"path": "reports/recipes/b.json", "md5": "b"}]}
    one = _workspace(tmp_path / "one", {"split": split, "recipe@a": job, "proxies@a": {"cmd": "p"}},
                     {"reports/split.json": "{}", "reports/recipes/a.json": "[1]", "data/recipes/a/train.npy": "x"})
    two = _workspace(tmp_path / "two", {"split": split, "recipe@b": other},
                     {"reports/split.json": "{}", "reports/recipes/b.json": "[2]"})
    assert export_state(tmp_path / "state" / "one", one) == 3
    export_state(tmp_path / "state" / "two", two)
    exported = sorted(p.relative_to(tmp_path / "state" / "one").as_posix()
                      for p in (tmp_path / "state" / "one").rglob("*") if p.is_file())
    assert exported == ["dvc.lock", "reports/recipes/a.json", "reports/split.json"]  # cache: false outputs only
    finish = _workspace(tmp_path / "finish", {"report": {"cmd": "r"}}, {})
    assert merge_state([tmp_path / "state" / "one", tmp_path / "state" / "two"], finish) == 4
    lock = yaml.safe_load((finish / "dvc.lock").read_text())
    assert list(lock["stages"]) == ["report", "split", "recipe@a", "proxies@a", "recipe@b"]
    assert (finish / "reports" / "recipes" / "b.json").read_text() == "[2]"
    (two / "reports" / "split.json").write_text('{"x": 1}')
    export_state(tmp_path / "state" / "two", two)
    with pytest.raises(ParamsError, match="reports/split.json: written differently"):
        merge_state([tmp_path / "state" / "one", tmp_path / "state" / "two"], finish)
    (two / "dvc.lock").write_text(yaml.safe_dump({"stages": {"split": {**split, "cmd": "other"}}}))
    export_state(tmp_path / "state" / "two", two)
    with pytest.raises(ParamsError, match="split: recorded differently by two jobs"):
        merge_state([tmp_path / "state" / "one", tmp_path / "state" / "two"], finish)
    with pytest.raises(ParamsError, match="no dvc.lock; did the job"):
        merge_state([tmp_path / "nothing"], finish)
    (one / "reports" / "recipes" / "a.json").unlink()
    with pytest.raises(ParamsError, match="reports/recipes/a.json: output of recipe@a in dvc.lock is missing"):
        export_state(tmp_path / "state" / "again", one)


@pytest.mark.e2e
def test_split_over_array_tasks_then_merge_retrains_nothing_and_a_ladder_rung_reuses_it(smoke_study, tmp_path):
    """The session's smoke study was built this way (tests/studies.py): prep builds the shared
    stages; two array tasks, each in its own clone, train disjoint recipes (two pinned workers
    each, as on a 2-GPU node) and push; finish joins their dvc.lock entries, pulls and runs the
    summaries: nothing is trained there, and after `dvc pull` the repository is complete and up to
    date. Then a ladder rung runs on a copy of it."""
    build = smoke_study.parent / "build"
    refused = (build / "refused.txt").read_text()
    assert refused.startswith("2\n") and "commit these first" in refused and ".dvc/config" in refused
    out = (build / "slurm.txt").read_text()
    task0, task1 = (line.split(": ", 1)[1].split(" (")[0].split() for line in out.splitlines() if line.startswith("task "))
    recipes = list(yaml.safe_load((smoke_study / "params.yaml").read_text())["recipes"])
    assert sorted(task0 + task1) == sorted(recipes) and task0 and task1
    train = (build / "jobs" / "train.sbatch").read_text()
    assert "#SBATCH --array=0-1" in train and "#SBATCH --gres=gpu:2" in train and "#SBATCH --partition=gpu" in train
    for name in ("prep.sbatch", "train.sbatch", "finish.sbatch", "submit.sh"):
        assert subprocess.run(["bash", "-n", str(build / "jobs" / name)]).returncode == 0, name
    logs = [(build / f"task{i}.txt").read_text() for i in (0, 1)]
    for log, mine, theirs in ((logs[0], task0, task1), (logs[1], task1, task0)):
        assert "Running stage 'split'" not in log and "Running stage 'curate'" not in log
        assert all(f"proxies {r}" in log for r in mine) and not any(f"proxies {r}" in log for r in theirs)
    assert not (build / "scratch").exists() or not list((build / "scratch").iterdir())  # each job removed its clone
    finish = (build / "finish.txt").read_text()
    assert "Running stage 'report'" in finish and "train:" not in finish
    assert "Running stage 'proxies@" not in finish and "Running stage 'recipe@" not in finish
    lock = yaml.safe_load((smoke_study / "dvc.lock").read_text())["stages"]
    assert {f"{s}@{r}" for s in ("recipe", "proxies", "references") for r in recipes} | {"split", "report"} <= set(lock)
    study = copy_study(smoke_study, tmp_path / "study")  # the build pulled every output of the joined lock
    assert "up to date" in sh(["dvc", "status"], study).stdout  # as if `dvc repro` had built it
    _ladder_rung_on(study)


def _ladder_rung_on(study: Path) -> None:
    """A rung that changes only the analysis reruns only `metrics` in its own workspace (the training
    comes from the shared cache), its headline joins reports/ladder.csv, and the report shows it;
    a GPU rung on this CPU machine is skipped and named as not measured. (The study is the test's
    own: it is left as the last step made it.)"""
    params = yaml.safe_load((study / "params.yaml").read_text())
    params["ladder"] = {"rungs": {"boot": {"set": {"analysis.n_boot": 60}}, "big": {"gpu": True}}}
    (study / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = sh([sys.executable, "-m", "proxyrank", "ladder"], study).stdout
    assert "ladder big: needs a GPU" in out and "not measured here (no GPU): big" in out
    log = (study / ".dvc" / "tmp" / "ladder" / "boot.log").read_text()
    assert "Running stage 'metrics'" in log and "Running stage 'proxies@" not in log, log[-2000:]
    rows = pd.read_csv(study / "reports" / "ladder.csv").query("rung == 'boot'").set_index("family")
    metrics = json.loads((study / "reports" / "metrics.json").read_text())
    runs = len(params["recipes"]) * sum(len(r["lrs"]) * len(r["seeds"]) for r in [*params["proxies"], params["reference"]])
    assert sorted(rows.index) == sorted(p["family"] for p in params["proxies"]) and (rows.runs == runs).all()
    for proxy in params["proxies"]:  # the point estimates do not depend on n_boot
        fam = proxy["family"]
        assert rows.loc[fam, "spearman_tiny"] == pytest.approx(metrics[fam]["spearman_tiny30"], abs=1e-5)
        assert rows.loc[fam, "proxy_preset"] == proxy["preset"]
    # the wall times stayed in the array tasks' clones: unknown, not guessed (found by fingerprint
    # in a study's own timing files: tests/test_ladder.py)
    assert rows.train_hours.isna().all()
    sh(["dvc", "repro", "report"], study)
    report = (study / "reports" / "report.md").read_text()
    assert "## Scale ladder" in report and "| boot | gpt2 | gpt2-nano" in report and "| boot | opt | opt-nano" in report
    assert "**Only a GPU can settle**" in report
    typo = {"base": "params.yaml", "overrides": {"theroy.steps": 5}}  # a profile with a typo
    (study / "typo.yaml").write_text(yaml.safe_dump(typo, sort_keys=False))
    params["ladder"] = {"rungs": {"typo": {"profile": "typo.yaml"}}}
    (study / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    proc = sh([sys.executable, "-m", "proxyrank", "ladder"], study, check=False)
    assert proc.returncode == 2 and "ladder.rungs.typo.profile: typo.yaml: overrides: theroy.steps: no section " \
        "'theroy' in the params to override (did you mean 'theory'?)" in proc.stderr, proc.stderr


def test_lock_export_and_merge_carry_an_uncached_folder_output(tmp_path):
    """figures' `cache: false` output is a folder: its files travel, and merge accepts files below
    a declared output folder (and only there)."""
    stages = {"figures": {"cmd": "python -m proxyrank figures"}}
    files = {"reports/figures/a.png": "png", "reports/figures/sub/b.png": "png2",
             "reports/plots/spearman_vs_lr.csv": "lr", "reports/plots/curves.csv": "c", "reports/other.txt": "no"}
    job = _workspace(tmp_path / "job", stages, files)
    assert export_state(tmp_path / "state", job) == 1
    finish = _workspace(tmp_path / "finish", {}, {})
    assert merge_state([tmp_path / "state"], finish) == 1
    got = sorted(p.relative_to(finish).as_posix() for p in (finish / "reports").rglob("*") if p.is_file())
    assert got == [k for k in sorted(files) if k != "reports/other.txt"]
    (tmp_path / "state" / "reports" / "figures.png").write_text("beside, not below, the folder")
    with pytest.raises(ParamsError, match="reports/figures.png: not a `cache: false` output of the stages"):
        merge_state([tmp_path / "state"], finish)
