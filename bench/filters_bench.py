"""Benchmark: the C4, Gopher quality and Gopher repetition filters (proxyrank.curation.c4,
gopher_quality, gopher_repetition; overview in proxyrank.curation.filters) against datatrove 0.10.1's
C4QualityFilter, GopherQualityFilter and GopherRepetitionFilter.

Same pages, same thresholds (tfds's C4 constants: 3 sentences, 5 words a line; Gopher's
published ones), all three families on each page in turn, as the curate stage runs them. Methods:

* ours: `c4_clean`, `gopher_quality`, `gopher_repetition` with the defaults the study uses;
* ours @REV (`--baseline REV`): the filters as of a git revision, on the same pages (filters.py
  before the families had a module each, the three family modules after);
* datatrove, same tokens: datatrove's filters with proxyrank's `word_tokens` and
  `sentence_spans` injected as its tokenizer (so the ratio measures the rule code alone);
* datatrove as shipped: its own English tokenizer (a blank spaCy pipeline + sentencizer since
  datatrove 0.4), measured only when spaCy is importable.

It also counts the pages where datatrove (same tokens) and ours, set to datatrove's reading of
the alphabetic-words rule (`alpha_words_of="tokens"`, end marks with "'"), reach a different
verdict or keep different C4 text: a speed-up is only worth having if that stays 0.

Pages: a seeded sample of data/crawl.parquet (the study's crawl) if it exists, else a crawl built
by proxyrank.data.crawl from the Python docs shipped with Python (pydoc_data.topics). Timing: each
method over all pages, in interleaved rounds, the fastest round kept; one process, one thread.

datatrove is in the `test` extra (`pip install -e '.[test]'`). For the "as shipped" row, spaCy
(not a dependency) can be put beside the venv without touching it:
    .venv/bin/pip install --target /tmp/spacy 'spacy>=3.8,<3.9'
    PYTHONPATH=/tmp/spacy OMP_NUM_THREADS=1 .venv/bin/python bench/filters_bench.py ...

Run:  OMP_NUM_THREADS=1 .venv/bin/python bench/filters_bench.py [--pages 3000] [--rounds 3]
      [--baseline HEAD] [--out bench/results/filters.md]
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from proxyrank.curation import c4, gopher_quality, gopher_repetition  # noqa: E402
from proxyrank.data import crawl  # noqa: E402
from proxyrank.text import word_tokens  # noqa: E402

FAMILY_NAMES = {"c4": ("C4Rules", "c4_clean"), "gopher_quality": ("GopherQuality", "gopher_quality"),
                "gopher_repetition": ("GopherRepetition", "gopher_repetition")}


def _families(modules: dict) -> types.SimpleNamespace:
    """The three families' rules classes and functions as one namespace (what `ours` runs)."""
    return types.SimpleNamespace(**{name: getattr(modules[family], name)
                                    for family, names in FAMILY_NAMES.items() for name in names})


filters = _families({"c4": c4, "gopher_quality": gopher_quality, "gopher_repetition": gopher_repetition})

CRAWL = ROOT / "data" / "crawl.parquet"
SEED = 0
DT_REASONS = {  # datatrove's reason -> our rule name (the n-gram ones are mapped by pattern)
    "too_few_sentences": "c4_min_sentences", "curly_bracket": "c4_curly_bracket",
    "lorem_ipsum": "c4_lorem_ipsum", "gopher_short_doc": "gopher_min_words",
    "gopher_long_doc": "gopher_max_words", "gopher_below_avg_threshold": "gopher_min_mean_word_length",
    "gopher_above_avg_threshold": "gopher_max_mean_word_length", "gopher_too_many_hashes": "gopher_hash_ratio",
    "gopher_too_many_ellipsis": "gopher_ellipsis_ratio", "gopher_too_many_bullets": "gopher_bullet_lines",
    "gopher_too_many_end_ellipsis": "gopher_ellipsis_lines",
    "gopher_below_alpha_threshold": "gopher_alpha_words", "gopher_enough_stop_words": "gopher_stop_words",
    "empty": "gopher_repetition_empty",
}


def dt_rule(result) -> str | None:
    """Our rule name for a datatrove filter result (True: kept)."""
    if result is True:
        return None
    reason = result[1]
    if reason.startswith("top_"):
        return f"gopher_top_{reason.split('_')[1]}gram"
    if reason.startswith("duplicated_"):
        return f"gopher_dup_{reason.split('_')[1]}gram"
    return DT_REASONS.get(reason, "gopher_" + reason if reason.startswith("dup_") else reason)


