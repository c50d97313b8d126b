"""DVCLive's training curves: on under `dvc exp run` or PROXYRANK_LIVE=1, one series per run, in the
stage's process, never inside a DVC output."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from proxyrank.errors import ParamsError
from proxyrank.training import live
from proxyrank.training.train import RunSpec, TrainParams, run_all


@pytest.mark.parametrize("env, on", [({}, False), ({"DVC_EXP_BASELINE_REV": "abc"}, True),
                                     ({"PROXYRANK_LIVE": "1"}, True),
                                     ({"DVC_EXP_BASELINE_REV": "abc", "PROXYRANK_LIVE": "0"}, False),
                                     ({"PROXYRANK_LIVE": "yes"}, None)])
def test_live_logging_is_on_inside_dvc_exp_run_or_when_asked(monkeypatch, env, on):
    for key in ("DVC_EXP_BASELINE_REV", "PROXYRANK_LIVE"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    if on is None:  # a typo is an error naming the variable and what it takes, not silence
        with pytest.raises(ParamsError, match=r"PROXYRANK_LIVE='yes': give 1 .*, 0 .*, or leave it unset"):
            live.wanted()
    else:
        assert live.wanted() is on


def _series(folder, run_id, name):
    with open(folder / "plots" / "metrics" / run_id / f"{name}.tsv") as f:
        return [(int(r["step"]), float(r[name])) for r in csv.DictReader(f, delimiter="\t")]


def test_a_stage_logs_every_run_curve_resumed_ones_too(tmp_path, monkeypatch):
    torch.set_num_threads(1)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PROXYRANK_LIVE", "1")
    rng = np.random.default_rng(0)
    np.save("train.npy", rng.integers(0, 64, 16384).astype(np.uint16), allow_pickle=False)
    np.save("a.npy", rng.integers(0, 64, 2048).astype(np.uint16), allow_pickle=False)
    t = TrainParams(seq_len=32, batch_size=8, eval_points=2, workers=1)
    specs = [RunSpec("r", "proxy", "gpt2", "gpt2-nano", lr, 0, 8192) for lr in (1e-3, 1e-5)]
    folder = tmp_path / "data" / "live" / "proxies" / "r"
    for out in ("out1", "out2"):  # trained, then every run resumed: the folder is the same
        results = run_all(specs, t, tmp_path / "train.npy", {"a": tmp_path / "a.npy"}, 64, tmp_path / "resume",
                          tmp_path / out, live_dir=folder)
        for r in results:
            assert _series(folder, r["run_id"], "loss_mean") == [(p["step"], p["loss_mean"]) for p in r["curve"]]
            assert _series(folder, r["run_id"], "train_loss") == [(p["step"], p["train_loss"]) for p in r["curve"][1:]]
        summary = json.loads((folder / "metrics.json").read_text())
        assert {k: v["loss_mean"] for k, v in summary.items() if k != "step"} == {r["run_id"]: r["loss_mean"] for r in results}
    assert sorted(p.name for p in (tmp_path / "out1").iterdir()) == sorted(f"{s.run_id}.json" for s in specs)
