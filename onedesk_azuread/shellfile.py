"""The settings file as its writer meant it: entries, quoting and the rewrite.

Pure functions over text: no file I/O here. The reference for every
decision is what ``bash`` assigns when it sources the file with
``set -a; . FILE``; ``bashscan`` reads the text as bash does. Only a plain
top-level ``[export ]KEY=value`` line of ours is an entry, interpreted in full
and editable. Any other statement that may set one of our keys is an
Unsupported record: the key then has no known value and `rewrite` refuses to
touch the file. Other lines are never rewritten. (``bashcheck`` asks real
bash; this module stays pure.)
"""

from __future__ import annotations

import re
from collections import namedtuple
from collections.abc import Iterable, Mapping

from .bashscan import Assignment, SyntaxProblem, UnreadableValue, Unsupported, scan
from .errors import ParseError

# Syntax problems found on one of our lines. Their meaning (severity, fix)
# lives in validation; here they are only facts about the text.
CRLF = "crlf"
BOM = "bom"
SPACED = "spaced-assignment"
EXPANSION = "shell-expansion"
TRAILING = "shell-syntax"

# One of our lines whose value cannot be read (the file is not changed).
UNREADABLE_ENTRY = ("{path}:{line}: {key} has {what}; write the value on one line in matching "
                    "quotes, or run: onedesk-azuread set")

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


class Document(namedtuple("Document", "text entries unsupported syntax_error path unfollowed",
                          defaults=((), None, "<text>", None))):
    """A parsed settings text and what it does with the keys asked about."""

    __slots__ = ()
    # text: str
    # entries: tuple[Entry, ...]; plain top-level lines of ours
    # unsupported: tuple[Unsupported, ...]; every other statement that may set our keys
    # syntax_error: SyntaxProblem | None
    # path: str; for messages
    # unfollowed: SyntaxProblem | None; where the scanner gave up on text bash may parse
    #   (nested too deeply, or beyond its grammar): nothing from there on is known

    def entries_for(self, key: str) -> list[Entry]:
        return [e for e in self.entries if e.key == key]

    def unsupported_for(self, key: str) -> list[Unsupported]:
        return [u for u in self.unsupported if u.key == key]

    def last(self, key: str) -> Entry | None:
        found = self.entries_for(key)
        return found[-1] if found else None

    def value(self, key: str) -> str | None:
        """The value the last definition of ``key`` means, or None.

        None as well when another statement may set the key: then only bash
        knows, and this tool never reports a value bash might not use.
        """
        entry = self.last(key)
        if entry is None or self.unsupported_for(key):
            return None
        return entry.value


def _entry(text: str, found: Assignment, path: str) -> Entry:
    """The entry an assignment line makes: the value its writer meant, and its problems."""
    key, line, start, end, value_start, word, bom, before, after = found
    body_end = end - 1 if text.endswith("\n", start, end) else end
    if (word is not None and word.end == body_end and not (word.quoted or word.tildes)
            and not (bom or before or after or text.endswith(("\r", "\\"), 0, body_end))):
        # Most lines: one word, nothing quoted or expanded after the `=`, nothing after it.
        return Entry(key, line, start, end, word.value[value_start - word.start:], ())
    problems = []
    if bom:
        problems.append(BOM)
    if text.endswith("\r", start, body_end):
        problems.append(CRLF)
    if before or after:
        rest = text[value_start:body_end].strip(" \t\r")
        # `KEY= # note` is a plain empty assignment, not a spaced one.
        if before or (rest and not rest.startswith("#")):
            problems.append(SPACED)
    if word is None:
        value, stop, expands = "", value_start, False
    else:
        value, stop = word.value[value_start - word.start:], word.end
        if stop == len(text) and (len(word.text) - len(word.text.rstrip("\\"))) % 2:
            # The file ends in an escape of nothing: bash keeps the backslash, but a line
            # cut short is the likelier meaning.
            raise ParseError(UNREADABLE_ENTRY.format(path=path, line=line, key=key,
                                                     what="a backslash at the end"))
        # A tilde is expanded where it starts the value or follows a colon.
        expands = word.expands or any(at == value_start or text[at - 1] == ":"
                                      for at in word.tildes if at >= value_start)
    if text.startswith("(", value_start):
        stop = value_start  # an array: words in parentheses after the `=`, no value of ours
    if CRLF in problems and value.endswith("\r"):
        value = value[:-1]  # bash keeps the CR in the value; the writer did not mean it
    tail = text[stop:body_end].strip(" \t\r")
    trailing = bool(tail) and not tail.startswith("#")
    if expands:
        problems.append(EXPANSION)
    if trailing:
        problems.append(TRAILING)
    known = not (expands or trailing)
    return Entry(key, line, start, end, value if known else None, tuple(problems))


