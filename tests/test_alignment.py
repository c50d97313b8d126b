"""Gradient alignment: it is the paper's first-order term, it prefers in-distribution data, and it
measures the proxies' own initialisation and batches."""
import contextlib
from pathlib import Path

import numpy as np
import pytest
import torch

from proxyrank import timings
from proxyrank.analysis.alignment import AlignmentParams, flat_grad, proxy_batches, scores, state_scores
from proxyrank.config import parse_params, read_params
from proxyrank.errors import DataError, ParamsError
from proxyrank.training import models
from proxyrank.training.batches import valid_windows
from proxyrank.training.loop import evaluate, train_run
from proxyrank.training.params import TrainParams, run_specs

ROOT = Path(__file__).resolve().parents[1]
VOCAB, SEQ = 64, 16
NANO = ("gpt2-nano", "pythia-nano", "opt-nano")


def _stream(n, seed, step=1):
    """A learnable stream: a noisy cycle through the vocabulary in strides of `step`."""
    rng = np.random.default_rng(seed)
    base = (np.arange(n) * step % VOCAB).astype(np.uint16)
    noise = rng.random(n) < 0.1
    base[noise] = rng.integers(0, VOCAB, noise.sum())
    return base


def _save(folder, arrays):
    paths = {}
    for name, arr in arrays.items():
        paths[name] = folder / f"{name}.npy"
        np.save(paths[name], arr)
    return paths


def _params(presets=NANO):
    """The smoke profile with nano proxies of `presets` on tiny token arrays."""
    params_dict = read_params(ROOT / "profiles" / "smoke.yaml")
    params_dict["corpus"]["manifest"] = str(ROOT / "proxyrank" / "data" / "sources.yaml")
    params_dict["proxies"] = [{"family": models.PRESETS[p].family, "preset": p, "lrs": [3e-3, 1e-5], "seeds": [0]}
                              for p in presets]
    params_dict["analysis"]["standard_lr"] = {models.PRESETS[p].family: 3e-3 for p in presets}
    params_dict["train"].update(seq_len=SEQ, batch_size=4, proxy_tokens=SEQ * 4 * 12, valid_tokens=SEQ * 6 + 1)
    return parse_params(params_dict)


def _study(tmp_path, presets=NANO, timing_path=None):
    """Validation of one distribution; recipes: fresh draws from it, and uniform random tokens."""
    valid = _save(tmp_path, {"a": _stream(SEQ * 6 + 1, seed=1), "b": _stream(SEQ * 6 + 1, seed=2)})
    recipes = _save(tmp_path, {"match": _stream(2000, seed=3),
                               "random": np.random.default_rng(4).integers(0, VOCAB, 2000).astype(np.uint16)})
    a = AlignmentParams(batches=4, warm_steps=8, warm_lr=3e-3)
    p = _params(presets)
    return scores(p.train, p.proxies, a, recipes, valid, VOCAB, timing_path)


def _shift(model, vector):
    torch.nn.utils.vector_to_parameters(torch.nn.utils.parameters_to_vector(model.parameters()) + vector,
                                        model.parameters())


def test_alignment_is_the_first_order_change_of_the_validation_loss():
    """L_val(theta - eps d) - L_val(theta) = -eps <g_val, d>, with L_val as the proxies evaluate it:
    the mean over domains of per-domain loss (domains of unequal size, so token weighting fails)."""
    t = TrainParams(seq_len=SEQ, batch_size=4, proxy_tokens=SEQ * 4 * 8)
    torch.manual_seed(0)
    model = models.build_model("gpt2-nano", VOCAB, SEQ).double()
    model.train()
    valid = {"a": _stream(SEQ * 6 + 1, seed=1), "b": _stream(SEQ * 2 + 1, seed=2, step=3)}
    windows = {d: torch.from_numpy(x) for d, x in valid_windows(valid, SEQ, 0).items()}
    xb = torch.from_numpy(proxy_batches(_stream(4000, seed=3), t, seed=0, count=2))  # aligns with "a" only
    (row,) = state_scores(model, windows, {"r": xb}, 4, contextlib.nullcontext)
    g_d, _ = flat_grad(model, xb.reshape(-1, SEQ), 4, contextlib.nullcontext)
    g1, g2 = (flat_grad(model, x, 4, contextlib.nullcontext)[0] for x in xb)
    adam = g_d / (((g1 * g1 + g2 * g2) / 2).sqrt() + 1e-8)

    def losses():
        return {d: v["all"] for d, v in evaluate(model, valid, SEQ, 4, "cpu", contextlib.nullcontext).items()}

    before = losses()
    for direction, key in ((g_d, "alignment"), (adam, "adam_alignment")):
        eps = 1e-3 / float(direction.norm())  # a step of norm 1e-3
        _shift(model, -eps * direction)
        after = losses()
        _shift(model, eps * direction)
        change = np.mean([after[d] - before[d] for d in valid])
        assert change == pytest.approx(-eps * row[key], rel=1e-2), key
        if key == "alignment":
            for d in valid:
                assert after[d] - before[d] == pytest.approx(-eps * row[f"alignment_{d}"], rel=1e-2,
                                                             abs=1e-2 * eps * abs(row[key])), d
    assert row["alignment"] == pytest.approx(np.mean([row[f"alignment_{d}"] for d in valid]))
    assert row["grad_norm"] == pytest.approx(float(g_d.norm()))


