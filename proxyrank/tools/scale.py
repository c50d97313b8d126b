"""Spreading the training stages over GPUs and machines; DVC joins the results again.

DVC runs one stage at a time per workspace (`dvc repro` holds the repository lock) and does not
schedule GPUs, while every `proxies@R` and `references@R` stage is independent of the others. So:

- one machine, many GPUs (`python -m proxyrank gpus`): DVC builds the data (upstream stages and
  `recipe@R`); then one worker per GPU, pinned with CUDA_VISIBLE_DEVICES, runs the training stages'
  own commands for its share of the recipes; then `dvc commit` records each stage (outputs,
  dvc.lock and a run-cache entry) exactly as `dvc repro` would have. With `--ddp-references` the
  references instead train one at a time across all the GPUs under torchrun (DDP).
- a cluster (`python -m proxyrank slurm`): three job scripts. `prep` builds the upstream stages
  once; a job array, each task in its own clone, pulls the upstream outputs its stages read and
  reproduces its disjoint share of the per-recipe stages (`dvc repro -s`); `finish`, after every
  task succeeded, pulls the training outputs into the repository and runs collect, metrics,
  figures and report. Data goes through the shared DVC remote (outputs and run-cache). What the
  remote cannot carry goes through a state folder beside the scripts: each job's dvc.lock entries
  and its `cache: false` outputs (metrics such as reports/recipes/R.json, which DVC 3.67 neither
  pushes nor can restore from a pulled run-cache without), exported by `lock export` and joined
  by `lock merge`.
Neither path changes what a stage computes: a run's result depends only on its fingerprint
(train.py), so the split, the merge and a rerun all agree with a plain `dvc repro`.
"""
from __future__ import annotations

import json
import math
import os
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from proxyrank.config import Params, stage_bodies
from proxyrank.errors import CommandError, ParamsError
from proxyrank.files import read_yaml_mapping

TRAINING = ("proxies", "references")


@dataclass(frozen=True)
class Pipeline:
    """dvc.yaml's stages cut where the per-recipe (foreach) stages begin and end."""
    upstream: list[str]  # stages the per-recipe stages need, in dvc.yaml order
    per_recipe: list[str]  # foreach stages, in order (recipe, proxies, references)
    downstream: list[str]  # everything else (alignment, theory, collect, metrics, figures, report)
    inputs: list[str]  # cached outputs of the other stages that downstream stages read; foreach keep ${key}
    commands: dict[str, str]  # stage -> cmd; foreach commands keep ${key}
    feeds: list[str]  # upstream stages whose outputs the per-recipe stages read
    uncached: dict[str, list[str]]  # stage -> its `cache: false` outputs; foreach paths keep ${key}

    def targets(self, recipes: list[str], stages: tuple[str, ...] | list[str] | None = None) -> list[str]:
        """DVC targets of the per-recipe stages of `recipes`, recipe by recipe (`-s` keeps this order)."""
        return [f"{s}@{r}" for r in recipes for s in (stages or self.per_recipe)]

    def command(self, stage: str, recipe: str | None = None) -> str:
        cmd = self.commands[stage]
        return cmd.replace("${key}", recipe) if recipe is not None else cmd

    def downstream_inputs(self, recipes: list[str]) -> list[str]:
        """What the downstream stages read from the others, each recipe's where it is per recipe."""
        return [path.replace("${key}", r) for path in self.inputs for r in (recipes if "${key}" in path else [""])]

    def uncached_outputs(self, name: str) -> list[str]:
        """The `cache: false` outputs of a dvc.lock stage name (`recipe@R` or `split`)."""
        stage, _, key = name.partition("@")
        return [path.replace("${key}", key) for path in self.uncached.get(stage, [])]


def _paths(entries) -> list[str]:
    return [next(iter(e)) if isinstance(e, dict) else str(e) for e in entries or []]


