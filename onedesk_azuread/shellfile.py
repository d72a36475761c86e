"""Read and edit a shell-style KEY=VALUE file the way bash sees it.

Pure functions over text: no file I/O here. The reference for every
decision is what ``bash`` assigns when it sources the file with
``set -a; . FILE``. Only the lines that assign our keys are interpreted in
full; every other line is scanned just enough to know where statements start
(a quote may carry a value over several lines), and is never rewritten.
"""

from __future__ import annotations

import re
from collections import namedtuple
from collections.abc import Iterable, Mapping

from .errors import ParseError

# Syntax problems found on one of our lines. Their meaning (severity, fix)
# lives in validation; here they are only facts about the text.
CRLF = "crlf"
BOM = "bom"
SPACED = "spaced-assignment"
EXPANSION = "shell-expansion"
TRAILING = "shell-syntax"

_ASSIGNMENT = re.compile(
    r"(?P<bom>\ufeff?)[ \t]*(?:export[ \t]+)?(?P<key>[A-Za-z_][A-Za-z0-9_]*)"
    r"(?P<before>[ \t]*)=(?P<after>[ \t]*)"
)
# Characters that end an unquoted word in bash.
_METACHARS = " \t;&|<>()"
# What may follow `$` to make it an expansion rather than a literal dollar.
_EXPANDS_AFTER_DOLLAR = re.compile(r"[A-Za-z0-9_{(@*#?$!'\"-]")
# A value bash reads back unchanged without quotes (conservative: no
# expansion, no word splitting, no tilde at the start or after a colon).
_BARE = re.compile(r"[A-Za-z0-9_.,+/=@%:-][A-Za-z0-9_.,+/=@%:~-]*")


class Entry(namedtuple("Entry", "key line start end value problems")):
    """One line that assigns one of our keys."""

    __slots__ = ()
    # key: str
    # line: int; 1-based physical line number
    # start: int; offset of the line's first character in the text
    # end: int; offset just past the line's end of line
    # value: str | None; what the writer meant; None when it cannot be known
    # problems: tuple[str, ...]; syntax problem codes, see above


class Document(namedtuple("Document", "text entries")):
    """A parsed settings text and the entries for the keys asked about."""

    __slots__ = ()
    # text: str
    # entries: tuple[Entry, ...]

    def entries_for(self, key: str) -> list[Entry]:
        return [e for e in self.entries if e.key == key]

    def last(self, key: str) -> Entry | None:
        found = self.entries_for(key)
        return found[-1] if found else None

    def value(self, key: str) -> str | None:
        """The value the last definition of ``key`` means, or None."""
        entry = self.last(key)
        return entry.value if entry else None


def _logical_lines(text: str) -> Iterable[tuple[int, int, int, bool]]:
    """Yield (start, end, line number, unterminated) for each shell statement line.

    A statement normally ends at a newline, but an open quote or a trailing
    backslash carries it onto the next physical line.
    """
    n = len(text)
    i = 0
    lineno = 1
    while i < n:
        start, start_line = i, lineno
        quote = None
        word_start = True
        while i < n:
            c = text[i]
            if c == "\n":
                lineno += 1
                if quote is None:
                    i += 1
                    break
            elif quote == "'":
                if c == "'":
                    quote = None
            elif quote == '"':
                if c == "\\":
                    i += 1
                    if i < n and text[i] == "\n":
                        lineno += 1
                elif c == '"':
                    quote = None
            elif c == "\\":
                i += 1
                if i < n and text[i] == "\n":
                    lineno += 1
            elif c == "#" and word_start:
                end = text.find("\n", i)
                i = n if end < 0 else end
                continue
            elif c in "'\"":
                quote = c
            word_start = c in " \t;&|()\ufeff"
            i += 1
        yield start, i, start_line, quote is not None


def _read_word(s: str, i: int) -> tuple[str, int, bool]:
    """Read one bash word from ``s[i:]`` as an assignment value.

    Returns (value, index after the word, uses expansion). Raises ValueError
    when a quote is not closed on this line.
    """
    out: list[str] = []
    expands = False
    first = i
    while i < len(s):
        c = s[i]
        if c in _METACHARS:
            break
        if c == "\\":
            if i + 1 >= len(s):
                raise ValueError("backslash")
            out.append(s[i + 1])
            i += 2
        elif c == "'":
            close = s.find("'", i + 1)
            if close < 0:
                raise ValueError("quote")
            out.append(s[i + 1:close])
            i = close + 1
        elif c == '"':
            i += 1
            while True:
                if i >= len(s):
                    raise ValueError("quote")
                c = s[i]
                if c == '"':
                    i += 1
                    break
                if c == "\\" and i + 1 < len(s) and s[i + 1] in '$`"\\':
                    out.append(s[i + 1])
                    i += 2
                    continue
                if c == "`" or (c == "$" and _EXPANDS_AFTER_DOLLAR.match(s, i + 1)
                                and s[i + 1] not in "'\""):
                    expands = True
                out.append(c)
                i += 1
        else:
            if c == "`" or (c == "$" and _EXPANDS_AFTER_DOLLAR.match(s, i + 1)):
                expands = True
            elif c == "~" and (i == first or s[i - 1] == ":"):
                expands = True  # tilde expansion in an assignment
            out.append(c)
            i += 1
    return "".join(out), i, expands


