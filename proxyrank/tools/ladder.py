"""The scale ladder: the same study at several proxy / reference scales, one table of where tiny LR wins.

A pilot at toy scale found the paper's claim reversed, so whether (and from which scale) a tiny
LR ranks recipes better than the standard one is measured, not assumed. Each rung of
`ladder.rungs` in params.yaml is this params file (or a profile) with some keys overridden; the
`ladder` command runs a rung's pipeline up to `metrics` with `dvc repro` in its own workspace under
.dvc/tmp/ladder/<rung> (a clone of this repository plus the working tree's uncommitted files)
that shares this project's DVC cache, so stages a rung shares with the study or another rung are
restored from the run-cache instead of retrained, and a killed rung resumes. Its headline joins
reports/ladder.csv (one row per rung and proxy family, replaced when the rung reruns), which the
figures and the report read. Rungs marked `gpu: true` are skipped on a machine without CUDA.
"""
from __future__ import annotations

import difflib
import hashlib
import json
import shutil
import subprocess
import time
from pathlib import Path

import yaml

from proxyrank import timings
from proxyrank.config import LadderParams, Params, Rung, missing_stage_params, override, parse_params, read_params
from proxyrank.errors import CommandError, ParamsError
from proxyrank.tools.scale import child_env, git

LADDER_CSV = Path("reports") / "ladder.csv"
VALIDITY = ["v1_pass", "v1_best_fixed_spearman", "v1_seed_ceiling", "v1_optima_spread", "v2_standard_pass",
            "v2_tiny_pass", "v2_tiny_loss_drop", "v2_tiny_reliability", "v3_ceiling", "v4_delta", "v4_lo", "v4_hi",
            "can_test"]
"""Per rung and family: V1 (tuning matters: pass, the best fixed-LR reference's Spearman with the tuned
one, the seed ceiling it is compared with, the optima's spread), V2 at the standard and the first
tiny LR (pass, loss drop from step 0, split-half reliability), V3's seed-vs-seed ceiling, V4's
tiny - standard contrast with its paired CI, and the verdict."""
WORKSPACES = Path(".dvc") / "tmp" / "ladder"
COLUMNS = ["rung", "family", "proxy_preset", "proxy_params", "proxy_tokens", "reference_preset",
           "reference_params", "reference_tokens", "reference_flops", "standard_lr", "tiny_lr",
           "spearman_standard", "spearman_standard_lo", "spearman_standard_hi", "spearman_tiny",
           "spearman_tiny_lo", "spearman_tiny_hi", "best_spearman_lr", "best_spearman", "n_recipes", "runs",
           "train_hours", "device", "commit", "params_sha",
           # the axes of issue 15 and the validity checks (reports/validity.json; empty for rows older than it)
           "proxy_steps", "proxy_width", "reference_tokens_per_param", *VALIDITY]


def rung_params(name: str, rung: Rung, base: Path) -> dict:
    """The full params mapping of one rung, validated like params.yaml itself."""
    return parsed_rung(name, rung, base)[0]


def parsed_rung(name: str, rung: Rung, base: Path) -> tuple[dict, Params]:
    """One rung's full params mapping and the Params it parses to (parsed once)."""
    where = f"ladder.rungs.{name}"
    source = Path(rung.profile) if rung.profile else base
    try:
        data = read_params(source)  # a profile is its base with its overrides
    except ParamsError as e:
        raise ParamsError(f"{where}.profile: {e}") from None
    data["ladder"] = {"rungs": {}}  # a rung has no ladder of its own
    for key, value in rung.set.items():
        override(data, key, value, f"{where}.set")
    for recipe in rung.drop:
        if recipe not in data.get("recipes", {}):
            hint = difflib.get_close_matches(recipe, data.get("recipes", {}), n=1)
            raise ParamsError(f"{where}.drop: unknown recipe {recipe!r}" + (f" (did you mean {hint[0]!r}?)" if hint
                              else "") + f"; declared: {', '.join(data.get('recipes', {}))}")
        del data["recipes"][recipe]
    try:
        return data, parse_params(data)
    except ParamsError as e:
        raise ParamsError(f"{where}: {e}") from None


