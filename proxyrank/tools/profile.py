"""`proxyrank profile`: a profile written out as the params file DVC reads.

A profile (profiles/*.yaml) holds only what differs from its base, params.yaml: dotted keys that
replace one value each, or a section's key that replaces the whole section (config.read_params).
`dvc repro` reads params.yaml, so a profile is applied by writing the file it makes. The base's
text is kept and only the overridden entries are replaced, by the profile's own lines (their
comments travel with them), so `git diff params.yaml` and `dvc params diff` both show just the
change. The written file is read back and must equal the profile's mapping exactly, or nothing
is written.
"""
from __future__ import annotations

import re
import subprocess
import tempfile
from pathlib import Path

import yaml

from proxyrank.config import parse_params, profile_base, read_params
from proxyrank.errors import CommandError, ParamsError
from proxyrank.files import load_yaml, write_text

_ENTRY = re.compile(r"^( *)([^\s#:][^:#]*?):(?:\s|$)")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _significant(line: str) -> bool:
    return bool(line.strip()) and not line.lstrip().startswith("#")


def _block_end(lines: list[str], start: int) -> int:
    """One past the last line of the entry at `start`: every following line indented deeper (and
    the blank or comment lines between them)."""
    end = start + 1
    for i in range(start + 1, len(lines)):
        if _significant(lines[i]):
            if _indent(lines[i]) <= _indent(lines[start]):
                break
            end = i + 1
    return end


def _find(lines: list[str], parts: list[str]) -> tuple[int, int] | None:
    """The line range of a dotted key's entry in block-style YAML text, or None."""
    lo, hi, indent = 0, len(lines), 0
    for depth, part in enumerate(parts):
        hit = next((i for i in range(lo, hi) if _significant(lines[i]) and _indent(lines[i]) == indent
                    and (m := _ENTRY.match(lines[i])) and m.group(2).strip("'\"") == part), None)
        if hit is None:
            return None
        lo, hi = hit, _block_end(lines, hit)
        if depth < len(parts) - 1:
            child = next((i for i in range(lo + 1, hi) if _significant(lines[i])), None)
            if child is None:  # a flow mapping on the key's line: no entries to find by text
                return None
            lo, indent = child, _indent(lines[child])
    return lo, hi


def _entries(profile_lines: list[str]) -> dict[str, list[str]]:
    """The profile's override entries as text, by dotted key (the key line and its deeper lines)."""
    start = next(i for i, line in enumerate(profile_lines) if line.startswith("overrides:"))
    out, i = {}, start + 1
    while i < len(profile_lines):
        line = profile_lines[i]
        if _significant(line) and (m := _ENTRY.match(line)) and _indent(line) > 0:
            end = _block_end(profile_lines, i)
            out[m.group(2).strip("'\"")] = profile_lines[i:end]
            i = end
        else:
            i += 1
    return out


def _shift(lines: list[str], by: int) -> list[str]:
    return [(" " * max(0, _indent(line) + by) + line.lstrip(" ")) if line.strip() else line for line in lines]


def render(profile: Path) -> str:
    """The params file a profile makes, as text: its base with the overridden entries replaced."""
    data = load_yaml(profile)
    if not isinstance(data, dict) or "overrides" not in data:
        raise ParamsError(f"{profile}: not a profile (no `overrides`); it is a params file already")
    want = read_params(profile)
    parse_params(want)  # every key checked before anything is written
    lines = profile_base(profile, data).read_text().splitlines()
    for key, entry in _entries(profile.read_text().splitlines()).items():
        parts, width = key.split("."), _indent(entry[0])
        m = _ENTRY.match(entry[0])  # the dotted key becomes its last part: `train.seq_len:` -> `seq_len:`
        first = m.group(1) + parts[-1] + entry[0][m.end(2):]
        found = _find(lines, parts)
        if found is not None:
            lo, hi = found
            lines[lo:hi] = _shift([first, *entry[1:]], _indent(lines[lo]) - width)
        else:  # a new key, or one inside a flow mapping: write its parent's whole value
            parent = _find(lines, parts[:-1]) if len(parts) > 1 else None
            if parent is None:
                raise CommandError(f"{profile}: {key}: cannot place it in {profile_base(profile, data)}'s text; "
                                   f"give the whole section in the profile instead")
            lo, hi = parent
            value = want
            for part in parts[:-1]:
                value = value[part]
            text = yaml.safe_dump({parts[-2]: value}, default_flow_style=True, width=10 ** 6, sort_keys=False)
            lines[lo:hi] = [" " * _indent(lines[lo]) + text.strip()[1:-1]]
    text = "\n".join(lines) + "\n"
    if _strict(text) != want:
        raise CommandError(f"{profile}: the written params would not equal the profile's (a bug); nothing written")
    return text


def _strict(text: str) -> dict:
    """The text read as the project reads every params file (files.load_yaml)."""
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        f.write(text)
    try:
        return load_yaml(Path(f.name))
    finally:
        Path(f.name).unlink()


def write(profile: Path, out: Path) -> None:
    """Write the params a profile makes to `out`; over its own base only if that base is committed
    (two profiles applied in turn would stack)."""
    base = profile_base(profile, load_yaml(profile))
    if out.resolve() == base.resolve():
        dirty = subprocess.run(["git", "diff", "--quiet", "--", str(out)], cwd=out.resolve().parent,
                               capture_output=True).returncode == 1
        if dirty:
            raise ParamsError(f"{out}: has uncommitted changes (another profile applied?); a profile applies to "
                              f"the params it was written against: `git checkout {out}` first, or --out FILE")
    write_text(out, render(profile))