def _uncached(entries) -> list[str]:
    return [path for e in entries or [] if isinstance(e, dict)
            for path, opts in e.items() if isinstance(opts, dict) and opts.get("cache") is False]


def _related(a: str, b: str) -> bool:
    return a == b or a.startswith(b + "/") or b.startswith(a + "/")


def pipeline(dvc_yaml: str | Path = "dvc.yaml") -> Pipeline:
    """Read the stage graph from dvc.yaml (names and commands are DVC's, not repeated here)."""
    body, foreach = stage_bodies(dvc_yaml)
    stages = list(body)
    if not foreach:
        raise ParamsError(f"{dvc_yaml}: no foreach (per-recipe) stages to spread")
    kinds = ("outs", "metrics", "plots")
    outs = {n: [o for k in kinds for o in _paths(body[n].get(k))] for n in stages if n not in foreach}
    direct = [d for n in foreach for d in _paths(body[n].get("deps")) if "${" not in d]
    feeds = {name for name, paths in outs.items() if any(_related(d, o) for d in direct for o in paths)}
    need, todo = set(feeds), [d for n in feeds for d in _paths(body[n].get("deps"))]
    while todo:
        dep = todo.pop()
        for name, paths in outs.items():
            if name not in need and any(_related(dep, o) for o in paths):
                need.add(name)
                todo += _paths(body[name].get("deps"))
    downstream = [n for n in stages if n not in need and n not in foreach]
    uncached = {n: [o for k in kinds for o in _uncached(body[n].get(k))] for n in stages}
    read = [d for n in downstream for d in _paths(body[n].get("deps"))]
    inputs = [o for n in stages if n not in downstream for k in kinds for o in _paths(body[n].get(k))
              if o not in uncached[n] and any(_related(d, o) for d in read)]
    return Pipeline(upstream=[n for n in stages if n in need], per_recipe=foreach, downstream=downstream,
                    inputs=inputs, commands={n: body[n]["cmd"] for n in stages},
                    feeds=[n for n in stages if n in feeds], uncached=uncached)


def shares(recipes: list[str], n: int) -> list[list[str]]:
    """`recipes` dealt round-robin into n disjoint shares: every recipe trains the same runs
    (run_specs differ only in the recipe), so equal counts are equal work."""
    if not 1 <= n <= len(recipes):
        raise ParamsError(f"{n} shares of {len(recipes)} recipes: use 1 to {len(recipes)}")
    return [recipes[i::n] for i in range(n)]


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a child: this Python's bin first, so `python` and `dvc` are the venv's."""
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}", **extra}


def _run(cmd: str | list[str], log=None, env: dict | None = None) -> None:
    shown = cmd if isinstance(cmd, str) else shlex.join(cmd)
    print(f"$ {shown}", flush=True)
    if log is not None:
        log.write(f"$ {shown}\n")
        log.flush()
    args = shlex.split(cmd) if isinstance(cmd, str) else cmd  # stage commands: no shell needed
    proc = subprocess.run(args, env=env or child_env(),
                          stdout=log, stderr=subprocess.STDOUT if log is not None else None)
    if proc.returncode != 0:
        raise CommandError(f"`{shown}` failed (exit {proc.returncode})"
                           + (f"; its output is in {log.name}" if log is not None else ""))


# --------------------------------------------------------------------------- job state

LOCK = "dvc.lock"


def _read_lock(path: Path) -> dict:
    """A dvc.lock's mapping ({} while empty); an unreadable one is a ParamsError naming it."""
    return read_yaml_mapping(path, "it as a dvc.lock", ParamsError, empty_ok=True)


def _files_under(root: Path, rel: str) -> list[str]:
    """rel itself if it is a file, else every file below it (an uncached output may be a folder)."""
    path = root / rel
    if path.is_file():
        return [rel]
    return sorted(p.relative_to(root).as_posix() for p in path.rglob("*") if p.is_file())


