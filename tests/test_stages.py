"""The stage scripts and dvc.yaml: deps that cannot go stale, a lock that matches the tree, thin
scripts, and the project's one error type at the process boundary."""
from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from proxyrank import stage
from proxyrank.errors import DataError, ParamsError
from proxyrank.tools import deps

ROOT = Path(__file__).resolve().parents[1]


def test_every_stage_lists_exactly_the_code_it_runs():
    """An edit to any module a stage imports (at any depth, even inside a function) reruns it, and
    no stage reruns for code it never imports: the code stage lists every module some stage runs, and
    each stage depends on its own digest file only. Fix with `python -m proxyrank.tools.deps --fix`."""
    assert deps.gaps(ROOT) == {}


def test_a_digest_changes_exactly_when_a_module_of_its_stage_does(tmp_path):
    """data/code/X.txt is what makes DVC rerun X: it must change with any module X reaches and with
    nothing else, and the code stage removes the file of a stage script that is gone."""
    pkg = tmp_path / "proxyrank"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("A = 1\n")
    (pkg / "b.py").write_text("B = 1\n")
    (tmp_path / "stages").mkdir()
    (tmp_path / "stages" / "s.py").write_text("def main():\n    from proxyrank import a\n")
    (tmp_path / "stages" / "t.py").write_text("import proxyrank.b\n")
    out = tmp_path / "data" / "code"
    (out).mkdir(parents=True)
    (out / "gone.txt").write_text("")
    deps.write_digests(tmp_path, out)
    assert sorted(f.name for f in out.iterdir()) == ["s.txt", "t.txt"]
    before = {f.name: f.read_text() for f in out.iterdir()}
    assert [line.split("  ")[1] for line in before["s.txt"].splitlines()] == ["stages/s.py", "proxyrank/a.py"]
    (pkg / "a.py").write_text("A = 2\n")
    deps.write_digests(tmp_path, out)
    assert (out / "s.txt").read_text() != before["s.txt"]
    assert (out / "t.txt").read_text() == before["t.txt"]


def test_the_closure_follows_function_level_imports(tmp_path):
    pkg = tmp_path / "proxyrank"
    (pkg / "room").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "room" / "__init__.py").write_text("")
    (pkg / "room" / "a.py").write_text("def f():\n    from proxyrank.room import b\n")
    (pkg / "room" / "b.py").write_text("import proxyrank.c\n")
    (pkg / "c.py").write_text("X = 1\n")
    (pkg / "unused.py").write_text("")
    (tmp_path / "stages").mkdir()
    (tmp_path / "stages" / "s.py").write_text("from proxyrank.room.a import f\n")
    assert deps.closure(tmp_path, tmp_path / "stages" / "s.py") == {
        "stages/s.py", "proxyrank/room/a.py", "proxyrank/room/b.py", "proxyrank/c.py"}


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _resolved_stages() -> dict[str, dict]:
    """dvc.yaml's stages with foreach expanded, keyed as dvc.lock keys them (recipe@NAME)."""
    spec = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    out = {}
    for name, body in spec.items():
        if "foreach" not in body:
            out[name] = body
            continue
        for key in params[body["foreach"].strip("${}")]:
            text = yaml.safe_dump(body["do"]).replace("${key}", key)
            out[f"{name}@{key}"] = yaml.safe_load(text)
    return out


def _param(params: dict, dotted: str):
    for part in dotted.split("."):
        params = params[part]
    return params


