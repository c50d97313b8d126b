"""The hub path (paper scale): sample a `datasets` corpus into one normalised document table.

A source with `registry: hub` is read with `datasets.load_dataset(..., streaming=True)`, either
from the Hugging Face hub (`dataset: allenai/c4`, `config: en`) or from local files in the same
schema (`path:` a parquet/jsonl file, a folder of them or a glob, relative to the manifest), shuffled
with the IterableDataset's seeded shuffle buffer (`seed`, `shuffle_buffer`), cut at `max_docs`
documents and/or `max_chars` characters, and written at fetch time to data/raw/<name>.parquet in
the DOC_COLUMNS schema (plus `bucket` / `quality_score` where the dataset has them). Nothing is
materialised: rows stream through the shuffle buffer into a ParquetWriter in batches. The extract
stage then only verifies that table and copies it to data/docs/, so split and recipes are unchanged.

Checksums. A hub dataset has no archive whose SHA-256 could be pinned in the manifest: it is a
repository of many shards, and we read a seeded sample of it. What pins it instead is its revision:
a branch or tag in `revision` is resolved to the repository's commit before loading, the data is
read at that commit, and the commit is recorded (`datasets` itself does not expose the commit it
read, so it is resolved with huggingface_hub's `dataset_info`, which datasets depends on). Pin
`revision` to a 40-hex commit in the manifest for an exactly reproducible sample. The SHA-256 of
the parquet we wrote is recorded with it in a sidecar, data/raw/<name>.parquet.json, together with
the spec it was made from; extract refuses a table whose bytes no longer match it, and fetch keeps
an existing table only while both the spec and the bytes match (so an unpinned `main` is not
silently re-read at a newer commit: delete the table to refresh it). Local files have no revision;
their names and sizes are recorded instead.

Domains. `parsers` of a hub source is exactly `{hub: DOMAIN}`: every document gets DOMAIN. For a
schema whose rows name their own domain (the Pile's meta.pile_set_name), `{hub: "*"}` means "per
document": the set name becomes the domain ("Pile-CC", "Github", "ArXiv", ...), so Pile domain
mixtures work; `{hub: pile}` would instead make the whole Pile one domain.

Schemas (field names from the dataset cards / loading code):
  pile          text, meta.pile_set_name                 monology/pile-uncopyrighted (jsonl.zst)
  c4            text, url, timestamp                     allenai/c4, config en (json.gz)
  dclm          text, url, fasttext_openhermes_reddit_eli5_vs_rw_v2_bigram_200k_train_prob
                (kept as quality_score; higher = more like the DCLM classifier's high-quality
                set)                                     mlfoundations/dclm-baseline-1.0 (jsonl.zst)
  refinedweb    content, url (timestamp, dump, segment, image_urls unused)
                                                         tiiuae/falcon-refinedweb (parquet)
  redpajama-v2  raw_content, doc_id, meta (JSON text: url, partition, ...), quality_signals (JSON
                text: each signal a list of [start, end, value] spans; ccnet_bucket 0/1/2 =
                head/middle/tail, ccnet_perplexity) -> columns bucket and quality_score (the CCNet
                perplexity: lower = closer to Wikipedia); tail documents have no signals, their
                bucket comes from meta.partition. togethercomputer/RedPajama-Data-V2 is a loading
                script, which datasets>=4 refuses: materialise that schema to parquet/jsonl and use
                `path:`.
  text          text                                     any corpus with a text field
Web documents are grouped by URL, so copies of a page from several crawls stay on one side of the
validation split. Memory: the shuffle buffer (`shuffle_buffer` documents, default 10,000) plus one
batch of BATCH_ROWS rows.
"""
from __future__ import annotations

import dataclasses
import json
import re
import shutil
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from proxyrank.data.extract import make_doc
from proxyrank.data.sources import BUCKETS, DOC_COLUMNS, HUB_FIELDS, OPTIONAL_COLUMNS, Source
from proxyrank.errors import DataError, FetchError
from proxyrank.files import atomic_path, sha256, write_json

PER_DOC = "*"  # parsers value: take each document's domain from the data
EXTRA_COLUMNS = dict(zip(OPTIONAL_COLUMNS, (pa.string(), pa.float64())))  # bucket, quality_score
BATCH_ROWS = 1000
DEFAULT_BUFFER = 10_000