def export_state(dest: Path, root: Path = Path("."), dvc_yaml: str | Path = "dvc.yaml") -> int:
    """Copy this workspace's dvc.lock and every `cache: false` output it records into `dest`
    (replaced whole), for `merge_state` elsewhere; returns the number of stages."""
    from proxyrank.files import atomic_dir

    pipe = pipeline(root / dvc_yaml)
    lock = _read_lock(root / LOCK)
    stages = lock.get("stages") or {}
    with atomic_dir(dest) as tmp:
        (tmp / LOCK).write_text((root / LOCK).read_text())
        for name in stages:
            for out in pipe.uncached_outputs(name):
                if not (root / out).exists():
                    raise ParamsError(f"{out}: output of {name} in dvc.lock is missing; rerun `dvc repro {name}`")
                for path in _files_under(root, out):
                    (tmp / path).parent.mkdir(parents=True, exist_ok=True)
                    (tmp / path).write_bytes((root / path).read_bytes())
    print(f"lock export: {len(stages)} stages to {dest}")
    return len(stages)


def _declared(pipe: Pipeline, names, src: Path) -> list[str]:
    """The `cache: false` outputs of the stages `names` (from src's dvc.lock), each a plain relative
    path: a stage name such as `recipe@../../x` would otherwise aim an output outside reports/."""
    outs = []
    for name in names:
        if not isinstance(name, str):
            raise ParamsError(f"{src / LOCK}: stage name {name!r} is not a string; refusing to merge {src}")
        for out in pipe.uncached_outputs(name):
            parts = PurePosixPath(out).parts
            if out.startswith("/") or not parts or any(p in ("", ".", "..") for p in parts) or \
                    PurePosixPath(*parts).as_posix() != out:
                raise ParamsError(f"{src / LOCK}: stage {name!r} names output {out!r}, not a plain path "
                                  f"inside the workspace; refusing to merge {src}")
            outs.append(out)
    return outs


def _state_files(src: Path, outs: list[str]) -> dict[str, Path]:
    """Every file a job exported to src besides dvc.lock, each checked to be (under) one of `outs`;
    a symlink anywhere, or any other file, is refused by name and nothing is read through it."""
    found: dict[str, Path] = {}
    for folder, dirs, names in os.walk(src):  # os.walk does not descend into symlinked folders
        for entry in sorted(dirs + names):
            path = Path(folder) / entry
            rel = path.relative_to(src).as_posix()
            if path.is_symlink():
                raise ParamsError(f"{path}: a symlink in the job state; `lock merge` copies only regular "
                                  f"files and follows no links. Remove it and export the state again")
            if entry in names and rel != LOCK:
                if not path.is_file():
                    raise ParamsError(f"{path}: not a regular file; `lock merge` copies only regular files")
                if not any(rel == out or rel.startswith(out + "/") for out in outs):
                    raise ParamsError(f"{path}: not a `cache: false` output of the stages in {src / LOCK} "
                                      f"(those are: {', '.join(outs) or 'none'}); `lock merge` writes "
                                      f"nothing else. Remove it from {src}")
                found[rel] = path
    return found


def _check_target(root: Path, rel: str) -> None:
    """Refuse to write through a symlink in the workspace: the file or any folder above it."""
    path = root
    for part in PurePosixPath(rel).parts:
        path = path / part
        if path.is_symlink():
            raise ParamsError(f"{path}: a symlink in this workspace on the way to {rel}; `lock merge` "
                              f"does not write through links. Replace it with a real folder or file")
    if path.is_dir():
        raise ParamsError(f"{path}: a folder in this workspace where the job exported a file; remove it")


