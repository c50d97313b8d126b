"""A web-like pool: real corpus documents with the damage real crawls have, made by a seeded process.

The corpus-choice, quality and dedup recipes need what Common Crawl gives a data team: pages
wrapped in site navigation, spam, truncated and scrambled text, and duplicates with a heavy-tailed
count. Every page here starts as real text from the training pool (never validation text); the
damage is drawn from `crawl:` in params.yaml and each page records what was done to it, so the
manifest can say how many pages of each kind a filter removed.

1. pages: pool documents of `crawl.domains` cut at paragraph boundaries into pages whose lengths
   follow a log-normal around `page_chars` (web pages are heavy-tailed in length too).
2. spam: real spam mails (SpamAssassin's spam folders) become pages as they are.
3. templated: pages from one frame with slots filled by real words (shop and listing pages):
   near-duplicates of each other, the kind MinHash finds and exact hashing misses.
4. boilerplate: a page of one of `crawl.sites` sites gets that site's header, navigation, share
   buttons, cookie notice and footer lines (what C4's line rules strip).
5. truncated (a prefix cut mid-word) and shuffled (word order destroyed): what perplexity and
   model-based filters catch and rules mostly miss.
6. exact copies and near-copies (word edits at `edit_rate`, a different site's boilerplate) of
   some pages, each with a Zipf-distributed number of copies capped at `max_copies`.
The pages are then put in one seeded random order, which is the crawl order dedup keeps first.

With `synthetic: false` the crawl is instead the pool's documents of `crawl.domains` as they are
(real web text, e.g. hub samples of DCLM-baseline or RedPajama-V2 with their own boilerplate and
duplicates), in one seeded order: no page cutting, no damage, no copies added, so the curation,
quality-bucket and dedup recipes measure what they do to real crawled text. `pages` and the
damage shares apply to the synthetic crawl only.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from proxyrank.errors import DataError
from proxyrank.text import stable_hash32


@dataclass(frozen=True)
class CrawlParams:
    pages: int = 15_000
    domains: list[str] = field(default_factory=lambda: ["wiki", "techdocs", "books", "speeches",
                                                        "email", "web"])
    reference_share: float = 0.25   # pool documents kept out of the crawl as quality-reference text
    page_chars: int = 1500           # median page length (log-normal, sigma 0.7)
    max_page_chars: int = 8000
    spam: float = 0.04
    templated: float = 0.03
    boilerplate: float = 0.5
    truncated: float = 0.06
    shuffled: float = 0.05
    exact_dup: float = 0.1
    near_dup: float = 0.1
    dup_zipf: float = 1.8
    max_copies: int = 40
    edit_rate: float = 0.03
    sites: int = 300
    synthetic: bool = True  # false: the pool's documents of `domains` as they are (real web text)


KINDS = ("page", "spam", "templated")
COPIES = ("", "exact", "near")
SPAM_ID = re.compile(r":spam_assassin:spam-\d/")


def is_reference(ids: list[str], share: float) -> np.ndarray:
    """Pool documents reserved as quality-reference text (CCNet LM, DCLM positives), by a hash of the
    id: the quality models never score a page made from their own training text."""
    cut = int(share * 2**32)
    return np.fromiter((stable_hash32(i) < cut for i in ids), dtype=bool, count=len(ids))


def _pages(text: str, rng: np.random.Generator, p: CrawlParams) -> list[str]:
    """Cut a document at paragraph (else line) boundaries into pages of log-normal length."""
    parts = [x for x in re.split(r"\n\s*\n", text) if x.strip()]
    if len(parts) == 1:
        parts = [x for x in text.split("\n") if x.strip()]
    pages, cur, target = [], [], 0.0
    for part in parts:
        if not cur:
            target = min(p.max_page_chars, p.page_chars * rng.lognormal(0.0, 0.7))
        cur.append(part.strip())
        if sum(map(len, cur)) >= target:
            pages.append("\n\n".join(cur)[: p.max_page_chars])
            cur = []
    if cur:
        pages.append("\n\n".join(cur)[: p.max_page_chars])
    return [x for x in pages if len(x) >= 200]


_NAV = ["Home", "About", "About Us", "Contact", "Blog", "News", "Shop", "Forum", "Archive", "FAQ",
        "Login", "Register", "Search", "Categories", "Help", "Sitemap", "Events", "Gallery"]
_EXTRAS = [
    "Share on Facebook | Tweet | Pin it | Email", "Skip to main content", "Menu", "Subscribe",
    "Leave a comment", "Read more...", "Related posts", "Click here to subscribe to our newsletter",
    "This website uses cookies to improve your experience. By continuing you accept our cookie policy.",
    "Please enable JavaScript to view the comments.", "Back to top", "Print this page", "Tags:",
    "Posted in Uncategorized", "Next post >>", "<< Previous post", "Powered by WordPress",
]


def _site(k: int, words: np.ndarray) -> tuple[list[str], list[str]]:
    """Header and footer lines of site k: fixed per site, so its pages share them verbatim."""
    rng = np.random.default_rng(10_000 + k)
    name = " ".join(w.capitalize() for w in rng.choice(words, size=2))
    nav = " | ".join(rng.choice(_NAV, size=int(rng.integers(4, 8)), replace=False))
    extras = list(rng.choice(_EXTRAS, size=int(rng.integers(2, 6)), replace=False))
    year = int(rng.integers(2005, 2024))
    head = [name, nav] + extras[: len(extras) // 2]
    foot = extras[len(extras) // 2:] + [f"Copyright © {year} {name}. All rights reserved.",
                                        "Privacy Policy | Terms of Use | Contact"]
    return head, foot


_FRAMES = [
    "Buy {a} online at the best price. {A} in stock now, free shipping on orders over ${n}. "
    "Compare {a} prices, read {m} customer reviews of {b} and {c}, and save up to {p}% today.",
    "{A} for sale near you. Find great deals on {a}, {b} and {c}. {m} listings updated daily. "
    "Cheap {a}, used {b}, new {c}. Call now: {n}-{m}-{p}. Best {a} deals, best {b} deals.",
    "Top {p} {a} reviews {year}. We tested {m} {a} models so you don't have to. {A} vs {b}: "
    "which is better? Our {a} buying guide covers {b}, {c} and more. Updated {year}.",
]


def _templated(rng: np.random.Generator, words: np.ndarray) -> str:
    frame = _FRAMES[int(rng.integers(len(_FRAMES)))]
    a, b, c = rng.choice(words, size=3)
    slots = dict(a=a, A=a.capitalize(), b=b, c=c, n=int(rng.integers(10, 999)),
                 m=int(rng.integers(100, 9999)), p=int(rng.integers(5, 90)), year=int(rng.integers(2010, 2024)))
    return "\n\n".join(frame.format(**slots) for _ in range(int(rng.integers(2, 5))))


def _edit(text: str, rate: float, rng: np.random.Generator, words: np.ndarray) -> str:
    """Replace, delete or insert words at `rate`: a syndicated or lightly rewritten copy."""
    tokens = text.split(" ")
    r = rng.random(len(tokens))
    r[rng.integers(len(tokens))] = rate / 2  # at least one word replaced: a near copy, never exact
    new = words[rng.integers(len(words), size=len(tokens))]
    out = []
    for w, u, x in zip(tokens, r, new):
        if u < rate / 3:
            continue
        out.append(str(x) if u < 2 * rate / 3 else w)
        if 2 * rate / 3 <= u < rate:
            out.append(str(x))
    return " ".join(out)


def _shuffle_words(text: str, rng: np.random.Generator) -> str:
    words = text.split()
    rng.shuffle(words)
    lines = [" ".join(words[i:i + 12]) for i in range(0, len(words), 12)]
    return "\n".join(lines)


def _zipf_copies(rng: np.random.Generator, a: float, cap: int) -> int:
    return int(min(rng.zipf(a), cap))


COLUMNS = {"id": pa.string(), "domain": pa.string(), "text": pa.string(), "kind": pa.string(),
           "boilerplate": pa.bool_(), "truncated": pa.bool_(), "shuffled": pa.bool_(), "copy": pa.string(),
           "copy_of": pa.string(), "source_id": pa.string()}


def empty() -> pa.Table:
    return pa.schema(COLUMNS).empty_table()


def _vocabulary(texts: list[str]) -> np.ndarray:
    """Sorted lowercase words (4-10 letters) of about 2000 pool documents: what templated pages,
    site names and near-copy edits are made of."""
    words = np.array(sorted({w for t in texts[:: max(1, len(texts) // 2000)]
                             for w in re.findall(r"[a-z]{4,10}", t)}))
    if not len(words):
        raise DataError("crawl: the pool has no words to build pages from")
    return words


def _draw_pages(pool: pa.Table, texts: list[str], p: CrawlParams, rng: np.random.Generator,
                words: np.ndarray) -> list[dict]:
    """Steps 1-3: pages cut from the non-reference pool documents of `p.domains`, spam mails and
    templated pages, in the numbers `p` asks for (drawn without replacement, in pool order)."""
    ids = pool.column("id").to_pylist()
    domain = np.array(pool.column("domain").to_pylist(), dtype=object)
    base = ~is_reference(ids, p.reference_share)
    spam = np.fromiter((bool(SPAM_ID.search(i)) for i in ids), dtype=bool, count=len(ids))
    candidates = []
    for i in np.flatnonzero(base & np.isin(domain, p.domains) & ~spam):
        candidates.extend((str(domain[i]), page, ids[i]) for page in _pages(texts[i], rng, p))
    spam_pages = [("email", texts[i][: p.max_page_chars], ids[i]) for i in np.flatnonzero(base & spam)]
    n_spam, n_tmpl = int(round(p.spam * p.pages)), int(round(p.templated * p.pages))
    n_page = p.pages - n_spam - n_tmpl
    if len(candidates) < n_page or len(spam_pages) < n_spam:
        raise DataError(f"crawl: asked for {n_page} pages and {n_spam} spam pages but the pool's "
                        f"domains {p.domains} give {len(candidates)} pages and {len(spam_pages)} spam "
                        f"mails; lower crawl.pages or crawl.spam, or add domains")
    rows = [dict(domain=d, text=t, kind="page", source_id=s)
            for d, t, s in (candidates[j] for j in np.sort(rng.choice(len(candidates), n_page, replace=False)))]
    rows += [dict(domain=d, text=t, kind="spam", source_id=s)
             for d, t, s in (spam_pages[j] for j in np.sort(rng.choice(len(spam_pages), n_spam, replace=False)))]
    rows += [dict(domain="web", text=_templated(rng, words), kind="templated", source_id="") for _ in range(n_tmpl)]
    return rows


def _damage(row: dict, rng: np.random.Generator, p: CrawlParams, sites: list) -> None:
    """Steps 4-5 on one row, in place: a page is truncated or else shuffled; a non-spam page may
    get a site's boilerplate."""
    row.update(boilerplate=False, truncated=False, shuffled=False, copy="", copy_of="")
    if row["kind"] == "page":
        if rng.random() < p.truncated:
            row["text"] = row["text"][: max(40, int(len(row["text"]) * rng.uniform(0.05, 0.3)))]
            row["truncated"] = True
        elif rng.random() < p.shuffled:
            row["text"] = _shuffle_words(row["text"], rng)
            row["shuffled"] = True
    if row["kind"] != "spam" and rng.random() < p.boilerplate:
        row["site"] = int(rng.integers(p.sites))
        head, foot = sites[row["site"]]
        row["text"] = "\n".join(head + [row["text"]] + foot)
        row["boilerplate"] = True


