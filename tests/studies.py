"""The end-to-end tests' studies: a fresh git + DVC checkout of the pipeline, and the one smoke
study every end-to-end test starts from.

The smoke study (`study_params`) is built once per `pytest` session, the way a cluster builds one
(proxyrank/tools/scale.py): `prep` runs the data stages, two array tasks train two recipes each
side by side in their own clones and push, and `finish` joins their dvc.lock entries and runs the
summaries. Each of those steps is `dvc repro` of part of dvc.yaml, so the study also stands for a
plain `dvc repro` of the whole (tests/test_scale.py checks that nothing is left to run). One build
for both paths keeps `make test` under 10 minutes: a plain repro and a split one cost about four
minutes each here. The first worker to ask builds it under a file lock (pytest-xdist runs tests
in two processes); tests work on copies (`copy_study`), so no test sees another's changes and no
two DVC commands meet in one repository.
"""
from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from conftest import ROOT, smoke_params

COPY = ["proxyrank", "stages", "dvc.yaml", ".dvc/config", ".dvc/plots_page.html", ".dvcignore", ".gitignore",
        "reports/ladder.csv", "profiles"]
SLURM = ["--tasks", "2", "--gpus-per-task", "2", "--partition", "gpu"]


def _env(**extra: str) -> dict[str, str]:
    """This venv's tools first on PATH, no DVC analytics, a git identity; plus `extra`."""
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
            "DVC_NO_ANALYTICS": "1", "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
            "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t", **extra}


def sh(cmd: list[str], cwd: Path, check: bool = True, home: str | None = None,
       env: dict | None = None) -> subprocess.CompletedProcess:
    env = _env(**({"HOME": home} if home else {}), **(env or {}))
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def commit(folder: Path, message: str) -> None:
    sh(["git", "add", "-A"], folder)
    sh(["git", "commit", "-qm", message], folder)


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
    sh(["git", "init", "-q"], folder)
    commit(folder, "study")
    return folder


def results(folder: Path) -> list[Path]:
    """What two runs of one study must agree on byte for byte: dvc.lock (every output's hash) and reports/."""
    return [folder / "dvc.lock", *sorted(p for p in (folder / "reports").rglob("*") if p.is_file())]


def copy_study(study: Path, folder: Path) -> Path:
    """A private copy (git, DVC cache and outputs; not DVC's locks and state, which name the original)."""
    shutil.copytree(study, folder, symlinks=True, ignore=lambda d, names: ["tmp"] if d.endswith("/.dvc") else [])
    return folder


def build_by_array(study: Path, out: Path) -> None:
    """prep, two array tasks side by side, finish (the generated Slurm scripts, run as Slurm would
    run them), then `dvc pull` of the outputs finish did not need; what each step printed goes to
    `out` for tests/test_scale.py to read."""
    jobs, scratch = out / "jobs", out / "scratch"
    sh(["dvc", "remote", "add", "-d", "shared", str(out / "remote")], study)
    slurm = [sys.executable, "-m", "proxyrank", "slurm", *SLURM, "--out", str(jobs), "--workdir", str(scratch)]
    refused = sh(slurm, study, check=False)  # .dvc/config changed: not committed yet
    (out / "refused.txt").write_text(f"{refused.returncode}\n{refused.stderr}")
    sh(["git", "commit", "-qam", "shared remote"], study)
    (out / "slurm.txt").write_text(sh(slurm, study).stdout)
    (out / "prep.txt").write_text(sh(["bash", str(jobs / "prep.sbatch")], study, env={"SLURM_JOB_ID": "7"}).stdout)
    tasks = [subprocess.Popen(["bash", str(jobs / "train.sbatch")], cwd=study, text=True, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT,  # CUDA_VISIBLE_DEVICES: what Slurm sets for --gres=gpu:2
                              env=_env(SLURM_JOB_ID="7", SLURM_ARRAY_TASK_ID=str(i), CUDA_VISIBLE_DEVICES="0,1"))
             for i in (0, 1)]
    for i, task in enumerate(tasks):  # side by side, as array tasks run
        log = task.communicate()[0]
        (out / f"task{i}.txt").write_text(log)
        assert task.returncode == 0, log[-3000:]
    (out / "finish.txt").write_text(sh(["bash", str(jobs / "finish.sbatch")], study).stdout)
    sh(["dvc", "pull"], study)  # the rest (what finish did not need): every output is on the remote


FOUR = ("mix-natural", "corpus-dclm", "quality-head", "dedup-aggressive")  # one recipe of each group


def study_params(local_corpus: Path) -> dict:
    """The smoke profile on the local corpus, with one recipe of each group (four of its six: each
    array task trains two, which keeps `make test` under 10 minutes; `make smoke` runs all six)."""
    params = smoke_params(local_corpus)
    params["recipes"] = {name: params["recipes"][name] for name in FOUR}
    return params


def shared_smoke_study(tmp_path_factory, local_corpus: Path) -> Path:
    """The session's smoke study (built here by the first worker to ask; see the module docstring)."""
    root = tmp_path_factory.getbasetemp()
    root = root.parent if os.environ.get("PYTEST_XDIST_WORKER") else root  # the workers' common folder
    study, out, failed = root / "smoke" / "study", root / "smoke" / "build", root / "smoke" / "FAILED"
    with open(root / "smoke.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the other worker waits here while one builds
        if failed.exists():
            raise AssertionError(f"the shared smoke study failed to build in another worker: {failed.read_text()}")
        if not (out / "DONE").exists():
            shutil.rmtree(root / "smoke", ignore_errors=True)
            out.mkdir(parents=True)
            try:
                build_by_array(make_study(study, study_params(local_corpus)), out)
            except BaseException as e:
                failed.write_text(str(e)[-3000:])
                raise
            (out / "DONE").write_text("")
    return study