def merge_state(sources: list[Path], root: Path = Path("."), dvc_yaml: str | Path = "dvc.yaml") -> int:
    """Join the dvc.lock entries and uncached outputs that jobs exported into this workspace.

    Only the `cache: false` outputs (per this workspace's dvc.yaml) of the stages each job's
    dvc.lock records are copied: any other file, a symlink, or a stage aiming outside the
    workspace is refused by name, and everything is checked before anything is written, so a
    refused merge leaves the workspace as it was. A stage two jobs both recorded (the shared
    upstream) must be recorded identically, and so must a file both wrote: a difference means a
    stage is not deterministic, and is an error naming it. Entries for other stages already in
    this dvc.lock are kept."""
    from proxyrank.files import atomic_path, write_text

    pipe = pipeline(root / dvc_yaml)
    merged: dict[str, dict] = {}
    files: dict[str, tuple[bytes, Path]] = {}
    for src in sources:
        if (src / LOCK).is_symlink():
            raise ParamsError(f"{src / LOCK}: a symlink; `lock merge` follows no links in a job state")
        if not (src / LOCK).is_file():
            raise ParamsError(f"{src}: no {LOCK}; did the job that exports it finish?")
        stages = _read_lock(src / LOCK).get("stages") or {}
        for name, entry in stages.items():
            if name in merged and merged[name] != entry:
                raise ParamsError(f"{name}: recorded differently by two jobs ({src}); its outputs are not "
                                  f"reproducible, so the results cannot be joined")
            merged[name] = entry
        for rel, path in _state_files(src, _declared(pipe, stages, src)).items():
            data = path.read_bytes()
            if rel in files and files[rel][0] != data:
                raise ParamsError(f"{rel}: written differently by {files[rel][1]} and {src}")
            files[rel] = (data, src)
    for rel in [*files, LOCK]:
        _check_target(root, rel)
    lock = _read_lock(root / LOCK) if (root / LOCK).exists() else {}
    lock.setdefault("schema", "2.0")
    lock["stages"] = {**(lock.get("stages") or {}), **merged}
    for rel, (data, _) in files.items():
        with atomic_path(root / rel) as tmp:
            tmp.write_bytes(data)
    from dvc.utils.serialize import dumps_yaml  # DVC's own writer: the bytes a plain `dvc repro` writes
    write_text(root / LOCK, dumps_yaml(lock))  # (PyYAML's would write 1e-05 as 1.0e-05)
    print(f"lock merge: {len(merged)} stages and {len(files)} files from {len(sources)} job(s)")
    return len(merged)


# --------------------------------------------------------------------------- one machine, many GPUs

def _changed(targets: list[str]) -> set[str]:
    """The targets `dvc status` finds out of date (each stage alone, not its upstream)."""
    proc = subprocess.run(["dvc", "status", "--json", *targets], capture_output=True, text=True, env=child_env())
    if proc.returncode != 0:
        raise CommandError(f"`dvc status` failed: {proc.stderr.strip()[-500:]}")
    return set(json.loads(proc.stdout or "{}"))