# The 22 components of the Pile, as its meta.pile_set_name spells them (pile-uncopyrighted drops
# Books3, BookCorpus2, OpenSubtitles, YoutubeSubtitles and OpenWebText2).
PILE_SETS = ("Pile-CC", "PubMed Central", "Books3", "OpenWebText2", "ArXiv", "Github", "FreeLaw",
             "StackExchange", "USPTO Backgrounds", "PubMed Abstracts", "Gutenberg (PG-19)", "OpenSubtitles",
             "Wikipedia (en)", "DM Mathematics", "Ubuntu IRC", "BookCorpus2", "EuroParl", "HackerNews",
             "YoutubeSubtitles", "PhilPapers", "NIH ExPorter", "Enron Emails")
_PILE_CANON = {s.lower(): s for s in PILE_SETS}
DCLM_SCORE = "fasttext_openhermes_reddit_eli5_vs_rw_v2_bigram_200k_train_prob"


class HubSchemaError(DataError):
    """The data does not have the fields its declared schema needs (a manifest error, not a fetch one)."""


class _Missing(Exception):
    def __init__(self, field: str):
        self.field = field


def _get(row: dict, dotted: str):
    """row["a"]["b"] for "a.b"; JSON strings on the way are decoded (RPv2 keeps meta as JSON text)."""
    value = row
    for part in dotted.split("."):
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                raise _Missing(dotted) from None
        if not isinstance(value, dict) or value.get(part) is None:
            raise _Missing(dotted)
        value = value[part]
    return value


def pile_domain(name: str) -> str:
    """A Pile set name with spacing normalised and its canonical spelling ("github" -> "Github")."""
    name = " ".join(str(name).split())
    return _PILE_CANON.get(name.lower(), name)


def _signal(signals: dict, name: str):
    """The document-level value of an RPv2 quality signal: a list of [start, end, value] spans."""
    spans = signals.get(name)
    if isinstance(spans, list) and spans and isinstance(spans[0], list) and len(spans[0]) == 3:
        return spans[0][2]
    return None


def _bucket(value) -> str | None:
    """An RPv2 bucket (0.0 / 1.0 / 2.0, or its name) as its name in BUCKETS; None if neither."""
    if isinstance(value, (int, float)) and value in (0, 1, 2):
        return BUCKETS[int(value)]
    return value if value in BUCKETS else None


def _json(row: dict, field: str) -> dict:
    """A field that RPv2 stores as JSON text, decoded; not a JSON object counts as missing."""
    value = _get(row, field)
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise _Missing(field) from None
    if not isinstance(value, dict):
        raise _Missing(field)
    return value


def _rpv2(row: dict) -> dict:
    signals, meta = _json(row, "quality_signals"), _json(row, "meta")
    # tail documents carry no signals: their partition in meta says where they are
    bucket = _bucket(_signal(signals, "ccnet_bucket")) or _bucket(meta.get("partition"))
    ppl = _signal(signals, "ccnet_perplexity")
    return {"text": row["raw_content"], "group": meta.get("url") or row["doc_id"], "bucket": bucket,
            "quality_score": float(ppl) if isinstance(ppl, (int, float)) else None}


@dataclass(frozen=True)
class Schema:
    fields: tuple[str, ...]  # top-level fields the dataset must have
    row: Callable[[dict], dict]  # row -> text, group (near-duplicate unit) [, domain, extras]
    extras: tuple[str, ...] = ()
    domain_field: str = ""  # rows name their own domain: `parsers: {hub: "*"}` is allowed


SCHEMAS = {
    "pile": Schema(("text", "meta"), lambda r: {"text": r["text"], "domain": pile_domain(_get(r, "meta.pile_set_name"))},
                   domain_field="meta.pile_set_name"),
    "c4": Schema(("text", "url", "timestamp"), lambda r: {"text": r["text"], "group": r["url"]}),
    "dclm": Schema(("text", "url", DCLM_SCORE),
                   lambda r: {"text": r["text"], "group": r["url"], "quality_score": r[DCLM_SCORE]},
                   extras=("quality_score",)),
    "refinedweb": Schema(("content", "url"), lambda r: {"text": r["content"], "group": r["url"]}),
    "redpajama-v2": Schema(("raw_content", "doc_id", "meta", "quality_signals"), _rpv2,
                           extras=("bucket", "quality_score")),
    "text": Schema(("text",), lambda r: {"text": r["text"]}),
}