def rung_lines(p: Params, base: Path, mfu: float, gpu: str) -> list[str]:
    """One line per ladder rung (`ladder.rungs`): its runs, the axes issue 15 varies (proxy steps,
    reference tokens per parameter, proxy width) and its training hours on the reference CPU beside
    its GPU-hours."""
    from proxyrank.tools.plan import hours_text, cpu_rates, cpu_worker_hours, gpu_hours, peak_flops, run_costs, vocab_size
    from proxyrank.training.models import param_count
    from proxyrank.training.params import steps_from_tokens
    from proxyrank.training.presets import PRESETS

    if not p.ladder.rungs:
        return []
    _, peak = peak_flops(gpu)
    rates = cpu_rates()
    head = (f"{'rung':<14} {'runs':>6} {'proxy':>12} {'width':>5} {'steps':>6} {'reference':>13} {'tok/param':>9} "
            f"{'CPU-h (wall)':>12} {'GPU-h':>8}")
    L = ["ladder rungs (`python -m proxyrank ladder RUNG`): training only; CPU wall hours on train.workers "
         "one-thread workers of the reference CPU", head, "-" * len(head)]
    for name, rung in p.ladder.rungs.items():
        r = parsed_rung(name, rung, base)[1]
        costs = run_costs(r)
        ref_n = param_count(r.reference.preset, vocab_size(r), r.train.seq_len)
        proxy = r.proxies[0].preset if len({s.preset for s in r.proxies}) == 1 else \
            "/".join(sorted({s.preset.split("-", 1)[1] for s in r.proxies}))
        width = "/".join(str(w) for w in sorted({PRESETS[s.preset].hidden for s in r.proxies}))
        cpu = cpu_worker_hours(costs, rates)
        L.append(f"{name:<14} {len(costs):>6,} {proxy:>12} {width:>5} {steps_from_tokens(r.train.proxy_tokens, r.train):>6,} "
                 f"{r.reference.preset:>13} {r.train.reference_tokens / ref_n:>9.3g} "
                 f"{'-' if cpu is None else hours_text(cpu / r.train.workers):>12} "
                 f"{hours_text(gpu_hours(sum(c.flops for c in costs), mfu, peak)):>8}")
    return L + [""]


def gpu_rungs(p: Params, base: Path, names: list[str]) -> list[dict]:
    """The named rungs marked `gpu: true`, priced as `plan` prices them (training FLOPs at plan.MFU of
    an H100's dense bf16 peak, no start-up or evaluation), with the command that runs each."""
    from proxyrank.tools import plan

    peak = plan.peak_flops(plan.GPU)[1]
    out = []
    for name in names:
        rung = p.ladder.rungs[name]
        if rung.gpu:
            costs = plan.run_costs(parsed_rung(name, rung, base)[1])
            flops = sum(c.flops for c in costs)
            out.append({"rung": name, "profile": rung.profile, "runs": len(costs), "flops": flops,
                        "gpu_hours": plan.gpu_hours(flops, plan.MFU, peak), "gpu": plan.GPU, "mfu": plan.MFU,
                        "command": f"python -m proxyrank ladder {name}"})
    return out


