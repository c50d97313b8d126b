"""The plan: runs, FLOPs, GPU-hours and disk of a params file, checked against hand computation."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from conftest import ROOT
from proxyrank import cli
from proxyrank.tools import plan
from proxyrank.tools.ladder import rung_lines, rung_params
from proxyrank.config import load_params, missing_stage_params, parse_params
from proxyrank.errors import ParamsError


@pytest.fixture
def small(params_dict):
    """Two recipes; a GPT-2 nano proxy at two LRs (two seeds at the tiny one); a Pythia nano reference."""
    params_dict["recipes"] = {"mix-natural": {"group": "mixing", "weights": "natural"},
                              "mix-uniform": {"group": "mixing", "weights": "uniform"}}
    params_dict["tokenizer"] = {"kind": "bpe", "vocab_size": 512}
    params_dict["proxies"] = [{"family": "gpt2", "preset": "gpt2-nano", "lrs": [3e-3, 1e-5], "seeds": [0, 1],
                               "seed_lrs": [1e-5]}]
    params_dict["reference"] = {"family": "pythia", "preset": "pythia-nano", "lrs": [3e-3], "seeds": [0]}
    params_dict["train"].update(seq_len=64, batch_size=8, proxy_tokens=20500, reference_tokens=40960,
                                valid_tokens=2048, eval_points=2)
    params_dict["analysis"] = {"standard_lr": {"gpt2": 3e-3}, "tiny_lr": 1e-5, "n_boot": 10}
    return parse_params(params_dict)


# By hand, vocabulary V = 512, seq_len T = 64, width d = 32, one layer, ffn 128:
# GPT-2 nano: wte 512*32 + wpe 64*32 + block (2 layer norms 2*64, qkv 32*96+96, proj 32*32+32,
#   fc 32*128+128, proj 128*32+32) + final norm 64 = 16384 + 2048 + 12704 + 64 = 31,200 (lm_head tied)
# Pythia nano: embed_in 16384 + the same block + final norm 64 + embed_out 16384 = 45,536 (untied)
# FLOPs per token 6N + 12*L*d*T: GPT-2 187,200 + 24,576 = 211,776; Pythia 273,216 + 24,576 = 297,792
# Trained tokens, whole batches of 8 x 64: proxy 20,500 -> 320 sequences -> 40 steps -> 20,480;
#   reference 40,960 -> 80 steps -> 40,960
# Evaluation: 2 points x 3 domains x 31 windows x 64 = 11,904 tokens, forward only (a third)
GPT2_N, PYTHIA_N = 31_200, 45_536
PROXY_RUN = 20_480 * 211_776 + 11_904 * 211_776 // 3  # 4,337,172,480 + 840,327,168
REFERENCE_RUN = 40_960 * 297_792 + 11_904 * 297_792 // 3  # 12,197,560,320 + 1,181,638,656


def test_costs_match_hand_computation(small):
    costs = plan.run_costs(small)
    assert plan.vocab_size(small) == 512 and len(costs) == 2 * (3 + 1)
    proxies = [c for c in costs if c.spec.role == "proxy"]
    assert [(c.spec.lr, c.spec.seed) for c in proxies[:3]] == [(3e-3, 0), (1e-5, 0), (1e-5, 1)]
    assert {c.n_params for c in proxies} == {GPT2_N} and {c.tokens for c in proxies} == {20_480}
    ref = [c for c in costs if c.spec.role == "reference"]
    assert {c.n_params for c in ref} == {PYTHIA_N} and {c.tokens for c in ref} == {40_960}
    assert {c.flops for c in proxies} == {PROXY_RUN} and {c.flops for c in ref} == {REFERENCE_RUN}
    total = 6 * PROXY_RUN + 2 * REFERENCE_RUN
    assert total == 57_823_395_840
    s = plan.summary(small, costs, mfu=0.5, gpu="a100")
    assert s["proxy"]["runs"] == 6 and s["reference"]["runs"] == 2 and s["total"]["flops"] == total
    assert s["total"]["tokens"] == 6 * 20_480 + 2 * 40_960
    assert s["total"]["gpu_hours"] == pytest.approx(total / (0.5 * 312e12) / 3600)
    assert plan.recipe_flops(small) == {"mix-natural": total // 2, "mix-uniform": total // 2}


def test_disk_matches_hand_computation(small):
    d = plan.disk(small, plan.run_costs(small))
    assert d["recipe_tokens"] == 2 * 40_960 * 2  # the budget is the longer run's tokens, uint16
    assert d["valid_tokens"] == 3 * 2048 * 2
    assert d["run_records"] == 2 * 8 * (1024 + 2 * (80 + 30 * 3))  # two copies of each record
    assert d["checkpoint"] == 2 * 12 * PYTHIA_N  # fp32 weights + two AdamW moments, twice at a save
    assert d["checkpoint_writes"] == 12 * (6 * GPT2_N + 2 * PYTHIA_N)  # one save per run (2 eval points)


def test_render_states_its_assumptions_and_totals(small):
    text = plan.render(small, plan.run_costs(small), 0.5, "A100", "small.yaml", every_run=True)
    assert "plan for small.yaml: 2 recipes (mixing 2), 8 training runs" in text
    assert "MFU 50% of one A100's dense bf16 peak (312 TFLOP/s)" in text
    assert "proxy      gpt2    gpt2-nano      31.2k   20.5k  1.0e-05 0,1          4" in text
    assert "total           8    45.5k     205k      5.04e10     7.41e09" in text  # 50,418,155,520 + 7,405,240,320
    assert "mix-uniform\treference\tpythia\tpythia-nano\t0.003\t0\t40960\t45536\t" + str(REFERENCE_RUN) in text
    with pytest.raises(ParamsError, match="--gpu: unknown GPU 'v100'; known .*H100 989 TFLOP/s"):
        plan.render(small, plan.run_costs(small), 0.5, "v100", "x")
    with pytest.raises(ParamsError, match=r"--mfu: a fraction in \(0, 1\], got 40"):
        plan.render(small, plan.run_costs(small), 40, "H100", "x")


def test_cpu_hours_come_from_measured_rates_and_the_nearest_size_stands_in(small, tmp_path, monkeypatch):
    rates = tmp_path / "cpu_throughput.json"
    rates.write_text(json.dumps({"presets": {"gpt2-nano": {"flops_per_s": 1e9, "n_params": GPT2_N},
                                             "pythia-tiny": {"flops_per_s": 4e9, "n_params": 231_168}}}))
    monkeypatch.setattr(plan, "CPU_RATES", rates)
    costs = plan.run_costs(small)
    # pythia-nano (45.5k) was never measured: gpt2-nano (31.2k) is nearer in size than pythia-tiny (231k)
    assert {plan.cpu_seconds(c, plan.cpu_rates())[1] for c in costs} == {"gpt2-nano"}
    hours = (6 * PROXY_RUN + 2 * REFERENCE_RUN) / 1e9 / 3600
    s = plan.summary(small, costs, mfu=0.5, gpu="a100")
    assert s["total"]["cpu_worker_hours"] == pytest.approx(hours)
    assert s["reference"]["cpu_worker_hours"] == pytest.approx(2 * REFERENCE_RUN / 1e9 / 3600)
    text = " ".join(plan.render(small, costs, 0.5, "A100", "small.yaml").split())
    assert f"about {hours:.3g} worker-hours of training, i.e. {hours / 2:.3g} hours of wall time on " \
           f"train.workers = 2" in text and "nearest in size, which a bigger model beats (an upper bound): " \
           "pythia-nano as gpt2-nano." in text
    assert "+ export 1 45.5k 41k" in text  # one reference run per exported recipe (one per group: 1 here)
    monkeypatch.setattr(plan, "CPU_RATES", tmp_path / "absent.json")
    assert "CPU hours: no measurement at" in plan.render(small, costs, 0.5, "A100", "small.yaml")


def test_gpt2_tokenizer_means_gpt2_vocabulary(small):
    import dataclasses

    p = dataclasses.replace(small, tokenizer=dataclasses.replace(small.tokenizer, kind="gpt2"))
    assert plan.vocab_size(p) == 50257 and plan.token_bytes(p) == 2


def test_profiles_load_and_the_paper_plans_at_paper_scale(monkeypatch):
    monkeypatch.chdir(ROOT)  # manifests are named relative to the project root
    paper = load_params("profiles/paper.yaml")
    gpu1 = load_params("profiles/gpu1.yaml")
    for profile in ("profiles/paper.yaml", "profiles/gpu1.yaml"):
        assert missing_stage_params(profile) == [], profile  # every key dvc.yaml's stages read
    assert len(paper.recipes) == 23 and not paper.crawl.synthetic
    assert [sum(r.group == g for r in paper.recipes.values()) for g in ("mixing", "corpus", "quality", "dedup")] \
        == [10, 3, 6, 4]
    s = plan.summary(paper, plan.run_costs(paper), mfu=0.4, gpu="H100")
    assert s["proxy"]["runs"] == 23 * 32 and s["reference"]["runs"] == 23 * 3
    ref = next(r for r in s["runs"] if r["role"] == "reference")
    assert ref["preset"] == "pythia-1b" and 19 < ref["tokens"] / ref["n_params"] < 21  # ~20 tokens a parameter
    assert 5_000 < s["total"]["gpu_hours"] < 12_000 and s["reference"]["gpu_hours"] > 5 * s["proxy"]["gpu_hours"]
    assert 0.8e12 < s["disk"]["recipe_tokens"] < 1.1e12
    # the one-GPU profile: its data sections are the default's (the data stages are shared), and
    # its training fits a few minutes even at a conservative MFU
    overridden = {key.split(".")[0] for key in yaml.safe_load((ROOT / "profiles" / "gpu1.yaml").read_text())["overrides"]}
    assert not overridden & {"seed", "corpus", "split", "tokenizer", "crawl", "curation"}, overridden
    assert plan.summary(gpu1, plan.run_costs(gpu1), mfu=0.15, gpu="H100")["total"]["gpu_hours"] * 60 < 3
    assert gpu1.train.device == "auto" and len(gpu1.reference.lrs) == 3


def test_plan_command_prints_the_paper_cost(capsys, monkeypatch):
    proc = subprocess.run([sys.executable, "-m", "proxyrank", "plan", "--params", "profiles/paper.yaml"],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "23 recipes (mixing 10, corpus 3, quality 6, dedup 4), 805 training runs" in proc.stdout
    assert "MFU 40% of one H100's dense bf16 peak" in proc.stdout and "recipe token files" in proc.stdout
    monkeypatch.chdir(ROOT)  # the same entry point in this process: one interpreter start less
    assert cli.main(["plan", "--params", "profiles/paper.yaml", "--gpu", "tpu"]) == 2
    assert "proxyrank plan: error: --gpu: unknown GPU 'tpu'" in capsys.readouterr().err


def test_plan_lists_each_rung_along_the_ladder_axes(small, params_dict, tmp_path):
    """One line per rung: steps and tokens per parameter as the rung sets them, and its CPU and GPU hours
    equal to the rung's own plan."""
    params_dict["ladder"] = {"rungs": {"base": {}, "long": {"set": {"train.reference_tokens": 4 * 40960,
                                                                    "train.proxy_tokens": 2 * 20480}}}}
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params_dict))
    p = load_params(path)
    lines = {line.split()[0]: line.split() for line in rung_lines(p, path, 0.4, "H100")[3:] if line}
    ref_n = PYTHIA_N  # the reference: pythia-nano at vocabulary 512, seq_len 64
    assert lines["base"][4] == "40" and float(lines["base"][6]) == pytest.approx(40960 / ref_n, rel=1e-3)
    assert lines["long"][4] == "80" and float(lines["long"][6]) == pytest.approx(4 * 40960 / ref_n, rel=1e-3)
    long = parse_params(rung_params("long", p.ladder.rungs["long"], path))
    costs = plan.run_costs(long)
    assert float(lines["long"][8]) == pytest.approx(plan.gpu_hours(sum(c.flops for c in costs), 0.4,
                                                                    plan.peak_flops("H100")[1]), rel=1e-2)
