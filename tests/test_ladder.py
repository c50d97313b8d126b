"""The scale ladder's parts: rungs are validated params files, and the table keeps one row set per rung.
Running a rung through DVC is tested end to end in test_pipeline.py."""
import numpy as np
import pandas as pd
import pytest
import yaml

from proxyrank import timings
from proxyrank.training import train
from proxyrank.config import Rung, parse_params
from proxyrank.errors import ParamsError
from proxyrank.tools.ladder import COLUMNS, merge, rung_params, run_ladder, train_hours


@pytest.fixture
def base(tmp_path, params_dict):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params_dict | {"ladder": {"rungs": {"x": {}}}}))
    return path


def test_a_rung_is_the_params_file_with_dotted_keys_replaced(base, params_dict):
    data = rung_params("r", Rung(set={"train.proxy_tokens": 4096, "reference.preset": "pythia-tiny"}), base)
    assert data["train"]["proxy_tokens"] == 4096 and data["reference"]["preset"] == "pythia-tiny"
    assert data["train"]["seq_len"] == params_dict["train"]["seq_len"] and data["ladder"] == {"rungs": {}}
    profile = base.parent / "other.yaml"
    profile.write_text(yaml.safe_dump(params_dict | {"seed": 7}))
    assert rung_params("p", Rung(profile=str(profile)), base)["seed"] == 7
    profile.write_text(yaml.safe_dump({"base": base.name, "overrides": {"seed": 8, "train.seq_len": 32}}))
    data = rung_params("p", Rung(profile=str(profile), set={"seed": 9}), base)  # a profile: base + overrides
    assert (data["seed"], data["train"]["seq_len"], data["recipes"]) == (9, 32, params_dict["recipes"])


def test_a_rung_drops_the_recipes_it_names(base, params_dict):
    data = rung_params("r", Rung(drop=["mix-natural"]), base)
    assert sorted(data["recipes"]) == sorted(r for r in params_dict["recipes"] if r != "mix-natural")


@pytest.mark.parametrize("rung, expect", [
    (Rung(set={"trian.proxy_tokens": 1}), r"ladder.rungs.r.set: trian.proxy_tokens: no section 'trian' in the "
                                          r"params to override \(did you mean 'train'\?\)"),
    (Rung(set={"train.proxy_tokens": -5}), r"ladder.rungs.r: train.proxy_tokens: must be > 0"),
    (Rung(set={"reference.preset": "pythia-huge"}), r"ladder.rungs.r: reference.preset: unknown preset"),
    (Rung(profile="missing.yaml"), r"ladder.rungs.r.profile: missing.yaml: no such params file"),
    (Rung(drop=["mix-natral"]), r"ladder.rungs.r.drop: unknown recipe 'mix-natral' \(did you mean 'mix-natural'\?\)"),
])
def test_a_bad_rung_is_refused_naming_it(base, rung, expect):
    with pytest.raises(ParamsError, match=expect):
        rung_params("r", rung, base)


def test_unknown_rungs_and_gpu_rungs_without_a_gpu(base, capsys):
    from proxyrank.config import load_params

    ladder = load_params(base).ladder
    with pytest.raises(ParamsError, match="unknown rung.*nope; declared: x"):
        run_ladder(ladder, ["nope"], base)
    gpu = type(ladder)(rungs={"g": Rung(gpu=True)})
    assert run_ladder(gpu, None, base) == ["g"]  # this machine has no CUDA
    assert "needs a GPU (gpu: true) and torch sees none; skipped" in capsys.readouterr().out


def test_merge_replaces_a_rungs_rows_and_keeps_the_others(tmp_path):
    path = tmp_path / "reports" / "ladder.csv"

    def rows(rung, flops, rho):
        return [{"rung": rung, "family": f, "reference_flops": flops, "spearman_tiny": rho} for f in ("gpt2", "opt")]

    merge(path, rows("b", 2e12, 0.1), "b")
    merge(path, rows("a", 1e12, 0.2), "a")
    merge(path, rows("b", 2e12, 0.3), "b")
    table = pd.read_csv(path)
    assert list(table.columns) == COLUMNS
    assert table.rung.tolist() == ["a", "a", "b", "b"]  # ordered by reference compute
    assert table.spearman_tiny.tolist() == [0.2, 0.2, 0.3, 0.3]
    assert not list(path.parent.glob(".*.tmp"))


