"""`proxyrank rank CANDIDATES.yaml`: rank a data team's own datasets with tiny-LR proxies.

The study asks whether small proxies rank data recipes reliably; this module applies its answer to
datasets nobody has ranked yet. Each candidate (local parquet/jsonl files or a hub dataset) is
sampled with hub.fetch_hub, cut to the same token budget (one epoch, nothing repeated), and every
proxy family of the study's params is trained on it at its standard LR and at the tiny LR, several
seeds each (train.run_all). Datasets are ranked by mean validation loss at each LR, with intervals
from a bootstrap that resamples seeds and validation domains together; the table is ordered by the
tiny-LR ranking (the paper's recommendation), the standard-LR ranking stands beside it, and the
rules in RULES say where the two disagree or where the tiny LR cannot tell the datasets apart.

Work (samples, token arrays, runs, resume state) lives in a folder of its own, keyed by what made
it, so a rerun or a killed run resumes: token arrays are reused while their source, budget and
tokenizer are unchanged, and finished runs come back from .resume/ by fingerprint.
"""
from __future__ import annotations

import dataclasses
import json
import math
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from proxyrank.config import Params, build
from proxyrank.data.corpus import Source
from proxyrank.errors import DataError, ParamsError
from proxyrank.files import atomic_dir, atomic_path, read_yaml_mapping, sha256, write_json, write_text

CHARS_PER_TOKEN = 6  # first sample budget; about 2x what byte-level BPE needs on English, grown if short
LEVEL = 0.95  # every interval
RHO_MIN = 0.75  # below this the paper calls a fixed-LR proxy ranking unreliable
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
RULES = (
    f"Rank 1 is the lowest mean validation loss (mean over seeds and validation domains). Intervals are "
    f"{LEVEL:.0%} percentile intervals of a bootstrap that resamples seeds and validation domains together, "
    f"the same draw for every dataset (they share seeds and domains); a rank interval is widened to "
    f"include the point rank if needed.",
    "*Gap to #1* is a dataset's loss minus that of the LR's first, and a pair of datasets is *separated* at an "
    "LR when the bootstrap interval of their loss difference excludes 0; both are paired (taken within each "
    "resample), because the loss level of a domain or a seed is shared by all datasets and would otherwise "
    "swamp the differences, as it does in the per-dataset loss intervals of ranking.csv.",
    "Warning *top pick differs*: the tiny- and the standard-LR rankings put different datasets first.",
    "Warning *rank outside interval*: a dataset's standard-LR rank lies outside its tiny-LR rank interval.",
    f"Warning *weak agreement*: Spearman between the two rankings below {RHO_MIN} (the paper's standard-LR "
    f"proxies fall below it, its tiny-LR proxies stay above 0.92).",
    "Warning *not separated*: the tiny LR separates no pair of datasets, so its ranking is noise at this "
    "budget; ln(vocab) - mean loss (ln(vocab) is a uniform guess, about where an untrained model starts) says "
    "how far each LR moved the proxies.",
    "Warning *diverged*: a run whose loss became non-finite; its dataset ranks last at that LR.",
)


@dataclass(frozen=True)
class DataSpec:
    """One dataset as the candidates file gives it; fields as in a hub source (proxyrank/data/hub.py)."""
    path: str = ""  # local parquet/jsonl(.gz/.zst) file, folder or glob, relative to the candidates file
    dataset: str = ""  # or a Hugging Face hub name
    schema: str = "text"
    config: str = ""
    split: str = ""
    revision: str = ""
    licence: str = "unspecified"


@dataclass(frozen=True)
class Candidates:
    """The candidates file, typed (config.build names the dotted key of any error)."""
    datasets: dict[str, DataSpec]
    tokens: typing.Optional[int] = None  # per dataset; default the study's train.proxy_tokens
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    families: typing.Optional[list[str]] = None  # default the study's proxy families
    validation: typing.Union[str, dict[str, DataSpec]] = "study"


