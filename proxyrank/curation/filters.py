"""The published web-text heuristic filters, one module per rule family, and what each rule removed.

The families (each rule one small named unit, its threshold a dataclass field next to its
citation):

  proxyrank.curation.c4                 C4 (Raffel et al. 2020, JMLR 21(140), section 2.2;
                                        tensorflow-datasets ``text/c4_utils.py``): `c4_clean`
  proxyrank.curation.gopher_quality     Gopher's MassiveWeb quality filters (Rae et al. 2021,
                                        arXiv:2112.11446, Appendix A.1.1): `gopher_quality`
  proxyrank.curation.gopher_repetition  Gopher's repetition filter (Appendix A.1.1, Table A1):
                                        `gopher_repetition`

This module holds what spans them: `RULES_OF` (every rule name of each family) and
`removals_by_damage` (each rule's removals against the crawl's own record of damage).

Why the families look the way they do:

* Data recipes in this study differ by which of the published heuristic filters they
  apply, so each filter has to be the published rule with the published threshold,
  not an approximation of it tuned on our data.  Every rule is one small named
  unit whose docstring cites the paper and the reference implementation it follows:
  C4 (tensorflow-datasets ``tensorflow_datasets/text/c4_utils.py``) and Gopher's
  MassiveWeb filters (datatrove ``pipeline/filters/gopher_quality_filter.py`` and
  ``gopher_repetition_filter.py``).
* Thresholds are fields of frozen dataclasses whose defaults are the published values,
  because a params.yaml section is turned into these dataclasses by the generic typed
  builder in ``proxyrank.config``; hence only int, float, bool, str and list[str]
  fields.  A rule is switched off by listing its name in ``skip``
  (proxyrank.curation.rules).
* Every rule has a stable snake_case name.  The functions return the name of the
  first rule that removed a document, and ``C4_RULES``, ``GOPHER_QUALITY_RULES`` and
  ``GOPHER_REPETITION_RULES`` list every name each function can return, in checking
  order, so manifests can count removals per rule (zeros included).
* No nltk, spaCy, datatrove or tensorflow: the filters run on ~20k pages inside a DVC
  stage, must be deterministic, fast (all three families a few times faster than
  datatrove with the same tokens; bench/results/filters.md) and dependency-free.  The
  two places where the references call a tokeniser (punkt sentence counting in C4, word
  tokens in the Gopher filters) are small regexes that follow the same conventions; see
  `proxyrank.curation.c4.sentence_spans` and `proxyrank.text.word_tokens`.
* The peer checked against is datatrove 0.10.1 (``C4QualityFilter``,
  ``GopherQualityFilter``, ``GopherRepetitionFilter``).  Its rule logic is followed
  exactly; its tokens are not: datatrove used nltk (Treebank words, punkt sentences) up
  to 0.3 and a blank spaCy English pipeline since 0.4.  With `word_tokens` and
  `sentence_spans` injected as its tokenizer, datatrove reaches the same verdict as
  these functions (tests/test_filters.py checks that on crawl pages).
* Where datatrove 0.10.1 departs from the papers, the paper wins, each departure named
  where it is made: Gopher's alphabetic-words rule counts whitespace-separated words
  (`GopherQuality.alpha_words_of`), its stop-word rule counts distinct words (as
  datatrove since 0.5), and an empty or whitespace-only document is dropped by every
  family under its own ``*_empty`` rule (datatrove drops only ``""``, and only in the
  repetition filter, as ``"empty"``; a blank page has no text to judge).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from proxyrank.curation.c4 import C4_RULES
from proxyrank.curation.gopher_quality import GOPHER_QUALITY_RULES
from proxyrank.curation.gopher_repetition import GOPHER_REPETITION_RULES

__all__ = ["MAX_CLEAN_SHARE", "RULES_OF", "removals_by_damage"]

RULES_OF = {"c4": C4_RULES, "gopher_quality": GOPHER_QUALITY_RULES,
            "gopher_repetition": GOPHER_REPETITION_RULES}
"""The page-level rules of each family, in checking order."""

MAX_CLEAN_SHARE = 0.05
"""A rule that removes more than this share of the clean pages is flagged: a published
heuristic meant for junk that takes this much good text is suspect (in its definition,
or in how it reads this corpus) before any recipe built on it is trusted."""


def removals_by_damage(verdicts: Mapping[str, Sequence[str | None]],
                       damage: Mapping[str, np.ndarray]) -> dict:
    """Per rule, how many pages of each kind of damage it removed: its precision measured
    against the crawl's own truth rather than guessed from examples.

    ``verdicts`` maps a family of `RULES_OF` to the rule that removed each page (None:
    kept); ``damage`` maps a damage kind to a boolean mask over the same pages and must
    hold ``"clean"`` (pages with no recorded damage).  Kinds may overlap (a truncated
    page with boilerplate counts under both).  Returns ``pages`` (pages of each kind),
    ``rules`` (every rule, zeros included), ``families`` (pages removed by any rule of
    the family), ``max_clean_share`` and ``flagged``: the rules that removed more than
    `MAX_CLEAN_SHARE` of the clean pages, in checking order.
    """
    unknown = sorted(set(verdicts) - set(RULES_OF))
    if unknown:
        raise ValueError(f"verdicts: unknown rule families {unknown}; known: {', '.join(RULES_OF)}")
    if "clean" not in damage:
        raise ValueError(f"damage: needs a 'clean' mask (pages with no recorded damage); "
                         f"got {', '.join(damage) or 'nothing'}")
    masks = {k: np.asarray(m, dtype=bool) for k, m in damage.items()}
    sizes = {k: m.size for k, m in masks.items()} | {f: len(v) for f, v in verdicts.items()}
    if len(set(sizes.values())) > 1:
        raise ValueError(f"verdicts and damage masks must cover the same pages; lengths {sizes}")

    def count(hit: np.ndarray) -> dict[str, int]:
        return {k: int((hit & m).sum()) for k, m in masks.items()}

    rules, families = {}, {}
    for family, fails in verdicts.items():
        fails = np.asarray(fails, dtype=object)
        for rule in RULES_OF[family]:
            rules[rule] = count(fails == rule)
        families[family] = count(fails != None)  # noqa: E711 (elementwise)
    n_clean = int(masks["clean"].sum())
    flagged = [r for r, c in rules.items() if n_clean and c["clean"] / n_clean > MAX_CLEAN_SHARE]
    return {"pages": {k: int(m.sum()) for k, m in masks.items()}, "rules": rules,
            "families": families, "max_clean_share": MAX_CLEAN_SHARE, "flagged": flagged}