def visible_gpus() -> list[str]:
    """The GPUs this process may use: CUDA_VISIBLE_DEVICES (as Slurm sets it), else all torch sees."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g for g in env.split(",") if g.strip()]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]


def run_gpus(p: Params, gpus: list[str], recipes: list[str] | None = None, *, use_dvc: bool = True,
             single_item: bool = False, ddp_references: bool = False, log_dir: Path = Path("data/.logs"),
             dvc_yaml: str | Path = "dvc.yaml") -> None:
    """Train the per-recipe stages of `recipes` (default: all) with one worker per GPU.

    1. data: `dvc repro recipe@R ...` (upstream stages too; with single_item `dvc repro -s`, the
       upstream outputs being in place already, as in a Slurm task);
    2. training: each GPU's worker runs `proxies R` and `references R` for its round-robin share,
       one stage after another, with CUDA_VISIBLE_DEVICES set to that GPU (logs in log_dir);
       with ddp_references the references then train one recipe at a time on all GPUs (torchrun);
    3. `dvc commit -f` of every training stage: outputs, dvc.lock and run-cache entries;
    4. with every recipe, `dvc repro` finishes the study (collect, metrics, figures, report).
    Without DVC (use_dvc=False) the same stage commands run directly, in dvc.yaml's order (the
    upstream ones unless single_item).
    """
    if not gpus:
        raise ParamsError("no GPUs to run on: name them (--gpus 0,1,...); on a machine without GPUs each "
                          "id is one CPU worker process")
    pipe = pipeline(dvc_yaml)
    everything = recipes is None
    recipes = list(p.recipes) if everything else recipes
    for r in recipes:
        p.recipe(r)
    log_dir.mkdir(parents=True, exist_ok=True)
    print(f"gpus: {len(recipes)} recipes on {len(gpus)} GPU(s) {','.join(gpus)}"
          f"{', references across all of them (DDP)' if ddp_references else ''}; logs in {log_dir}/", flush=True)
    start = time.perf_counter()
    _build_recipes(pipe, recipes, use_dvc, single_item)
    todo = _changed(pipe.targets(recipes, TRAINING)) if use_dvc else set(pipe.targets(recipes, TRAINING))
    print(f"gpus: {len(todo)} of {2 * len(recipes)} training stages to run", flush=True)
    _train_on_gpus(pipe, gpus, recipes, todo, ("proxies",) if ddp_references else TRAINING, log_dir)
    if ddp_references:
        _ddp_references(gpus, [r for r in recipes if f"references@{r}" in todo], log_dir)
    _record(pipe, todo, use_dvc, everything)
    print(f"gpus: {len(recipes)} recipes trained in {time.perf_counter() - start:.0f} s", flush=True)


def _build_recipes(pipe: Pipeline, recipes: list[str], use_dvc: bool, single_item: bool) -> None:
    """Step 1: the recipes' data stages (and, unless single_item, the upstream stages they read)."""
    recipe_stages = [s for s in pipe.per_recipe if s not in TRAINING]
    if use_dvc:
        _run(["dvc", "repro", *(["-s"] if single_item else []), *pipe.targets(recipes, recipe_stages)])
        return
    for stage in [] if single_item else pipe.upstream:
        _run(pipe.command(stage))
    for target in pipe.targets(recipes, recipe_stages):
        stage, recipe = target.split("@", 1)
        _run(pipe.command(stage, recipe))


def _train_on_gpus(pipe: Pipeline, gpus: list[str], recipes: list[str], todo: set[str], roles: tuple[str, ...],
                   log_dir: Path) -> None:
    """Step 2: one worker thread per GPU runs the `roles` stages in `todo` of its round-robin share."""
    work = list(zip(gpus, shares(recipes, min(len(gpus), len(recipes)))))
    # workers side by side share the CPU: torch's default of one thread per core in each of them
    # oversubscribes it (on 2 cores a nano model's step was 30x slower); an explicit setting wins
    threads = os.environ.get("OMP_NUM_THREADS") or str(max(1, (os.cpu_count() or 1) // len(work)))

    def worker(gpu: str, share: list[str]) -> None:
        with open(log_dir / f"gpu{gpu}.log", "a") as log:
            for r in share:
                for stage in roles:
                    if f"{stage}@{r}" in todo:
                        _run(pipe.command(stage, r), log, child_env(CUDA_VISIBLE_DEVICES=gpu, OMP_NUM_THREADS=threads))

    with ThreadPoolExecutor(len(work)) as pool:
        futures = {g: pool.submit(worker, g, s) for g, s in work}
    failed = [f"GPU {g}: {f.exception()}" for g, f in futures.items() if f.exception()]
    if failed:
        raise CommandError("training failed; " + "; ".join(failed))


def _ddp_references(gpus: list[str], recipes: list[str], log_dir: Path) -> None:
    """Step 2 with ddp_references: each recipe's references on all the GPUs at once (torchrun)."""
    with open(log_dir / "ddp.log", "a") as log:
        for r in recipes:
            _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
                  str(len(gpus)), "-m", "stages.references", r], log,
                 child_env(CUDA_VISIBLE_DEVICES=",".join(gpus)))