@dataclass(frozen=True)
class Job:
    """A validated candidates file with the study's defaults filled in."""
    tokens: int
    seeds: list[int]
    families: list[str]
    datasets: dict[str, Source]
    validation: typing.Optional[dict[str, Source]]  # None: the study's held-out domains


# --------------------------------------------------------------------------- the candidates file

def _source(name: str, spec: DataSpec, key: str, base: Path, n_tokens: int) -> Source:
    """A hub source for one dataset, checked by hub.check_source; local files must exist now."""
    from proxyrank.data.hub import local_files, check_source

    src = Source(name=name, registry="hub", licence=spec.licence, parsers={"hub": name},
                 path=str((base / spec.path).resolve()) if spec.path else "", dataset=spec.dataset,
                 config=spec.config, split=spec.split, schema=spec.schema, revision=spec.revision,
                 max_chars=str(n_tokens * CHARS_PER_TOKEN))
    try:
        src = check_source(src, key)
        empty = [f for f in local_files(src)[1] if Path(f).stat().st_size == 0] if src.path else []
        if empty:  # datasets' json reader fails on one with a bare StopIteration
            raise ParamsError(f"{key}.path: {empty[0]} is empty (0 bytes): no documents to rank; "
                              f"fill it or drop it from the list")
    except (ValueError, RuntimeError) as e:
        raise ParamsError(str(e) if str(e).startswith(key) else f"{key}.path: {e}") from None
    return src


def _names(names, key: str, reserved: tuple[str, ...] = ()) -> None:
    """Names become file names: letters, digits, '-', '_', unique even on case-insensitive disks."""
    seen = {}
    for n in names:
        if not NAME.fullmatch(n) or n in reserved:
            raise ParamsError(f"{key}.{n}: use 1-64 letters, digits, '-' and '_', starting with a letter or "
                              f"digit" + "".join(f", not {r!r}" for r in reserved))
        if n.lower() in seen:
            raise ParamsError(f"{key}.{n}: clashes with {seen[n.lower()]!r} on case-insensitive file systems")
        seen[n.lower()] = n


def load_candidates(path: Path, p: Params) -> Job:
    """Read and check the whole candidates file before any work, every error naming its key."""
    path = Path(path)
    data = read_yaml_mapping(path, "the candidates file", ParamsError, expected="a mapping with at least `datasets:`")
    try:
        return _job(path, build(Candidates, data, ""), p)
    except ParamsError as e:
        raise ParamsError(f"{path}: {e}") from None


def _job(path: Path, c: Candidates, p: Params) -> Job:
    t = p.train
    tokens = t.proxy_tokens if c.tokens is None else c.tokens
    if tokens < t.seq_len * t.batch_size:
        raise ParamsError(f"tokens: {tokens} is less than one batch (train.seq_len x train.batch_size = "
                          f"{t.seq_len * t.batch_size})")
    if len(c.datasets) < 2:
        raise ParamsError("datasets: list at least two datasets to rank")
    _names(c.datasets, "datasets")
    if not c.seeds or len(set(c.seeds)) != len(c.seeds) or min(c.seeds) < 0:
        raise ParamsError(f"seeds: one or more distinct non-negative integers, got {c.seeds}")
    study = [s.family for s in p.proxies]
    families = study if c.families is None else c.families
    bad = [f for f in families if f not in study]
    if bad or not families or len(set(families)) != len(families):
        raise ParamsError(f"families: each at most once, from the params' proxy families {', '.join(study)}; "
                          f"got {families}")
    base = path.parent
    datasets = {n: _source(n, s, f"datasets.{n}", base, tokens) for n, s in c.datasets.items()}
    validation = None
    if isinstance(c.validation, str):
        if c.validation != "study":
            raise ParamsError(f"validation: 'study' (the study's held-out domains) or a mapping name -> "
                              f"source, got {c.validation!r}")
    else:
        if not c.validation:
            raise ParamsError("validation: name at least one validation set")
        _names(c.validation, "validation", reserved=("mean",))  # runs record loss_mean beside loss_<domain>
        validation = {n: _source(n, s, f"validation.{n}", base, t.valid_tokens) for n, s in c.validation.items()}
    return Job(tokens, list(c.seeds), list(families), datasets, validation)


