"""Model presets, the LR schedule and the training loop on tiny inputs."""
import dataclasses
import math

import numpy as np
import pytest
import torch

from proxyrank.config import TrainParams
from proxyrank.models import PRESETS, build_config, count_params
from proxyrank.train import RunSpec, eval_points, lr_at, run_all, train_run


@pytest.mark.parametrize("preset,vocab,seq,expected", [
    ("gpt2-125m", 50257, 1024, 124_439_808),   # GPT-2 small, tied embeddings
    ("pythia-70m", 50304, 2048, 70_426_624),   # EleutherAI/pythia-70m
    ("opt-125m", 50272, 2048, 125_239_296),    # facebook/opt-125m
])
def test_paper_presets_have_public_parameter_counts(preset, vocab, seq, expected):
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(build_config(preset, vocab, seq))
    assert count_params(model) == expected


def test_every_preset_builds_its_family():
    for name, preset in PRESETS.items():
        cfg = build_config(name, 512, 64)
        assert cfg.model_type == {"gpt2": "gpt2", "pythia": "gpt_neox", "opt": "opt"}[preset.family]


def test_schedule_warmup_then_cosine_to_floor():
    t = TrainParams(warmup_frac=0.1, min_lr_frac=0.1)
    assert lr_at(0, 100, 1.0, t) == pytest.approx(0.1)
    assert lr_at(9, 100, 1.0, t) == pytest.approx(1.0)
    assert lr_at(10, 100, 1.0, t) == pytest.approx(1.0)
    assert lr_at(55, 100, 1.0, t) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert lr_at(100, 100, 1.0, t) == pytest.approx(0.1)
    assert eval_points(100, 4) == [25, 50, 75, 100]


def _data(n=40_000, vocab=64, seed=0):
    """A learnable stream: a noisy repeating pattern over a small vocabulary."""
    rng = np.random.default_rng(seed)
    base = np.tile(np.arange(vocab, dtype=np.uint16), n // vocab + 1)[:n]
    noise = rng.random(n) < 0.1
    base[noise] = rng.integers(0, vocab, noise.sum())
    return base


def _run(lr, seed=0, preset="gpt2-nano", tokens=16_384):
    t = TrainParams(seq_len=32, batch_size=8, eval_points=2)
    valid = {"a": _data(2048, seed=1)}
    spec = RunSpec("r", "proxy", PRESETS[preset].family, preset, lr, seed, tokens)
    return train_run(spec, t, _data(), valid, 64)


def test_normal_lr_learns_and_tiny_lr_barely_moves():
    torch.set_num_threads(1)
    normal, tiny = _run(3e-3), _run(1e-6)
    start = math.log(64)
    assert normal["loss_mean"] < start - 0.5
    first, last = tiny["curve"][0]["loss_mean"], tiny["curve"][-1]["loss_mean"]
    assert abs(first - last) < 0.01
    assert tiny["steps"] == 16_384 // (32 * 8) and tiny["tokens_trained"] == tiny["steps"] * 256


def test_runs_are_deterministic_on_cpu():
    torch.set_num_threads(1)
    a, b = _run(1e-3, preset="opt-nano"), _run(1e-3, preset="opt-nano")
    assert a["loss_mean"] == b["loss_mean"] and a["curve"] == b["curve"]
    assert _run(1e-3, seed=1, preset="opt-nano")["loss_mean"] != a["loss_mean"]


def test_run_all_resumes_finished_runs(tmp_path, capsys):
    t = TrainParams(seq_len=32, batch_size=8, eval_points=1, workers=1)
    train_path, valid_path = tmp_path / "train.npy", tmp_path / "a.npy"
    np.save(train_path, _data(), allow_pickle=False)
    np.save(valid_path, _data(2048, seed=1), allow_pickle=False)
    specs = [RunSpec("r", "proxy", "gpt2", "gpt2-nano", lr, 0, 8192) for lr in (1e-3, 1e-5)]
    first = run_all(specs, t, train_path, {"a": valid_path}, 64, tmp_path / "resume", tmp_path / "out1")
    assert "2 to train" in capsys.readouterr().out
    second = run_all(specs, t, train_path, {"a": valid_path}, 64, tmp_path / "resume", tmp_path / "out2")
    assert "2 resumed, 0 to train" in capsys.readouterr().out
    assert sorted(r["loss_mean"] for r in first) == sorted(r["loss_mean"] for r in second)
    assert sorted(p.name for p in (tmp_path / "out2").iterdir()) == sorted(f"{s.run_id}.json" for s in specs)
    changed = [dataclasses.replace(specs[0], tokens=4096)]
    run_all(changed, t, train_path, {"a": valid_path}, 64, tmp_path / "resume", tmp_path / "out3")
    assert "1 to train" in capsys.readouterr().out