def load_pages(n: int) -> tuple[list[str], str]:
    if CRAWL.exists():
        texts = pq.read_table(CRAWL, columns=["text"]).column("text").to_pylist()
        pick = np.sort(np.random.default_rng(SEED).choice(len(texts), min(n, len(texts)), replace=False))
        return [texts[i] for i in pick], f"a seeded sample of {CRAWL.relative_to(ROOT)} ({len(texts):,} pages)"
    pool = _python_pool()
    p = crawl.CrawlParams(pages=n, domains=["code", "techdocs", "wiki"], spam=0.0, reference_share=0.0)
    texts = crawl.build(pool, p, SEED)[0].column("text").to_pylist()
    keep = np.sort(np.random.default_rng(SEED).choice(len(texts), min(n, len(texts)), replace=False))
    return [texts[i] for i in keep], (f"a seeded sample of a crawl built by proxyrank.data.crawl (seed {SEED}, "
                                      f"{n} pages + their copies, no spam) from the Python docs, standard "
                                      f"library sources and their docstrings; no data/crawl.parquet here")


def _python_pool() -> pa.Table:
    """Real English and code shipped with Python (as tests/conftest.py's corpus, but larger)."""
    import ast
    import sysconfig

    from pydoc_data.topics import topics

    rows = [("techdocs", f"docs:{k}", v) for k, v in sorted(topics.items())]
    for path in sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py")):
        text = path.read_text(errors="replace")
        rows.append(("code", f"code:{path.stem}", text))
        try:
            tree = ast.parse(text)
        except SyntaxError:
            continue
        docs = [ast.get_docstring(node) for node in ast.walk(tree)
                if isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.Module))]
        docs = [d for d in docs if d and len(d) > 80]
        if docs:
            rows.append(("wiki", f"wiki:{path.stem}", "\n\n".join(docs)))
    domain, ids, texts = zip(*rows)
    return pa.table({"id": list(ids), "domain": list(domain), "text": list(texts)})


def ours(module):
    c4_rules, gq, gr = module.C4Rules(), module.GopherQuality(), module.GopherRepetition()

    def run(texts: list[str]) -> list[tuple]:
        return [(module.c4_clean(t, c4_rules), module.gopher_quality(t, gq), module.gopher_repetition(t, gr))
                for t in texts]
    return run


