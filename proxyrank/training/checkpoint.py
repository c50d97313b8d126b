"""Mid-run checkpoints: a killed run continues from its last evaluation point.

After each evaluation point the weights and optimizer state go to safetensors files, then
state.json naming them (the commit point). A run holds a lock on its checkpoint folder while it
trains, so a stage cleaning up the folders of runs no longer asked for never deletes a live one.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path

from proxyrank.files import write_json
from proxyrank.training.records import json_is


def save_checkpoint(folder: Path, model, opt, state: dict) -> None:
    """Weights and optimizer state as safetensors, then state.json naming them (the commit point)."""
    from safetensors.torch import save_file, save_model

    folder.mkdir(parents=True, exist_ok=True)
    step = state["step"]
    save_model(model, str(folder / f"model-{step}.safetensors"))
    flat = {f"{i}.{k}": v.detach().cpu().contiguous() if hasattr(v, "detach") else __import__("torch").tensor(v)
            for i, st in opt.state_dict()["state"].items() for k, v in st.items()}
    save_file(flat, str(folder / f"optim-{step}.safetensors"))
    write_json(folder / "state.json", state)
    for old in folder.glob("*.safetensors"):
        if not old.stem.endswith(f"-{step}"):
            old.unlink(missing_ok=True)


def checkpoint_state(folder: Path) -> tuple[dict | None, str | None]:
    """A checkpoint's state.json and why it cannot be resumed from (None: it can)."""
    try:
        state = json.loads((folder / "state.json").read_text())
    except (OSError, UnicodeDecodeError, ValueError) as e:
        return None, f"state.json unreadable ({e})"
    if not (isinstance(state, dict) and json_is(state.get("step"), int) and state["step"] > 0
            and isinstance(state.get("curve"), list) and json_is(state.get("wall_s"), float)):
        return None, "state.json lacks step (int > 0), curve (list) or wall_s (number)"
    missing = [f"{kind}-{state['step']}.safetensors" for kind in ("model", "optim")
               if not (folder / f"{kind}-{state['step']}.safetensors").is_file()]
    return (None, f"{', '.join(missing)} missing") if missing else (state, None)


def load_checkpoint(folder: Path | None, model, opt) -> dict | None:
    """The last committed state of a killed run, loaded into model and opt; None if there is none
    or it is damaged (then the run starts over, as if there were none)."""
    from safetensors.torch import load_file, load_model

    if folder is None or not (folder / "state.json").exists():
        return None
    state, reason = checkpoint_state(folder)
    if reason:
        print(f"resume: {folder} ignored: {reason}; training again", flush=True)
        return None
    step = state["step"]
    load_model(model, str(folder / f"model-{step}.safetensors"), device=str(next(model.parameters()).device))
    flat = load_file(str(folder / f"optim-{step}.safetensors"))
    sd = opt.state_dict()
    sd["state"] = {}
    for key, value in flat.items():
        i, name = key.split(".", 1)
        sd["state"].setdefault(int(i), {})[name] = value
    opt.load_state_dict(sd)
    return state


def _lock(fd: int, wait: bool) -> bool:
    """flock `fd`; False if another process holds it (or the file system cannot lock: then no one
    can tell a live checkpoint from a leaked one, and nothing is deleted)."""
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        return True
    except OSError:
        return False


@contextlib.contextmanager
def claim(folder: Path):
    """Hold a lock on a run's checkpoint folder while it trains: stages that share data/.resume
    (the `gpus` runner trains several side by side) then never delete each other's live
    checkpoints, while a killed run's lock dies with it."""
    while True:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder, os.O_RDONLY)
        _lock(fd, wait=True)
        with contextlib.suppress(FileNotFoundError):
            if os.path.samestat(os.fstat(fd), os.stat(folder)):
                break
        os.close(fd)  # the folder was deleted while we waited: lock the one that is there now
    try:
        yield
    finally:
        os.close(fd)


def drop_leaked_checkpoints(resume_dir: Path, keep: set[str]) -> None:
    """Delete the checkpoint folders of runs this stage will not train: a killed run's, left for
    good when params, data, code or libraries changed since. Those of runs about to train are
    their mid-run resume; those locked by a live run (another stage) are left alone."""
    dropped = 0
    for folder in sorted(resume_dir.glob("*.ckpt")):
        if folder.stem in keep or not folder.is_dir():
            continue
        try:
            fd = os.open(folder, os.O_RDONLY)
        except FileNotFoundError:  # deleted meanwhile by another stage's clean-up
            continue
        try:
            if _lock(fd, wait=False):
                shutil.rmtree(folder, ignore_errors=True)
                dropped += 1
        finally:
            os.close(fd)
    if dropped:
        print(f"resume: deleted {dropped} checkpoint(s) of runs no longer asked for in {resume_dir}", flush=True)
