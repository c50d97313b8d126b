"""What a params file will cost, before anything runs: `python -m proxyrank plan`.

A lab choosing a profile needs the bill first: every training run the params declare, its
parameters, tokens and FLOPs, the GPU-hours at a stated model-FLOPs utilisation (MFU) of a named
GPU's dense bf16 peak, and the disk the outputs need. Nothing is trained and no data is read:
parameter counts come from the models built on PyTorch's meta device, the vocabulary from the
tokenizer params. FLOPs are counted as train.py counts them when it logs MFU (6N + 12·L·d·T per
token, models.train_flops), so a planned MFU and a measured one are comparable.
"""
from __future__ import annotations

import dataclasses
import json
import math
import textwrap
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from proxyrank.config import Params
from proxyrank.errors import ParamsError
from proxyrank.training.params import tokens_trained
from proxyrank.training.train import PEAK_BF16_FLOPS, RunSpec, run_specs

GPT2_VOCAB = 50257  # GPT-2's vocab.json: 50,000 merges + 256 bytes + <|endoftext|>
ROLES = ("proxy", "reference")
CHECKPOINT_BYTES_PER_PARAM = 12  # fp32 weights + AdamW's two fp32 moments (train._save_checkpoint)
MFU, GPU = 0.4, "H100"  # what `plan` assumes unless told (--mfu, --gpu); `ladder` prints the same
# FLOP/s per preset measured on this project's 2-core reference machine (bench/cpu_throughput.py)
CPU_RATES = Path(__file__).resolve().parents[2] / "bench" / "results" / "cpu_throughput.json"


def vocab_size(p: Params) -> int:
    """The vocabulary the models will be built with: GPT-2's, or the trained BPE's target size."""
    return GPT2_VOCAB if p.tokenizer.kind == "gpt2" else p.tokenizer.vocab_size


def token_bytes(p: Params) -> int:
    from proxyrank.data.tokens import dtype_for

    return dtype_for(vocab_size(p))().itemsize


@dataclass(frozen=True)
class RunCost:
    spec: RunSpec
    n_params: int
    tokens: int  # trained: whole global batches of spec.tokens (training.params.tokens_trained)
    train_flops: int
    eval_flops: int  # forward passes over every validation window at every eval point

    @property
    def flops(self) -> int:
        return self.train_flops + self.eval_flops


