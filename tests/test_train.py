"""Model presets, the LR schedule and the training loop on tiny inputs."""
import dataclasses
import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import proxyrank.training.models
from proxyrank import timings
from proxyrank.training import train
from proxyrank.training.loop import eval_points, train_run
from proxyrank.training.models import PRESETS, build_config, param_count
from proxyrank.training.optim import lr_at
from proxyrank.training.params import RunSpec, TrainParams, steps_from_tokens, tokens_trained
from proxyrank.training.pool import forked
from proxyrank.training.records import TIMING_KEYS
from proxyrank.training.train import run_all


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
    t = TrainParams(seq_len=32, batch_size=8)
    assert tiny["steps"] == steps_from_tokens(16_384, t) and tiny["tokens_trained"] == tokens_trained(16_384, t)
    assert steps_from_tokens(16_384 + 32 * 8 - 1, t) == tiny["steps"]  # a partial batch is never trained


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
    timing = tmp_path / "timings" / "proxies@r.jsonl"
    first = run_all(specs, t, train_path, {"a": valid_path}, 64, tmp_path / "resume", tmp_path / "out1", timing)
    assert "2 to train" in capsys.readouterr().out
    second = run_all(specs, t, train_path, {"a": valid_path}, 64, tmp_path / "resume", tmp_path / "out2", timing)
    assert "2 resumed, 0 to train" in capsys.readouterr().out
    # what the runs took is measured, not computed: in the timing file only, one line per run trained
    lines = timings.read(timing.parent)
    records = {p.stem: json.loads(p.read_text()) for p in (tmp_path / "resume").glob("*.json")}
    assert sorted(r["fingerprint"] for r in lines) == sorted(records) and len(lines) == 2
    assert {r["run_id"] for r in lines} == {s.run_id for s in specs}
    assert all(r["stage"] == "proxies@r" and r["kind"] == "run" and r["wall_s"] > 0 and r["tokens_per_s"] > 0
               and r["resumed_from_step"] == 0 for r in lines)
    for r in first + second + [record["result"] for record in records.values()]:
        assert not set(TIMING_KEYS) & set(r), r["run_id"]
    assert sorted(r["loss_mean"] for r in first) == sorted(r["loss_mean"] for r in second)
    assert sorted(p.name for p in (tmp_path / "out2").iterdir()) == sorted(f"{s.run_id}.json" for s in specs)
    changed = [dataclasses.replace(specs[0], tokens=4096)]
    run_all(changed, t, train_path, {"a": valid_path}, 64, tmp_path / "resume", tmp_path / "out3")
    assert "1 to train" in capsys.readouterr().out
    for spec in specs:  # a resumed run's output is byte for byte a trained one's: no stamp in it
        name = f"{spec.run_id}.json"
        assert (tmp_path / "out1" / name).read_bytes() == (tmp_path / "out2" / name).read_bytes()
        assert set(json.loads((tmp_path / "out2" / name).read_text())) == set(first[0])
        assert not set(TIMING_KEYS) & set(json.loads((tmp_path / "out1" / name).read_text()))


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
from proxyrank.training.params import RunSpec, TrainParams
from proxyrank.training.train import run_all
torch.set_num_threads(1)
d = Path(sys.argv[1])
t = TrainParams(seq_len=32, batch_size={batch}, eval_points={points}, workers=1)
specs = [RunSpec("r", "proxy", "gpt2", "gpt2-nano", lr, 0, {tokens}) for lr in {lrs}]
run_all(specs, t, d / "train.npy", {{"a": d / "a.npy"}}, 64, d / "{resume}", d / "{out}")
"""


def _killed_at(point: str, code: str, folder: Path) -> None:
    """Run `code` until it kills itself (SIGKILL) at the named point; fail if it gets past it."""
    proc = subprocess.run([sys.executable, "-c", code, str(folder)], start_new_session=True, timeout=300,
                          env={**os.environ, "PROXYRANK_KILL_AT": point, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == -signal.SIGKILL, f"not killed at {point} (exit {proc.returncode})"


def test_a_killed_run_resumes_from_its_last_checkpoint(tmp_path):
    """kill -9 right after the first checkpoint; the rerun continues from it to the same losses, and
    writes the same bytes as a run never killed (where it resumed from goes to the timing file)."""
    train_path, valid = _files(tmp_path)
    code = RUN_ALL.format(batch=8, points=20, tokens=65_536, lrs=[1e-3], resume="resume", out="out")
    _killed_at("train.checkpoint", code, tmp_path)
    (ckpt,) = (tmp_path / "resume").glob("*.ckpt")
    assert {p.suffix for p in ckpt.iterdir()} == {".json", ".safetensors"}
    t = TrainParams(seq_len=32, batch_size=8, eval_points=20, workers=1)
    spec = RunSpec("r", "proxy", "gpt2", "gpt2-nano", 1e-3, 0, 65_536)
    timing = {name: tmp_path / name / "proxies@r.jsonl" for name in ("t1", "t2")}
    (resumed,) = run_all([spec], t, train_path, valid, 64, tmp_path / "resume", tmp_path / "out", timing["t1"])
    (alone,) = run_all([spec], t, train_path, valid, 64, tmp_path / "fresh", tmp_path / "out2", timing["t2"])
    (r1,), (r2,) = timings.read(tmp_path / "t1"), timings.read(tmp_path / "t2")
    assert 0 < r1["resumed_from_step"] < resumed["steps"] and r2["resumed_from_step"] == 0
    assert r1["fingerprint"] == r2["fingerprint"] == ckpt.stem
    assert resumed == alone and not set(TIMING_KEYS) & set(resumed)
    name = f"{spec.run_id}.json"
    assert (tmp_path / "out" / name).read_bytes() == (tmp_path / "out2" / name).read_bytes()
    record = f"{ckpt.stem}.json"
    assert (tmp_path / "resume" / record).read_bytes() == (tmp_path / "fresh" / record).read_bytes()
    assert not ckpt.exists()  # a finished run keeps only its record


def test_two_ddp_processes_match_one_process_at_the_same_global_batch(tmp_path):
    """torchrun, 2 processes, gloo on CPU: each takes half of every global batch of 8."""
    import subprocess
    import sys

    train_path, valid = _files(tmp_path, 40_000)
    code = RUN_ALL.format(batch=8, points=2, tokens=16_384, lrs=[1e-3], resume="resume", out="out")
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


def test_a_stage_killed_after_its_first_run_resumes_that_run_and_trains_the_rest(tmp_path, capsys):
    train_path, valid = _files(tmp_path, 40_000)
    code = RUN_ALL.format(batch=8, points=2, tokens=8192, lrs=[1e-3, 1e-4], resume="resume", out="out")
    _killed_at("train.run", code, tmp_path)
    assert len(list((tmp_path / "resume").glob("*.json"))) == 1 and not (tmp_path / "out").exists()
    t = TrainParams(seq_len=32, batch_size=8, eval_points=2, workers=1)
    specs = [RunSpec("r", "proxy", "gpt2", "gpt2-nano", lr, 0, 8192) for lr in (1e-3, 1e-4)]
    resumed = run_all(specs, t, train_path, valid, 64, tmp_path / "resume", tmp_path / "out")
    assert "2 runs, 1 resumed, 1 to train" in capsys.readouterr().out
    alone = run_all(specs, t, train_path, valid, 64, tmp_path / "fresh", tmp_path / "out2")
    key = lambda r: r["lr"]  # noqa: E731
    assert [r["curve"] for r in sorted(resumed, key=key)] == [r["curve"] for r in sorted(alone, key=key)]


# --------------------------------------------------------------------------- stale results

def _stage(tmp_path):
    """run_all over one short run in tmp_path, as a training stage calls it (timings in tmp_path/timings)."""
    train_path, valid = _files(tmp_path, 40_000)
    t = TrainParams(seq_len=32, batch_size=8, eval_points=2, workers=1)
    spec = RunSpec("r", "proxy", "gpt2", "gpt2-nano", 1e-3, 0, 4096)

    def call(seed=0, resume="resume", out="out"):
        return run_all([dataclasses.replace(spec, seed=seed)], t, train_path, valid, 64, tmp_path / resume,
                       tmp_path / out, tmp_path / "timings" / "proxies@r.jsonl")
    return call


def _plant(kind: str, path: Path, other: Path) -> None:
    """Replace a resume record with a stale, planted or damaged one under the same name."""
    record = json.loads(path.read_text())
    result = record.get("result", record)  # (before the fix the record was the bare result)
    if kind == "malformed":
        path.write_text('{"loss_mean": 0.0001, ')
        return
    if kind == "bare result":
        record = {**result, "loss_mean": 0.0001}
    elif kind == "other run":
        record = json.loads(other.read_text())
    elif kind == "non-finite loss":
        result["loss_mean"] = float("nan")
    elif kind == "wrong type":
        result["steps"] = str(result["steps"])
    path.write_text(json.dumps(record))


@pytest.mark.parametrize("kind,reason", [
    ("malformed", "not readable JSON"),
    ("bare result", "not a resume record"),
    ("other run", "made for another run (its stored spec do not match)"),
    ("non-finite loss", "non-finite number at result.loss_mean"),
    ("wrong type", "wrong or missing steps"),
])
def test_a_stale_or_planted_resume_record_is_ignored_and_the_run_trains(tmp_path, capsys, kind, reason):
    call = _stage(tmp_path)
    (trained,) = call()
    call(seed=1, resume="other", out="other-out")
    (path,), (other,) = (tmp_path / "resume").glob("*.json"), (tmp_path / "other").glob("*.json")
    _plant(kind, path, other)
    capsys.readouterr()
    (again,) = call(out="out2")
    out = capsys.readouterr().out
    assert f"resume: {path} ignored: " in out and reason in out and "; training again" in out, out
    assert "0 resumed, 1 to train" in out
    assert again["curve"] == trained["curve"] and again["loss_mean"] == trained["loss_mean"]
    call(out="out3")  # the run wrote a good record back under the same name
    assert "1 resumed, 0 to train" in capsys.readouterr().out


def test_a_record_holding_timings_resumes_without_them(tmp_path, capsys):
    """A record an older version wrote, with wall time and throughput in its result, still resumes,
    and the output it gives is byte for byte a trained run's."""
    call = _stage(tmp_path)
    call()
    (path,) = (tmp_path / "resume").glob("*.json")
    record = json.loads(path.read_text())
    record["result"] |= {"wall_s": 9.5, "resumed_from_step": 3, "tokens_per_s": 1.0, "tflops_per_s": None,
                         "mfu": None}
    path.write_text(json.dumps(record))
    capsys.readouterr()
    (again,) = call(out="out2")
    assert "1 resumed, 0 to train" in capsys.readouterr().out and not set(TIMING_KEYS) & set(again)
    (out,), (out2,) = (tmp_path / "out").glob("*.json"), (tmp_path / "out2").glob("*.json")
    assert out.read_bytes() == out2.read_bytes()


