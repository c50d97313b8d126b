"""One recipe's runs of one role (proxies or references), trained into data/runs/<role>/<recipe>.

Shared by stages/proxies.py and stages/references.py: one process per recipe and role trains all
its runs on forked workers, so the ~6 s transformers import is paid per stage, not per run."""
from __future__ import annotations

from proxyrank.data import tokens
from proxyrank.files import atomic_dir
from proxyrank.paths import LIVE, RESUME, RUNS, TOKENIZER, recipe_stream, valid_streams
from proxyrank.timings import stage_file
from proxyrank.training.train import distributed, run_all, run_specs

FOLDERS = {"proxy": "proxies", "reference": "references"}


def train_recipe(p, name: str, role: str) -> None:
    """Train (or resume) every run of `role` for recipe `name`; the folder appears whole or not at all."""
    p.recipe(name)  # a clear error for an unknown recipe
    folder = RUNS / FOLDERS[role] / name
    args = (run_specs(p, name, role), p.train, recipe_stream(name), valid_streams(p.split.valid_domains),
            tokens.load(TOKENIZER).get_vocab_size(), RESUME)
    timing = stage_file(f"{FOLDERS[role]}@{name}")  # wall times: not in any output (timings.py)
    live = LIVE / FOLDERS[role] / name  # DVCLive's curves under `dvc exp run` (live.py): not in any output
    if distributed()[0] != 0:  # under torchrun only rank 0 writes
        run_all(*args, folder, timing, live)
        return
    with atomic_dir(folder) as tmp:
        run_all(*args, tmp, timing, live)
