"""Profiles hold only what differs from params.yaml (dotted keys, `dvc exp run -S` style), and
`proxyrank profile` writes the params file they make, keeping the base's text elsewhere."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import ROOT
from proxyrank import cli
from proxyrank.config import load_params, read_params
from proxyrank.errors import ParamsError
from proxyrank.files import load_yaml
from proxyrank.tools import profile

RECIPES = """\
  recipes:                       # three of the 23
    mix-natural: {group: mixing, weights: natural}
    corpus-c4: {group: corpus, source: crawl, filters: [c4], dedup: exact}
    quality-head: {group: quality, source: crawl, dedup: exact, buckets: {head: 1}}
"""


def _profile(folder: Path, overrides: str) -> Path:
    (folder / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    (folder / "profiles").mkdir(exist_ok=True)
    path = folder / "profiles" / "p.yaml"
    path.write_text("# a profile\nbase: ../params.yaml\noverrides:\n" + overrides)
    return path


def _outside(lines: list[str], *keys: str) -> list[str]:
    """The lines outside the entries of these dotted keys."""
    drop = set()
    for key in keys:
        lo, hi = profile._find(lines, key.split("."))
        drop |= set(range(lo, hi))
    return [line for i, line in enumerate(lines) if i not in drop]


def test_a_dotted_key_replaces_one_value_and_a_section_key_the_section(tmp_path):
    path = _profile(tmp_path, "  train.proxy_tokens: 20480   # small\n" + RECIPES)
    data, base = read_params(path), load_yaml(tmp_path / "params.yaml")
    assert data["train"] == {**base["train"], "proxy_tokens": 20480} and list(data["recipes"]) == \
        ["mix-natural", "corpus-c4", "quality-head"] and data["corpus"] == base["corpus"]
    text = profile.render(path)
    assert load_yaml_text(text, tmp_path) == data
    lines, before = text.splitlines(), (tmp_path / "params.yaml").read_text().splitlines()
    assert "  proxy_tokens: 20480   # small" in lines and "recipes:                       # three of the 23" in lines
    assert _outside(lines, "train.proxy_tokens", "recipes") == _outside(before, "train.proxy_tokens", "recipes")


def test_a_key_inside_a_flow_mapping_rewrites_its_parent(tmp_path):
    path = _profile(tmp_path, "  curation.perplexity.head_pct: 40.0\n")
    text, base = profile.render(path), load_yaml(tmp_path / "params.yaml")
    assert load_yaml_text(text, tmp_path)["curation"]["perplexity"] == {**base["curation"]["perplexity"], "head_pct": 40.0}
    before = (tmp_path / "params.yaml").read_text().splitlines()
    assert _outside(text.splitlines(), "curation.perplexity") == _outside(before, "curation.perplexity")


@pytest.mark.parametrize("overrides,message", [
    ("  trian.proxy_tokens: 5\n", "p.yaml: overrides: trian.proxy_tokens: no section 'trian' in the params "
                                  "to override (did you mean 'train'?)"),
    ("  seed.x: 5\n", "seed.x: no section 'seed'"),
    ("overrides2: 1\n", "a profile holds only base and overrides; move overrides2 under overrides"),
    ("  - train.proxy_tokens\n", "overrides: expected a mapping of dotted keys to values"),
])
def test_a_bad_profile_names_the_file_and_the_key(tmp_path, overrides, message):
    path = _profile(tmp_path, overrides)
    with pytest.raises(ParamsError, match=re.escape(message)):
        read_params(path)


def test_a_profile_of_a_profile_is_refused(tmp_path):
    _profile(tmp_path, "  seed: 1\n")
    (tmp_path / "profiles" / "q.yaml").write_text("base: p.yaml\noverrides: {seed: 2}\n")
    with pytest.raises(ParamsError, match="its base .*p.yaml is a profile too"):
        read_params(tmp_path / "profiles" / "q.yaml")


def test_the_command_writes_params_and_refuses_to_stack_profiles(tmp_path, monkeypatch, capsys):
    path = _profile(tmp_path, "  seed: 7\n")
    (tmp_path / "proxyrank" / "data").mkdir(parents=True)  # the files params.yaml names: its manifest,
    (tmp_path / "proxyrank" / "data" / "sources.yaml").write_text((ROOT / "proxyrank/data/sources.yaml").read_text())
    for rung in ROOT.glob("profiles/*.yaml"):  # its ladder rungs' profiles
        (tmp_path / "profiles" / rung.name).write_text(rung.read_text())
    monkeypatch.chdir(tmp_path)
    subprocess.run(["git", "init", "-q"], check=True)
    subprocess.run(["git", "add", "-A"], check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "base"], check=True)
    assert cli.main(["profile", str(path)]) == 0  # params.yaml is the profile's base, committed
    assert load_yaml(tmp_path / "params.yaml")["seed"] == 7
    assert cli.main(["profile", str(path)]) == 2  # now it holds a profile's changes
    assert "params.yaml: has uncommitted changes (another profile applied?)" in capsys.readouterr().err
    assert cli.main(["profile", str(path), "--out", "other.yaml"]) == 0
    assert cli.main(["profile", "params.yaml", "--out", "x.yaml"]) == 2
    assert "not a profile (no `overrides`)" in capsys.readouterr().err and not (tmp_path / "x.yaml").exists()


@pytest.mark.parametrize("name", ["smoke", "gpu1", "paper"])
def test_each_committed_profile_lists_only_what_differs_and_writes_out_exactly(name):
    path = ROOT / "profiles" / f"{name}.yaml"
    raw, base = load_yaml(path), load_yaml(ROOT / "params.yaml")
    for key, value in raw["overrides"].items():  # nothing restated at its default
        node = base
        for part in key.split(".")[:-1]:
            node = node[part]
        assert node.get(key.split(".")[-1]) != value, f"{name}: {key} equals params.yaml's"
    text = profile.render(path)  # checks itself: the text read back equals the profile's mapping
    assert yaml.safe_load(text) is not None and load_params(path).seed == read_params(path)["seed"]


def load_yaml_text(text: str, folder: Path) -> dict:
    out = folder / "written.yaml"
    out.write_text(text)
    return load_yaml(out)