def test_timing_lines_survive_a_line_cut_short_by_a_kill(tmp_path):
    path = tmp_path / "t" / "proxies@r.jsonl"
    timings.append(path, {"kind": "run", "fingerprint": "a", "wall_s": 1.0})
    with open(path, "a") as f:
        f.write('{"kind": "run", "finger')  # killed mid-line
    timings.append(path, {"kind": "run", "fingerprint": "b", "wall_s": 2.0})
    timings.append(path, {"kind": "run", "fingerprint": "a", "wall_s": 3.0})
    records = timings.read(tmp_path / "t")
    assert [r["fingerprint"] for r in records] == ["a", "b", "a"] and records[0]["stage"] == "proxies@r"
    assert {k: r["wall_s"] for k, r in timings.latest(records, "run", "fingerprint").items()} == {"a": 3.0, "b": 2.0}
    assert timings.read(tmp_path / "none") == []


def _edit(monkeypatch, tmp_path, change: str) -> None:
    if change == "preset":
        monkeypatch.setitem(PRESETS, "gpt2-nano", dataclasses.replace(PRESETS["gpt2-nano"], ffn=64))
    elif change == "models.py":
        edited = tmp_path / "models.py"
        edited.write_text(Path(proxyrank.training.models.__file__).read_text() + "# an edit\n")
        monkeypatch.setattr(proxyrank.training.models, "__file__", str(edited))
    else:
        monkeypatch.setattr(sys.modules[change], "__version__", "0.0.1")  # transformers swaps its module


