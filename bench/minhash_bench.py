"""Benchmark: proxyrank.curation.dedup's numpy MinHash-LSH vs datasketch's MinHash + MinHashLSH.

Same documents, same normalised word 5-gram shingles, equal num_perm and threshold (the
defaults of `proxyrank.curation.dedup.MinHashParams`, or --num-perm / --bands / --threshold). Reports,
per band of true Jaccard, the share of planted near-duplicate pairs each method flags (recall
at and above the threshold, false positives below it), the precision of everything removed,
docs/s with the ratio ours / datasketch measured in the same run, and peak memory (VmHWM of a
fresh subprocess per method, so methods don't mix).

Planted pairs with an exactly known Jaccard: every planted word is drawn once from a pool of
made-up words ("baaab", "baaac", ...) that occur nowhere else, so a 5-gram containing one
occurs only where it was placed. A pair shares one run P of c + 4 words, A = a1 + P + a2 and
B = b1 + P + b2 with fresh words in a1, a2, b1, b2; then the shingle sets share exactly the c
5-grams inside P, every other 5-gram is unique, and J = c / (c + x) with x = |a1| + |a2| +
|b1| + |b2| fresh words (each adds one shingle of its own). Ten bands of J from 0.5 to 1.0 (the last
one closed), `--pairs` pairs each, J drawn uniformly in the band and c in [50, 250]; the
script recomputes every planted pair's Jaccard from the text and stops if it is not the one
constructed. Originals sit at random places among the other documents, each copy somewhere
after its original.

Other documents ("random non-duplicates"): a seeded sample of data/pool.parquet (real text;
column `text`) if it exists, else the Python docs shipped with Python (pydoc_data.topics) cut
into windows of 20-200 words, topped up with documents of 20-200 words drawn independently
from those texts' word frequencies. Whatever a method removes among them is scored by the true
Jaccard against the document it was matched to.

Methods: ours (workers=1 and 2), datasketch's MinHashLSH with the bands x rows it derives from
the threshold, and the same + a check of the estimated Jaccard of its hash values;
`--baseline REV` adds proxyrank/curation/dedup.py as of git revision REV (e.g. the estimate-verified
version before exact verification) on the same documents, with that revision's default bands.

datasketch is not a dependency of the package; install it into the venv for this benchmark
(results in bench/results/minhash.md were measured with datasketch 2.0.0):
    .venv/bin/pip install datasketch==2.0.0

Run:  OMP_NUM_THREADS=1 .venv/bin/python bench/minhash_bench.py [--docs 20000] [--pairs 200]
      [--baseline HEAD] [--out bench/results/minhash.md]
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import pickle
import platform
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
POOL = ROOT / "data" / "pool.parquet"
SEED = 0
BANDS = [(round(0.5 + 0.05 * i, 2), round(0.55 + 0.05 * i, 2)) for i in range(10)]  # last: [0.95, 1.0]


# ------------------------------------------------------------------------------------ corpus

def _shingles(ws: list[str], k: int) -> set[tuple[str, ...]]:
    if not ws:
        return set()
    return {tuple(ws[i:i + k]) for i in range(max(1, len(ws) - k + 1))}


def _jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


class _FreshWords:
    """Made-up lowercase words, each handed out once: "baaaa", "baaab", ... (base 26)."""

    def __init__(self):
        self.n = 26 ** 4

    def take(self, count: int) -> list[str]:
        out = []
        for _ in range(count):
            n, w = self.n, ""
            while n:
                n, d = divmod(n, 26)
                w = chr(97 + d) + w
            out.append(w)
            self.n += 1
        return out


def _band_of(j: float) -> int:
    return min(int((j - 0.5) / 0.05 + 1e-9), len(BANDS) - 1)


def planted_pair(rng: random.Random, fresh: _FreshWords, lo: float, hi: float, k: int):
    """Texts A, B whose word-k-gram sets have Jaccard exactly c / (c + x) in [lo, hi)
    (hi = 1.0 included), and that Jaccard."""
    while True:
        c = rng.randint(50, 250)
        target = rng.uniform(lo, hi)
        x = round(c * (1 - target) / target)
        j = c / (c + x)
        if lo <= j < hi or (hi == 1.0 and lo <= j <= 1.0):
            break
    cuts = sorted(rng.randint(0, x) for _ in range(3))
    a1, a2, b1, b2 = cuts[0], cuts[1] - cuts[0], cuts[2] - cuts[1], x - cuts[2]
    shared = fresh.take(c + k - 1)
    a = fresh.take(a1) + shared + fresh.take(a2)
    b = fresh.take(b1) + shared + fresh.take(b2)
    # reformatting (case, punctuation) does not change the shingles
    b = [w.upper() + "," if rng.random() < 0.02 else w for w in b]
    return " ".join(a), " ".join(b), j


def _background(n: int, rng: random.Random) -> tuple[list[str], str]:
    if POOL.exists():
        import pyarrow.parquet as pq

        texts = pq.read_table(POOL, columns=["text"]).column("text").to_pylist()
        source = f"{POOL.relative_to(ROOT)} ({len(texts):,} docs), seeded sample"
        texts = rng.sample(texts, min(n, len(texts)))
    else:
        from pydoc_data.topics import topics

        ws = " ".join(topics[t] for t in sorted(topics)).split()
        texts, i = [], 0
        while i < len(ws) and len(texts) < n:
            m = rng.randint(20, 200)
            texts.append(" ".join(ws[i:i + m]))
            i += m
        source = f"pydoc_data.topics in windows of 20-200 words ({len(texts):,} docs)"
    real = len(texts)
    vocab = [w for t in texts for w in t.split()]  # sampling from it follows the word frequencies
    while len(texts) < n:
        texts.append(" ".join(rng.choices(vocab, k=rng.randint(20, 200))))
    if len(texts) > real:
        source += f" + {len(texts) - real:,} docs of words drawn from their word frequencies"
    return texts, source


def build_corpus(n_docs: int, pairs: int, k: int) -> dict:
    from proxyrank.text import dedup_words

    rng = random.Random(SEED)
    fresh = _FreshWords()
    made = [planted_pair(rng, fresh, lo, hi, k) for lo, hi in BANDS for _ in range(pairs)]
    for a, b, j in made:  # the construction is the claim: check it from the texts
        real = _jaccard(_shingles(dedup_words(a), k), _shingles(dedup_words(b), k))
        if abs(real - j) > 1e-12:
            sys.exit(f"planted pair: constructed J = {j}, measured {real}")
    texts, source = _background(max(0, n_docs - 2 * len(made)), rng)
    # originals at random places among the others; each copy at a random place after its original
    keyed = [(rng.random(), 0, t, None) for t in texts]
    keyed += [(u := rng.random(), 0, a, (p, "orig")) for p, (a, _, _) in enumerate(made)]
    first_u = {info[0]: u for u, _, _, info in keyed if info}
    keyed += [(rng.uniform(first_u[p], 1.0), 1, b, (p, "copy")) for p, (_, b, _) in enumerate(made)]
    keyed.sort(key=lambda x: (x[0], x[1]))
    out, orig_pos, copy_pos = [], {}, {}
    for pos, (_, _, t, info) in enumerate(keyed):
        out.append(t)
        if info:
            (orig_pos if info[1] == "orig" else copy_pos)[info[0]] = pos
    planted = [(copy_pos[p], orig_pos[p], j) for p, (_, _, j) in enumerate(made)]
    return {"texts": out, "planted": planted, "source": source}


# ------------------------------------------------------------------------------------ methods

def _params(spec: dict):
    from proxyrank.curation.dedup import MinHashParams

    return MinHashParams(**spec)


def run_ours(texts: list[str], workers: int, spec: dict, module=None) -> dict:
    if module is None:
        from proxyrank.curation import dedup as module
        p = module.MinHashParams(**spec)
    else:  # the baseline as the study ran it: its own bands, at the same num_perm and threshold
        p = module.MinHashParams(num_perm=spec["num_perm"], threshold=spec["threshold"])
    t0 = time.perf_counter()
    first = module.near_duplicate_clusters(texts, p, seed=SEED, workers=workers)
    seconds = time.perf_counter() - t0
    matched = {i: int(first[i]) for i in range(len(first)) if first[i] != i}
    verify = "exact verify" if hasattr(module.MinHashParams, "prefilter_matches") else "estimate verify"
    return {"seconds": seconds, "matched": matched, "lsh": f"{p.bands} bands x {p.rows} rows + {verify}"}


def run_datasketch(texts: list[str], verify: bool, spec: dict) -> dict:
    from datasketch import MinHash, MinHashLSH

    from proxyrank.text import dedup_words

    p = _params(spec)
    k = p.shingle
    t0 = time.perf_counter()
    lsh = MinHashLSH(threshold=p.threshold, num_perm=p.num_perm)

    def shingle_lists():  # streamed: the same normalised word shingles as ours
        for t in texts:
            w = dedup_words(t)
            yield [" ".join(w[i:i + k]).encode() for i in range(max(1, len(w) - k + 1))] if w else []

    kept = {}  # kept documents' hash values, for the verify variant
    matched = {}
    for i, m in enumerate(MinHash.generator(shingle_lists(), num_perm=p.num_perm, seed=SEED)):
        if m.is_empty():
            continue
        cands = lsh.query(m)
        if verify:
            cands = [c for c in cands if (kept[c] == m.hashvalues).mean() >= p.threshold]
        if cands:
            matched[i] = min(cands)
        else:
            lsh.insert(i, m)  # only kept documents go into the index
            if verify:
                kept[i] = m.hashvalues
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "matched": matched, "b": lsh.b, "r": lsh.r,
            "lsh": f"{lsh.b} bands x {lsh.r} rows" + (" + estimate verify" if verify else "")}


def _load_module(path: str):
    spec = importlib.util.spec_from_file_location("proxyrank._dedup_baseline", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def run_method(method: str, texts: list[str], spec: dict, baseline: str | None) -> dict:
    if method == "ours, workers=1":
        return run_ours(texts, 1, spec)
    if method == "ours, workers=2":
        return run_ours(texts, 2, spec)
    if method == "datasketch":
        return run_datasketch(texts, False, spec)
    if method == "datasketch + verify":
        return run_datasketch(texts, True, spec)
    return run_ours(texts, 1, spec, _load_module(baseline))


def _vm_hwm_kb() -> int:
    """Peak RSS of this process's own address space (ru_maxrss would carry the peak of the
    forked parent across exec on Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def child(method: str, data: str, out: str) -> None:
    with open(data, "rb") as f:
        d = pickle.load(f)
    import datasketch  # noqa: F401  (imports are not the methods' memory: keep them out of the delta)

    import proxyrank.curation.dedup  # noqa: F401

    base = _vm_hwm_kb()
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    res = run_method(method, d["texts"], d["spec"], d["baseline"])
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    res["cpu_s"] = cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime
    res["children_cpu_s"] = kids.ru_utime + kids.ru_stime
    res["peak_kb"] = _vm_hwm_kb()
    res["base_kb"] = base
    res["children_maxrss_kb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    res["matched"] = {str(k): v for k, v in res["matched"].items()}
    Path(out).write_text(json.dumps(res))


# ------------------------------------------------------------------------------------ scoring

def score(corpus: dict, matched: dict[int, int], p) -> dict:
    """Per Jaccard band: planted copies flagged / planted; and the precision of all removals."""
    from proxyrank.text import dedup_words

    texts, planted = corpus["texts"], corpus["planted"]
    flagged = [[0, 0] for _ in BANDS]
    for copy, _, j in planted:
        flagged[_band_of(j)][0] += copy in matched
        flagged[_band_of(j)][1] += 1
    cache: dict[int, set] = {}

    def sh(i):
        if i not in cache:
            cache[i] = _shingles(dedup_words(texts[i]), p.shingle)
        return cache[i]

    known = {(copy, orig): j for copy, orig, j in planted}
    # every removal, scored by the true Jaccard against the document it was matched to
    js = {i: known[i, m] if (i, m) in known else _jaccard(sh(i), sh(m)) for i, m in matched.items()}
    above = [copy in matched for copy, _, j in planted if j >= p.threshold]
    below = [copy in matched for copy, _, j in planted if j < p.threshold]
    planted_pos = {copy for copy, _, _ in planted}
    others = [i for i in matched if i not in planted_pos]
    return {"bands": flagged, "recall": sum(above) / len(above), "below_flagged": sum(below),
            "n_below": len(below), "removed": len(matched),
            "precision": sum(j >= p.threshold for j in js.values()) / max(1, len(js)),
            "min_j": min(js.values(), default=float("nan")), "others": len(others),
            "others_below": sum(js[i] < p.threshold for i in others)}


# ------------------------------------------------------------------------------------ main

def main() -> None:
    from proxyrank.curation.dedup import MinHashParams

    d = MinHashParams()
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--docs", type=int, default=20_000, help="all documents, planted pairs included")
    ap.add_argument("--pairs", type=int, default=200, help="planted pairs per Jaccard band")
    ap.add_argument("--num-perm", type=int, default=d.num_perm)
    ap.add_argument("--bands", type=int, default=d.bands)
    ap.add_argument("--threshold", type=float, default=d.threshold)
    ap.add_argument("--repeats", type=int, default=3, help="interleaved rounds; the fastest counts")
    ap.add_argument("--baseline", metavar="REV", help="also run proxyrank/curation/dedup.py as of this git revision")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "minhash.md"))
    ap.add_argument("--child", nargs=3, metavar=("METHOD", "DATA", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(*args.child)
        return
    try:
        import datasketch
    except ImportError:
        sys.exit("datasketch is not installed; it is only needed for this benchmark:\n"
                 f"    {sys.executable} -m pip install datasketch==2.0.0")
    spec = {"num_perm": args.num_perm, "bands": args.bands, "threshold": args.threshold}
    p = _params(spec)
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    corpus = build_corpus(args.docs, args.pairs, p.shingle)
    texts = corpus["texts"]
    n_words = sum(len(t.split()) for t in texts)
    print(f"corpus: {len(texts):,} docs, {n_words:,} words, {len(corpus['planted'])} planted pairs "
          f"({time.perf_counter() - t0:.1f} s)", flush=True)
    methods = ["ours, workers=1", "ours, workers=2", "datasketch", "datasketch + verify"]
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        baseline = None
        if args.baseline:
            baseline = str(Path(tmp) / "dedup_baseline.py")
            src = subprocess.run(["git", "show", f"{args.baseline}:proxyrank/curation/dedup.py"], cwd=ROOT,
                                 check=True, capture_output=True, text=True).stdout
            Path(baseline).write_text(src)
            methods.append(f"ours @{args.baseline}")
        data = Path(tmp) / "corpus.pkl"
        data.write_bytes(pickle.dumps({"texts": texts, "spec": spec, "baseline": baseline}))
        for rnd in range(args.repeats):  # interleaved rounds: a busy spell hits every method alike
            for method in methods:
                run_round(method, rnd, data, Path(tmp) / "out.json", corpus, p, results)
    load1 = os.getloadavg()
    write_report(args, corpus, n_words, results, p, datasketch.__version__, load0, load1)


def run_round(method, rnd, data, out, corpus, p, results) -> None:
    subprocess.run([sys.executable, __file__, "--child", method, str(data), str(out)], check=True, cwd=ROOT)
    r = json.loads(out.read_text())
    r["matched"] = {int(k): v for k, v in r["matched"].items()}
    if method not in results:
        r.update(score(corpus, r["matched"], p))
        r["times"], r["cpu_times"] = [], []
        results[method] = r
    elif r["matched"] != results[method]["matched"]:
        sys.exit(f"{method}: a rerun removed different documents")
    res = results[method]
    res["times"].append(r["seconds"])
    res["cpu_times"].append(r["cpu_s"] + r["children_cpu_s"])
    if r["seconds"] <= min(res["times"]):
        res["seconds"], res["cpu_s"], res["children_cpu_s"] = r["seconds"], r["cpu_s"], r["children_cpu_s"]
    for key in ("peak_kb", "base_kb", "children_maxrss_kb"):
        res[key] = max(res[key], r[key])
    print(f"round {rnd + 1} {method:<22} {r['seconds']:6.2f} s  peak {r['peak_kb'] / 1024:6.0f} MB  "
          f"recall {res['recall']:.3f}  below-threshold flagged {res['below_flagged']}  "
          f"precision {res['precision']:.4f}", flush=True)


def _model(prob: float, at_or_above: bool) -> str:
    if not at_or_above:
        return f"{prob:g}"
    miss = max(0.0, 1.0 - prob)
    return f">= {prob:.4f}" if miss >= 1e-4 else ">= 1" if miss < 1e-14 else f">= 1 - {miss:.1e}"


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _command(args) -> str:
    cmd = (f"OMP_NUM_THREADS=1 .venv/bin/python bench/minhash_bench.py --docs {args.docs} --pairs {args.pairs} "
           f"--num-perm {args.num_perm} --bands {args.bands} --threshold {args.threshold} --repeats {args.repeats}")
    return cmd + (f" --baseline {args.baseline}" if args.baseline else "")


def write_report(args, corpus, n_words, results, p, ds_version, load0, load1):
    L = (_report_head(args, corpus, n_words, p, ds_version, load0, load1) + _band_table(results, p)
         + _summary_table(results, len(corpus["texts"])) + _report_notes(results, p, load0))
    L.append("")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(L))
    print(f"wrote {args.out}")


def _report_head(args, corpus, n_words, p, ds_version, load0, load1) -> list[str]:
    """Title, command, machine, documents and what every method shares."""
    n = len(corpus["texts"])
    L = ["# MinHash-LSH near-dedup: proxyrank.curation.dedup vs datasketch", ""]
    L.append(f"Command: `{_command(args)}`  ")
    L.append(f"Machine: {os.cpu_count()} cores ({_cpu()}), Python {platform.python_version()}, "
             f"numpy {np_version()}, datasketch {ds_version}; shared with other jobs, load average "
             f"{load0[0]:.1f} before and {load1[0]:.1f} after, so timings are noisy.  ")
    L.append(f"Documents: {n:,} ({n_words:,} words): {len(corpus['planted'])} planted pairs ({args.pairs} "
             f"per band of exact word-{p.shingle}-gram Jaccard, built from words used nowhere else; "
             f"see the script's docstring) + {n - 2 * len(corpus['planted']):,} others: {corpus['source']}.  ")
    L.append(f"All methods: the same normalised word {p.shingle}-gram shingles, num_perm={p.num_perm}, "
             f"threshold={p.threshold}. Each method runs in its own fresh subprocess; seconds = the fastest "
             f"of {args.repeats} interleaved rounds.")
    return L


def _band_table(results, p) -> list[str]:
    """Share of planted pairs each method flagged, per band of exact Jaccard, beside the model."""
    from proxyrank.curation.dedup import detection_probability

    o1 = results["ours, workers=1"]
    names = list(results)
    L = ["", "## Share of planted pairs flagged, by exact Jaccard", "",
         "| true J | pairs | " + " | ".join(names) + " | P(flag), ours (model) |",
         "|---|---:|" + "---:|" * len(names) + "---:|"]
    for b, (lo, hi) in enumerate(BANDS):
        total = o1["bands"][b][1]
        cells = [f"{results[m]['bands'][b][0] / total:.3f}" for m in names]
        L.append(f"| [{lo:.2f}, {hi:.2f}{']' if hi == 1.0 else ')'} | {total} | " + " | ".join(cells)
                 + f" | {_model(detection_probability(lo, p), lo >= p.threshold)} |")
    L += ["", ("Rows below the threshold are false positives (should be 0); rows at and above it are "
          "recall. 'P(flag), ours (model)': `detection_probability` at the band's lower end (ideal "
          "independent minima): 0 below the threshold, since a pair is a duplicate only if its exact "
          "Jaccard is >= the threshold.")]
    return L


def _summary_table(results, n: int) -> list[str]:
    """One row per method: recall, precision, time, memory; then each round's seconds."""
    o1 = results["ours, workers=1"]
    L = ["", "## Summary", "",
         "| method | LSH | recall (J >= t) | planted J < t flagged | removed | precision | lowest J removed "
         "| others removed (J < t) | seconds | CPU s main + workers | docs/s | speed ours (workers=1) / this "
         "| peak RSS MB (before) |",
         "|---|---|---:|---:|---:|---:|---:|---|---:|---|---:|---:|---:|"]
    rounds = []
    for m, r in results.items():
        cpu = f"{r['cpu_s']:.1f}" + (f" + {r['children_cpu_s']:.1f}" if r["children_cpu_s"] else "")
        L.append(f"| {m} | {r['lsh']} | {r['recall']:.4f} | {r['below_flagged']} / {r['n_below']} | "
                 f"{r['removed']} | {r['precision']:.4f} | {r['min_j']:.3f} | {r['others']} ({r['others_below']}) | "
                 f"{r['seconds']:.2f} | {cpu} | {n / r['seconds']:,.0f} | {r['seconds'] / o1['seconds']:.2f} | "
                 f"{r['peak_kb'] / 1024:.0f} ({r['base_kb'] / 1024:.0f}) |")
        rounds.append(f"{m}: " + ", ".join(f"{t:.2f}" for t in r["times"]) + " s")
    L += ["", "Rounds (seconds): " + "; ".join(rounds) + ".", ""]
    return L


def _report_notes(results, p, load0) -> list[str]:
    """Speed ratios, the baseline's errors at the threshold, and why the methods differ."""
    from proxyrank.curation.dedup import candidate_probability

    ds, o1 = results["datasketch"], results["ours, workers=1"]
    wall = statistics.median(d / o for d, o in zip(ds["times"], o1["times"]))
    cpu = statistics.median(d / o for d, o in zip(ds["cpu_times"], o1["cpu_times"]))
    L = [f"**Speed ratio ours (workers=1) / datasketch, same documents, same run: {wall:.2f}x** (median "
         f"over rounds of datasketch's time / ours in the same round; in CPU seconds {cpu:.2f}x; fastest "
         f"round / fastest round {ds['seconds'] / o1['seconds']:.2f}x; datasketch + verify: "
         f"{results['datasketch + verify']['seconds'] / o1['seconds']:.2f}x)."]
    L += _baseline_note(results, p)
    o2 = results["ours, workers=2"]
    L += ["", (f"workers=2 / workers=1 wall time: {o2['seconds'] / o1['seconds']:.2f}: the pool pays off only "
          f"when a second core is free; the load average was {load0[0]:.1f} on {os.cpu_count()} cores "
          "before the run.")]
    L += ["", ("precision: share of all removed documents whose true Jaccard with the document it was "
          "matched to is >= the threshold (planted copies and others alike; ours matches a document to "
          "the first of its cluster, so a chain A~B~C could pair C with A below the threshold)."), ""]
    L.append(f"Why: ours proposes candidates with {p.bands} bands x {p.rows} rows, whose S-curve "
             f"1-(1-J^{p.rows})^{p.bands} crosses 0.5 at J = {(1 / p.bands) ** (1 / p.rows):.3f} and gives "
             f"P(candidate) = 1 - {1 - candidate_probability(p.threshold, p):.1e} at J = {p.threshold}; candidates with "
             f"fewer than {p.prefilter_matches} of {p.num_perm} equal minima are dropped (a pair at the "
             f"threshold loses at most 1e-6 this way), the rest are kept only if their exact shingle-set "
             f"Jaccard is >= {p.threshold}. datasketch (and the estimate-verified baseline) decide by the "
             f"hashes alone: datasketch's {ds['b']} bands x {ds['r']} rows put the S-curve's 50% point at "
             f"J = {(1 / ds['b']) ** (1 / ds['r']):.3f}, so it misses pairs above the threshold and "
             "flags pairs below it.")
    return L


def _baseline_note(results, p) -> list[str]:
    """With --baseline: what the estimate-verified dedup kept and removed at the threshold."""
    o1 = results["ours, workers=1"]
    base = [m for m in results if m.startswith("ours @")]
    if not base:
        return []
    b = results[base[0]]
    lo_band, hi_band = _band_of(p.threshold - 0.01), _band_of(p.threshold)
    return ["", (f"Before ({base[0]}, candidates verified by the share of equal minima): it kept "
            f"{1 - b['bands'][hi_band][0] / b['bands'][hi_band][1]:.1%} of the planted pairs with J in "
            f"[{BANDS[hi_band][0]:.2f}, {BANDS[hi_band][1]:.2f}) and removed "
            f"{b['bands'][lo_band][0] / b['bands'][lo_band][1]:.1%} of those in [{BANDS[lo_band][0]:.2f}, "
            f"{BANDS[lo_band][1]:.2f}): the threshold was the 50% point of an estimate. Time ours / "
            f"before: {statistics.median(o / x for o, x in zip(o1['times'], b['times'])):.2f} (median over "
            f"rounds; CPU {statistics.median(o / x for o, x in zip(o1['cpu_times'], b['cpu_times'])):.2f}): "
            "exact verification and 32 bands add work, a faster normalisation of non-ASCII text saves some.")]


def np_version() -> str:
    import numpy

    return numpy.__version__


if __name__ == "__main__":
    main()