def parse(text: str, keys: Iterable[str], path: str = "<text>") -> Document:
    """Find what ``text`` does with any of ``keys``, the way bash reads it.

    Plain top-level lines become entries; every other statement that could
    change one of the keys becomes an Unsupported record. Raises ParseError
    (naming ``path`` and the line) when one of our own lines cannot be read
    reliably.
    """
    try:
        found = scan(text, keys)
    except UnreadableValue as exc:
        raise ParseError(UNREADABLE_ENTRY.format(path=path, line=exc.line, key=exc.key,
                                                 what=exc.what)) from None
    return Document(text, tuple(_entry(text, a, path) for a in found.assignments),
                    found.unsupported, found.syntax_error, path, found.unfollowed)


def with_bash_error(doc: Document, line: int, message: str) -> Document:
    """``doc`` as bash sources it when ``bash -n`` stops at ``line``: nothing from there on runs."""
    cut = [e for e in doc.entries if e.line >= line]
    reason = f"at or after line {line}, where bash stops reading the file"
    moved = [Unsupported(e.key, e.line, reason) for e in cut]
    unsupported = {(u.line, u.key): u for u in list(doc.unsupported) + moved}
    return doc._replace(entries=tuple(e for e in doc.entries if e.line < line),
                        unsupported=tuple(unsupported[k] for k in sorted(unsupported)),
                        syntax_error=SyntaxProblem(line, message))


def quote(value: str) -> str:
    """Quote ``value`` so that bash assigns exactly it: bare when safe, else POSIX single quotes."""
    if _BARE.fullmatch(value) and ":~" not in value:
        return value
    return "'" + value.replace("'", "'\\''") + "'"


def assignment(key: str, value: str) -> str:
    """The canonical line for one entry."""
    return f"{key}={quote(value)}\n"


UNFOLLOWED_FIX = "simplify that statement by hand (bash -n FILE checks it)"
UNFOLLOWED_REFUSED = ("{path}:{line}: not changed: this tool cannot follow the file here "
                      "({message}); " + UNFOLLOWED_FIX + ", then run the command again")
UNSUPPORTED_FIX = ("edit that line by hand into a plain top-level {key}=value line "
                   "(then run the command again)")


def refuse_unsafe(doc: Document) -> None:
    """Raise ParseError when a write could not keep the file's meaning for our keys.

    Any unsupported statement for any of our keys refuses every write, not
    only a write of that key: the administrator fixes the line by hand first.
    """
    if doc.unfollowed:  # first: the records after it are its consequence
        raise ParseError(UNFOLLOWED_REFUSED.format(path=doc.path, line=doc.unfollowed.line,
                                                   message=doc.unfollowed.message))
    if doc.unsupported:
        first = doc.unsupported[0]
        raise ParseError(f"{doc.path}:{first.line}: not changed: {first.key} is set "
                         f"{first.reason}; " + UNSUPPORTED_FIX.format(key=first.key))
    if doc.syntax_error:
        raise ParseError(f"{doc.path}:{doc.syntax_error.line}: not changed: the file cannot be "
                         f"parsed here ({doc.syntax_error.message}); fix it by hand first "
                         f"(check with: bash -n {doc.path})")


def rewrite(doc: Document, values: Mapping[str, str | None]) -> str:
    """Return the text with each key in ``values`` set (or removed, for None).

    Every definition of a key collapses into one canonical line where the
    last definition stood; a new key is appended. Lines of other keys, and
    of keys not in ``values``, are kept byte for byte.
    """
    refuse_unsafe(doc)
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