def _record(pipe: Pipeline, todo: set[str], use_dvc: bool, everything: bool) -> None:
    """Steps 3 and 4: record the trained stages with DVC and, with every recipe, finish the study."""
    if use_dvc:
        if todo:
            _run(["dvc", "commit", "-f", *sorted(todo)])
        if everything:
            _run(["dvc", "repro"])
    elif everything:
        for stage in pipe.downstream:
            _run(pipe.command(stage))


# --------------------------------------------------------------------------- Slurm

def git(*args: str, cwd: Path) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise ParamsError(f"git {' '.join(args)} in {cwd}: {proc.stderr.strip() or 'failed'} (jobs and ladder "
                          f"rungs work in clones of the project's git repository)")
    return proc.stdout.strip()


def shared_remote(root: Path, remote: str | None) -> str:
    """The DVC remote every job reaches: named, or the default, defined in the committed .dvc/config
    (config.local does not travel to clones) and, for a folder, by an absolute path."""
    from configobj import ConfigObj

    config = ConfigObj(str(root / ".dvc" / "config"))
    name = remote or config.get("core", {}).get("remote")
    if not name:
        raise ParamsError("no DVC remote: every job pushes to and pulls from one shared remote; add one "
                          "with `dvc remote add -d shared /shared/folder` (or ssh://, s3://) and commit .dvc/config")
    section = config.get(f'remote "{name}"')
    if section is None:
        raise ParamsError(f"DVC remote {name!r} is not in .dvc/config (a remote in config.local does not "
                          f"reach the jobs' clones); add it without --local and commit .dvc/config")
    url = section.get("url", "")
    if "://" not in url and not os.path.isabs(url):
        raise ParamsError(f"DVC remote {name!r} is the relative path {url!r}: each clone would resolve it "
                          f"against its own folder; use an absolute path on the shared filesystem")
    return name


def _printf(stages) -> tuple[str, str]:
    """printf format and arguments that make `stage@$r` for each of `stages`."""
    return " ".join(f"{s}@%s" for s in stages), " ".join('"$r"' for _ in stages)


def _walltime(hours: float) -> str:
    minutes = max(10, math.ceil(hours * 60))
    return f"{minutes // 1440}-{minutes % 1440 // 60:02d}:{minutes % 60:02d}:00"


@dataclass(frozen=True)
class SlurmJob:
    """How the Slurm jobs run: the `proxyrank slurm` options, with its defaults."""
    gpus_per_task: int = 1
    ddp_references: bool = False  # references on all of a task's GPUs (DDP)
    remote: str | None = None  # the DVC remote to share; None: the default remote
    partition: str | None = None
    account: str | None = None
    cpus: int = 8  # per task
    time_limit: str | None = None  # array task limit, D-HH:MM:SS; None: the plan's estimate x 1.5
    workdir: str = "${TMPDIR:-/tmp}"  # where each job clones the repository
    setup: str = ""  # shell line(s) each job runs first; "": put this Python's bin on PATH
    mfu: float = 0.4  # for the time estimate
    gpu: str = "H100"  # for the time estimate


