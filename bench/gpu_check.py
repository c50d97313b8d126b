"""The Python half of bench/gpu_check.sh: a throughput/MFU measurement and the results summary.

    python bench/gpu_check.py throughput --out DIR [--device cuda] [--preset gpt2-125m] [--compile]
    python bench/gpu_check.py summarize --out DIR --study STUDY_DIR --wall-s S [--gpu NAME]

throughput: trains the GPT2-125M proxy with the study's own loop (proxyrank.training.train.train_run:
schedule, clipping, bf16 autocast, fused AdamW, optional torch.compile) on random tokens, twice
(the first pays CUDA start-up, autotuning and compilation), and writes DIR/throughput.json with
tokens/s, TFLOP/s and MFU as train.py computes them (6N + 12·L·d·T per token, dense bf16 peak).
On a CPU with a tiny preset it is a quick self-test (MFU is then null: no GPU peak).
summarize: reads the timing of every run of a finished study (data/timings/*.jsonl: wall time, MFU
per run; the run records under data/runs hold none, proxyrank/timings.py), its metrics and the throughput file, and writes DIR/gpu_check.json and DIR/gpu_check.md.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from proxyrank.config import TrainParams  # noqa: E402
from proxyrank.files import write_json, write_text  # noqa: E402
from proxyrank.training.train import RunSpec, train_run  # noqa: E402


def throughput(out: Path, preset: str, device: str, vocab: int, seq_len: int, batch: int, grad_accum: int,
               steps: int, compile_: bool, repeats: int) -> dict:
    """Tokens/s and MFU of `preset` trained for `steps` steps on random tokens, `repeats` times."""
    import torch

    from proxyrank.training.models import PRESETS

    t = TrainParams(seq_len=seq_len, batch_size=batch, grad_accum=grad_accum, valid_tokens=2 * seq_len + 1,
                    eval_points=1, device=device, compile=compile_, workers=1)
    tokens = steps * batch * seq_len
    rng = np.random.default_rng(0)
    data = rng.integers(0, vocab, size=tokens + 1, dtype=np.int64)
    valid = {"random": rng.integers(0, vocab, size=2 * seq_len + 1, dtype=np.int64)}  # two windows: the halves
    spec = RunSpec("random", "proxy", PRESETS[preset].family, preset, 3e-4, 0, tokens)
    runs = []
    for i in range(repeats):
        r = train_run(spec, t, data, valid, vocab)
        runs.append({"repeat": i, "wall_s": r["wall_s"], "tokens_per_s": round(r["tokens_trained"] / r["wall_s"], 1),
                     "tflops_per_s": r["tflops_per_s"], "mfu": r["mfu"], "loss_mean": r["loss_mean"]})
        print(f"throughput {preset} run {i}: {runs[-1]['tokens_per_s']:,.0f} tokens/s, "
              f"{r['tflops_per_s']} TFLOP/s, MFU {r['mfu']}", flush=True)
    cuda = device != "cpu" and torch.cuda.is_available()
    result = {"preset": preset, "n_params": r["n_params"], "vocab": vocab, "seq_len": seq_len, "batch_size": batch,
              "grad_accum": grad_accum, "steps": steps, "tokens_per_run": r["tokens_trained"],
              "device": r["device"], "gpu": torch.cuda.get_device_name() if cuda else None,
              "precision": "bf16 autocast" if r["device"] == "cuda" else "fp32", "compile": compile_,
              "train_flops_per_run": r["train_flops"], "torch": torch.__version__,
              "cuda": torch.version.cuda, "python": platform.python_version(), "runs": runs}
    write_json(out / f"throughput{'-compiled' if compile_ else ''}.json", result)
    return result


def _study_runs(study: Path) -> list[dict]:
    """Each training run's latest timing line (role, wall_s, mfu, tflops_per_s, device)."""
    from proxyrank import timings

    return list(timings.latest(timings.read(study / timings.TIMINGS), "run", "fingerprint").values())


def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return round(float(np.mean(values)), 4) if values else None


def _fmt(x) -> str:
    return f"{x:.3f}" if isinstance(x, float) else str(x)


