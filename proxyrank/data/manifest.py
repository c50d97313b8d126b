"""Read and validate a sources manifest (proxyrank/data/sources.yaml, or a team's own).

Every entry becomes a `Source` (proxyrank/data/sources.py); a hub entry is checked by the hub
module, whose schemas decide what is valid, and an archive entry's parsers must be ones the
extract module has. A mistake raises a DataError naming the manifest, the source and the key.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import yaml

from proxyrank.data import hub
from proxyrank.data.extract import PARSERS
from proxyrank.data.sources import FIELDS, HUB_FIELDS, REGISTRIES, SOURCES_FILE, Source
from proxyrank.errors import DataError
from proxyrank.files import load_yaml


def load_sources(path: str | Path = SOURCES_FILE) -> dict[str, Source]:
    """Read a sources manifest; a local source's path is resolved against the manifest's folder."""
    path = Path(path)
    try:
        data = load_yaml(path)
    except (OSError, yaml.YAMLError) as e:
        raise DataError(f"corpus.manifest: cannot read {path}: {e}") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a mapping of source name -> spec")
    return {name: _source(path, name, spec) for name, spec in data.items()}


def _source(path: Path, name: str, spec: dict) -> Source:
    """One manifest entry, checked in this order: its keys, its registry, the hub fields (a hub
    source's schema and budget; none of them elsewhere), its parsers; then its path resolved."""
    unknown = set(spec) - FIELDS
    required = {"registry", "licence", "parsers", "schema"} if spec.get("registry") == "hub" else \
        {"registry", "file", "sha256", "licence", "parsers"}
    missing = required - set(spec)
    if unknown or missing:
        raise DataError(f"{path}: source {name!r}: unknown key(s) {sorted(unknown)}, "
                        f"missing key(s) {sorted(missing)}; keys: {sorted(FIELDS)}")
    src = Source(name=name, **{k: v if k == "parsers" else str(v) for k, v in spec.items()})
    if src.registry not in REGISTRIES:
        raise DataError(f"{path}: source {name!r}: unknown registry {src.registry!r}; "
                        f"allowed: {', '.join(REGISTRIES)}")
    if src.registry == "hub":
        src = hub.check_source(src, str(path))
    elif any(getattr(src, f) for f in HUB_FIELDS):
        raise DataError(f"{path}: source {name!r}: {', '.join(f for f in HUB_FIELDS if getattr(src, f))} "
                        f"apply only to registry hub")
    bad = [x for x in src.parsers if x not in PARSERS and src.registry != "hub"]
    if bad:
        raise DataError(f"{path}: source {name!r}: unknown parser(s) {', '.join(bad)}; "
                        f"allowed: {', '.join(PARSERS)}")
    if src.registry == "local" or (src.registry == "hub" and src.path):
        src = dataclasses.replace(src, path=str((path.parent / src.path).resolve()))
    return src


def source_domains(sources: dict[str, Source], names: list[str]) -> set[str]:
    """Every domain the named sources provide (a hub source's from its schema)."""
    return {d for n in names
            for d in (hub.domains(sources[n]) if sources[n].registry == "hub" else sources[n].parsers.values())}