def test_train_hours_come_from_the_timing_files_by_fingerprint(tmp_path, params_dict, monkeypatch):
    """A rung's runs are found by fingerprint in its workspace's timing files or the project's (the
    run-cache they share restores a run trained in either); a line of another run under the same
    id does not count, and a run with no line anywhere leaves the hours unknown."""
    monkeypatch.setattr(train, "code_stamp", lambda: {"code": "fixed"})  # no torch import for this
    p = parse_params(params_dict)
    ws, root = tmp_path / "ws", tmp_path / "root"
    valid = {d: ws / "data" / "tokens" / "valid" / f"{d}.npy" for d in p.split.valid_domains}
    for i, path in enumerate([*valid.values(), *(ws / "data" / "recipes" / r / "train.npy" for r in p.recipes)]):
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, np.arange(i, i + 10, dtype=np.uint16))
    folders = [ws / timings.TIMINGS, root / timings.TIMINGS]
    total, last = 0.0, None
    for n, recipe in enumerate(p.recipes):
        for role, stage in (("proxy", "proxies"), ("reference", "references")):
            specs = train.run_specs(p, recipe, role)
            keys = train.run_keys(specs, p.train, ws / "data" / "recipes" / recipe / "train.npy", valid)
            for spec, key in zip(specs, keys):
                path = timings.stage_file(f"{stage}@{recipe}", folders[n % 2])
                timings.append(path, {"kind": "run", "run_id": spec.run_id, "fingerprint": "stale", "wall_s": 1e6})
                timings.append(path, {"kind": "run", "run_id": spec.run_id, "fingerprint": train.fingerprint(key),
                                      "wall_s": 36.0})
                total, last = total + 36.0, path
    assert train_hours(p, ws, folders) == round(total / 3600, 3) > 0
    last.write_text("".join(last.read_text().splitlines(keepends=True)[:-1]))  # one run's line lost
    assert train_hours(p, ws, folders) is None


def test_a_rung_row_carries_its_validity_checks():
    """V1-V4 and the verdict of the rung's validity.json, for the family and its first tiny LR."""
    from proxyrank.tools.ladder import VALIDITY, validity_columns

    v = {"V1": {"pass": False, "best_fixed_spearman": 0.99, "seed_ceiling": 0.95, "optima_spread": 2.1},
         "V2": [{"family": "f", "tags": ["standard"], "passed": True, "loss_drop": 1.0, "reliability": 0.8},
                {"family": "f", "tags": ["tiny30", "tiny"], "passed": False, "loss_drop": 0.05, "reliability": 0.2},
                {"family": "g", "tags": ["tiny30"], "passed": True, "loss_drop": 0.5, "reliability": 0.9}],
         "V3": {"ceiling": 0.9},
         "V4": [{"family": "f", "tag": "tiny300", "delta": 9.0, "lo": 8.0, "hi": 10.0},
                {"family": "f", "tag": "tiny30", "delta": 0.3, "lo": -0.1, "hi": 0.7}],
         "verdict": {"f": {"can_test": False}}}
    row = validity_columns(v, "f", "tiny30")
    assert list(row) == VALIDITY and set(VALIDITY) <= set(COLUMNS)
    assert (row["v1_pass"], row["v2_standard_pass"], row["v2_tiny_pass"], row["v2_tiny_loss_drop"]) == (False, True, False, 0.05)
    assert (row["v4_delta"], row["v4_lo"], row["v4_hi"], row["v3_ceiling"], row["can_test"]) == (0.3, -0.1, 0.7, 0.9, False)


def test_a_workspace_is_dirty_for_uncommitted_code_not_for_the_ladder_table(tmp_path):
    """A row's `commit` is the code it was measured at: an uncommitted reports/ladder.csv (the ladder's
    own output, rewritten by every rung) leaves it clean, an uncommitted params or code file does not."""
    import subprocess

    from proxyrank.tools.ladder import LADDER_CSV, _workspace
    from proxyrank.tools.scale import child_env

    root = tmp_path / "repo"
    root.mkdir()
    for cmd in (["git", "init", "-q"], ["dvc", "init", "-q"]):
        subprocess.run(cmd, cwd=root, check=True, env=child_env())
    (root / LADDER_CSV).parent.mkdir()
    (root / LADDER_CSV).write_text("rung\n")
    (root / "params.yaml").write_text("a: 1\n")
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x"], cwd=root, check=True)
    (root / LADDER_CSV).write_text("rung\ndefault\n")
    ws, commit, dirty = _workspace(root, "r")
    assert not dirty and len(commit) == 40 and (ws / LADDER_CSV).read_text() == "rung\ndefault\n"
    (root / "params.yaml").write_text("a: 2\n")
    ws, _, dirty = _workspace(root, "r")
    assert dirty and (ws / "params.yaml").read_text() == "a: 2\n"


def test_a_resumed_workspace_keeps_the_rungs_own_lock_and_reports(tmp_path):
    """A rung's second sitting starts from its own dvc.lock and git-tracked outputs, not the study's
    that the checkout restores (DVC would rebuild every uncached stage whose outputs they are)."""
    import subprocess

    from proxyrank.tools.ladder import _workspace
    from proxyrank.tools.scale import child_env

    root = tmp_path / "repo"
    (root / "reports").mkdir(parents=True)
    for cmd in (["git", "init", "-q"], ["dvc", "init", "-q"]):
        subprocess.run(cmd, cwd=root, check=True, env=child_env())
    for rel in ("dvc.lock", "reports/recipe.json", "code.py"):
        (root / rel).write_text("study\n")
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x"], cwd=root, check=True)
    ws, _, _ = _workspace(root, "r")
    assert (ws / "dvc.lock").read_text() == "study\n"  # a fresh rung starts from the study's lock
    for rel in ("dvc.lock", "reports/recipe.json", "code.py"):
        (ws / rel).write_text("rung\n")
    ws, _, _ = _workspace(root, "r")
    assert [(ws / rel).read_text() for rel in ("dvc.lock", "reports/recipe.json", "code.py")] == \
        ["rung\n", "rung\n", "study\n"]  # the code is the checkout's
