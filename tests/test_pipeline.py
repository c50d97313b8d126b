"""End to end: the smoke profile on a local corpus, in a temporary copy of the repo; each test works on
its own copy of the session's smoke study (tests/studies.py)."""
from __future__ import annotations

import json
import sys

import pandas as pd
import pytest
import yaml

from pictures import assert_picture
from studies import FOUR, commit, sh

pytestmark = pytest.mark.e2e


def test_repro_produces_reports(study):
    metrics = json.loads((study / "reports" / "metrics.json").read_text())
    assert metrics["n_recipes"] == len(FOUR) == 4 and metrics["n_pairs"] == 6
    assert set(metrics) >= {"gpt2", "opt"}
    assert -1 <= metrics["gpt2"]["spearman_standard"] <= 1
    runs = pd.read_csv(study / "reports" / "runs.csv")
    assert len(runs) == 4 * (3 + 2 + 2)
    assert set(runs.role) == {"proxy", "reference"} and runs.loss_mean.notna().all()
    assert {"loss_code", "loss_techdocs", "loss_wiki"} <= set(runs.columns)
    report = (study / "reports" / "report.md").read_text()
    assert "## Headline" in report and "figures/spearman_vs_lr.png" in report
    assert "### The web-like crawl" in report and "| corpus-dclm | corpus | crawl |" in report
    pngs = list((study / "reports" / "figures").glob("*.png"))
    assert len(pngs) >= 8
    for png in pngs:
        assert_picture(png)
    for name in FOUR:
        m = json.loads((study / "reports" / "recipes" / f"{name}.json").read_text())
        assert m["tokens"] == 40960, name
    dclm = json.loads((study / "reports" / "recipes" / "corpus-dclm.json").read_text())
    assert dclm["removed"]["dclm_classifier"]["docs"] > 0 and "gopher_dup_line_frac" in dclm["removed"]
    assert json.loads((study / "reports" / "curate.json").read_text())["classifier_heldout_accuracy"] > 0.5
    # beyond the paper: the zero-training proxy, the theorem simulated, the frontier
    aligned = pd.read_csv(study / "reports" / "alignment.csv")
    assert len(aligned) == 4 * 2 * 2 and set(aligned.state) == {"init", "warm"}  # recipes x families x states
    assert len(json.loads((study / "reports" / "theory.json").read_text())) == 2  # the smoke profile's worlds
    assert {"frontier_tokens", "alignment_spearman_init", "alignment_spearman_warm"} <= set(metrics["gpt2"])
    for section in ("## Compute-reliability frontier", "## Zero-training proxy", "## The theorem, simulated"):
        assert section in report


def test_the_tuned_references_load_with_from_pretrained(study):
    """data/models/<recipe> is the tuned reference (best seed-mean LR, as the analysis picks it), loadable
    by transformers alone: its validation loss is the one the references stage recorded, bit for bit."""
    import contextlib

    import numpy as np
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from proxyrank.data import tokens
    from proxyrank.training.loop import evaluate

    runs = pd.read_csv(study / "reports" / "runs.csv")
    ref = runs[runs.role == "reference"]
    tuned = ref.groupby(["recipe", "lr"]).loss_mean.mean().groupby("recipe").idxmin()
    exported = json.loads((study / "data" / "models" / "export.json").read_text())
    assert {r["recipe"]: r["lr"] for r in exported} == {recipe: lr for recipe, lr in tuned}
    row = exported[0]
    folder = study / "data" / "models" / row["recipe"]
    model, tok = AutoModelForCausalLM.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)
    text = "def main():\n    return 0  # The quick brown fox"
    assert tok(text)["input_ids"] == tokens.load(study / "data" / "tokenizer").encode(text).ids
    params = yaml.safe_load((study / "params.yaml").read_text())
    valid = {d: np.load(study / "data" / "tokens" / "valid" / f"{d}.npy") for d in params["split"]["valid_domains"]}
    losses = evaluate(model, valid, params["train"]["seq_len"], params["train"]["batch_size"] * 4,
                      torch.device("cpu"), contextlib.nullcontext)
    record = json.loads((study / "data" / "runs" / "references" / row["recipe"] / f"{row['run_id']}.json").read_text())
    assert float(np.mean([v["all"] for v in losses.values()])) == record["loss_mean"] == row["loss_mean"]
    assert float(np.mean([v["b"] for v in losses.values()])) == record["half_b_loss"]