# --------------------------------------------------------------------------
# manifest

def check_source(src: Source, where: str) -> Source:
    """Validate a hub source's manifest fields; returns it with defaults filled in."""
    def bad(msg: str) -> DataError:
        return DataError(f"{where}: source {src.name!r}: {msg}")

    if src.schema not in SCHEMAS:
        raise bad(f"unknown schema {src.schema!r}; allowed: {', '.join(SCHEMAS)}")
    if bool(src.dataset) == bool(src.path):
        raise bad("a hub source needs exactly one of `dataset` (a hub name such as allenai/c4) "
                  "or `path` (local parquet/jsonl files in the same schema)")
    if src.file or src.sha256:
        raise bad("a hub source has no `file` or `sha256`: it is written to <name>.parquet and pinned "
                  "by `revision`; the table's SHA-256 is recorded in <name>.parquet.json at fetch")
    if src.path and (src.config or src.revision):
        raise bad("`config` and `revision` apply to hub datasets (`dataset:`), not to local `path`")
    if list(src.parsers) != ["hub"] or not isinstance(src.parsers["hub"], str) or not src.parsers["hub"]:
        raise bad("a hub source's parsers must be {hub: DOMAIN} (or {hub: '*'} for per-document domains)")
    if src.parsers["hub"] == PER_DOC and not SCHEMAS[src.schema].domain_field:
        raise bad(f"parsers {{hub: '*'}} needs a schema whose rows name their domain "
                  f"({', '.join(s for s, v in SCHEMAS.items() if v.domain_field)}); "
                  f"schema {src.schema!r} has none: give the domain, e.g. {{hub: web}}")
    for key in ("max_docs", "max_chars", "seed", "shuffle_buffer"):
        value = getattr(src, key)
        if value and not (value.isdigit() and (key == "seed" or int(value) > 0)):
            raise bad(f"{key}: must be a {'non-negative' if key == 'seed' else 'positive'} integer, got {value!r}")
    if not (src.max_docs or src.max_chars):
        raise bad("a hub source needs a budget: `max_docs` and/or `max_chars` (a corpus is never read whole)")
    return dataclasses.replace(src, file=f"{src.name}.parquet", split=src.split or "train",
                               seed=src.seed or "0", shuffle_buffer=src.shuffle_buffer or str(DEFAULT_BUFFER))


def domains(src: Source) -> tuple[str, ...]:
    """The domains a hub source can provide (all Pile sets for per-document Pile domains)."""
    return PILE_SETS if src.parsers["hub"] == PER_DOC else (src.parsers["hub"],)


def _spec(src: Source) -> dict:
    """What the table is a sample of; a local path by name only, so a checkout that moved (or a
    `dvc pull` on another machine) still matches."""
    return {k: getattr(src, k) for k in ("dataset", *HUB_FIELDS, "licence")} | {
        "path": Path(src.path).name if src.path else "", "domain": src.parsers["hub"]}


def sidecar_path(target: Path) -> Path:
    return target.with_name(target.name + ".json")


# --------------------------------------------------------------------------
# fetch

_FORMATS = {".parquet": "parquet", ".jsonl": "json", ".json": "json", ".jsonl.gz": "json",
            ".json.gz": "json", ".jsonl.zst": "json", ".json.zst": "json"}


def _format(path: Path) -> str | None:
    return next((f for suffix, f in _FORMATS.items() if path.name.endswith(suffix)), None)


def local_files(src: Source) -> tuple[str, list[str]]:
    """The builder ("parquet" or "json") and the sorted files of a local hub source."""
    path = Path(src.path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and _format(p))
    elif any(c in path.name for c in "*?["):
        files = sorted(p for p in path.parent.glob(path.name) if p.is_file() and _format(p))
    else:
        files = [path] if path.is_file() else []
    if not files:
        raise FetchError(f"{src.name}: no parquet or jsonl files at {src.path}")
    kinds = {_format(p) for p in files}
    if None in kinds or len(kinds) > 1:
        raise FetchError(f"{src.name}: {src.path} mixes or holds unsupported formats "
                         f"({', '.join(sorted(p.name for p in files))}); use parquet or jsonl, one kind")
    return kinds.pop(), [str(p) for p in files]