def _workspace(root: Path, name: str) -> tuple[Path, str, bool]:
    """The rung's workspace at this checkout's HEAD plus its uncommitted files; (path, commit, dirty).

    Outputs a rung already made stay in place (DVC checks them), so a rerun continues. So do its
    dvc.lock and its git-tracked outputs (reports/): the checkout would put the study's back, and
    `dvc repro` would then rerun every stage whose outputs are not in the DVC cache (the recipes,
    about 2.5 minutes) to rebuild what it had."""
    ws = root / WORKSPACES / name
    commit = git("rev-parse", "HEAD", cwd=root)
    fresh = not (ws / ".git").exists()
    own = {} if fresh else {rel: (ws / rel).read_bytes() for rel in _ls_files(ws, "--modified", "dvc.lock", "reports")
                            if (ws / rel).is_file()}
    if fresh:
        shutil.rmtree(ws, ignore_errors=True)
        ws.parent.mkdir(parents=True, exist_ok=True)
        git("clone", "--quiet", "--no-checkout", str(root.resolve()), str(ws), cwd=root)
    git("fetch", "--quiet", str(root.resolve()), commit, cwd=ws)
    git("checkout", "--quiet", "--force", commit, cwd=ws)
    changed = _ls_files(root, "--modified", "--others", "--exclude-standard")
    for rel in changed:
        if (root / rel).is_file():
            (ws / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(root / rel, ws / rel)
    for rel, content in own.items():
        (ws / rel).write_bytes(content)
    cache = (root / ".dvc" / "cache").resolve()
    subprocess.run(["dvc", "cache", "dir", "--local", str(cache)], cwd=ws, env=child_env(), check=True,
                   capture_output=True)
    if fresh:  # every output the lock names and the cache holds, in one pass: `dvc repro` then runs
        # or restores only the stages the rung changes, instead of restoring each stage from the
        # run-cache in turn (about 2 s and a dvc.lock rewrite per stage). Outputs the cache lacks
        # are left to `dvc repro`, so a failure here is not an error.
        subprocess.run(["dvc", "checkout", "--quiet"], cwd=ws, env=child_env(), capture_output=True)
    return ws, commit, any(Path(rel) != LADDER_CSV for rel in changed)  # the ladder's own output is not the rung's code


def _ls_files(cwd: Path, *args: str) -> list[str]:
    """`git ls-files ARGS` in `cwd`, NUL-separated so that any file name survives."""
    return [f for f in git("ls-files", "-z", *args, cwd=cwd).split("\0") if f]


def _cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def train_hours(p: Params, ws: Path, folders: list[Path]) -> float | None:
    """Hours a rung's training runs took (sum over runs), from timing files (DVC outputs hold no wall
    time: timings.py). Each run is found by its fingerprint, its latest line in `folders` (the rung's
    workspace and this project: a run the rung restored from the shared run-cache was trained in
    either). None if a run has no line (trained elsewhere, e.g. pulled from a remote)."""
    from proxyrank.training.train import fingerprint, run_keys, run_specs

    spent = timings.latest([r for folder in folders for r in timings.read(folder)], "run", "fingerprint")
    valid = {d: ws / "data" / "tokens" / "valid" / f"{d}.npy" for d in p.split.valid_domains}
    total = 0.0
    for recipe in p.recipes:
        for role in ("proxy", "reference"):
            train = ws / "data" / "recipes" / recipe / "train.npy"
            if not all(path.is_file() for path in [train, *valid.values()]):  # no data, no fingerprint
                return None
            for key in run_keys(run_specs(p, recipe, role), p.train, train, valid):
                wall = spent.get(fingerprint(key), {}).get("wall_s")
                if not isinstance(wall, (int, float)):
                    return None
                total += wall
    return round(total / 3600, 3)


def rows(name: str, data: dict, reports: Path, commit: str, dirty: bool, device: str,
         hours: float | None = None) -> list[dict]:
    """One ladder row per proxy family from a finished rung's reports; `hours` is its train_hours."""
    import pandas as pd

    from proxyrank.analysis.metrics import same_lr
    from proxyrank.tools import plan
    from proxyrank.training.models import param_count, train_flops
    from proxyrank.training.params import steps_from_tokens
    from proxyrank.training.presets import PRESETS

    p = parse_params(data)
    metrics = json.loads((reports / "metrics.json").read_text())
    detail = json.loads((reports / "analysis.json").read_text())
    cross = pd.DataFrame(detail["cross_scale"])
    picked = {fam: v["lrs"] for fam, v in detail["picked"].items()}  # the LRs the rung's metrics stage picked
    first_tiny = f"tiny{p.analysis.tiny_ratios[0]:g}"  # "tiny" in ladder.csv: standard / the first ratio
    cross = cross[(cross.seed.astype(str) == "mean") & (cross.domain == "mean")]
    runs = pd.read_csv(reports / "runs.csv")
    vocab, t = plan.vocab_size(p), p.train
    ref_n = param_count(p.reference.preset, vocab, t.seq_len)
    digest = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:12]
    out = []
    for spec in p.proxies:
        block = metrics.get(spec.family)
        if block is None:
            continue
        row = {"rung": name, "family": spec.family, "proxy_preset": spec.preset,
               "proxy_params": param_count(spec.preset, vocab, t.seq_len), "proxy_tokens": t.proxy_tokens,
               "reference_preset": p.reference.preset, "reference_params": ref_n,
               "reference_tokens": t.reference_tokens,
               "reference_flops": train_flops(ref_n, p.reference.preset, t.seq_len, t.reference_tokens),
               "standard_lr": picked[spec.family]["standard"], "tiny_lr": picked[spec.family][first_tiny],
               "best_spearman_lr": block.get("best_spearman_lr"), "n_recipes": metrics["n_recipes"],
               "runs": len(runs), "train_hours": hours,
               "device": device,
               "commit": commit[:12] + ("+dirty" if dirty else ""), "params_sha": digest}
        fam = cross[cross.family == spec.family]
        for tag, lr in (("standard", row["standard_lr"]), ("tiny", row["tiny_lr"])):
            r = fam[same_lr(fam.lr, lr)].iloc[0]
            row |= {f"spearman_{tag}": r.spearman, f"spearman_{tag}_lo": r.spearman_lo,
                    f"spearman_{tag}_hi": r.spearman_hi}
        best = fam.loc[fam.spearman.astype(float).idxmax()] if fam.spearman.notna().any() else None
        row["best_spearman"] = None if best is None else best.spearman
        row["proxy_steps"] = steps_from_tokens(t.proxy_tokens, t)
        row["proxy_width"] = PRESETS[spec.preset].hidden
        row["reference_tokens_per_param"] = round(t.reference_tokens / ref_n, 3)
        validity = reports / "validity.json"
        if validity.is_file():
            row |= validity_columns(json.loads(validity.read_text()), spec.family, first_tiny)
        out.append(row)
    return out


