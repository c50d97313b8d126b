"""The tuned references as Hugging Face folders (training/export.py), and training progress lines."""
from __future__ import annotations

import contextlib
import dataclasses
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from proxyrank.config import load_params
from proxyrank.data import tokens
from proxyrank.errors import DataError
from proxyrank.training.export import export_references, tuned_specs
from proxyrank.training.loop import evaluate, train_run
from proxyrank.training.params import ExportParams, RunSpec, TrainParams
from proxyrank.training.progress import Heartbeat, StageProgress, duration

TEXT = ("The quick brown fox jumps over the lazy dog. def main():\n    return 0\n"
        "Pack my box with five dozen liquor jugs; sphinx of black quartz, judge my vow. ") * 400


@pytest.mark.parametrize("preset", ["gpt2-nano", "pythia-nano", "opt-nano"])
def test_a_saved_run_loads_with_from_pretrained_and_gives_its_own_loss(tmp_path, preset):
    """What from_pretrained loads is the trained model itself: its validation loss is the run's, bit for bit."""
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    train, valid = rng.integers(0, 64, 12_000).astype(np.uint16), {"a": rng.integers(0, 64, 1024).astype(np.uint16)}
    t = TrainParams(seq_len=32, batch_size=8, eval_points=1)
    spec = RunSpec("r", "reference", preset.split("-")[0], preset, 3e-3, 0, 8192)
    result = train_run(spec, t, train, valid, 64, save_to=tmp_path / "model")
    assert {"config.json", "model.safetensors"} <= {p.name for p in (tmp_path / "model").iterdir()}
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "model")
    loss = evaluate(model, valid, t.seq_len, t.batch_size * 4, torch.device("cpu"), contextlib.nullcontext)
    assert loss["a"]["all"] == result["loss_mean"]
    halves = [loss["a"][h] for h in "ab"]  # the two held-out halves: 31 windows of 32 tokens cut 15 + 16
    assert (result["half_a_loss"], result["half_b_loss"]) == tuple(halves) and halves[0] != halves[1]
    assert (15 * halves[0] + 16 * halves[1]) / 31 == pytest.approx(result["loss_mean"], rel=1e-12)


def _study(tmp_path: Path, params: dict) -> tuple:
    """One recipe's token stream, two validation domains, a trained BPE: what the export stage reads."""
    params = json.loads(json.dumps(params))
    params["recipes"] = {name: params["recipes"][name] for name in ("mix-natural", "mix-uniform")}
    params["train"] |= {"reference_tokens": 8192, "workers": 1}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    p = load_params(tmp_path / "params.yaml")
    tok_dir = tmp_path / "tokenizer"
    tok_dir.mkdir()
    tokens.train_bpe([TEXT], 512).save(str(tok_dir / "tokenizer.json"))
    ids = np.array(tokens.load(tok_dir).encode(TEXT * 3).ids, dtype=np.uint16)
    np.save(tmp_path / "train.npy", ids, allow_pickle=False)
    valid = {}
    for i, d in enumerate(p.split.valid_domains[:2]):
        valid[d] = tmp_path / f"{d}.npy"
        np.save(valid[d], ids[i * 700:(i + 1) * 700], allow_pickle=False)
    return p, tok_dir, valid


def _records(runs: Path, p, losses: dict) -> None:
    """Reference run records as the references stage writes them (only what tuned_specs reads); both
    recipes train on the same tokens here."""
    for recipe in p.recipes:
        (runs / recipe).mkdir(parents=True)
        for (lr, seed), loss in losses.items():
            spec = RunSpec(recipe, "reference", p.reference.family, p.reference.preset, lr, seed, 8192)
            (runs / recipe / f"{spec.run_id}.json").write_text(json.dumps(
                {"recipe": recipe, "lr": lr, "seed": seed, "loss_mean": loss}))