def _resolve_revision(src: Source) -> str:
    """The commit a hub dataset's branch/tag points at now (a 40-hex revision is already one)."""
    if re.fullmatch(r"[0-9a-f]{40}", src.revision):
        return src.revision
    from huggingface_hub import HfApi

    try:
        return HfApi().dataset_info(src.dataset, revision=src.revision or None).sha
    except Exception as e:  # noqa: BLE001 - offline, gated, missing: all reported with the reason
        raise FetchError(f"{src.name}: cannot resolve {src.dataset}@{src.revision or 'main'} on the "
                         f"Hugging Face hub ({type(e).__name__}: {str(e)[:300]}); the hub must be "
                         f"reachable (and HF_TOKEN set for gated datasets), or `dvc pull fetch` from a "
                         f"remote holding data/raw/") from None


def _open(src: Source):
    """The streaming dataset and what was read: the resolved commit, or the local files."""
    import datasets

    if src.path:
        builder, files = local_files(src)
        provenance = {"revision": None, "files": [{"name": Path(f).name, "bytes": Path(f).stat().st_size}
                                                  for f in files]}
        args = {"path": builder, "data_files": {src.split: files}}
    else:
        commit = _resolve_revision(src)
        provenance = {"revision": commit}
        args = {"path": src.dataset, "name": src.config or None, "revision": commit}
    try:
        ds = datasets.load_dataset(**args, split=src.split, streaming=True)
    except StopIteration:  # datasets' json reader on files without a single row
        raise FetchError(f"{src.name}: {src.dataset or src.path} holds no rows (empty files?)") from None
    except Exception as e:  # noqa: BLE001 - datasets raises many types; all reported with the reason
        hint = (" The repository is a loading script, which datasets>=4 no longer runs: produce files "
                "in this schema with the dataset's own tools and point `path:` at them."
                if "scripts are no longer supported" in str(e) else "")
        raise FetchError(f"{src.name}: datasets.load_dataset({args['path']!r}, name={src.config or None!r}, "
                         f"split={src.split!r}) failed: {type(e).__name__}: {str(e)[:500]}.{hint}") from None
    return ds, provenance


def _schema_error(src: Source, field: str, present) -> HubSchemaError:
    return HubSchemaError(f"{src.name}: schema {src.schema!r} needs field {field!r}, which "
                          f"{src.dataset or src.path} does not have (fields: {', '.join(sorted(present))}); "
                          f"fix `schema:` in the manifest (allowed: {', '.join(SCHEMAS)})")


def _arrow_schema(schema: Schema) -> pa.Schema:
    return pa.schema([(c, pa.string()) for c in DOC_COLUMNS] + [(c, EXTRA_COLUMNS[c]) for c in schema.extras])


def _stream(src: Source, ds) -> Iterator[dict]:
    """The dataset's rows; a failure inside datasets (a shard that cannot be read or decoded, a
    dropped connection) becomes a FetchError naming the source."""
    rows = iter(ds)
    n = 0
    while True:
        try:
            row = next(rows)
        except StopIteration:
            return
        except Exception as e:  # noqa: BLE001 - third-party IO errors of many types, re-raised named
            hint = " (.zst shards need `pip install zstandard`)" if "zstandard" in str(e) else ""
            raise FetchError(f"{src.name}: reading {src.dataset or src.path} failed after {n} rows: "
                             f"{type(e).__name__}: {str(e)[:500]}{hint}") from None
        n += 1
        yield row


def _rows(src: Source, ds, schema: Schema) -> Iterator[dict]:
    """Normalised rows of the sample, in order, until the document or character budget is spent."""
    max_docs, max_chars = int(src.max_docs or 0), int(src.max_chars or 0)
    fixed = None if src.parsers["hub"] == PER_DOC else src.parsers["hub"]
    n_docs = n_chars = 0
    for i, row in enumerate(_stream(src, ds)):
        if i == 0:
            missing = [f for f in schema.fields if f not in row]
            if missing:
                raise _schema_error(src, missing[0], row)
        try:
            got = schema.row(row)
        except _Missing as e:
            raise _schema_error(src, e.field, row) from None
        doc_id = f"{src.name}:hub:{i}"
        doc = make_doc(doc_id, doc_id, str(got["text"] or ""))
        if doc is None:  # empty or too short: skipped like the archive parsers skip them
            continue
        out = {"id": doc_id, "source": src.name, "domain": fixed or got["domain"], "licence": src.licence,
               "group": f"{src.name}:hub:{got.get('group') or i}", "text": doc.text}
        out.update({c: got.get(c) for c in schema.extras})
        yield out
        n_docs += 1
        n_chars += len(doc.text)
        if (max_docs and n_docs >= max_docs) or (max_chars and n_chars >= max_chars):
            return