# --------------------------------------------------------------------------- samples and tokens

class _Short(Exception):
    """The documents ran out after `got` tokens: a bigger sample is needed, or there is none."""

    def __init__(self, got: int):
        self.got = got


def _encode(tok, table: Path, n: int, target: Path) -> None:
    """Exactly n tokens of the table's documents in their (shuffled) order, each followed by EOS, as
    tokens.encode_valid joins them; written through a memory map, so the budget need not fit in RAM."""
    import pyarrow.parquet as pq

    from proxyrank.data.tokens import EOS, dtype_for, encode_texts

    eos, got = tok.token_to_id(EOS), 0
    with atomic_path(target) as tmp:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype_for(tok.get_vocab_size()), shape=(n,))
        for batch in pq.ParquetFile(table).iter_batches(batch_size=256, columns=["text"]):
            for ids in encode_texts(tok, batch.column(0).to_pylist()):
                take = min(len(ids) + 1, n - got)
                out[got:got + take] = np.append(ids, eos)[:take]
                got += take
                if got == n:
                    break
            if got == n:
                break
        out.flush()
        del out
        if got < n:
            raise _Short(got)


def _key(src: Source, n: int, tokenizer_sha: str) -> dict:
    """What a token array is made of; local files by name, size and mtime, so an edit is seen."""
    from proxyrank.data.hub import local_files

    files = [[Path(f).name, Path(f).stat().st_size, Path(f).stat().st_mtime_ns]
             for f in local_files(src)[1]] if src.path else None
    fields = ("path", "dataset", "config", "split", "schema", "revision", "seed", "shuffle_buffer")
    return {"source": {k: getattr(src, k) for k in fields}, "files": files, "tokens": n,
            "tokenizer": tokenizer_sha}


def sample_tokens(src: Source, n: int, tok, tokenizer_sha: str, raw_dir: Path, target: Path, key: str) -> dict:
    """tokens/<name>.npy with exactly n tokens of the dataset (and its .json record), reused while its
    key holds; otherwise a seeded sample is fetched, grown until it holds n tokens or the data runs out."""
    from proxyrank.data.hub import fetch_hub, sidecar_path

    record_path = target.with_suffix(".json")
    want = _key(src, n, tokenizer_sha)
    if target.exists() and record_path.exists():
        record = json.loads(record_path.read_text())
        if record.get("key") == want and record.get("sha256") == sha256(target):
            return record["sample"]
    if src.path:  # fetch_hub knows local files by name only: re-read them
        for stale in (raw_dir / src.file, sidecar_path(raw_dir / src.file)):
            stale.unlink(missing_ok=True)
    budget = int(src.max_chars)
    while True:
        table = fetch_hub(dataclasses.replace(src, max_chars=str(budget)), raw_dir)
        sample = json.loads(sidecar_path(table).read_text())
        try:
            _encode(tok, table, n, target)
            break
        except _Short as e:
            if sample["chars"] < budget:  # the whole dataset was read
                raise DataError(f"{key}: {src.dataset or src.path} holds {e.got:,} tokens in {sample['docs']:,} "
                                 f"documents, fewer than the {n:,} needed (one epoch, nothing is repeated); "
                                 f"add data or lower the token budget") from None
            budget = math.ceil(budget * max(1.25, 1.1 * n / max(e.got, 1)))
    sample = {k: sample.get(k) for k in ("revision", "files", "docs", "chars")} | {"max_chars": budget}
    write_json(record_path, {"key": want, "sha256": sha256(target), "sample": sample})
    return sample


def study_validation(p: Params, folder: Path) -> dict[str, Path]:
    """The study's held-out validation tokens, one array per domain (the DVC pipeline's `tokens` stage)."""
    paths = {d: Path(folder) / f"{d}.npy" for d in p.split.valid_domains}
    missing = [str(x) for x in paths.values() if not x.exists()]
    if missing:
        raise DataError(f"validation: study: the study's validation tokens are missing "
                                f"({', '.join(missing)}); run `dvc pull` or `dvc repro tokens`, or give "
                                f"`validation:` sources of your own")
    return paths