def validity_columns(v: dict, family: str, tiny_tag: str) -> dict:
    """One family's VALIDITY columns from a rung's reports/validity.json."""
    def v2(tag: str) -> dict:
        return next((r for r in v["V2"] if r["family"] == family and tag in r.get("tags", [r.get("tag")])), {})

    v4 = next((r for r in v["V4"] if r["family"] == family and r["tag"] == tiny_tag), {})
    std, tiny = v2("standard"), v2(tiny_tag)
    return {"v1_pass": v["V1"].get("pass"), "v1_best_fixed_spearman": v["V1"].get("best_fixed_spearman"),
            "v1_seed_ceiling": v["V1"].get("seed_ceiling"), "v1_optima_spread": v["V1"].get("optima_spread"),
            "v2_standard_pass": std.get("passed"), "v2_tiny_pass": tiny.get("passed"),
            "v2_tiny_loss_drop": tiny.get("loss_drop"), "v2_tiny_reliability": tiny.get("reliability"),
            "v3_ceiling": v["V3"].get("ceiling"), "v4_delta": v4.get("delta"), "v4_lo": v4.get("lo"),
            "v4_hi": v4.get("hi"), "can_test": v.get("verdict", {}).get(family, {}).get("can_test")}


def merge(path: Path, new: list[dict], rung: str) -> None:
    """Replace `rung`'s rows in the ladder table (atomically), keeping the other rungs'."""
    import pandas as pd

    from proxyrank.files import atomic_path

    kept = [old[old.rung != rung] for old in ([pd.read_csv(path)] if path.exists() else [])]
    table = pd.concat(kept + [pd.DataFrame(new, columns=COLUMNS)], ignore_index=True).infer_objects()
    table = table.sort_values(["reference_flops", "rung", "family"], kind="stable")
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")


def run_ladder(ladder: LadderParams, names: list[str] | None, base: Path, root: Path = Path("."),
               dry_run: bool = False) -> list[str]:
    """Run the named rungs (default: all) in turn; returns the rungs skipped for want of a GPU."""
    from proxyrank.tools import plan

    names = names or list(ladder.rungs)
    unknown = [n for n in names if n not in ladder.rungs]
    if unknown:
        raise ParamsError(f"ladder.rungs: unknown rung(s) {', '.join(unknown)}; declared: "
                          f"{', '.join(ladder.rungs) or 'none'}")
    if not names:
        raise ParamsError("ladder.rungs: no rungs declared in the params file")
    data = {n: rung_params(n, ladder.rungs[n], base) for n in names}  # every rung valid before any runs
    skipped = []
    for name in names:
        rung = parse_params(data[name])
        costs = plan.run_costs(rung)
        cost = plan.summary(rung, costs, plan.MFU, plan.GPU)["total"]
        cpu = "unmeasured" if cost["cpu_worker_hours"] is None else \
            f"{cost['cpu_worker_hours'] / rung.train.workers:.3g} h on the reference CPU"
        print(f"ladder {name}: {len(costs)} runs, {sum(c.flops for c in costs):.3g} FLOPs; training {cpu}, "
              f"{cost['gpu_hours']:.3g} GPU-h on an {plan.GPU} at {plan.MFU:.0%} MFU (`proxyrank plan` for the detail)",
              flush=True)
        if ladder.rungs[name].gpu and not _cuda():
            print(f"ladder {name}: needs a GPU (gpu: true) and torch sees none; skipped", flush=True)
            skipped.append(name)
            continue
        if dry_run:
            continue
        start = time.perf_counter()
        ws, commit, dirty = _workspace(root, name)
        (ws / "params.yaml").write_text(yaml.safe_dump(data[name], sort_keys=False))
        missing = missing_stage_params(ws / "params.yaml", ws / "dvc.yaml")
        if missing:  # e.g. a profile older than dvc.yaml: stop before DVC meets it mid-pipeline
            raise ParamsError(f"ladder.rungs.{name}: its params lack {', '.join(missing)}, which dvc.yaml's "
                              f"stages depend on; add them to the rung's profile")
        log = ws.parent / f"{name}.log"
        print(f"ladder {name}: dvc repro metrics in {ws} (log {log})", flush=True)
        with open(log, "a") as f:
            proc = subprocess.run(["dvc", "repro", "metrics"], cwd=ws, env=child_env(), stdout=f, stderr=subprocess.STDOUT)
        if proc.returncode != 0:
            raise CommandError(f"ladder {name}: `dvc repro metrics` failed (exit {proc.returncode}); see {log}; "
                               f"rerun to continue from the finished stages")
        hours = train_hours(parse_params(data[name]), ws, [ws / timings.TIMINGS, root / timings.TIMINGS])
        merge(root / LADDER_CSV, rows(name, data[name], ws / "reports", commit, dirty,
                                      "cuda" if ladder.rungs[name].gpu else "cpu", hours), name)
        print(f"ladder {name}: done in {time.perf_counter() - start:.0f} s -> {LADDER_CSV}", flush=True)
    return skipped