@dataclass(frozen=True)
class _Scripts:
    """What the scripts of one write_slurm call share."""
    job: SlurmJob
    pipe: Pipeline
    repo: Path
    commit: str
    logs: Path
    state: Path

    @property
    def remote(self) -> str:
        """` -r NAME` for dvc push and pull when a remote was named (else DVC's default remote)."""
        return f" -r {shlex.quote(self.job.remote)}" if self.job.remote else ""

    def header(self, name: str, time_limit: str, gpus: int, array: str | None = None) -> list[str]:
        j = self.job
        lines = ["#!/bin/bash", f"#SBATCH --job-name={name}",
                 f"#SBATCH --output={self.logs}/{'%x-%A_%a' if array else '%x-%j'}.out",
                 f"#SBATCH --time={time_limit}", "#SBATCH --nodes=1", "#SBATCH --ntasks=1",
                 f"#SBATCH --cpus-per-task={j.cpus}"]
        lines += [f"#SBATCH --gres=gpu:{gpus}"] * (gpus > 0)
        lines += [f"#SBATCH --array={array}"] * bool(array)
        lines += [f"#SBATCH --partition={j.partition}"] * bool(j.partition)
        lines += [f"#SBATCH --account={j.account}"] * bool(j.account)
        return lines

    def common(self) -> list[str]:
        """The lines every job starts with: strict bash, the environment, the state folder."""
        env = self.job.setup or f'export PATH={shlex.quote(str(Path(sys.executable).parent))}:"$PATH"'
        return ["set -euo pipefail", env, "export DVC_NO_ANALYTICS=1", f"STATE={shlex.quote(str(self.state))}"]

    def clone(self) -> list[str]:
        """common, then into the job's clone at the commit. One workspace per commit and task, kept
        when a job fails: resubmitted (`sbatch --array=N`), the task resumes its finished and
        checkpointed runs from data/.resume/ (on a shared --workdir)."""
        return [*self.common(), f'WORK="{self.job.workdir}/proxyrank-{self.commit[:12]}-${{SLURM_ARRAY_TASK_ID:-prep}}"',
                f'[ -d "$WORK/.git" ] || git clone -q {shlex.quote(str(self.repo))} "$WORK"', 'cd "$WORK"',
                f"git checkout -q {self.commit}"]


def _share_targets(stages) -> str:
    """Shell text that expands to `stage@R` for each of `stages` and each recipe R of $SHARE."""
    return "$(for r in $SHARE; do printf '{} ' {}; done)".format(*_printf(stages))


def _prep_script(s: _Scripts) -> list[str]:
    upstream = " ".join(s.pipe.upstream)
    return s.header("proxyrank-prep", "0-12:00:00", 0) + [
        "# the stages every recipe needs (corpus, split, crawl, curation, tokenizer, validation tokens),",
        "# built once: outputs and run-cache to the remote, dvc.lock and uncached outputs to $STATE/prep",
        *s.clone(), 'rm -rf "$STATE" && mkdir -p "$STATE"', f"dvc repro {upstream}",
        f"dvc push --run-cache{s.remote} {upstream}", 'python -m proxyrank lock export "$STATE/prep"',
        'cd / && rm -rf "$WORK"']


def _train_script(s: _Scripts, parts: list[list[str]], hours: list[float]) -> list[str]:
    j = s.job
    recipe_targets, training = _share_targets(["recipe"]), _share_targets(TRAINING)
    ddp = " --ddp-references" if j.ddp_references else ""
    train = f"dvc repro -s {training}" if j.gpus_per_task <= 1 else \
        f'python -m proxyrank gpus --single-item --recipes "$SHARE"{ddp}'
    table = [f'  "{" ".join(share)}"  # task {i}: {len(share)} recipe(s), ~{h:.3g} h at MFU {j.mfu:g} on {j.gpu}'
             for i, (share, h) in enumerate(zip(parts, hours))]
    return s.header("proxyrank-train", j.time_limit or _walltime(1.5 * max(hours) + 0.25), j.gpus_per_task,
                    f"0-{len(parts) - 1}") + [
        "# one share of the recipes per array task: the upstream outputs its stages read are pulled,",
        "# its recipe, proxies and references stages reproduced alone (dvc repro -s), their outputs and",
        "# run-cache pushed, and its dvc.lock and uncached outputs exported to $STATE/task-N",
        "SHARES=(", *table, ")", 'SHARE="${SHARES[$SLURM_ARRAY_TASK_ID]}"', *s.clone(),
        'python -m proxyrank lock merge "$STATE/prep"', f"dvc pull{s.remote} {' '.join(s.pipe.feeds)}",
        f"dvc repro -s {recipe_targets}", train,
        f"dvc push --run-cache{s.remote} {recipe_targets} {training}",
        'python -m proxyrank lock export "$STATE/task-$SLURM_ARRAY_TASK_ID"', 'cd / && rm -rf "$WORK"']