def _parse_entry(text: str, start: int, end: int, line: int, key: str,
                 match: re.Match[str], path: str) -> Entry:
    raw = text[start:end]
    body = raw[:-1] if raw.endswith("\n") else raw
    problems = []
    if match.group("bom"):
        problems.append(BOM)
    if body.endswith("\r"):
        problems.append(CRLF)
    if match.group("before") or match.group("after"):
        rest = body[match.end():].strip(" \t\r")
        # `KEY= # note` is a plain empty assignment, not a spaced one.
        if match.group("before") or (rest and not rest.startswith("#")):
            problems.append(SPACED)
    rest = body[match.end():].strip(" \t\r")
    try:
        if match.group("after") and (not rest or rest.startswith("#")):
            value, stop, expands = "", match.end(), False  # `KEY= # note`: empty, then a comment
        else:
            value, stop, expands = _read_word(body, match.end())
    except ValueError as exc:
        what = "an unterminated quote" if str(exc) == "quote" else "a backslash at the end"
        raise ParseError(
            f"{path}:{line}: {key} has {what}; write the value on one line "
            f"in matching quotes, or run: onedesk-azuread set"
        ) from None
    if CRLF in problems and value.endswith("\r"):
        value = value[:-1]  # bash keeps the CR in the value; the writer did not mean it
    tail = body[stop:].strip(" \t\r")
    if expands:
        problems.append(EXPANSION)
    if tail and not tail.startswith("#"):
        problems.append(TRAILING)
    known = not (expands or (tail and not tail.startswith("#")))
    return Entry(key, line, start, end, value if known else None, tuple(problems))


def parse(text: str, keys: Iterable[str], path: str = "<text>") -> Document:
    """Find the lines of ``text`` that assign any of ``keys``.

    Raises ParseError (naming ``path`` and the line) when one of those lines
    cannot be read reliably.
    """
    wanted = frozenset(keys)
    entries = []
    for start, end, line, unterminated in _logical_lines(text):
        match = _ASSIGNMENT.match(text[start:end])
        if not match or match.group("key") not in wanted:
            continue
        if match.group("bom") and start != 0:
            continue  # a BOM only means something at the very start
        key = match.group("key")
        if unterminated or text.count("\n", start, end - 1) > 0:
            what = ("an unterminated quote" if unterminated
                    else "a value continued onto the next line")
            raise ParseError(
                f"{path}:{line}: {key} has {what}; write the value on one line "
                f"in matching quotes, or run: onedesk-azuread set"
            )
        entries.append(_parse_entry(text, start, end, line, key, match, path))
    return Document(text, tuple(entries))


def quote(value: str) -> str:
    """Quote ``value`` so that bash assigns exactly it: bare when safe, else POSIX single quotes."""
    if _BARE.fullmatch(value) and ":~" not in value:
        return value
    return "'" + value.replace("'", "'\\''") + "'"


def assignment(key: str, value: str) -> str:
    """The canonical line for one entry."""
    return f"{key}={quote(value)}\n"


def rewrite(doc: Document, values: Mapping[str, str | None]) -> str:
    """Return the text with each key in ``values`` set (or removed, for None).

    Every definition of a key collapses into one canonical line where the
    last definition stood; a new key is appended. Lines of other keys, and
    of keys not in ``values``, are kept byte for byte.
    """
    edits: dict[int, tuple[int, str]] = {}  # start -> (end, replacement)
    appended = []
    for key, value in values.items():
        found = doc.entries_for(key)
        for entry in found[:-1]:
            edits[entry.start] = (entry.end, "")
        if found:
            last = found[-1]
            edits[last.start] = (last.end, "" if value is None else assignment(key, value))
        elif value is not None:
            appended.append(assignment(key, value))
    parts = []
    pos = 0
    for start in sorted(edits):
        end, replacement = edits[start]
        parts.append(doc.text[pos:start])
        parts.append(replacement)
        pos = end
    parts.append(doc.text[pos:])
    result = "".join(parts)
    if appended:
        if result and not result.endswith("\n"):
            result += "\n"
        result += "".join(appended)
    return result