def _plain(value):
    """A params value as both YAML readers agree on it: DVC records 3.0e-5 as the string '3e-05'
    (YAML 1.2 reads it so; PyYAML reads the file's spelling as a float)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def test_the_committed_lock_was_written_by_the_committed_code_and_params():
    """A commit that changes a stage's code, command, deps or params also commits the lock of its
    rerun: in a fresh clone with the cache, `dvc status` then reports nothing changed."""
    lock = yaml.safe_load((ROOT / "dvc.lock").read_text())["stages"]
    stages = _resolved_stages()
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert set(lock) == set(stages), "stages added or removed without a rerun"
    stale = []
    for name, body in stages.items():
        entry = lock[name]
        if entry["cmd"] != body["cmd"]:
            stale.append(f"{name}: cmd {entry['cmd']!r} != {body['cmd']!r}")
        locked = {d["path"]: d for d in entry.get("deps", [])}
        if set(locked) != set(body.get("deps", [])):
            stale.append(f"{name}: deps {sorted(set(locked) ^ set(body.get('deps', [])))} differ")
        for path, dep in locked.items():
            if path.startswith(("proxyrank/", "stages/")) and dep.get("md5") != _md5(ROOT / path):
                stale.append(f"{name}: {path} changed since the lock")
            if path.startswith(deps.CODE_DIR + "/"):
                stage_name = Path(path).stem
                now = hashlib.md5(deps.digest(ROOT, ROOT / "stages" / f"{stage_name}.py").encode()).hexdigest()
                if dep.get("md5") != now:
                    stale.append(f"{name}: the code of stage {stage_name} changed since the lock")
        for key, value in entry.get("params", {}).get("params.yaml", {}).items():
            if _plain(_param(params, key)) != _plain(value):
                stale.append(f"{name}: params {key} changed since the lock")
    assert stale == [], "dvc.lock is stale; rerun `dvc repro` and commit dvc.lock:\n" + "\n".join(stale)


def test_stage_scripts_are_thin_and_each_has_a_desc():
    """A stage script wires paths and params to library calls: a docstring, `main`, the runner."""
    spec = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    for name, script in deps.stage_scripts(ROOT).items():
        text = (ROOT / script).read_text()
        assert text.startswith('"""'), f"{script}: no docstring"
        assert f'stage.main("{name}", main' in text, f"{script}: not run through proxyrank.stage"
        assert len(text.splitlines()) <= 35, f"{script}: {len(text.splitlines())} lines; move logic into the package"
        assert (spec[name].get("do") or spec[name]).get("desc") or spec[name].get("desc"), f"{name}: no desc"


def test_a_user_error_is_one_line_exit_1_a_usage_error_exit_2_a_bug_keeps_its_traceback(capsys):
    def bad_input(p):
        raise DataError("data/x.parquet: no column 'text'; rerun `dvc repro split`")

    def bad_option(p):
        raise ParamsError("train.batch_size: 0; give a positive number")

    def bug(p):
        raise ValueError("an internal bug")

    params = str(ROOT / "params.yaml")
    assert stage.run("demo", bad_input, argv=["--params", params]) == 1
    err = capsys.readouterr().err
    assert err == "proxyrank demo: error: data/x.parquet: no column 'text'; rerun `dvc repro split`\n"
    assert stage.run("demo", bad_option, argv=["--params", params]) == 2
    assert capsys.readouterr().err == "proxyrank demo: error: train.batch_size: 0; give a positive number\n"
    with pytest.raises(ValueError, match="internal bug"):  # not swallowed: the process exits 1
        stage.run("demo", bug, argv=["--params", params])


def test_a_stage_refuses_an_unknown_recipe_naming_it():
    proc = subprocess.run([sys.executable, "-m", "stages.recipe", "no-such-recipe"], cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "no-such-recipe" in proc.stderr


def test_bad_params_are_a_params_error_before_any_stage_body_runs(tmp_path, capsys):
    bad = tmp_path / "params.yaml"
    bad.write_text((ROOT / "params.yaml").read_text().replace("seed: 0", "seed: zero", 1))
    ran = []
    assert stage.run("demo", ran.append, argv=["--params", str(bad)]) == 2
    assert ran == [] and "seed" in capsys.readouterr().err
    assert issubclass(ParamsError, ValueError)  # callers that catch ValueError keep working


def test_the_cli_lists_its_commands_knows_its_version_and_points_stages_to_dvc(capsys):
    from proxyrank.cli import COMMANDS, main

    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert all(f"\n  {name} " in out for name in COMMANDS)
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.startswith("proxyrank ")
    with pytest.raises(SystemExit) as done:
        main(["proxies"])
    assert done.value.code == 2 and "dvc repro proxies" in capsys.readouterr().err