def _copies(rows: list[dict], rng: np.random.Generator, p: CrawlParams, words: np.ndarray,
            sites: list) -> list[dict]:
    """Step 6: ids for the rows (crawl:0, ...) and a Zipf number of exact or near copies of some,
    with ids after them."""
    copies = []
    for k, row in enumerate(rows):
        row["id"] = f"crawl:{k}"
        u = rng.random()
        if u < p.exact_dup:
            copies += [dict(row, copy="exact", copy_of=row["id"])
                       for _ in range(_zipf_copies(rng, p.dup_zipf, p.max_copies))]
        elif u < p.exact_dup + p.near_dup:
            for _ in range(_zipf_copies(rng, p.dup_zipf, p.max_copies)):
                text = _edit(row["text"], p.edit_rate, rng, words)
                if rng.random() < p.boilerplate:
                    head, foot = sites[int(rng.integers(p.sites))]
                    text = "\n".join(head + [text] + foot)
                copies.append(dict(row, text=text, copy="near", copy_of=row["id"],
                                   boilerplate=row["boilerplate"] or text != row["text"]))
    for k, row in enumerate(copies):
        row["id"] = f"crawl:{len(rows) + k}"
    return copies


def _manifest(rows: list[dict], copies: list[dict]) -> dict:
    """Counts per kind of page and damage, as reports/crawl.json records them."""
    return {
        "pages": len(rows), "chars": int(sum(len(r["text"]) for r in rows)),
        "kinds": {k: sum(r["kind"] == k for r in rows) for k in KINDS},
        "boilerplate": sum(r["boilerplate"] for r in rows),
        "truncated": sum(r["truncated"] for r in rows),
        "shuffled": sum(r["shuffled"] for r in rows),
        "exact_copies": sum(r["copy"] == "exact" for r in rows),
        "near_copies": sum(r["copy"] == "near" for r in rows),
        "max_copies_of_one_page": int(max([0, *np.unique([r["copy_of"] for r in copies], return_counts=True)[1]])),
        "domains": {str(d): sum(r["domain"] == d for r in rows) for d in sorted({r["domain"] for r in rows})},
    }