def summarize(out: Path, study: Path | None, wall_s: float | None, gpu: str | None,
              profile: str = "profiles/gpu1.yaml") -> dict:
    """gpu_check.json and gpu_check.md from the throughput files and the finished study."""
    summary: dict = {"gpu": gpu, "throughput": [json.loads(p.read_text()) for p in sorted(out.glob("throughput*.json"))]}
    if study is not None:
        runs = _study_runs(study)
        if not runs:
            raise SystemExit(f"summarize: no run timings under {study}/data/timings: the study did not finish")
        roles = {}
        for role in ("proxy", "reference"):
            rs = [r for r in runs if r["role"] == role]
            roles[role] = {"runs": len(rs), "train_s": round(sum(r["wall_s"] for r in rs), 1),
                           "mean_mfu": _mean(r.get("mfu") for r in rs),
                           "mean_tflops_per_s": _mean(r.get("tflops_per_s") for r in rs),
                           "devices": sorted({r.get("device", "cpu") for r in rs})}
        metrics_file = study / "reports" / "metrics.json"
        summary["study"] = {"profile": profile, "wall_s": wall_s, "under_8_min": wall_s is not None and wall_s < 480, "roles": roles,
                            "metrics": json.loads(metrics_file.read_text()) if metrics_file.exists() else None}
    write_json(out / "gpu_check.json", summary)
    L = ["# GPU check", "", f"GPU: {gpu or 'none named'}", ""]
    for tp in summary["throughput"]:
        last = tp["runs"][-1]
        L += [f"- {tp['preset']} ({tp['n_params'] / 1e6:.3g}M parameters), batch {tp['batch_size']} x {tp['seq_len']}, "
              f"{tp['precision']}{', compiled' if tp['compile'] else ''}: {last['tokens_per_s']:,.0f} tokens/s, "
              f"{last['tflops_per_s']} TFLOP/s, MFU {last['mfu']} (repeat {last['repeat']}; first: "
              f"{tp['runs'][0]['tokens_per_s']:,.0f} tokens/s)"]
    if "study" in summary:
        s = summary["study"]
        L += ["", f"{profile} end to end: {s['wall_s']:.0f} s "
                  f"({'under' if s['under_8_min'] else 'OVER'} 8 minutes)", "",
              "| role | runs | training s | mean MFU | mean TFLOP/s | device |", "|---|---:|---:|---:|---:|---|"]
        L += [f"| {role} | {v['runs']} | {v['train_s']} | {v['mean_mfu']} | {v['mean_tflops_per_s']} | "
              f"{', '.join(v['devices'])} |" for role, v in s["roles"].items()]
        m = s["metrics"] or {}
        fams = [f for f in m if isinstance(m[f], dict) and "spearman_standard" in m[f]]
        if fams:
            L += ["", "| proxy family | Spearman, standard LR | Spearman, tiny LR |", "|---|---:|---:|"]
            L += [f"| {f} | {_fmt(m[f]['spearman_standard'])} | {_fmt(m[f].get('spearman_tiny'))} |" for f in fams]
    write_text(out / "gpu_check.md", "\n".join(L) + "\n")
    return summary


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    tp = sub.add_parser("throughput")
    tp.add_argument("--out", type=Path, required=True)
    tp.add_argument("--preset", default="gpt2-125m")
    tp.add_argument("--device", default="cuda", choices=("cuda", "cpu", "auto"))
    tp.add_argument("--vocab", type=int, default=50257, help="GPT-2's vocabulary by default")
    tp.add_argument("--seq-len", type=int, default=1024)
    tp.add_argument("--batch", type=int, default=32)
    tp.add_argument("--grad-accum", type=int, default=1)
    tp.add_argument("--steps", type=int, default=60)
    tp.add_argument("--compile", action="store_true")
    tp.add_argument("--repeats", type=int, default=2)
    sm = sub.add_parser("summarize")
    sm.add_argument("--out", type=Path, required=True)
    sm.add_argument("--study", type=Path)
    sm.add_argument("--wall-s", type=float)
    sm.add_argument("--gpu")
    sm.add_argument("--profile", default="profiles/gpu1.yaml", help="the study's params file, for the summary")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.command == "throughput":
        throughput(args.out, args.preset, args.device, args.vocab, args.seq_len, args.batch, args.grad_accum,
                   args.steps, args.compile, args.repeats)
    else:
        summarize(args.out, args.study, args.wall_s, args.gpu, args.profile)
    return 0


if __name__ == "__main__":
    sys.exit(main())