def test_in_distribution_data_aligns_better_than_random_tokens(tmp_path):
    df = _study(tmp_path)
    assert len(df) == 3 * 2 * 2  # families x states x recipes
    for (family, state), g in df.groupby(["family", "state"]):
        by = g.set_index("recipe")
        for col in ("alignment", "adam_alignment", "cosine"):
            assert by.loc["match", col] > by.loc["random", col], (family, state, col)
    warm, init = (df[df.state == s].set_index(["family", "recipe"]) for s in ("warm", "init"))
    assert (warm.val_loss < init.val_loss).all()  # the warm start learned something
    assert (warm.flops > init.flops).all()  # and its share is charged


def test_deterministic_and_timed_apart(tmp_path):
    """The table (a DVC output) is the same twice over, to the byte: its wall time goes to the
    timing file, one line per model and state, with the tokens that state cost."""
    timing = tmp_path / "timings" / "alignment.jsonl"
    first = _study(tmp_path, presets=("opt-nano", "gpt2-nano"), timing_path=timing)  # on two forked workers
    second = _study(tmp_path, presets=("opt-nano", "gpt2-nano"))
    assert first.equals(second) and first.to_csv().encode() == second.to_csv().encode()
    assert not {"wall_s", "tokens_per_s"} & set(first.columns)
    lines = timings.read(timing.parent)
    assert sorted((r["family"], r["state"]) for r in lines) == sorted(
        (f, s) for f in ("opt", "gpt2") for s in ("init", "warm"))
    for r in lines:
        assert r["stage"] == "alignment" and r["kind"] == "alignment" and r["wall_s"] > 0 and r["recipes"] == 2
        rows = first[(first.family == r["family"]) & (first.state == r["state"])]
        assert r["tokens"] == pytest.approx(rows.tokens.sum())


def test_measures_the_proxy_runs_own_initialisation_and_batches(tmp_path, monkeypatch):
    p = _params(presets=("pythia-nano",))
    tokens = _stream(2000, seed=3)
    paths = _save(tmp_path, {"r": tokens, "v": _stream(SEQ * 6 + 1, seed=1)})
    inits, trained = [], []
    build = models.build_model

    def spy(*args):
        model = build(*args)
        inits.append({k: v.clone() for k, v in model.state_dict().items()})
        model.register_forward_pre_hook(
            lambda m, _, kw: trained.append(kw["input_ids"].numpy().copy()) if m.training else None,
            with_kwargs=True)
        return model

    monkeypatch.setattr(models, "build_model", spy)
    (spec,) = [s for s in run_specs(p, "r", "proxy") if s.lr == 3e-3]
    train_run(spec, p.train, tokens, {"v": np.load(paths["v"])}, VOCAB)
    assert np.array_equal(np.stack(trained[:3]), proxy_batches(tokens, p.train, spec.seed, 3))
    scores(p.train, p.proxies, AlignmentParams(batches=2, warm_steps=0), {"r": paths["r"]}, {"v": paths["v"]}, VOCAB)
    assert inits[0].keys() == inits[1].keys()
    assert all(torch.equal(inits[0][k], inits[1][k]) for k in inits[0])


@pytest.mark.parametrize("field,value", [("batches", 0), ("warm_steps", -1), ("warm_lr", 0.0),
                                         ("warm_lr", float("nan")), ("valid_windows_per_domain", -1),
                                         ("batches", 2.5), ("warm_steps", True)])
def test_bad_params_name_the_field(field, value):
    with pytest.raises(ValueError, match=f"^{field}: "):
        AlignmentParams(**{field: value})


def test_too_few_proxy_tokens_for_the_batches_is_refused():
    t = TrainParams(seq_len=SEQ, batch_size=4, proxy_tokens=SEQ * 4 * 3)
    with pytest.raises(ParamsError, match="alignment.batches"):
        proxy_batches(_stream(2000, seed=0), t, seed=0, count=4)


def test_the_validation_gradient_comes_from_half_a_only():
    """Half A and half B partition a domain's windows (the first len // 2, then the rest), the cap
    applies within the half, and a domain with fewer than two windows is refused by evaluate."""
    valid = {"x": np.arange(SEQ * 5 + 1, dtype=np.uint16)}
    every = valid_windows(valid, SEQ, 0)["x"]
    a, b = valid_windows(valid, SEQ, 0, half="a")["x"], valid_windows(valid, SEQ, 0, half="b")["x"]
    assert (len(a), len(b)) == (2, 3) and np.array_equal(np.concatenate([a, b]), every)
    assert np.array_equal(valid_windows(valid, SEQ, 1, half="b")["x"], every[2:3])
    model = models.build_model("gpt2-nano", VOCAB, SEQ)
    with pytest.raises(DataError, match="split.valid_chars"):
        evaluate(model, {"x": np.arange(SEQ + 1, dtype=np.uint16)}, SEQ, 4, "cpu", contextlib.nullcontext)


def test_scores_read_half_a_of_the_validation_text_only(tmp_path):
    """Replacing half B of every validation domain leaves the scores unchanged; replacing half A
    changes them: the score never sees the text it is judged on."""
    p = _params(presets=("gpt2-nano",))
    a = AlignmentParams(batches=2, warm_steps=0)
    recipes = _save(tmp_path, {"match": _stream(2000, seed=3)})
    base = _stream(SEQ * 6 + 1, seed=1)  # 6 windows: half A is the first 3

    def run(valid):
        folder = tmp_path / str(len(list(tmp_path.iterdir())))
        folder.mkdir()
        return scores(p.train, p.proxies, a, recipes, _save(folder, {"v": valid}), VOCAB)

    other = np.random.default_rng(9).integers(0, VOCAB, len(base)).astype(np.uint16)
    new_b, new_a = base.copy(), base.copy()
    new_b[SEQ * 3:] = other[SEQ * 3:]
    new_a[:SEQ * 3] = other[:SEQ * 3]
    first = run(base)
    assert first.equals(run(new_b))
    assert not np.allclose(first.alignment, run(new_a).alignment)