@pytest.mark.parametrize("change", ["preset", "models.py", "torch", "transformers"])
def test_a_run_made_by_other_code_or_library_versions_is_not_resumed(tmp_path, capsys, monkeypatch, change):
    call = _stage(tmp_path)
    call()
    assert "1 to train" in capsys.readouterr().out
    _edit(monkeypatch, tmp_path, change)
    call(out="out2")
    assert "0 resumed, 1 to train" in capsys.readouterr().out
    monkeypatch.undo()
    call(out="out3")  # each version keeps its own record
    assert "1 resumed, 0 to train" in capsys.readouterr().out
    assert len(list((tmp_path / "resume").glob("*.json"))) == 2


def test_leaked_checkpoints_are_deleted_at_start_but_not_live_ones(tmp_path, capsys):
    """A killed run's checkpoint under other params or code never resumes: it goes. One a live run
    holds (another stage beside this one, e.g. the gpus runner) stays."""
    import fcntl

    resume = tmp_path / "resume"
    leaked, live = resume / f"{'0' * 24}.ckpt", resume / f"{'1' * 24}.ckpt"
    for folder in (leaked, live):
        folder.mkdir(parents=True)
        (folder / "state.json").write_text('{"step": 1, "curve": [], "wall_s": 0.5}')
        (folder / "model-1.safetensors").write_bytes(b"weights")
    fd = os.open(live, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        _stage(tmp_path)()
    finally:
        os.close(fd)
    assert not leaked.exists() and (live / "model-1.safetensors").exists()
    assert "resume: deleted 1 checkpoint(s)" in capsys.readouterr().out


def test_a_damaged_checkpoint_is_ignored_and_the_run_starts_over(tmp_path, capsys):
    call = _stage(tmp_path)
    (trained,) = call()
    (record,) = (tmp_path / "resume").glob("*.json")
    record.unlink()
    ckpt = record.with_suffix(".ckpt")
    ckpt.mkdir()
    (ckpt / "state.json").write_text('{"step": 8, "curve": [], "wall_s": 1.0}')
    (again,) = call(out="out2")
    assert f"resume: {ckpt} ignored: model-8.safetensors, optim-8.safetensors missing" in capsys.readouterr().out
    assert timings.read(tmp_path / "timings")[-1]["resumed_from_step"] == 0 and again["curve"] == trained["curve"]


def _module_path(name: str) -> Path | None:
    """The file of proxyrank module `name`, None if `name` is not a module (a function, a class)."""
    path = Path(proxyrank.training.models.__file__).parents[2].joinpath(*name.split("."))
    return next((p for p in (path.with_suffix(".py"), path / "__init__.py") if p.is_file()), None)


def _imported(module: str) -> set[str]:
    """The proxyrank modules `module` imports, at any level of its code."""
    import ast

    found = set()
    for node in ast.walk(ast.parse(_module_path(module).read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("proxyrank"):
            found |= {f"{node.module}.{a.name}" if _module_path(f"{node.module}.{a.name}") else node.module
                      for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("proxyrank")}
    return found


def test_every_training_module_keys_the_resume_records():
    """A run's fingerprint covers the bytes of every module of the training room that run_all
    reaches: code moved into a new module still retrains what it changes."""
    reached, todo = set(), ["proxyrank.training.train"]
    while todo:
        module = todo.pop()
        if module not in reached:
            reached.add(module)
            todo += [m for m in _imported(module) if m.startswith("proxyrank.training")]
    assert reached <= set(train.CODE_MODULES), reached - set(train.CODE_MODULES)
    assert "proxyrank.data.tokens" in train.CODE_MODULES  # load_array: how the tokens are read


def _square(x: int, y: int) -> tuple[int, int]:
    return x * x + y, os.getpid()


def test_forked_workers_give_what_one_process_gives():
    jobs = [(i, 1) for i in range(6)]
    alone = list(forked(_square, jobs, 1))
    assert all(pid == os.getpid() for _, pid in alone)
    together = list(forked(_square, jobs, 2, threads=1))
    assert [r for r, _ in together] == [r for r, _ in alone] and {pid for _, pid in together} != {os.getpid()}
    assert sorted(r for r, _ in forked(_square, jobs, 2, in_order=False)) == sorted(r for r, _ in alone)
