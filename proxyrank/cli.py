"""`proxyrank COMMAND`: the operator commands around the study (the DVC stages are stages/*.py).

check validates a params file, profile writes one from a profile, plan prices it, gpus / slurm /
lock spread the training stages over GPUs and clusters, ladder runs the study at several scales,
rank ranks your own datasets, score scores any two-scale results table. A ProxyrankError is one line on stderr and exit 2 for a usage
error (params, options), 1 for a runtime one (errors.py).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from proxyrank.config import load_params
from proxyrank.errors import ParamsError
from proxyrank.paths import DATA, REPORTS, TOKENIZER, VALID_TOKENS
from proxyrank.stage import timed

def check(path: str) -> None:
    """Validate a params file (default params.yaml) without touching any output: run it before
    `dvc repro`, which removes a stage's outputs before the stage can refuse bad params. The file
    given is checked whole: its keys against dvc.yaml's stages, and every ladder rung it declares."""
    from proxyrank.config import missing_stage_params
    from proxyrank.tools.ladder import parsed_rung
    from proxyrank.training.train import run_specs

    p = load_params(path)
    missing = missing_stage_params(path)
    if missing:
        raise ParamsError(f"{path} lacks {', '.join(missing)}, which dvc.yaml's stages depend on; "
                          f"add them (params.yaml has every key)")
    check_capacity(p, "params")
    for name, rung in p.ladder.rungs.items():
        check_capacity(parsed_rung(name, rung, Path(path))[1], f"ladder.rungs.{name}")
    runs = sum(len(run_specs(p, r, role)) for r in p.recipes for role in ("proxy", "reference"))
    print(f"params ok: {len(p.recipes)} recipes, {runs} training runs, "
          f"{p.budget_tokens:,} tokens per recipe")


def check_capacity(p, where: str, reports: Path = REPORTS) -> None:
    """Refuse a token budget larger than a recipe can hold, as its last build measured it
    (reports/recipes/<recipe>.json: `capacity_tokens`, an estimate within a few per cent). Only a
    build under the same data params (`data_key`: corpus, split, tokenizer, crawl, curation, seed,
    the recipe) is trusted; other recipes are checked exactly by their recipe stage when it runs."""
    import json

    short = []
    for name in p.recipes:
        path = reports / "recipes" / f"{name}.json"
        try:
            built = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        cap = built.get("capacity_tokens")
        if built.get("data_key") == p.data_key(name) and isinstance(cap, int) and cap < p.budget_tokens:
            short.append(f"{name} holds about {cap:,} tokens")
    if short:
        raise ParamsError(f"{where}: train.proxy_tokens / train.reference_tokens ask every recipe for "
                          f"{p.budget_tokens:,} tokens, but {'; '.join(short)} (reports/recipes/<recipe>.json, "
                          f"capacity_tokens); lower the budget, or give them more text: a bigger crawl.pages "
                          f"(the crawl recipes), more corpus.sources, or looser curation")


def _names(text: str) -> list[str]:
    """Names given comma- or space-separated (recipes, GPU ids)."""
    return [r for r in text.replace(",", " ").split() if r]


def command_check(argv) -> int:
    """`proxyrank check`: validate a params file before `dvc repro` (which deletes outputs first)."""
    parser = argparse.ArgumentParser(prog="proxyrank check", description=command_check.__doc__)
    parser.add_argument("--params", default="params.yaml", help="any params file, e.g. profiles/paper.yaml")
    args = parser.parse_args(argv)
    return timed("check", lambda: check(args.params))


def command_profile(argv) -> int:
    """`proxyrank profile`: write a profile (profiles/*.yaml: only what differs) as the params file DVC reads."""
    parser = argparse.ArgumentParser(prog="proxyrank profile", description=command_profile.__doc__ + (
        " Its base's text is kept and only the overridden entries change, so `dvc params diff` and "
        "`git diff params.yaml` show just the profile; then `dvc repro` or `dvc exp run`."))
    parser.add_argument("profile", help="a profile, e.g. profiles/smoke.yaml")
    parser.add_argument("--out", default="params.yaml", help="the params file to write (default params.yaml)")
    args = parser.parse_args(argv)

    def write():
        from proxyrank.tools import profile

        profile.write(Path(args.profile), Path(args.out))
        print(f"{args.out}: {args.profile} over its base")

    return timed("profile", write)


