"""`proxyrank rank`: a data team's own datasets ranked end to end from local files, offline.

Real text (this Python's stdlib docstrings) against degraded copies of it (word-shuffled, random
words), in three file formats, with a tokenizer trained here and a validation set of our own.
"""
import ast
import json
import random
import re
import shutil
import sysconfig
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
import zstandard
from pictures import assert_picture, record_figures
from test_hub import _offline

from proxyrank.tools import candidates as cand
from proxyrank.data import tokens
from proxyrank.cli import main
from proxyrank.config import load_params, read_params
from proxyrank.errors import ParamsError

ROOT = Path(__file__).resolve().parents[1]
TOKENS = 4096  # 16 steps of 8 x 32


def _docstrings(first: int, last: int) -> list[str]:
    """Docstrings of stdlib modules first..last (sorted by name): real English, no network."""
    out = []
    for path in sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py"))[first:last]:
        try:
            tree = ast.parse(path.read_text(errors="replace"))
        except SyntaxError:
            continue
        out += [d for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.Module))
                and (d := ast.get_docstring(node)) and len(d) > 80]
    return out


def _jsonl(rows) -> bytes:
    return "".join(json.dumps({"text": t}) + "\n" for t in rows).encode()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """real (jsonl.zst folder), shuffled (parquet), random (jsonl), tiny (too few tokens), validation."""
    d = tmp_path_factory.mktemp("candidates")
    real = _docstrings(0, 40)
    rng = random.Random(0)
    words = sorted({w for t in real for w in t.split()})
    shuffled = [" ".join(rng.sample(t.split(), len(t.split()))) for t in real]
    noise = [" ".join(rng.choice(words) for _ in t.split()) for t in real]
    (d / "real").mkdir()
    half = len(real) // 2
    for i, part in enumerate((real[:half], real[half:])):
        (d / "real" / f"part-{i}.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(_jsonl(part)))
    pq.write_table(pa.table({"text": shuffled, "id": list(range(len(shuffled)))}), d / "shuffled.parquet")
    (d / "random.jsonl").write_bytes(_jsonl(noise))
    (d / "tiny.jsonl").write_bytes(_jsonl(real[:3]))
    (d / "valid").mkdir()
    from pydoc_data.topics import topics

    (d / "valid" / "docs.jsonl").write_bytes(_jsonl(_docstrings(40, 60)))
    (d / "valid" / "topics.jsonl").write_bytes(_jsonl(v for _, v in sorted(topics.items())))
    tok = tokens.train_bpe(real, 512)
    (d / "tokenizer").mkdir()
    tok.save(str(d / "tokenizer" / "tokenizer.json"))  # as cli.stage_tokenizer saves it
    return d


@pytest.fixture
def project(corpus, tmp_path, monkeypatch):
    """A working directory with the study's params (the smoke profile, nano proxies) and tokenizer, offline."""
    _offline(monkeypatch)
    params_dict = read_params(ROOT / "profiles" / "smoke.yaml")
    params_dict["corpus"]["manifest"] = str(ROOT / "proxyrank" / "data" / "sources.yaml")  # read, never fetched
    params_dict["proxies"] = [{"family": "gpt2", "preset": "gpt2-nano", "lrs": [1e-2, 1e-5], "seeds": [0]},
                              {"family": "opt", "preset": "opt-nano", "lrs": [1e-2, 1e-5], "seeds": [0]}]
    params_dict["analysis"] = {"standard_lr": {"gpt2": 1e-2, "opt": 1e-2}, "tiny_lr": 1e-5, "n_boot": 200}
    params_dict["train"].update(seq_len=32, batch_size=8, valid_tokens=1024, eval_points=1, workers=2)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params_dict))
    (tmp_path / "data").mkdir()
    shutil.copytree(corpus / "tokenizer", tmp_path / "data" / "tokenizer")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _candidates(path, corpus, **changes):
    spec = {"datasets": {"real": {"path": str(corpus / "real")},
                         "shuffled": {"path": str(corpus / "shuffled.parquet"), "licence": "PSF-2.0"},
                         "random": {"path": str(corpus / "random.jsonl")}},
            "tokens": TOKENS, "seeds": [0, 1],
            "validation": {"docs": {"path": str(corpus / "valid" / "docs.jsonl")},
                           "topics": {"path": str(corpus / "valid" / "topics.jsonl")}}}
    spec.update(changes)
    path.write_text(yaml.safe_dump(spec))
    return path