# --------------------------------------------------------------------------- ranking


@dataclass(frozen=True)
class Ranking:
    """The datasets ranked at one family and LR (rank 1 = lowest loss), with bootstrap intervals."""
    loss: np.ndarray
    loss_lo: np.ndarray
    loss_hi: np.ndarray
    rank: np.ndarray
    rank_lo: np.ndarray
    rank_hi: np.ndarray
    gap: np.ndarray  # loss minus the top-ranked dataset's, paired: the size of a difference
    gap_lo: np.ndarray
    gap_hi: np.ndarray
    separated: int  # dataset pairs whose paired loss-difference interval excludes 0
    boot_rank: np.ndarray  # (n_boot, datasets): for the interval of the rank correlation


def draws(n_seeds: int, n_domains: int, n_boot: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Bootstrap resamples of seeds and of validation domains, shared by every dataset and both LRs."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, n_seeds, (n_boot, n_seeds)), rng.integers(0, n_domains, (n_boot, n_domains))


def rank_losses(losses: np.ndarray, boot: tuple[np.ndarray, np.ndarray]) -> Ranking:
    """losses[dataset, seed, domain] -> Ranking; a diverged run (nan) counts as infinitely bad."""
    from scipy.stats import rankdata

    x = np.where(np.isnan(losses), np.inf, np.asarray(losses, dtype=float))
    s, v = boot
    tail = 50 * (1 - LEVEL)
    with np.errstate(invalid="ignore"):
        point = x.mean(axis=(1, 2))
        means = x[:, s[:, :, None], v[:, None, :]].mean(axis=(2, 3)).T  # (n_boot, datasets)
        lo, hi = np.percentile(means, [tail, 100 - tail], axis=0)
        i, j = np.triu_indices(len(point), 1)
        d_lo, d_hi = np.percentile(means[:, i] - means[:, j], [tail, 100 - tail], axis=0)
        top = int(np.argmin(point))
        g_lo, g_hi = np.percentile(means - means[:, [top]], [tail, 100 - tail], axis=0)
        gap = point - point[top]
    rank, boot_rank = rankdata(point), rankdata(means, axis=1)
    return Ranking(point, lo, hi, rank,
                   np.minimum(np.percentile(boot_rank, tail, axis=0, method="lower"), rank),
                   np.maximum(np.percentile(boot_rank, 100 - tail, axis=0, method="higher"), rank),
                   gap, g_lo, g_hi, int(((d_lo > 0) | (d_hi < 0)).sum()), boot_rank)


def moved(tiny: Ranking, standard: Ranking) -> np.ndarray:
    """Datasets whose standard-LR rank lies outside their tiny-LR rank interval."""
    return (standard.rank < tiny.rank_lo) | (standard.rank > tiny.rank_hi)


def assess(names: list[str], tiny: Ranking, standard: Ranking, ln_vocab: float) -> dict:
    """Compare the tiny- and standard-LR rankings of one family by the rules in RULES."""
    from proxyrank.analysis.metrics import spearman

    rho = spearman(tiny.rank, standard.rank)
    boot = np.array([spearman(a, b) for a, b in zip(tiny.boot_rank, standard.boot_rank)])
    boot = boot[~np.isnan(boot)]
    rho_ci = np.percentile(boot, [50 * (1 - LEVEL), 100 - 50 * (1 - LEVEL)]).tolist() if boot.size else [None] * 2
    drop = {tag: float(ln_vocab - np.mean(r.loss[np.isfinite(r.loss)])) if np.isfinite(r.loss).any() else None
            for tag, r in (("tiny", tiny), ("standard", standard))}
    top = {tag: names[int(np.argmin(r.rank))] for tag, r in (("tiny", tiny), ("standard", standard))}
    far = moved(tiny, standard)
    out = []
    if top["tiny"] != top["standard"]:
        out.append(f"top pick differs: {top['tiny']} at the tiny LR, {top['standard']} at the standard LR")
    if far.any():
        out.append("rank outside interval: " + "; ".join(
            f"{n} (standard {standard.rank[k]:g}, tiny interval {tiny.rank_lo[k]:g}-{tiny.rank_hi[k]:g})"
            for k, n in enumerate(names) if far[k]))
    if not rho >= RHO_MIN:
        out.append(f"weak agreement: Spearman between the two rankings {rho:.2f} < {RHO_MIN}")
    if tiny.separated == 0:
        out.append(f"not separated: the tiny LR separates no pair of datasets (ln(vocab) - mean loss: "
                   f"{_nats(drop['tiny'])} at the tiny LR, {_nats(drop['standard'])} at the standard LR); its "
                   f"ranking is noise here: train on more tokens or with more seeds")
    return {"spearman": rho, "spearman_ci": rho_ci, "top": top, "drop_below_ln_vocab": drop,
            "separated_pairs": {"tiny": tiny.separated, "standard": standard.separated,
                                "of": len(names) * (len(names) - 1) // 2}, "warnings": out}


def _nats(x) -> str:
    return "n/a" if x is None else f"{x:.3f} nats"


def _losses(results: list[dict], names: list[str], family: str, lr: float, seeds: list[int],
            domains: list[str]) -> np.ndarray:
    """losses[dataset, seed, domain] of one family at one LR from the run records."""
    from proxyrank.analysis.metrics import same_lr

    at = {(r["recipe"], r["seed"]): r for r in results if r["family"] == family and same_lr(r["lr"], lr)}
    return np.array([[[at[(n, s)][f"loss_{d}"] for d in domains] for s in seeds] for n in names], dtype=float)


# --------------------------------------------------------------------------- outputs

def _ci(lo, hi, fmt: str) -> str:
    return f"[{lo:{fmt}}, {hi:{fmt}}]" if np.isfinite([lo, hi]).all() else "[n/a]"


def _gap(row: dict, tag: str) -> str:
    if row[f"{tag}_gap"] == row[f"{tag}_gap_lo"] == row[f"{tag}_gap_hi"] == 0:
        return "(#1)"
    return f"{row[f'{tag}_gap']:+.2g} {_ci(row[f'{tag}_gap_lo'], row[f'{tag}_gap_hi'], '+.2g')}"


def _table(rows: list[dict]) -> str:
    """The ranked table: per LR, rank, loss and the paired gap to that LR's first (the loss intervals,
    mostly the spread of the domains that every dataset shares, are in ranking.csv)."""
    head = " | ".join(f"rank ({t}) | 95% CI | loss ({t}) | gap to #1 [95% CI]" for t in ("tiny LR", "standard LR"))
    lines = [f"| dataset | {head} | flag |", "|" + "---|" * 10]
    for r in rows:
        cells = " | ".join(f"{r[f'{t}_rank']:g} | {_ci(r[f'{t}_rank_lo'], r[f'{t}_rank_hi'], 'g')} | "
                           f"{r[f'{t}_loss']:.4f} | {_gap(r, t)}" for t in ("tiny", "standard"))
        lines.append(f"| {r['dataset']} | {cells} | {'rank outside interval' if r['moved'] else ''} |")
    return "\n".join(lines)


def _family_section(fam: dict) -> str:
    a, sep, drop = fam["assessment"], fam["assessment"]["separated_pairs"], fam["assessment"]["drop_below_ln_vocab"]
    ci = a["spearman_ci"]
    rho = f"{a['spearman']:.2f}" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci[0] is not None else "")
    return (f"## {fam['family']} ({fam['preset']}): tiny LR {fam['tiny_lr']:g}, standard LR {fam['standard_lr']:g}\n\n"
            f"{_table(fam['rows'])}\n\nSpearman between the two rankings: {rho}. Pairs separated: "
            f"{sep['tiny']} of {sep['of']} at the tiny LR, {sep['standard']} at the standard LR. ln(vocab) - mean loss "
            f"(how far training moved the proxies from a uniform guess, about where an untrained model starts): "
            f"{_nats(drop['tiny'])} at the tiny LR, {_nats(drop['standard'])} at the standard LR.\n")


def _figure(families: list[dict], path: Path) -> None:
    """Per family, each dataset's tiny-LR rank against its standard-LR rank with their intervals."""
    from proxyrank.reporting.figures import FAMILY_COLOURS, pyplot, write_png

    plt = pyplot()
    fig, axes = plt.subplots(1, len(families), figsize=(3.8 * len(families), 3.8), squeeze=False)
    for ax, fam in zip(axes[0], families):
        rows, n = fam["rows"], len(fam["rows"])
        x, y = np.array([r["standard_rank"] for r in rows]), np.array([r["tiny_rank"] for r in rows])
        xerr = [x - [r["standard_rank_lo"] for r in rows], [r["standard_rank_hi"] for r in rows] - x]
        yerr = [y - [r["tiny_rank_lo"] for r in rows], [r["tiny_rank_hi"] for r in rows] - y]
        ax.plot([0.5, n + 0.5], [0.5, n + 0.5], color="0.8", lw=1)
        ax.errorbar(x, y, xerr=xerr, yerr=yerr, fmt="o", ms=4, capsize=2, color=FAMILY_COLOURS.get(fam["family"]))
        for r in rows:
            ax.annotate(r["dataset"], (r["standard_rank"], r["tiny_rank"]), fontsize=7, xytext=(3, 3),
                        textcoords="offset points")
        ax.set(xlim=(0.5, n + 0.5), ylim=(n + 0.5, 0.5), xticks=range(1, n + 1), yticks=range(1, n + 1),
               xlabel=f"rank at standard LR {fam['standard_lr']:g}", ylabel=f"rank at tiny LR {fam['tiny_lr']:g}",
               title=f"{fam['family']}: Spearman {fam['assessment']['spearman']:.2f}")
    fig.tight_layout()
    write_png(fig, path)


def _markdown(summary: dict) -> str:
    run = summary["run"]
    warnings = "\n".join(f"- {w}" for w in summary["warnings"]) or "None."
    sources = "\n".join(
        f"| {n} | {d['source']} | {d['revision'] or ', '.join(f['name'] for f in d['files'] or [])} | "
        f"{d['docs']:,} | {d['chars']:,} |" for n, d in run["datasets"].items())
    return (f"# Dataset ranking: {summary['candidates']}\n\nDatasets ranked by the mean validation loss of small "
            f"proxy models trained on each at a **tiny learning rate** ("
            f"{', '.join(f'{f} {lr:g}' for f, lr in run['tiny_lr'].items())}), the setting under which "
            f"proxy rankings track a tuned large model's (Wang et al., arXiv 2512.24503); the ranking at each "
            f"family's standard LR stands beside it. Lower loss is better.\n\n## Warnings\n\n{warnings}\n\n"
            + "\n".join(_family_section(f) for f in summary["families"])
            + "\n![tiny-LR rank against standard-LR rank](ranking.png)\n\n## Rules\n\n"
            + "\n".join(f"- {r}" for r in RULES)
            + f"\n\n## What was run\n\n- candidates `{summary['candidates']}`, params `{summary['params']}`\n"
            f"- {run['tokens']:,} tokens per dataset ({run['steps']} steps of {run['batch_size']} x {run['seq_len']}), "
            f"one epoch; seeds {', '.join(map(str, run['seeds']))}; {run['runs']} training runs\n"
            f"- families: {', '.join(f'{f} ({p})' for f, p in run['presets'].items())}; tokenizer vocabulary "
            f"{run['vocab_size']:,}\n- validation ({run['validation']}): {', '.join(run['domains'])}, "
            f"{run['valid_tokens']:,} tokens each\n- bootstrap: {run['n_boot']} resamples, seed {run['seed']}\n\n"
            f"| dataset | source | revision / files | documents sampled | characters sampled |\n|---|---|---|---|---|\n"
            f"{sources}\n")


def write_outputs(summary: dict, out: Path) -> None:
    """ranking.csv / .md / .json / .png, each written atomically."""
    import pandas as pd

    rows = [{"family": f["family"], **r} for f in summary["families"] for r in f["rows"]]
    with atomic_path(out / "ranking.csv") as tmp:
        pd.DataFrame(rows).to_csv(tmp, index=False, float_format="%.8g")  # tiny-LR gaps are ~1e-5
    write_json(out / "ranking.json", summary)
    write_text(out / "ranking.md", _markdown(summary))
    _figure(summary["families"], out / "ranking.png")


# --------------------------------------------------------------------------- the command

def _prepare(job: Job, p: Params, tokenizer_dir: Path, study_valid: Path, work: Path):
    """The tokenizer, the validation arrays by domain and each dataset's token array and sample record."""
    from proxyrank.data import tokens

    if not (Path(tokenizer_dir) / "tokenizer.json").exists():
        raise DataError(f"{tokenizer_dir}/tokenizer.json: the study's tokenizer is missing; run "
                                f"`dvc pull` or `dvc repro tokenizer`")
    valid = study_validation(p, study_valid) if job.validation is None else {}
    tok = tokens.load(tokenizer_dir)
    tok_sha = sha256(Path(tokenizer_dir) / "tokenizer.json")
    for name, src in (job.validation or {}).items():
        valid[name] = work / "tokens" / "valid" / f"{name}.npy"
        sample_tokens(src, p.train.valid_tokens, tok, tok_sha, work / "raw" / "valid", valid[name],
                      f"validation.{name}")
    samples = {}
    for name, src in job.datasets.items():
        samples[name] = sample_tokens(src, job.tokens, tok, tok_sha, work / "raw" / "datasets",
                                      work / "tokens" / f"{name}.npy", f"datasets.{name}")
        print(f"rank: {name}: {job.tokens:,} tokens from {samples[name]['docs']:,} sampled documents", flush=True)
    return tok, valid, samples


def family_lrs(p: Params, families: list[str], study_metrics: Path) -> dict[str, dict[str, float]]:
    """{family: {"standard": lr, "tiny": lr}}: fixed in params, or, with analysis.standard_lr "tuned", the
    study's own choice (reports/metrics.json: the family's tuned standard LR and standard / the first
    tiny ratio), so `rank` uses the LRs the study measured."""
    a = p.analysis
    if not isinstance(a.standard_lr, str):
        return {f: {"standard": a.standard_lr[f], "tiny": a.tiny_lr} for f in families}
    tag = f"tiny{a.tiny_ratios[0]:g}"
    metrics = json.loads(study_metrics.read_text()) if study_metrics.exists() else {}
    missing = [f for f in families if not {"standard_lr", f"{tag}_lr"} <= set(metrics.get(f, {}))]
    if missing:
        raise ParamsError(f"analysis.standard_lr: 'tuned' takes each family's standard and {tag} LR from the study's "
                          f"{study_metrics}, which has none for {', '.join(missing)}; run `make study` first, or give "
                          f"--params a file whose analysis.standard_lr is {{family: lr}}")
    return {f: {"standard": metrics[f]["standard_lr"], "tiny": metrics[f][f"{tag}_lr"]} for f in families}


def _train(job: Job, p: Params, presets: dict[str, str], lrs: dict[str, dict[str, float]], valid: dict[str, Path],
           vocab: int, work: Path) -> list[dict]:
    """Every family at its standard and tiny LR, every seed, on every dataset; finished runs resume."""
    from proxyrank.training.train import RunSpec, run_all

    results = []
    for name in job.datasets:
        specs = [RunSpec(name, "proxy", f, presets[f], lr, s, job.tokens) for f in job.families
                 for lr in sorted(set(lrs[f].values())) for s in job.seeds]
        with atomic_dir(work / "runs" / name) as tmp:
            results += run_all(specs, p.train, work / "tokens" / f"{name}.npy", valid, vocab, work / ".resume", tmp)
    return results


def _family(f: str, preset: str, lrs: dict[str, float], job: Job, results: list[dict], domains: list[str], boot,
            vocab: int) -> dict:
    """One family's two rankings, their comparison, and one table row per dataset in tiny-LR order."""
    names = list(job.datasets)
    lrs = {"tiny": lrs["tiny"], "standard": lrs["standard"]}
    r = {tag: rank_losses(_losses(results, names, f, lr, job.seeds, domains), boot) for tag, lr in lrs.items()}
    far = moved(r["tiny"], r["standard"])
    rows = [{"dataset": n, **{f"{tag}_{k}": float(getattr(r[tag], k)[i]) for tag in r
                              for k in ("rank", "rank_lo", "rank_hi", "loss", "loss_lo", "loss_hi", "gap",
                                        "gap_lo", "gap_hi")},
             "moved": bool(far[i])} for i, n in enumerate(names)]
    rows.sort(key=lambda row: (row["tiny_rank"], row["dataset"]))
    return {"family": f, "preset": preset, "tiny_lr": lrs["tiny"], "standard_lr": lrs["standard"],
            "assessment": assess(names, r["tiny"], r["standard"], math.log(vocab)), "rows": rows}


def rank(candidates: Path, p: Params, params_path: str, tokenizer_dir: Path, study_valid: Path, out: Path,
         work: Path, study_metrics: Path = Path("reports/metrics.json")) -> dict:
    """Sample, tokenize, train and rank every candidate; returns the summary written to ranking.json."""
    from proxyrank.training.params import steps_from_tokens

    job = load_candidates(candidates, p)
    lrs = family_lrs(p, job.families, study_metrics)  # before any sampling: a missing study fails at once
    tok, valid, samples = _prepare(job, p, tokenizer_dir, study_valid, work)
    vocab, domains = tok.get_vocab_size(), list(valid)
    presets = {s.family: s.preset for s in p.proxies if s.family in job.families}
    results = _train(job, p, presets, lrs, valid, vocab, work)
    boot = draws(len(job.seeds), len(domains), p.analysis.n_boot, p.seed)
    families = [_family(f, presets[f], lrs[f], job, results, domains, boot, vocab) for f in job.families]
    warnings = [f"{fam['family']}: {w}" for fam in families for w in fam["assessment"]["warnings"]]
    diverged = sorted({f"{r['recipe']} {r['run_id']}" for r in results if r["diverged"]})
    if diverged:
        warnings.append(f"diverged: {len(diverged)} run(s) ({', '.join(diverged)}); their datasets rank last there")
    if len(job.seeds) == 1:
        warnings.append("one seed: the intervals cover validation domains only, not seed noise")
    t = p.train
    summary = {
        "candidates": str(candidates), "params": params_path, "rules": list(RULES), "warnings": warnings,
        "families": families,
        "run": {"tokens": job.tokens, "steps": steps_from_tokens(job.tokens, t), "batch_size": t.batch_size,
                "seq_len": t.seq_len, "seeds": job.seeds, "runs": len(results), "presets": presets,
                "tiny_lr": {f: lrs[f]["tiny"] for f in job.families},
                "standard_lr": {f: lrs[f]["standard"] for f in job.families},
                "vocab_size": vocab, "validation": "study" if job.validation is None else "own",
                "domains": domains, "valid_tokens": t.valid_tokens, "n_boot": p.analysis.n_boot, "seed": p.seed,
                "datasets": {n: {"source": s.dataset or s.path, **samples[n]} for n, s in job.datasets.items()}},
    }
    write_outputs(summary, out)
    for fam in families:
        print(_family_section(fam))
    print("\n".join(f"warning: {w}" for w in warnings) or "no warnings")
    print(f"rank: wrote {out}/ranking.csv, ranking.md, ranking.json, ranking.png")
    return summary
