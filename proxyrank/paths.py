"""Where the study's artifacts live, relative to the repository root (dvc.yaml names the same paths)."""
from __future__ import annotations

from pathlib import Path

DATA = Path("data")
REPORTS = Path("reports")
RAW, DOCS = DATA / "raw", DATA / "docs"
POOL, VALID = DATA / "pool.parquet", DATA / "valid.parquet"
TOKENIZER, TOKENS = DATA / "tokenizer", DATA / "tokens"
VALID_TOKENS = TOKENS / "valid"
RECIPES, RUNS, RESUME = DATA / "recipes", DATA / "runs", DATA / ".resume"
CRAWL, CURATED = DATA / "crawl.parquet", DATA / "curated"
MODELS = DATA / "models"  # the tuned references, as Hugging Face folders (training/export.py)
LIVE = DATA / "live"  # DVCLive's training curves (training/live.py): no DVC output, like data/timings


def recipe_stream(recipe: str) -> Path:
    """A recipe's training token stream (the `recipe@R` stage's output)."""
    return RECIPES / recipe / "train.npy"


def valid_streams(domains) -> dict[str, Path]:
    """Each validation domain's token file (the `tokens` stage's output)."""
    return {d: VALID_TOKENS / f"{d}.npy" for d in domains}
