"""The stacked trainer (bench/stacked_training.py) ends where train_run alone ends, run for run."""
import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from proxyrank.training.loop import train_run
from proxyrank.training.models import PRESETS, Preset
from proxyrank.training.params import RunSpec, TrainParams

_PATH = Path(__file__).resolve().parents[1] / "bench" / "stacked_training.py"
_spec = importlib.util.spec_from_file_location("stacked_training", _PATH)
stacked = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(stacked)

VOCAB, SEQ, BATCH, STEPS = 64, 32, 8, 32
T = TrainParams(seq_len=SEQ, batch_size=BATCH, eval_points=2, warmup_frac=0.1)


def _data(n, seed):
    """A learnable stream over a small vocabulary; it holds token 0, the models' pad_token_id
    (OPT's embedding has padding_idx 0, which vmap's embedding backward gets wrong by itself)."""
    rng = np.random.default_rng(seed)
    base = np.tile(np.arange(VOCAB, dtype=np.uint16), n // VOCAB + 1)[:n]
    noise = rng.random(n) < 0.1
    base[noise] = rng.integers(0, VOCAB, int(noise.sum()))
    return base


VALID = {"a": _data(SEQ * 6 + 1, 100), "b": _data(SEQ * 4 + 1, 101)}


@pytest.mark.parametrize("family", stacked.FAMILIES)
def test_stacked_runs_end_at_the_losses_of_the_runs_alone(family):
    torch.set_num_threads(1)
    preset = f"{family}-nano"
    tokens = STEPS * BATCH * SEQ
    # different LRs and seeds, each run on its own stream; the 1e30-LR run diverges within a few steps
    specs = [RunSpec("r", "proxy", family, preset, lr, seed, tokens)
             for lr, seed in [(3e-3, 0), (1e-3, 1), (1e-2, 2), (1e30, 0)]]
    streams = [_data(tokens + SEQ, i) for i in range(len(specs))]
    assert (streams[0] == 0).any()
    alone = [train_run(s, T, streams[i], VALID, VOCAB) for i, s in enumerate(specs)]
    together = stacked.train_stacked(specs, T, streams, VALID, VOCAB)
    assert len(together) == len(specs)
    for a, b in zip(alone, together):
        assert set(a) <= set(b)
        assert b["run_id"] == a["run_id"] and b["steps"] == a["steps"] == STEPS
        assert b["diverged"] == a["diverged"]
        assert [p["step"] for p in b["curve"]] == [p["step"] for p in a["curve"]]
        for pa, pb in zip(a["curve"], b["curve"]):
            for key in pa:
                assert pb[key] == pytest.approx(pa[key], abs=2e-5), (a["run_id"], pa["step"], key)
        for key in ["loss_mean", "loss_a", "loss_b"]:
            if a["diverged"]:
                assert math.isnan(b[key])
            else:
                assert b[key] == pytest.approx(a[key], abs=2e-5)
    assert [r["diverged"] for r in together] == [False, False, False, True]
    assert together[0]["loss_mean"] < math.log(VOCAB) - 0.3  # it learned, so the comparison means something


def test_one_stream_for_every_run_and_a_single_run():
    torch.set_num_threads(1)
    tokens = 8 * BATCH * SEQ
    spec = RunSpec("r", "proxy", "opt", "opt-nano", 3e-3, 1, tokens)
    data = _data(tokens + SEQ, 7)
    a = train_run(spec, T, data, VALID, VOCAB)
    (b,) = stacked.train_stacked([spec], T, data, VALID, VOCAB)
    assert b["loss_mean"] == pytest.approx(a["loss_mean"], abs=2e-5)


def test_unsupported_family_and_mixed_stacks_fail_clearly(monkeypatch):
    monkeypatch.setitem(PRESETS, "mamba-nano", Preset("mamba", 32, 1, 2, 128))
    spec = RunSpec("r", "proxy", "mamba", "mamba-nano", 1e-3, 0, BATCH * SEQ)
    with pytest.raises(stacked.StackingError, match="family 'mamba'.*not supported.*gpt2, pythia, opt"):
        stacked.train_stacked([spec], T, _data(BATCH * SEQ + SEQ, 0), VALID, VOCAB)
    specs = [RunSpec("r", "proxy", f, f"{f}-nano", 1e-3, 0, BATCH * SEQ) for f in ("gpt2", "opt")]
    with pytest.raises(stacked.StackingError, match="one preset per stack"):
        stacked.train_stacked(specs, T, _data(BATCH * SEQ + SEQ, 0), VALID, VOCAB)


def test_a_weight_tie_lost_on_the_base_module_is_refused():
    """A base module whose lm_head no longer shares the embedding's Parameter (what
    `copy.deepcopy(model).to("meta")` does) would run lm_head on a meta tensor, silently."""
    stack = stacked._Stack("opt-nano", [0, 1], VOCAB, SEQ, torch.device("cpu"))
    base = stack.base
    assert base.lm_head.weight is base.get_input_embeddings().weight
    base.lm_head.weight = torch.nn.Parameter(torch.empty_like(base.lm_head.weight))
    with pytest.raises(stacked.StackingError, match="lm_head.weight.*not in the stacked weights"):
        stack._check_names(base, "opt-nano")