def command_plan(argv) -> int:
    """`proxyrank plan`: every run a params file declares and its cost, before anything runs."""
    from proxyrank.tools.plan import GPU, MFU

    parser = argparse.ArgumentParser(prog="proxyrank plan", description=command_plan.__doc__)
    parser.add_argument("--params", default="params.yaml", help="any params file, e.g. profiles/paper.yaml")
    parser.add_argument("--mfu", type=float, default=MFU, help=f"model FLOPs utilisation assumed (default {MFU})")
    parser.add_argument("--gpu", default=GPU, help=f"GPU whose dense bf16 peak is assumed (default {GPU})")
    parser.add_argument("--runs", action="store_true", help="also list every run, tab-separated")
    parser.add_argument("--json", help="also write the totals and every run to this JSON file")
    args = parser.parse_args(argv)

    def plan():
        from proxyrank.tools import ladder, plan
        from proxyrank.files import write_json

        p = load_params(args.params)
        costs = plan.run_costs(p)
        print(plan.render(p, costs, args.mfu, args.gpu, args.params, every_run=args.runs))
        print("\n".join(ladder.rung_lines(p, Path(args.params), args.mfu, args.gpu)))
        if args.json:
            write_json(args.json, plan.summary(p, costs, args.mfu, args.gpu) | {"mfu": args.mfu, "gpu": args.gpu})

    return timed("plan", plan)