def test_rank_end_to_end_and_resume(project, corpus, capsys, monkeypatch):
    cands = _candidates(project / "team.yaml", corpus)
    drawn = record_figures(monkeypatch)
    assert main(["rank", str(cands)]) == 0
    out = project / "reports" / "rank" / "team"
    first = capsys.readouterr().out
    assert "| rank (tiny LR) |" in first and first.count("train: 8 runs, 0 resumed, 8 to train") == 3
    df = pd.read_csv(out / "ranking.csv")
    assert len(df) == 2 * 3 and set(df.family) == {"gpt2", "opt"}
    for _, fam in df.groupby("family"):
        for tag in ("tiny", "standard"):
            assert sorted(fam[f"{tag}_rank"]) == [1, 2, 3]
            assert (fam[f"{tag}_rank_lo"] <= fam[f"{tag}_rank"]).all()
            assert (fam[f"{tag}_rank"] <= fam[f"{tag}_rank_hi"]).all()
            assert (fam[f"{tag}_loss_lo"] <= fam[f"{tag}_loss"] + 1e-9).all()
            assert (fam[f"{tag}_loss"] <= fam[f"{tag}_loss_hi"] + 1e-9).all()
        assert list(fam.tiny_rank) == sorted(fam.tiny_rank)  # ordered by the tiny-LR ranking
        assert fam.set_index("dataset").standard_rank["random"] == 3  # random words teach least
        lost = fam.set_index("dataset").standard_loss
        assert lost["random"] > max(lost["real"], lost["shuffled"])
    summary = json.loads((out / "ranking.json").read_text())
    assert summary["run"]["runs"] == 24 and summary["run"]["domains"] == ["docs", "topics"]
    assert summary["run"]["datasets"]["real"]["files"][0]["name"] == "part-0.jsonl.zst"
    md = (out / "ranking.md").read_text()
    assert "## Warnings" in md and "## What was run" in md and "## gpt2 (gpt2-nano)" in md
    assert_picture(out / "ranking.png")
    (figure,) = drawn.values()  # a panel per family, each with one point per dataset (with error bars)
    assert figure.panels == 2 and figure.points == [1, 1]
    work = project / "data" / "rank" / "team"
    arr = np.load(work / "tokens" / "random.npy", allow_pickle=False)
    assert arr.shape == (TOKENS,) and arr.dtype == np.uint16
    assert np.load(work / "tokens" / "valid" / "docs.npy").shape == (1024,)
    resume = sorted((work / ".resume").glob("*.json"))
    assert len(resume) == 24

    # a second run trains nothing and reads no data again; the outputs come out the same
    stamps = {p: p.stat().st_mtime_ns for p in [*resume, *(work / "tokens").glob("*.npy")]}
    csv = (out / "ranking.csv").read_text()
    assert main(["rank", str(cands)]) == 0
    assert capsys.readouterr().out.count("train: 8 runs, 8 resumed, 0 to train") == 3
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert (out / "ranking.csv").read_text() == csv


def test_bad_input_names_the_key(project, corpus, capsys):
    cases = [
        ({"datasets": {"real": {"pth": "x"}, "b": {"dataset": "allenai/c4"}}}, "datasets.real.pth: unknown key"),
        ({"datasets": {"real": {"path": str(corpus / "nope")}, "b": {"dataset": "allenai/c4"}}},
         "datasets.real.path"),
        ({"datasets": {"a b": {"path": str(corpus / "real")}, "b": {"dataset": "allenai/c4"}}}, "datasets.a b:"),
        ({"datasets": {"real": {"path": str(corpus / "real"), "schema": "c5"}, "b": {"dataset": "x/y"}}},
         "unknown schema 'c5'"),
        ({"seeds": []}, "seeds:"),
        ({"families": ["pythia"]}, "families:"),
        ({"validation": "studdy"}, "validation:"),
        ({"tokens": 100}, "tokens: 100 is less than one batch"),
        ({"validation": "study"}, "run `dvc pull` or `dvc repro tokens`"),
        ({"datasets": {"tiny": {"path": str(corpus / "tiny.jsonl")}, "real": {"path": str(corpus / "real")}},
          "validation": {"docs": {"path": str(corpus / "valid" / "docs.jsonl")}}}, "datasets.tiny:"),
    ]
    runtime = {"run `dvc pull` or `dvc repro tokens`", "datasets.tiny:"}  # the data, not the file, is wrong: exit 1
    for change, message in cases:
        code = main(["rank", str(_candidates(project / "bad.yaml", corpus, **change))])
        assert code == (1 if message in runtime else 2), message
        err = capsys.readouterr().err
        assert "proxyrank rank: error:" in err and message in err, (message, err)
    assert "fewer than the 4,096 needed" in err  # the last case: too few tokens, nothing trained
    assert not (project / "data" / "rank" / "bad" / ".resume").exists()


