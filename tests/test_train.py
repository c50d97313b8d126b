"""Model presets, the LR schedule and the training loop on tiny inputs."""
import dataclasses
import math

import numpy as np
import pytest
import torch

from proxyrank.config import TrainParams
from proxyrank.models import PRESETS, build_config, param_count
from proxyrank.train import RunSpec, eval_points, lr_at, run_all, train_run


@pytest.mark.parametrize("preset,vocab,seq,expected", [
    ("gpt2-125m", 50257, 1024, 124_439_808),   # GPT-2 small, tied embeddings
    ("pythia-70m", 50304, 2048, 70_426_624),   # EleutherAI/pythia-70m
    ("opt-125m", 50272, 2048, 125_239_296),    # facebook/opt-125m
    ("pythia-160m", 50304, 2048, 162_322_944),
    ("pythia-410m", 50304, 2048, 405_334_016),
    ("pythia-1b", 50304, 2048, 1_011_781_632),
])
def test_paper_presets_have_public_parameter_counts(preset, vocab, seq, expected):

    assert param_count(preset, vocab, seq) == expected


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


def test_batch_split_into_micro_batches_and_checkpointed_activations_match():
    torch.set_num_threads(1)
    base = _run(1e-3)
    for change in ({"grad_accum": 2}, {"activation_checkpointing": True}):
        t = TrainParams(seq_len=32, batch_size=8, eval_points=2, **change)
        spec = RunSpec("r", "proxy", "gpt2", "gpt2-nano", 1e-3, 0, 16_384)
        other = train_run(spec, t, _data(), {"a": _data(2048, seed=1)}, 64)
        assert other["loss_mean"] == pytest.approx(base["loss_mean"], abs=1e-4), change


def test_bf16_autocast_trains_close_to_fp32():
    torch.set_num_threads(1)
    t = TrainParams(seq_len=32, batch_size=8, eval_points=2, precision="bf16")
    spec = RunSpec("r", "proxy", "gpt2", "gpt2-nano", 3e-3, 0, 16_384)
    bf16 = train_run(spec, t, _data(), {"a": _data(2048, seed=1)}, 64)
    assert bf16["loss_mean"] == pytest.approx(_run(3e-3)["loss_mean"], abs=0.05)
    assert bf16["device"] == "cpu" and bf16["mfu"] is None and bf16["train_flops"] > 0


def _files(tmp_path, n=80_000):
    train_path, valid_path = tmp_path / "train.npy", tmp_path / "a.npy"
    np.save(train_path, _data(n), allow_pickle=False)
    np.save(valid_path, _data(2048, seed=1), allow_pickle=False)
    return train_path, {"a": valid_path}


RUN_ALL = """
import sys, numpy as np, torch
from pathlib import Path
from proxyrank.config import TrainParams
from proxyrank.train import RunSpec, run_all
torch.set_num_threads(1)
d = Path(sys.argv[1])
t = TrainParams(seq_len=32, batch_size={batch}, eval_points={points}, workers=1)
spec = RunSpec("r", "proxy", "gpt2", "gpt2-nano", 1e-3, 0, {tokens})
run_all([spec], t, d / "train.npy", {{"a": d / "a.npy"}}, 64, d / "{resume}", d / "{out}")
"""


def test_a_killed_run_resumes_from_its_last_checkpoint(tmp_path):
    """kill -9 mid-run; the rerun continues from the safetensors checkpoint to the same losses."""
    import os
    import signal
    import subprocess
    import sys
    import time

    train_path, valid = _files(tmp_path)
    code = RUN_ALL.format(batch=8, points=20, tokens=65_536, resume="resume", out="out")
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)])
    deadline = time.time() + 120
    while not list((tmp_path / "resume").glob("*.ckpt/state.json")) and time.time() < deadline:
        assert proc.poll() is None, "the run ended before its first checkpoint"
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    (ckpt,) = (tmp_path / "resume").glob("*.ckpt")
    assert {p.suffix for p in ckpt.iterdir()} == {".json", ".safetensors"}
    t = TrainParams(seq_len=32, batch_size=8, eval_points=20, workers=1)
    spec = RunSpec("r", "proxy", "gpt2", "gpt2-nano", 1e-3, 0, 65_536)
    (resumed,) = run_all([spec], t, train_path, valid, 64, tmp_path / "resume", tmp_path / "out")
    (alone,) = run_all([spec], t, train_path, valid, 64, tmp_path / "fresh", tmp_path / "out2")
    assert 0 < resumed["resumed_from_step"] < resumed["steps"] and alone["resumed_from_step"] == 0
    assert resumed["curve"] == alone["curve"] and resumed["loss_mean"] == alone["loss_mean"]
    assert not ckpt.exists()  # a finished run keeps only its record


def test_two_ddp_processes_match_one_process_at_the_same_global_batch(tmp_path):
    """torchrun, 2 processes, gloo on CPU: each takes half of every global batch of 8."""
    import subprocess
    import sys

    train_path, valid = _files(tmp_path, 40_000)
    code = RUN_ALL.format(batch=8, points=2, tokens=16_384, resume="resume", out="out")
    script = tmp_path / "ddp.py"
    script.write_text(code)
    env = {**__import__("os").environ, "OMP_NUM_THREADS": "1", "PROXYRANK_DDP_BACKEND": "gloo"}
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                    "--master_port", "29517", str(script), str(tmp_path)], check=True, env=env,
                   timeout=300)
    (record,) = (tmp_path / "out").glob("*.json")
    ddp = __import__("json").loads(record.read_text())
    assert ddp["world_size"] == 2
    t = TrainParams(seq_len=32, batch_size=8, eval_points=2, workers=1)
    spec = RunSpec("r", "proxy", "gpt2", "gpt2-nano", 1e-3, 0, 16_384)
    (one,) = run_all([spec], t, train_path, valid, 64, tmp_path / "one", tmp_path / "out1")
    assert one["world_size"] == 1
    assert ddp["loss_mean"] == pytest.approx(one["loss_mean"], abs=1e-4)
    assert ddp["curve"][0]["loss_mean"] == pytest.approx(one["curve"][0]["loss_mean"], abs=1e-4)