def _finish_script(s: _Scripts, recipes: list[str], n_tasks: int) -> list[str]:
    # one GPU: the alignment stage runs the proxies' forward and backward passes over every recipe
    return s.header("proxyrank-finish", "0-04:00:00", 1) + [
        "# in the repository itself: join every job's dvc.lock entries and uncached outputs, pull what the",
        "# remaining stages read (recipes, validation tokens, training outputs), run them (alignment, theory,",
        "# collect, metrics, figures, report); then commit dvc.lock and reports/",
        *s.common(), f"cd {shlex.quote(str(s.repo))}",
        f'git diff --quiet {s.commit} -- params.yaml dvc.yaml proxyrank stages || '
        f'{{ echo "params or code changed since the jobs were written ({s.commit[:12]})" >&2; exit 1; }}',
        f'[ "$(ls -d "$STATE"/task-* | wc -l)" = {n_tasks} ] || '
        f'{{ echo "expected {n_tasks} finished tasks in $STATE" >&2; exit 1; }}',
        'python -m proxyrank lock merge "$STATE/prep" "$STATE"/task-*',
        f"dvc pull{s.remote} {' '.join(s.pipe.downstream_inputs(recipes))}",
        f"dvc repro -s {' '.join(s.pipe.downstream)}",
        "echo 'done: commit dvc.lock and reports/; `dvc pull` brings any other output here'"]


SUBMIT = ["#!/bin/bash", "# submit the three jobs; each waits for the one before it to succeed",
          "set -euo pipefail", 'cd "$(dirname "$0")"',
          "prep=$(sbatch --parsable prep.sbatch)",
          'train=$(sbatch --parsable --dependency=afterok:"$prep" train.sbatch)',
          'finish=$(sbatch --parsable --dependency=afterok:"$train" finish.sbatch)',
          'echo "submitted: prep $prep, train $train (array), finish $finish"']


def write_slurm(p: Params, out: Path, tasks: int, job: SlurmJob = SlurmJob(), root: Path = Path(".")) -> dict:
    """Write prep.sbatch, train.sbatch (a job array of `tasks`), finish.sbatch and submit.sh into
    `out`; returns each task's recipes and estimated hours."""
    from proxyrank.tools.plan import gpu_hours, peak_flops, run_costs

    root = root.resolve()
    repo = Path(git("rev-parse", "--show-toplevel", cwd=root))
    commit = git("rev-parse", "HEAD", cwd=root)
    dirty = git("status", "--porcelain", "--", "params.yaml", "dvc.yaml", "proxyrank", "stages", ".dvc/config", cwd=root)
    if dirty:
        raise ParamsError(f"commit these first, the jobs clone the repository at a commit:\n{dirty}")
    name = shared_remote(root, job.remote)
    pipe = pipeline(root / "dvc.yaml")
    parts = shares(list(p.recipes), tasks)
    _, peak = peak_flops(job.gpu)
    per_recipe = sum(c.flops for c in run_costs(p, [next(iter(p.recipes))]))
    hours = [gpu_hours(per_recipe * len(share), job.mfu, peak) / max(1, job.gpus_per_task) for share in parts]
    out = out.resolve()
    scripts = _Scripts(job, pipe, repo, commit, out / "logs", out / "state")
    scripts.logs.mkdir(parents=True, exist_ok=True)
    files = {"prep.sbatch": _prep_script(scripts), "train.sbatch": _train_script(scripts, parts, hours),
             "finish.sbatch": _finish_script(scripts, list(p.recipes), len(parts)), "submit.sh": SUBMIT}
    for fname, lines in files.items():
        path = out / fname
        path.write_text("\n".join(lines) + "\n")
        path.chmod(0o755)
    return {"tasks": [{"recipes": share, "hours": h} for share, h in zip(parts, hours)], "remote": name,
            "commit": commit, "files": sorted(files)}