def test_example_file_is_valid(project, tmp_path):
    """candidates.example.yaml parses and checks (hub names offline too: nothing is fetched)."""
    text = (ROOT / "candidates.example.yaml").read_text()
    example = tmp_path / "candidates.example.yaml"
    example.write_text(text)
    for entry in yaml.safe_load(text)["datasets"].values():  # its local files, made empty here
        if "path" in entry:
            (tmp_path / entry["path"]).parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(pa.table({"text": pa.array([], pa.string())}), tmp_path / entry["path"])
    job = cand.load_candidates(example, load_params("params.yaml"))
    assert {s.dataset for s in job.datasets.values() if s.dataset} >= {"allenai/c4"}
    assert any(s.path for s in job.datasets.values())


def _ranking(means: list[float], spread: float, seed: int = 0) -> cand.Ranking:
    """Datasets with these mean losses over 3 seeds x 4 domains; domains shift every dataset alike."""
    rng = np.random.default_rng(seed)
    domain = np.array([0.0, 0.5, -0.3, 1.0])
    losses = np.array(means)[:, None, None] + domain[None, None, :] + rng.normal(0, spread, (len(means), 3, 4))
    return cand.rank_losses(losses, cand.draws(3, 4, 500, 0))


def test_rules_on_constructed_numbers():
    names = ["a", "b", "c", "d"]
    tiny = _ranking([5.0, 5.1, 5.2, 5.3], 0.005)
    assert list(tiny.rank) == [1, 2, 3, 4] and tiny.separated == 6
    # domain spread is shared: marginal loss intervals overlap, paired differences still separate
    assert tiny.loss_hi[0] > tiny.loss_lo[1]
    agree = cand.assess(names, tiny, _ranking([4.0, 4.1, 4.2, 4.3], 0.005, 1), ln_vocab=6.0)
    assert agree["warnings"] == [] and agree["spearman"] == 1.0

    flipped = cand.assess(names, tiny, _ranking([4.3, 4.2, 4.1, 4.0], 0.005, 1), ln_vocab=6.0)
    text = " | ".join(flipped["warnings"])
    assert flipped["top"] == {"tiny": "a", "standard": "d"} and "top pick differs" in text
    assert "rank outside interval: a (standard 4, tiny interval 1-1)" in text
    assert "weak agreement: Spearman between the two rankings -1.00" in text
    assert "not separated" not in text

    flat = _ranking([5.0, 5.0, 5.0, 5.0], 0.01)
    assert flat.separated == 0 and (flat.rank_lo == 1).any() and (flat.rank_hi == 4).any()
    text = " | ".join(cand.assess(names, flat, _ranking([4.0, 4.1, 4.2, 4.3], 0.005), ln_vocab=6.0)["warnings"])
    assert re.search(r"not separated: the tiny LR separates no pair of datasets \(ln\(vocab\) - mean loss: "
                     r"0\.(69|70)\d nats at the tiny LR, 1\.55\d nats at the standard LR\)", text)  # 6 - 5.3, 6 - 4.45

    diverged = np.full((2, 3, 4), 5.0)
    diverged[0, 1, 2] = np.nan
    r = cand.rank_losses(diverged, cand.draws(3, 4, 100, 0))
    assert list(r.rank) == [2, 1] and r.loss[0] == np.inf


def test_validation_mapping_rejects_bad_names(project, corpus):
    p = load_params("params.yaml")
    path = _candidates(project / "c.yaml", corpus, validation={"mean": {"path": str(corpus / "valid")}})
    with pytest.raises(ParamsError, match=r"validation\.mean: use 1-64 letters.*not 'mean'"):
        cand.load_candidates(path, p)
    path = _candidates(project / "c.yaml", corpus, datasets={"A": {"path": str(corpus / "real")},
                                                             "a": {"path": str(corpus / "real")}})
    with pytest.raises(ParamsError, match="clashes with 'A'"):
        cand.load_candidates(path, p)


def test_sample_grows_until_it_holds_the_tokens_and_sees_edits(corpus, tmp_path, monkeypatch):
    """A first sample too small for the budget is fetched again, bigger; an edited local file is re-read."""
    _offline(monkeypatch)
    monkeypatch.setattr(cand, "CHARS_PER_TOKEN", 1)  # ~1 character a token: surely too few
    tok = tokens.load(corpus / "tokenizer")
    data = tmp_path / "d.jsonl"
    data.write_bytes((corpus / "random.jsonl").read_bytes())
    src = cand._source("d", cand.DataSpec(path=str(data)), "datasets.d", tmp_path, 2000)
    target = tmp_path / "tokens" / "d.npy"
    sample = cand.sample_tokens(src, 2000, tok, "tok", tmp_path / "raw", target, "datasets.d")
    assert sample["max_chars"] > 2000 and sample["chars"] >= sample["max_chars"]
    first = np.load(target)
    assert first.shape == (2000,) and (first == tok.token_to_id(tokens.EOS)).any()
    data.write_bytes(_jsonl(_docstrings(0, 10)))
    cand.sample_tokens(src, 2000, tok, "tok", tmp_path / "raw", target, "datasets.d")
    assert not np.array_equal(np.load(target), first)