def _module_at(rev: str, name: str):
    """proxyrank/curation/<name>.py as of git revision `rev`, loaded as a module of its own (its
    imports of other proxyrank modules resolve to this checkout)."""
    source = subprocess.run(["git", "show", f"{rev}:proxyrank/curation/{name}.py"], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"{name}_{rev.replace('/', '_')}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(f"{name}_at_{rev}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def baseline(rev: str):
    module = _module_at(rev, "filters")
    if not hasattr(module, "c4_clean"):  # after the split: one module per family
        module = _families({family: _module_at(rev, family) for family in FAMILY_NAMES})
    return ours(module)


def injected_tokenizer():
    """proxyrank's tokens as a datatrove WordTokenizer (datatrove's filters take one as `language`)."""
    from datatrove.utils.word_tokenizers import WordTokenizer

    class ProxyrankTokens(WordTokenizer):
        def word_tokenize(self, text: str) -> list[str]:
            return word_tokens(text)

        def sent_tokenize(self, text: str) -> list[str]:
            return [text[a:b] for a, b in c4.sentence_spans(text)]

        def span_tokenize(self, text: str) -> list[tuple[int, int]]:
            return c4.sentence_spans(text)

    return ProxyrankTokens("en")


def datatrove(language):
    from datatrove.data import Document
    from datatrove.pipeline.filters import GopherQualityFilter, GopherRepetitionFilter
    from datatrove.pipeline.filters.c4_filters import C4QualityFilter

    dt_c4 = C4QualityFilter(min_num_sentences=3, min_words_per_line=5, language=language)
    gq, gr = GopherQualityFilter(language=language), GopherRepetitionFilter(language=language)

    def run(texts: list[str]) -> list[tuple]:
        out = []
        for i, t in enumerate(texts):
            doc = Document(text=t, id=str(i))
            kept = dt_c4.filter(doc)
            out.append(((doc.text if kept is True else None, dt_rule(kept)),
                        dt_rule(gq.filter(Document(text=t, id=str(i)))),
                        dt_rule(gr.filter(Document(text=t, id=str(i))))))
        return out
    return run


def disagreements(texts: list[str], theirs: list[tuple]) -> tuple[int, int]:
    """Pages where ours, read as datatrove reads the rules, differs from datatrove (same tokens):
    as they are, and with "©" written "(c)", the one known difference in what a word is
    (datatrove counts a token with any character outside its punctuation list as a word, so
    "©" is a word there; here a word holds a letter, digit or underscore)."""
    c4_rules = filters.C4Rules(end_marks=[".", "?", "!", '"', "'"])
    gq, gr = filters.GopherQuality(alpha_words_of="tokens"), filters.GopherRepetition()

    def mine(pages: list[str]) -> list[tuple]:
        return [(filters.c4_clean(t, c4_rules), filters.gopher_quality(t, gq), filters.gopher_repetition(t, gr))
                for t in pages]
    raw = sum(a != b for a, b in zip(mine(texts), theirs))
    plain = [t.replace("©", "(c)") for t in texts]
    return raw, sum(a != b for a, b in zip(mine(plain), datatrove(injected_tokenizer())(plain)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pages", type=int, default=3000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--baseline", default=None, help="git revision of the filters to time too")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    texts, source = load_pages(args.pages)
    methods = {"ours": ours(filters)}
    if args.baseline:
        commit = subprocess.run(["git", "rev-parse", "--short", args.baseline], cwd=ROOT, check=True,
                                capture_output=True, text=True).stdout.strip()
        methods[f"ours @{commit} (--baseline {args.baseline})"] = baseline(args.baseline)
    methods["datatrove 0.10.1, same tokens"] = datatrove(injected_tokenizer())
    has_spacy = importlib.util.find_spec("spacy") is not None
    if has_spacy:
        methods["datatrove 0.10.1 as shipped (spaCy)"] = datatrove("en")
    best = {name: float("inf") for name in methods}
    results = {}
    for _ in range(args.rounds):
        for name, run in methods.items():
            t0 = time.perf_counter()
            results[name] = run(texts)
            best[name] = min(best[name], time.perf_counter() - t0)
    differ = disagreements(texts, results["datatrove 0.10.1, same tokens"])
    report(args, texts, source, best, differ, has_spacy)


def report(args, texts, source, best, differ, has_spacy) -> None:
    from importlib.metadata import version

    load = os.getloadavg()[0]
    cmd = "OMP_NUM_THREADS=1 .venv/bin/python bench/filters_bench.py " + " ".join(sys.argv[1:])
    lines = ["# C4 + Gopher quality + Gopher repetition: proxyrank.curation.filters vs datatrove", "",
             f"Command: `{('PYTHONPATH=<spaCy dir> ' if has_spacy else '') + cmd}`  ",
             f"Machine: {os.cpu_count()} cores, Python {platform.python_version()}, numpy {np.__version__}, "
             f"datatrove {version('datatrove')}"
             + (f", spaCy {version('spacy')}" if has_spacy else ", spaCy not installed")
             + f"; load average {load:.1f} at the end (cores shared with other jobs: timings are noisy).  ",
             f"Pages: {len(texts):,} ({sum(map(len, texts)) / len(texts):,.0f} characters on average), {source}.  ",
             f"Each method runs the three families on every page; seconds = the fastest of {args.rounds} "
             f"interleaved rounds, one process, one thread.", "",
             "| method | seconds | pages/s | ours is x faster |", "|---|---:|---:|---:|"]
    for name, sec in best.items():
        lines.append(f"| {name} | {sec:.2f} | {len(texts) / sec:,.0f} | {sec / best['ours']:.2f} |")
    if not has_spacy:
        lines.append("| datatrove 0.10.1 as shipped (spaCy) | not measured: spaCy not importable | | |")
    lines += ["", f"Pages where datatrove (same tokens) and ours, read as datatrove reads the rules, reach "
              f"a different verdict or keep different C4 text: **{differ[0]}** of {len(texts):,} as they "
              f"are, **{differ[1]}** with \"©\" written \"(c)\" (datatrove counts \"©\" as a word, we do "
              f"not; see `disagreements`).", ""]
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
