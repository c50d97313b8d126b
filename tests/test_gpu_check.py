"""bench/gpu_check.sh and bench/gpu_check.py, the parts a CPU can check: argument handling, the
commands it would run, the throughput measurement on a tiny preset, and the summary."""
from __future__ import annotations

import importlib.util
import json
import subprocess

from conftest import ROOT

from proxyrank import timings

SCRIPT = ROOT / "bench" / "gpu_check.sh"


def _check(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, env=env)


def _module():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "bench" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_arguments_are_checked_before_anything_runs(tmp_path):
    assert subprocess.run(["bash", "-n", str(SCRIPT)]).returncode == 0
    proc = _check(env={"PATH": "/usr/bin:/bin"})
    assert proc.returncode == 2 and "name the results folder (first argument, or $OUT)" in proc.stderr
    proc = _check(str(tmp_path), "--bogus")
    assert proc.returncode == 2 and "unknown option --bogus" in proc.stderr and "--archives DIR" in proc.stderr
    proc = _check(str(tmp_path), "--wheels", str(tmp_path / "none"))
    assert proc.returncode == 2 and "--wheels" in proc.stderr and "no such folder" in proc.stderr
    proc = _check(str(tmp_path), "--archives", str(tmp_path / "none"))
    assert proc.returncode == 2 and "no such folder" in proc.stderr and "dvc pull fetch" in proc.stderr
    proc = _check(str(tmp_path), "--profile", str(tmp_path / "none.yaml"))
    assert proc.returncode == 2 and "none.yaml: no such params file" in proc.stderr
    assert _check("--help").stdout.startswith("GPU check: the one-GPU profile")


def test_dry_run_names_every_step_and_needs_no_gpu(tmp_path):
    proc = _check(str(tmp_path / "out"), "--dry-run", "--compile")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert any(line.endswith("gpu_check.py throughput --out " + str(tmp_path / "out") + " --device cuda")
               for line in lines)
    assert any(line.endswith("--device cuda --compile") for line in lines)
    assert "profiles/gpu1.yaml as params.yaml" in proc.stdout
    steps = [line for line in lines if line.startswith("+ ") and "study.log" in line]
    assert [s.split(" >>")[0].split()[-2:] for s in steps] == [["-m", "stages.fetch"], ["-f", "fetch"], ["dvc", "repro"]]
    assert "gpu_check.py summarize" in lines[-1]
    no_dvc = _check(str(tmp_path / "out"), "--dry-run", "--no-dvc", "--skip-throughput",
                    "--profile", str(ROOT / "profiles" / "smoke.yaml")).stdout
    assert "proxyrank gpus --no-dvc --gpus 0 >> study.log" in no_dvc and "throughput" not in no_dvc
    assert "profiles/smoke.yaml as params.yaml" in no_dvc
    assert not list((tmp_path / "out").iterdir())  # a dry run writes nothing


def test_throughput_snippet_on_cpu_and_the_summary(tmp_path):
    gc = _module()
    result = gc.throughput(tmp_path, "gpt2-nano", "cpu", vocab=512, seq_len=32, batch=4, grad_accum=2, steps=3,
                           compile_=False, repeats=2)
    saved = json.loads((tmp_path / "throughput.json").read_text())
    assert saved == result and result["device"] == "cpu" and result["tokens_per_run"] == 3 * 4 * 32
    assert len(result["runs"]) == 2 and all(r["tokens_per_s"] > 0 and r["mfu"] is None for r in result["runs"])
    assert result["n_params"] > 0 and result["train_flops_per_run"] > 0
    study = tmp_path / "study"
    for role, folder, mfu in (("proxy", "proxies", 0.31), ("reference", "references", 0.42)):
        timings.append(study / timings.TIMINGS / f"{folder}@mix-a.jsonl",
                       {"kind": "run", "role": role, "fingerprint": role, "wall_s": 2.5, "mfu": mfu,
                        "tflops_per_s": 300.0, "device": "cuda"})
    (study / "reports").mkdir()
    (study / "reports" / "metrics.json").write_text(json.dumps({"gpt2": {"spearman_standard": 0.5,
                                                                         "spearman_tiny": 0.9}}))
    summary = gc.summarize(tmp_path, study, wall_s=401.0, gpu="NVIDIA H100 80GB HBM3, 81559 MiB, 580.1")
    assert summary["study"]["under_8_min"] and summary["study"]["roles"]["reference"]["mean_mfu"] == 0.42
    md = (tmp_path / "gpu_check.md").read_text()
    assert "GPU: NVIDIA H100 80GB HBM3" in md and "profiles/gpu1.yaml end to end: 401 s (under 8 minutes)" in md
    assert "| proxy | 1 | 2.5 | 0.31 | 300.0 | cuda |" in md and "| gpt2 | 0.500 | 0.900 |" in md
    assert "gpt2-nano" in md and json.loads((tmp_path / "gpu_check.json").read_text())["gpu"].startswith("NVIDIA")