def run_costs(p: Params, recipes: list[str] | None = None) -> list[RunCost]:
    """The cost of every run of `recipes` (default: all), in run_specs order per recipe and role."""
    from proxyrank.training.models import param_count, train_flops

    t, vocab = p.train, vocab_size(p)
    eval_tokens = t.eval_points * len(p.split.valid_domains) * ((t.valid_tokens - 1) // t.seq_len) * t.seq_len
    out = []
    for recipe in recipes or list(p.recipes):
        for role in ROLES:
            for spec in run_specs(p, recipe, role):
                n = param_count(spec.preset, vocab, t.seq_len)
                tokens = tokens_trained(spec.tokens, t)
                out.append(RunCost(spec, n, tokens, train_flops(n, spec.preset, t.seq_len, tokens),
                                   train_flops(n, spec.preset, t.seq_len, eval_tokens) // 3))
    return out


def cpu_rates(path: Path | None = None) -> dict[str, tuple[float, int]]:
    """{preset: (FLOP/s of one 1-thread worker, its parameters)} as measured on the reference CPU
    (default CPU_RATES); empty where the measurement is not at hand (an installed wheel has no bench/)."""
    path = path or CPU_RATES
    if not path.is_file():
        return {}
    return {k: (v["flops_per_s"], v["n_params"]) for k, v in json.loads(path.read_text())["presets"].items()}


def cpu_seconds(c: RunCost, rates: dict[str, tuple[float, int]]) -> tuple[float, str]:
    """Seconds one worker takes for run `c`: its FLOPs at its preset's measured rate, else at the rate
    of the measured preset nearest in size, named as the second value (bigger models use a CPU
    better, so that bound is high for them)."""
    if c.spec.preset in rates:
        return c.flops / rates[c.spec.preset][0], c.spec.preset
    near = min(rates, key=lambda k: (abs(math.log(rates[k][1] / c.n_params)), k))
    return c.flops / rates[near][0], near


def cpu_worker_hours(costs: list[RunCost], rates: dict[str, tuple[float, int]]) -> float | None:
    """Hours one worker would take for all `costs`; None without a measurement."""
    return sum(cpu_seconds(c, rates)[0] for c in costs) / 3600 if rates else None


def export_costs(p: Params, costs: list[RunCost]) -> list[RunCost]:
    """The export stage's runs: one reference run per recipe of `export.recipes` (which LR wins is
    known only after the references train; every LR of a grid costs the same)."""
    names, first = set(p.export.names(p.recipes)), {}
    for c in costs:
        if c.spec.role == "reference" and c.spec.recipe in names:
            first.setdefault(c.spec.recipe, c)
    return list(first.values())


def recipe_flops(p: Params) -> dict[str, int]:
    """Total FLOPs of each recipe's training stages: what a scheduler balances."""
    total: dict[str, int] = defaultdict(int)
    for c in run_costs(p):
        total[c.spec.recipe] += c.flops
    return dict(total)


def peak_flops(gpu: str) -> tuple[str, float]:
    """(name, dense bf16 FLOP/s) of a GPU named case-insensitively, from train.PEAK_BF16_FLOPS."""
    for name, peak in PEAK_BF16_FLOPS.items():
        if name.lower() == gpu.lower():
            return name, peak
    raise ParamsError(f"--gpu: unknown GPU {gpu!r}; known (dense bf16 peak): "
                      + ", ".join(f"{k} {v / 1e12:g} TFLOP/s" for k, v in PEAK_BF16_FLOPS.items()))


def gpu_hours(flops: float, mfu: float, peak: float) -> float:
    return flops / (mfu * peak) / 3600


def record_bytes(p: Params) -> int:
    """Size of one run record (JSON): about 1 KB plus one curve point per eval point; calibrated on
    the default study's records (3 points x 8 domains: 1.97 KB measured, 1.98 KB here)."""
    return 1024 + p.train.eval_points * (80 + 30 * len(p.split.valid_domains))


def disk(p: Params, costs: list[RunCost]) -> dict[str, int]:
    """Bytes each kind of output needs (see `render` for what each one is)."""
    largest = max(costs, key=lambda c: c.n_params)
    return {
        "recipe_tokens": len(p.recipes) * p.budget_tokens * token_bytes(p),
        "valid_tokens": len(p.split.valid_domains) * p.train.valid_tokens * token_bytes(p),
        "run_records": 2 * len(costs) * record_bytes(p),  # data/runs/... and data/.resume/
        "checkpoint": 2 * CHECKPOINT_BYTES_PER_PARAM * largest.n_params,  # per training process
        # written at every eval point but the last (train_run), a cost in I/O time for short runs
        "checkpoint_writes": (p.train.eval_points - 1) * CHECKPOINT_BYTES_PER_PARAM * sum(c.n_params for c in costs),
    }


def corpus_chars(p: Params) -> tuple[int, list[str]]:
    """Characters the hub sources may bring (their max_chars) and the hub sources without one."""
    from proxyrank.data.corpus import load_sources

    sources = load_sources(p.corpus.manifest)
    hub = [sources[n] for n in p.corpus.sources if sources[n].registry == "hub"]
    return sum(int(s.max_chars) for s in hub if s.max_chars), [s.name for s in hub if not s.max_chars]


def _n(x: float) -> str:
    """A count in k / M / B / T, three significant digits."""
    for unit, size in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= size:
            return f"{x / size:.3g}{unit}"
    return f"{x:.3g}"


def _bytes(x: float) -> str:
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if x >= size:
            return f"{x / size:.3g} {unit}"
    return f"{x:.0f} B"


def _flops(x: float) -> str:
    return f"{x:.2e}".replace("e+", "e")


def hours_text(h: float) -> str:
    return f"{h:,.0f}" if h >= 100 else f"{h:.3g}"


def render(p: Params, costs: list[RunCost], mfu: float, gpu: str, source: str, every_run: bool = False) -> str:
    """The plan as text: runs grouped by role, model and LR; totals per role; assumptions; disk."""
    if not 0 < mfu <= 1:
        raise ParamsError(f"--mfu: a fraction in (0, 1], got {mfu}")
    name, peak = peak_flops(gpu)
    rates = cpu_rates()
    L = _setup_lines(p, costs, source)
    L += _run_lines(costs, mfu, peak, rates, export_costs(p, costs))
    total_h = gpu_hours(sum(c.flops for c in costs), mfu, peak)
    L += [""] + textwrap.wrap(
        f"Assumed: MFU {mfu:.0%} of one {name}'s dense bf16 peak ({peak / 1e12:g} TFLOP/s), i.e. "
        f"{mfu * peak / 1e12:.0f} TFLOP/s sustained per GPU; FLOPs per token 6N + 12·L·d·T (N parameters "
        f"with embeddings, L layers, d width, T seq_len; train.py logs each run's MFU the same way); "
        f"evaluation: forward passes, one third of that per token. Spread over G GPUs: about "
        f"{hours_text(total_h)} / G hours of wall time.", 100) + [""]
    L += _cpu_lines(p, costs, rates)
    L += _disk_lines(p, costs)
    if every_run:
        L += ["", "recipe\trole\tfamily\tpreset\tlr\tseed\ttokens\tparams\tflops\tgpu_hours"]
        L += [f"{c.spec.recipe}\t{c.spec.role}\t{c.spec.family}\t{c.spec.preset}\t{c.spec.lr:g}\t{c.spec.seed}\t"
              f"{c.tokens}\t{c.n_params}\t{c.flops}\t{gpu_hours(c.flops, mfu, peak):.4g}" for c in costs]
    return "\n".join(L)


def _setup_lines(p: Params, costs: list[RunCost], source: str) -> list[str]:
    """What is planned: the recipes by group, the runs, and the training settings they share."""
    t, n_rec = p.train, len(p.recipes)
    groups = defaultdict(list)
    for r in p.recipes.values():
        groups[r.group].append(r.name)
    accum = f" in {t.grad_accum} micro-batches" if t.grad_accum > 1 else ""
    extras = "".join(x for x, on in ((", compiled", t.compile),
                                     (", activation checkpointing", t.activation_checkpointing)) if on)
    L = [f"plan for {source}: {n_rec} recipes ({', '.join(f'{g} {len(v)}' for g, v in groups.items())}), "
         f"{len(costs):,} training runs",
         f"vocabulary {vocab_size(p):,} (tokenizer {p.tokenizer.kind}), seq_len {t.seq_len:,}, global batch "
         f"{t.batch_size:,} x {t.seq_len:,} = {t.batch_size * t.seq_len:,} tokens{accum}, device {t.device}, "
         f"precision {t.precision}{extras}", ""]
    for g, names in groups.items():
        L.append(f"  {g}: {', '.join(names)}")
    return L + ["", f"runs (every line: the same runs for each of the {n_rec} recipes)", ""]


def _cpu_h(cs: list[RunCost], rates: dict) -> str:
    """Worker-hours of runs `cs` on the reference CPU, or '-' without its measurement."""
    return "-" if not rates else hours_text(cpu_worker_hours(cs, rates))


def _cpu_lines(p: Params, costs: list[RunCost], rates: dict) -> list[str]:
    """What the training runs take on this project's reference CPU, from measured FLOP/s per preset."""
    if not rates:
        return [f"CPU hours: no measurement at {CPU_RATES} (bench/cpu_throughput.py writes it)", ""]
    workers, hours = p.train.workers, cpu_worker_hours(costs, rates)
    guessed = sorted({f"{c.spec.preset} as {cpu_seconds(c, rates)[1]}" for c in costs if c.spec.preset not in rates})
    return textwrap.wrap(
        f"On this project's reference CPU (2 cores, no GPU; FLOP/s per preset measured over a study's runs, "
        f"bench/results/cpu_throughput.json): about {hours_text(hours)} worker-hours of training, i.e. "
        f"{hours_text(hours / workers)} hours of wall time on train.workers = {workers} one-thread workers. Training "
        f"only: the data stages, the analysis and DVC's bookkeeping come on top (the default's, stage by stage: "
        f"bench/results/default_study_cpu.md)."
        + (f" Never measured there, so timed at the rate of the measured preset nearest in size, which a bigger "
           f"model beats (an upper bound): {', '.join(guessed)}." if guessed else ""), 100) + [""]


def _run_lines(costs: list[RunCost], mfu: float, peak: float, rates: dict, ex: list[RunCost]) -> list[str]:
    """One line per role, family, preset and LR (its seeds together), then the totals per role."""
    head = f"{'role':<10} {'family':<7} {'preset':<12} {'params':>7} {'tokens':>7} {'lr':>8} {'seeds':<8} " \
           f"{'runs':>5} {'FLOPs':>8} {'GPU-h':>8} {'CPU-h':>8}"
    L = [head, "-" * len(head)]
    lines: dict[tuple, list[RunCost]] = defaultdict(list)
    for c in costs:
        s = c.spec
        lines[(s.role, s.family, s.preset, s.lr)].append(c)
    for (role, family, preset, lr), cs in lines.items():
        seeds = ",".join(str(x) for x in sorted({c.spec.seed for c in cs}))
        flops = sum(c.flops for c in cs)
        L.append(f"{role:<10} {family:<7} {preset:<12} {_n(cs[0].n_params):>7} {_n(cs[0].tokens):>7} {lr:>8.1e} "
                 f"{seeds:<8} {len(cs):>5} {_flops(flops):>8} {hours_text(gpu_hours(flops, mfu, peak)):>8} "
                 f"{_cpu_h(cs, rates):>8}")
    L += ["", f"{'':<10} {'runs':>6} {'largest':>8} {'tokens':>8} {'train FLOPs':>12} {'eval FLOPs':>11} "
              f"{'GPU-hours':>10} {'CPU-hours':>10}"]
    def row(label: str, cs: list[RunCost]) -> str:
        return (f"{label:<10} {len(cs):>6,} {_n(max(c.n_params for c in cs)):>8} {_n(sum(c.tokens for c in cs)):>8} "
                f"{_flops(sum(c.train_flops for c in cs)):>12} {_flops(sum(c.eval_flops for c in cs)):>11} "
                f"{hours_text(gpu_hours(sum(c.flops for c in cs), mfu, peak)):>10} {_cpu_h(cs, rates):>10}")

    L += [row(role, [c for c in costs if role in (c.spec.role, "total")]) for role in (*ROLES, "total")]
    if not ex:
        return L + [f"{'+ export':<10} {0:>6}  (export.recipes: none; the stage export saves no model)"]
    return L + [row("+ export", ex) + "  (the tuned reference retrained once per recipe for from_pretrained: "
                                      "stage export)"]


def _disk_lines(p: Params, costs: list[RunCost]) -> list[str]:
    """The disk each kind of output needs, and what it is."""
    t, n_rec = p.train, len(p.recipes)
    d = disk(p, costs)
    largest = max(costs, key=lambda c: c.n_params)
    work = d["recipe_tokens"] + d["valid_tokens"] + d["run_records"]
    L = ["disk",
         f"  recipe token files   {_bytes(d['recipe_tokens']):>9}  {n_rec} x {_n(p.budget_tokens)} tokens x "
         f"{token_bytes(p)} B (data/recipes/*/train.npy: each recipe holds the longest run's tokens)",
         f"  validation tokens    {_bytes(d['valid_tokens']):>9}  {len(p.split.valid_domains)} domains x "
         f"{t.valid_tokens:,} tokens x {token_bytes(p)} B (data/tokens)",
         f"  run records          {_bytes(d['run_records']):>9}  {len(costs):,} runs x ~{_bytes(record_bytes(p))} "
         f"JSON, twice (data/runs, data/.resume)",
         f"  checkpoints          {_bytes(d['checkpoint']):>9}  transient, per training process: "
         f"{CHECKPOINT_BYTES_PER_PARAM} B/param (fp32 weights + AdamW moments) of the largest run "
         f"({largest.spec.preset}, {_n(largest.n_params)}), two while the next one is written; "
         f"deleted when the run ends; {_bytes(d['checkpoint_writes'])} written in all (at each eval point "
         f"but the last)",
         f"  outputs in all       {_bytes(work):>9}  plus as much again in .dvc/cache unless cache.type is "
         f"reflink, hardlink or symlink; a DVC remote holds one copy"]
    chars, unbounded = corpus_chars(p)
    if chars or unbounded:
        L.append(f"  corpus text          {_n(chars):>9}  characters at most from the hub samples (their "
                 f"max_chars), kept zstd-compressed in data/raw, data/docs, data/pool and the crawl"
                 + (f"; {', '.join(unbounded)} bounded by max_docs only" if unbounded else ""))
    return L


def summary(p: Params, costs: list[RunCost], mfu: float, gpu: str) -> dict:
    """The plan's totals as numbers (for scripts and tests)."""
    _, peak = peak_flops(gpu)
    roles = {role: [c for c in costs if c.spec.role == role] for role in ROLES}
    out = {role: {"runs": len(cs), "tokens": sum(c.tokens for c in cs), "flops": sum(c.flops for c in cs),
                  "gpu_hours": gpu_hours(sum(c.flops for c in cs), mfu, peak)} for role, cs in roles.items()}
    out["total"] = {k: sum(out[r][k] for r in ROLES) for k in ("runs", "tokens", "flops", "gpu_hours")}
    rates = cpu_rates()
    for role, cs in (*roles.items(), ("total", costs)):
        out[role]["cpu_worker_hours"] = cpu_worker_hours(cs, rates)
    out["disk"] = disk(p, costs)
    out["runs"] = [dataclasses.asdict(c.spec) | {"n_params": c.n_params, "tokens_trained": c.tokens,
                                                  "flops": c.flops} for c in costs]
    return out