def test_a_recipe_added_in_params_builds_without_code_changes(study, tmp_path):
    """Only the new recipe's stages (and the summaries) are out of date; then it is in the results.
    A teammate who declares the same recipe in a clone of the commit before it restores its proxies
    and reference from the run-cache shared through a DVC remote, and trains nothing."""
    params = yaml.safe_load((study / "params.yaml").read_text())
    sh(["dvc", "remote", "add", "team", str(tmp_path / "team")], study)  # in .dvc/config: every commit has it
    commit(study, "before mine")
    added = json.loads(json.dumps(params))
    added["recipes"]["mine"] = {"group": "quality", "source": "crawl", "dedup": "minhash",
                                "buckets": {"middle": 2, "tail": 1}}
    (study / "params.yaml").write_text(yaml.safe_dump(added, sort_keys=False))
    status = sh(["dvc", "status"], study).stdout
    assert "recipe@mine" in status and "proxies@mine" in status
    assert "recipe@mix-natural" not in status and "proxies@corpus-dclm" not in status
    sh(["dvc", "repro", "collect"], study)
    m = json.loads((study / "reports" / "recipes" / "mine.json").read_text())
    assert m["shares"] == {"middle": 0.6667, "tail": 0.3333} and m["tokens"] == 40960
    assert "mine" in set(pd.read_csv(study / "reports" / "runs.csv").recipe)

    commit(study, "mine")
    sh(["dvc", "push", "-r", "team", "--run-cache"], study)  # the tree holds every output of both commits
    mate = tmp_path / "mate"
    sh(["git", "clone", "-q", str(study), str(mate)], tmp_path)
    sh(["git", "checkout", "-q", "HEAD~1"], mate)
    sh(["dvc", "pull", "-r", "team", "--run-cache"], mate)
    # the run-cache records name directory outputs that `pull --run-cache` leaves behind
    # (DVC 3.67); the committed history's outputs bring them
    sh(["dvc", "fetch", "-r", "team", "--all-commits"], mate)
    (mate / "params.yaml").write_text(yaml.safe_dump(added, sort_keys=False))
    out = sh(["dvc", "repro", "collect"], mate).stdout
    for stage in ("proxies@mine", "references@mine"):
        assert f"Stage '{stage}' is cached - skipping run" in out, out[-2000:]
    assert " to train" not in out, out[-2000:]
    assert (mate / "reports" / "runs.csv").read_bytes() == (study / "reports" / "runs.csv").read_bytes()


def test_second_repro_does_nothing(study):
    status = sh(["dvc", "status"], study).stdout
    assert "up to date" in status
    again = sh(["dvc", "repro"], study).stdout
    assert "Running stage" not in again


def test_bad_params_stop_cleanly_and_lose_nothing(study):
    before = (study / "reports" / "metrics.json").read_bytes()
    params = yaml.safe_load((study / "params.yaml").read_text())
    try:
        bad = json.loads(json.dumps(params))
        bad["proxies"][0]["lrs"] = [3e-3, 0.0, 1e-5]
        (study / "params.yaml").write_text(yaml.safe_dump(bad, sort_keys=False))
        proc = sh(["dvc", "repro"], study, check=False)
        assert proc.returncode != 0
        assert "proxies[0].lrs[1]: must be > 0" in proc.stdout + proc.stderr
        bad = json.loads(json.dumps(params))
        bad["recipes"]["mix-natural"]["weights"] = "naturl"
        (study / "params.yaml").write_text(yaml.safe_dump(bad, sort_keys=False))
        proc = sh(["dvc", "repro"], study, check=False)
        assert "recipes.mix-natural.weights: 'naturl' is not allowed" in proc.stdout + proc.stderr
    finally:
        (study / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    proc = sh([sys.executable, "-m", "stages.proxies", "no-such-recipe"], study, check=False)
    assert proc.returncode == 2 and "unknown recipe 'no-such-recipe'; declared: mix-natural" in proc.stderr
    assert not list(study.glob("reports/**/*.tmp")) and not list(study.glob("data/**/.*.tmp"))
    # DVC removes a stage's outputs before running it; with the params fixed, the next repro
    # takes them back from the run-cache or the resume store instead of training again.
    again = sh(["dvc", "repro"], study).stdout
    assert " to train " not in again.replace(" 0 to train ", "")
    assert (study / "reports" / "metrics.json").read_bytes() == before
    assert "up to date" in sh(["dvc", "status"], study).stdout


def test_results_travel_through_a_remote_to_a_fresh_clone(study, tmp_path):
    """Push to a local-folder remote, clone, pull: the clone is complete and reruns nothing."""
    sh(["dvc", "remote", "add", "-d", "results", str(tmp_path / "remote")], study)
    commit(study, "results")
    sh(["dvc", "push", "--run-cache"], study)
    clone = tmp_path / "clone"
    sh(["git", "clone", "-q", str(study), str(clone)], tmp_path)
    sh(["dvc", "pull"], clone)
    assert "up to date" in sh(["dvc", "status"], clone).stdout
    assert "Running stage" not in sh(["dvc", "repro"], clone).stdout
    for name in ("metrics.json", "runs.csv", "report.md"):
        assert (clone / "reports" / name).read_bytes() == (study / "reports" / name).read_bytes()
    assert (clone / "data" / "recipes" / "mix-natural" / "train.npy").read_bytes() == \
        (study / "data" / "recipes" / "mix-natural" / "train.npy").read_bytes()