def command_gpus(argv) -> int:
    """`proxyrank gpus`: one machine, many GPUs: one training worker pinned to each GPU (scale.py)."""
    parser = argparse.ArgumentParser(prog="proxyrank gpus", description=command_gpus.__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--gpus", help="GPU ids, e.g. 0,1,2,3 (default: CUDA_VISIBLE_DEVICES, else every GPU)")
    parser.add_argument("--recipes", help="only these recipes (comma or space separated), and stop after "
                                          "recording their stages (a share of a larger job)")
    parser.add_argument("--ddp-references", action="store_true",
                        help="train each reference on all the GPUs at once (torchrun, DDP)")
    parser.add_argument("--single-item", action="store_true", help="build the recipes with `dvc repro -s` (their "
                                                                   "upstream outputs are in place: a Slurm task)")
    parser.add_argument("--no-dvc", action="store_true", help="run the stage commands directly, in dvc.yaml's "
                                                              "order (a machine without DVC)")
    parser.add_argument("--logs", default="data/.logs", help="one log per GPU (default data/.logs)")
    args = parser.parse_args(argv)

    def gpus():
        from proxyrank.tools.scale import run_gpus, visible_gpus

        p = load_params(args.params)
        run_gpus(p, _names(args.gpus) if args.gpus else visible_gpus(),
                 _names(args.recipes) if args.recipes else None, use_dvc=not args.no_dvc,
                 single_item=args.single_item, ddp_references=args.ddp_references, log_dir=Path(args.logs))

    return timed("gpus", gpus)


def command_slurm(argv) -> int:
    """`proxyrank slurm`: job scripts that split the training stages over a Slurm array (scale.py)."""
    from proxyrank.tools.plan import GPU, MFU

    parser = argparse.ArgumentParser(prog="proxyrank slurm", description=command_slurm.__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--tasks", type=int, required=True, help="array tasks, each a disjoint share of recipes")
    parser.add_argument("--out", default="slurm", help="folder for the scripts (default slurm/)")
    parser.add_argument("--gpus-per-task", type=int, default=1, help="GPUs per array task (default 1)")
    parser.add_argument("--ddp-references", action="store_true", help="references on all of a task's GPUs (DDP)")
    parser.add_argument("--remote", help="DVC remote to share (default: the default remote)")
    parser.add_argument("--partition")
    parser.add_argument("--account")
    parser.add_argument("--cpus", type=int, default=8, help="CPUs per task (default 8)")
    parser.add_argument("--time", help="array task time limit, D-HH:MM:SS (default: the plan's estimate x 1.5)")
    parser.add_argument("--workdir", default="${TMPDIR:-/tmp}",
                        help="where each job clones the repository; on a shared filesystem a resubmitted task "
                             "resumes its runs")
    parser.add_argument("--setup", default="", help="shell line(s) each job runs first (default: put this "
                                                    "Python's bin on PATH), e.g. 'module load cuda'")
    parser.add_argument("--mfu", type=float, default=MFU, help=f"for the time estimate (default {MFU})")
    parser.add_argument("--gpu", default=GPU, help=f"for the time estimate (default {GPU})")
    args = parser.parse_args(argv)

    def slurm():
        from proxyrank.tools.scale import SlurmJob, write_slurm

        p = load_params(args.params)
        done = write_slurm(p, Path(args.out), args.tasks, SlurmJob(
            gpus_per_task=args.gpus_per_task, ddp_references=args.ddp_references, remote=args.remote,
            partition=args.partition, account=args.account, cpus=args.cpus, time_limit=args.time,
            workdir=args.workdir, setup=args.setup, mfu=args.mfu, gpu=args.gpu))
        for i, task in enumerate(done["tasks"]):
            print(f"task {i}: {' '.join(task['recipes'])} (~{task['hours']:.3g} h)")
        longest = max(task["hours"] for task in done["tasks"])
        if longest > 48:
            print(f"note: a task may take ~{longest:.0f} h, longer than most clusters allow: use more --tasks or "
                  f"--gpus-per-task, and a shared --workdir so that a resubmitted task resumes its runs")
        print(f"wrote {', '.join(done['files'])} in {args.out}/ (remote {done['remote']!r}, commit "
              f"{done['commit'][:12]}); submit with: bash {args.out}/submit.sh")

    return timed("slurm", slurm)


def command_lock(argv) -> int:
    """`proxyrank lock export DIR` / `lock merge DIR...`: hand dvc.lock entries and uncached outputs
    from one job's workspace to another (what a DVC remote does not carry; scale.py)."""
    parser = argparse.ArgumentParser(prog="proxyrank lock", description=command_lock.__doc__)
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("export", help="this workspace's dvc.lock and uncached outputs into DIR").add_argument("dir")
    sub.add_parser("merge", help="join DIRs' entries and outputs into this workspace").add_argument("dirs", nargs="+")
    args = parser.parse_args(argv)

    def lock():
        from proxyrank.tools.scale import export_state, merge_state

        if args.action == "export":
            export_state(Path(args.dir))
        else:
            merge_state([Path(d) for d in args.dirs])

    return timed("lock", lock)


def command_ladder(argv) -> int:
    """`proxyrank ladder [RUNG...]`: the study at each rung of params.yaml's `ladder` (ladder.py)."""
    parser = argparse.ArgumentParser(prog="proxyrank ladder", description=command_ladder.__doc__)
    parser.add_argument("rungs", nargs="*", help="rung names (default: every rung)")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--dry-run", action="store_true", help="validate the rungs and print their size only")
    args = parser.parse_args(argv)

    def ladder():
        from proxyrank.tools.ladder import run_ladder

        skipped = run_ladder(load_params(args.params).ladder, args.rungs, Path(args.params), dry_run=args.dry_run)
        if skipped:
            print(f"not measured here (no GPU): {', '.join(skipped)}; run `python -m proxyrank ladder "
                  f"{' '.join(skipped)}` on a GPU machine and commit reports/ladder.csv")

    return timed("ladder", ladder)


def command_rank(argv) -> int:
    """`proxyrank rank CANDIDATES.yaml`: rank your own datasets with tiny-LR proxies, the standard-LR
    ranking beside it and warnings where they disagree (candidates.py; candidates.example.yaml)."""
    parser = argparse.ArgumentParser(prog="proxyrank rank", description=command_rank.__doc__)
    parser.add_argument("candidates", help="YAML file listing the datasets (see candidates.example.yaml)")
    parser.add_argument("--params", default="params.yaml", help="proxy families, LRs and training settings")
    parser.add_argument("--out", help="ranking.csv/.md/.json/.png (default reports/rank/<candidates stem>)")
    parser.add_argument("--work", help="samples, tokens, runs and resume state, kept out of git "
                                       "(default data/rank/<candidates stem>)")
    args = parser.parse_args(argv)

    def rank():
        from proxyrank.tools import candidates

        stem = Path(args.candidates).stem
        candidates.rank(Path(args.candidates), load_params(args.params), args.params, TOKENIZER, VALID_TOKENS,
                        Path(args.out or REPORTS / "rank" / stem), Path(args.work or DATA / "rank" / stem),
                        REPORTS / "metrics.json")

    return timed("rank", rank)


def command_score(argv) -> int:
    """`proxyrank score TABLE --small COL --large COL`: would the small-scale runs of a results table you
    already have have picked what its large-scale runs prefer, and how sure is that (score.py)."""
    parser = argparse.ArgumentParser(prog="proxyrank score", description=command_score.__doc__)
    parser.add_argument("table", help="CSV or parquet: one row per recipe (or per recipe and seed, with --seeds)")
    parser.add_argument("--small", required=True, help="column of the small-scale results")
    parser.add_argument("--large", required=True, help="column of the large-scale results")
    parser.add_argument("--recipe", default="recipe", help="column naming the recipes (default recipe)")
    parser.add_argument("--seeds", help="column naming the seed of each row: values are averaged per recipe and "
                                        "the large scale's own noise decides which pairs it separates")
    parser.add_argument("--higher-is-better", action="store_true",
                        help="for scores such as accuracy (default: lower is better, as losses)")
    parser.add_argument("--n-boot", type=int, default=2000, help="bootstrap resamples (default 2000)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    parser.add_argument("--out", help="score.md/.json/.png, pairs.csv, regret.csv "
                                      "(default reports/score/<table stem>)")
    args = parser.parse_args(argv)

    def score():
        from proxyrank.tools.score import run_score

        out = Path(args.out or REPORTS / "score" / Path(args.table).stem)
        run_score(Path(args.table), args.small, args.large, out, recipe=args.recipe,
                  seeds=args.seeds, higher_is_better=args.higher_is_better, n_boot=args.n_boot, seed=args.seed)

    return timed("score", score)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("proxyrank")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


COMMANDS = {"check": command_check, "profile": command_profile, "plan": command_plan, "gpus": command_gpus, "slurm": command_slurm,
            "lock": command_lock, "ladder": command_ladder, "rank": command_rank, "score": command_score}
STAGES = ("code", "fetch", "extract", "split", "tokenizer", "crawl", "curate", "tokens", "recipe", "proxies",
          "references", "export", "alignment", "theory", "collect", "metrics", "figures", "report")


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in COMMANDS:
        return COMMANDS[argv[0]](argv[1:])
    listing = "\n".join(f"  {name:<7} {' '.join(fn.__doc__.split(':', 1)[1].split()).split(' (')[0].rstrip('.')}"
                        for name, fn in COMMANDS.items())
    parser = argparse.ArgumentParser(prog="proxyrank", description=__doc__, epilog=f"commands:\n{listing}\n\n"
                                     "`proxyrank COMMAND --help` for a command's options; `dvc repro` runs the stages.",
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"proxyrank {_version()}")
    parser.add_argument("command", choices=sorted(COMMANDS), metavar="COMMAND", help="one of the commands below")
    if argv and argv[0] in STAGES:
        parser.error(f"{argv[0]!r} is a DVC stage: `dvc repro {argv[0]}` runs it (or `python -m stages.{argv[0]}`)")
    parser.parse_args(argv)
    return 2