def test_export_retrains_the_tuned_run_and_refuses_one_that_differs_from_the_record(tmp_path, params_dict):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(1)
    p, tok_dir, valid = _study(tmp_path, params_dict)
    p = dataclasses.replace(p, export=ExportParams("all"))  # both recipes (the default takes one per group)
    lo, hi = sorted(p.reference.lrs)[:2]
    runs = tmp_path / "runs"
    _records(runs, p, {(lo, 0): 4.0, (hi, 0): 4.5})
    [(spec, recorded), (other, _)] = tuned_specs(p, runs)
    assert (spec.recipe, spec.lr, spec.seed, recorded, other.recipe) == ("mix-natural", lo, 0, 4.0, "mix-uniform")
    only = dataclasses.replace(p, export=ExportParams(["mix-uniform"]))
    assert [s.recipe for s, _ in tuned_specs(only, runs)] == ["mix-uniform"]
    none = dataclasses.replace(p, export=ExportParams([]))  # the paper profile's: nothing trained, an empty list
    assert export_references(none, runs, lambda r: tmp_path / "train.npy", valid, tok_dir, tmp_path / "none") == []
    assert json.loads((tmp_path / "none" / "export.json").read_text()) == []

    # a record that is not what this code and data train: nothing is exported under its name
    with pytest.raises(DataError, match="differs from the run that was ranked"):
        export_references(p, runs, lambda r: tmp_path / "train.npy", valid, tok_dir, tmp_path / "models")
    assert not (tmp_path / "models").exists()

    true = train_run(spec, p.train, np.load(tmp_path / "train.npy"), {d: np.load(v) for d, v in valid.items()},
                     tokens.load(tok_dir).get_vocab_size())["loss_mean"]
    runs.rename(tmp_path / "old")
    _records(runs, p, {(lo, 0): true, (hi, 0): true + 1.0})
    rows = export_references(p, runs, lambda r: tmp_path / "train.npy", valid, tok_dir, tmp_path / "models")
    assert [r["recipe"] for r in rows] == ["mix-natural", "mix-uniform"]
    assert all(r["loss_mean"] == r["recorded_loss_mean"] == true and r["lr"] == lo for r in rows)
    folder = tmp_path / "models" / "mix-natural"
    assert json.loads((tmp_path / "models" / "export.json").read_text()) == rows
    model, tok = AutoModelForCausalLM.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)
    assert tok("sphinx of black quartz")["input_ids"] == tokens.load(tok_dir).encode("sphinx of black quartz").ids
    assert tok.eos_token == tokens.EOS and model.config.vocab_size == tokens.load(tok_dir).get_vocab_size()
    loss = evaluate(model, {d: np.load(v) for d, v in valid.items()}, p.train.seq_len, p.train.batch_size * 4,
                    torch.device("cpu"), contextlib.nullcontext)
    assert float(np.mean([v["all"] for v in loss.values()])) == true


def test_a_stage_in_a_log_prints_a_tenth_of_its_runs_with_the_time_left():
    out = io.StringIO()  # not a terminal: lines, not a bar
    progress = StageProgress("proxy mix", 48, done=8, stream=out)
    for i in range(40):
        progress.update(f"run{i}")
    progress.close()
    lines = out.getvalue().splitlines()
    assert len(lines) == 10 and lines[0].startswith("  proxy mix [12/48] run3; about ")
    assert lines[-1] == "  proxy mix [48/48] run39; done"
    assert all(" left" in line for line in lines[:-1])
    assert StageProgress("x", 3, stream=out).eta() != StageProgress("x", 3, stream=out).eta()  # nan: unknown


def test_a_long_run_prints_a_heartbeat_with_its_eta(capsys):
    beat = Heartbeat("pythia-1b-lr3e-04-s0", 0, 1000, 4096, every=0.0)
    beat.tick(0)
    beat.tick(250)
    err = capsys.readouterr().err
    assert err.startswith("  pythia-1b-lr3e-04-s0: step 250/1,000 (25%), ") and "tokens/s, about " in err
    assert [duration(s) for s in (3, 245, 7620, 273600)] == ["3 s", "4m05s", "2h07m", "3d04h"]