def build(pool: pa.Table, p: CrawlParams, seed: int) -> tuple[pa.Table, dict]:
    """The crawl table (id, domain, text, kind, boilerplate, truncated, shuffled, copy, copy_of)
    and its manifest of counts per kind: the steps of the module docstring, all drawn from one
    seeded generator in this order."""
    if not p.synthetic:
        return _as_is(pool, p, seed)
    texts = pool.column("text").to_pylist()
    rng = np.random.default_rng(seed)
    words = _vocabulary(texts)
    rows = _draw_pages(pool, texts, p, rng, words)
    sites = [_site(k, words) for k in range(p.sites)]
    for row in rows:
        _damage(row, rng, p, sites)
    copies = _copies(rows, rng, p, words, sites)
    rows += copies
    order = rng.permutation(len(rows))
    table = pa.table({c: pa.array([rows[i][c] for i in order], type=t) for c, t in COLUMNS.items()})
    return table, _manifest(rows, copies)


def _as_is(pool: pa.Table, p: CrawlParams, seed: int) -> tuple[pa.Table, dict]:
    """The pool's documents of `p.domains` (minus reference text) as crawl pages, unchanged, in one
    seeded order; columnar throughout, since a real web sample can be millions of documents."""
    import pyarrow.compute as pc

    ids = pool.column("id").to_pylist()
    keep = ~is_reference(ids, p.reference_share) & pc.is_in(pool.column("domain"),
                                                             value_set=pa.array(p.domains)).to_numpy()
    found = set(pool.column("domain").filter(pa.array(keep)).unique().to_pylist())
    missing = [d for d in p.domains if d not in found]
    if missing:
        raise DataError(f"crawl: synthetic is false but the pool has no documents of crawl.domains "
                        f"{', '.join(missing)}; pool domains: {', '.join(sorted(set(pool.column('domain').to_pylist())))}")
    picked = np.flatnonzero(keep)
    picked = picked[np.random.default_rng(seed).permutation(len(picked))]
    n = len(picked)
    rows = pool.select(["id", "domain", "text"]).take(pa.array(picked))
    false, blank = pa.array(np.zeros(n, dtype=bool)), pa.array([""] * n, pa.string())
    table = pa.table({"id": pa.array([f"crawl:{k}" for k in range(n)], pa.string()),
                      "domain": rows.column("domain"), "text": rows.column("text"),
                      "kind": pa.array(["page"] * n, pa.string()), "boilerplate": false,
                      "truncated": false, "shuffled": false, "copy": blank, "copy_of": blank,
                      "source_id": rows.column("id")}).cast(pa.schema(COLUMNS))
    domains = rows.column("domain").value_counts()
    manifest = {
        "pages": n, "chars": int(pc.sum(pc.utf8_length(rows.column("text"))).as_py() or 0),
        "kinds": {"page": n, "spam": 0, "templated": 0}, "boilerplate": 0, "truncated": 0,
        "shuffled": 0, "exact_copies": 0, "near_copies": 0, "max_copies_of_one_page": 0,
        "domains": {str(v["values"]): int(v["counts"]) for v in sorted(domains.to_pylist(), key=lambda v: v["values"])},
        "synthetic": False,
    }
    return table, manifest
