"""The tuned reference of every recipe as a Hugging Face model folder (the `export` stage).

The references stage keeps each run's losses, not its weights: of a recipe's runs (its LR grid x
seeds) only one is the model the analysis ranks, and keeping all of them would cost the grid's size
in disk for nothing. This module retrains that one run per recipe with the same code, data and
seed: the LR with the lowest seed-mean loss (analysis/metrics.tune, the rule every statistic uses)
and its lowest seed. It saves the model with `save_pretrained` (config.json, model.safetensors) and
the tokenizer beside it (tokenizer.json, tokenizer_config.json), so that

    AutoModelForCausalLM.from_pretrained("data/models/<recipe>")
    AutoTokenizer.from_pretrained("data/models/<recipe>")

load it with no code of this project. Training is bit-identical run to run on one machine
(issue 21), so the retrained model's final validation loss must equal the one the references stage
recorded; a different number means the saved model is not the run that was ranked (another
machine's kernels, edited code or data), and the stage fails rather than export it under that name.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from proxyrank.data import tokens
from proxyrank.data.tokens import load_array
from proxyrank.errors import DataError
from proxyrank.files import atomic_dir, write_json
from proxyrank.training.params import RunSpec, TrainParams, run_specs, same_lr
from proxyrank.training.pool import cpu_workers, forked
from proxyrank.training.progress import StageProgress

SAME_LOSS = 1e-9  # relative: two runs of the same code and data agree to the last bit on one machine


def tuned_specs(p, runs_dir: Path) -> list[tuple[RunSpec, float]]:
    """Per recipe to export (params `export.recipes`), the tuned reference run (analysis/metrics.tune:
    the best seed-mean loss; its lowest seed) and the final loss the references stage recorded for it."""
    from proxyrank.analysis.metrics import tune

    names = p.export.names(p.recipes)
    records = [json.loads(path.read_text()) for name in names for path in sorted((runs_dir / name).glob("*.json"))]
    missing = sorted(set(names) - {r["recipe"] for r in records})
    if missing:
        raise DataError(f"export: no reference runs under {runs_dir} for {', '.join(missing)}; "
                        f"run `dvc repro references` first")
    if not records:  # export.recipes: [] (the paper profile's)
        return []
    df = pd.DataFrame([{k: r[k] for k in ("recipe", "lr", "seed", "loss_mean")} for r in records])
    out = []
    for recipe, best in tune(df, ["loss_mean"]).iterrows():
        at_lr = df[(df.recipe == recipe) & same_lr(df.lr, best.lr)]
        run = at_lr.loc[at_lr.seed.idxmin()]
        spec = next(s for s in run_specs(p, recipe, "reference") if same_lr(s.lr, best.lr) and s.seed == run.seed)
        out.append((spec, float(run.loss_mean)))
    return out


def save_tokenizer(tokenizer_dir: Path, folder: Path, seq_len: int) -> None:
    """tokenizer.json and the tokenizer_config.json that AutoTokenizer reads, written by
    transformers itself (PreTrainedTokenizerFast.save_pretrained), with <|endoftext|> as the
    model's begin, end and unknown token as in GPT-2."""
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast(tokenizer_file=str(tokenizer_dir / "tokenizer.json"), bos_token=tokens.EOS,
                                  eos_token=tokens.EOS, unk_token=tokens.EOS, model_max_length=seq_len)
    tok.save_pretrained(str(folder))


def _export_one(spec: RunSpec, t: TrainParams, train_path: str, valid_paths: dict[str, str], vocab_size: int,
                recorded: float, folder: str) -> dict:
    """Retrain `spec` into `folder` (save_pretrained) and say how its loss compares to the record."""
    from transformers.utils import logging as hf_logging

    from proxyrank.training.loop import train_run

    hf_logging.disable_progress_bar()  # save_pretrained's one-shard bar: a line per model in every log
    valid = {d: load_array(Path(path)) for d, path in valid_paths.items()}
    result = train_run(spec, t, load_array(Path(train_path)), valid, vocab_size, save_to=Path(folder))
    return {"recipe": spec.recipe, "run_id": spec.run_id, "family": spec.family, "preset": spec.preset,
            "lr": spec.lr, "seed": spec.seed, "tokens": spec.tokens, "n_params": result["n_params"],
            "loss_mean": result["loss_mean"], "recorded_loss_mean": recorded}


def export_references(p, runs_dir: Path, recipe_stream, valid_paths: dict[str, Path], tokenizer_dir: Path,
                      out: Path) -> list[dict]:
    """One Hugging Face folder per recipe under `out` (appearing whole or not at all), and
    `out/export.json` listing what each holds."""
    chosen = tuned_specs(p, runs_dir)
    vocab = tokens.load(tokenizer_dir).get_vocab_size()
    with atomic_dir(out) as tmp:
        jobs = [(spec, p.train, str(recipe_stream(spec.recipe)), {d: str(v) for d, v in valid_paths.items()},
                 vocab, loss, str(tmp / spec.recipe)) for spec, loss in chosen]
        progress, rows = StageProgress("export", len(jobs)), []
        for r in forked(_export_one, jobs, cpu_workers(p.train, len(jobs)), in_order=False):
            rows.append(r)
            progress.update(f"{r['recipe']} {r['run_id']} loss {r['loss_mean']:.4f}")
        progress.close()
        rows.sort(key=lambda r: list(p.recipes).index(r["recipe"]))  # declaration order, whatever finished first
        bad = [r for r in rows if not abs(r["loss_mean"] - r["recorded_loss_mean"])
               <= SAME_LOSS * abs(r["recorded_loss_mean"])]
        if bad:
            raise DataError("export: the retrained reference differs from the run that was ranked: " + "; ".join(
                f"{r['recipe']} {r['run_id']} loss {r['loss_mean']!r} vs recorded {r['recorded_loss_mean']!r}"
                for r in bad) + ". Training is bit-identical only on the machine and code that made the "
                "record: rerun `dvc repro -f references` here, then export")
        for r in rows:
            save_tokenizer(tokenizer_dir, tmp / r["recipe"], p.train.seq_len)
        write_json(tmp / "export.json", rows)
    print(f"export: {len(rows)} tuned reference models under {out} (save_pretrained + tokenizer)")
    return rows