def fetch_hub(src: Source, raw_dir: Path) -> Path:
    """Stream a seeded sample of the dataset into raw_dir/<name>.parquet plus its sidecar JSON;
    an existing table made from the same spec, with the bytes its sidecar records, is kept."""
    target = raw_dir / src.file
    side = sidecar_path(target)
    if target.exists() and side.exists():
        try:
            record = json.loads(side.read_text())
        except ValueError:
            record = {}
        if record.get("spec") == _spec(src) and record.get("sha256") == sha256(target):
            return target
    schema = SCHEMAS[src.schema]
    ds, provenance = _open(src)
    ds = ds.shuffle(seed=int(src.seed), buffer_size=int(src.shuffle_buffer))
    columns = list(ds.column_names or [])
    missing = [f for f in schema.fields if columns and f not in columns]
    if missing:
        raise _schema_error(src, missing[0], columns)
    if columns:  # decode only what the schema reads (web dumps carry bulky metadata)
        ds = ds.select_columns(list(schema.fields))
    arrow_schema = _arrow_schema(schema)
    n_docs = n_chars = 0
    with atomic_path(target) as tmp:
        with pq.ParquetWriter(tmp, arrow_schema, compression="zstd") as writer:
            batch: list[dict] = []
            for row in _rows(src, ds, schema):
                batch.append(row)
                n_docs += 1
                n_chars += len(row["text"])
                if len(batch) >= BATCH_ROWS:
                    writer.write_batch(pa.RecordBatch.from_pylist(batch, schema=arrow_schema))
                    batch = []
            if batch:
                writer.write_batch(pa.RecordBatch.from_pylist(batch, schema=arrow_schema))
        if not n_docs:
            raise FetchError(f"{src.name}: {src.dataset or src.path} gave no documents")
    from datasets import __version__ as datasets_version

    write_json(side, {"spec": _spec(src), **provenance, "docs": n_docs, "chars": n_chars,
                      "sha256": sha256(target), "datasets": datasets_version, "pyarrow": pa.__version__})
    if src.max_docs and not src.max_chars and n_docs < int(src.max_docs):
        print(f"fetch: {src.name}: only {n_docs} documents, fewer than max_docs={src.max_docs}", file=sys.stderr)
    return target


# --------------------------------------------------------------------------
# extract

def extract_hub(src: Source, raw_dir: Path, out_dir: Path) -> tuple[str, int, int]:
    """Verify the fetched table against its sidecar and copy it to out_dir/<name>.parquet."""
    import pyarrow.compute as pc

    archive = Path(raw_dir) / src.file
    side = sidecar_path(archive)
    try:
        record = json.loads(side.read_text())
    except (OSError, ValueError):
        raise FetchError(f"{side}: missing or unreadable; run `dvc repro fetch` or `dvc pull fetch`") from None
    if sha256(archive) != record.get("sha256"):
        raise FetchError(f"{archive}: checksum mismatch with {side.name}: the table changed since fetch "
                         f"(corrupted?); delete it and run `dvc repro fetch` or `dvc pull`")
    if record.get("spec") != _spec(src):
        raise FetchError(f"{archive}: fetched for a different manifest entry than {src.name!r} now has; "
                         f"run `dvc repro fetch`")
    f = pq.ParquetFile(archive)
    expected = _arrow_schema(SCHEMAS[src.schema])
    if not f.schema_arrow.equals(expected):
        raise DataError(f"{archive.name}: not a {src.schema!r} hub table: columns "
                        f"{f.schema_arrow.names}, expected {expected.names}")
    n_chars = sum(pc.sum(pc.utf8_length(b.column(0))).as_py() or 0 for b in f.iter_batches(columns=["text"]))
    with atomic_path(Path(out_dir) / f"{src.name}.parquet") as tmp:
        shutil.copyfile(archive, tmp)
    return src.name, f.metadata.num_rows, n_chars
