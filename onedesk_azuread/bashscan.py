"""Find what a bash text does with some variable names, the way bash reads it.

Pure functions over text: no file I/O here. A scanner that follows bash's grammar (quotes of
every kind, substitutions, here-documents, operators, compound commands) finds every
statement, without evaluating anything. Each word it reads carries bash's value for it (quotes
removed, escapes resolved), so the settings-file model (``shellfile``) takes an entry's value
from here. For the names asked about, `scan` tells apart a plain top-level ``[export ]NAME=value``
line (an Assignment) from every other statement that may set one (an Unsupported record).
Where the text has a syntax error the scan stops, as bash does when it sources the file;
where it nests beyond this scanner's reach, the scan gives up and says where.
"""

from __future__ import annotations

import bisect
import re
from collections import namedtuple
from collections.abc import Iterable

# Why a mention that only READS our key is harmless: `OTHER="$AZUREAD_CIS"`, `[ -n
# "${AZUREAD_CIS:-}" ]`, `echo "$AZUREAD_CIS"` never change the value bash ends up with, and
# the rewrite never touches those lines. Everything that could change it (an assignment, a
# builtin that takes variable names, `${KEY:=...}`, arithmetic) is recorded as unsupported.

# A line that assigns one of our keys, as its writer meant it: a UTF-8 byte order mark glued
# to the key and spaces around `=` are tolerated here (the model reports them as problems).
_ASSIGNMENT = re.compile(
    r"(?P<bom>\ufeff?)[ \t]*(?:export[ \t]+)?(?P<key>[A-Za-z_][A-Za-z0-9_]*)"
    r"(?P<before>[ \t]*)=(?P<after>[ \t]*)"
)
_OPERATORS = sorted([";;&", ";;", ";&", ";", "&&", "&>>", "&>", "&", "||", "|&", "|", "<<<",
                     "<<-", "<<", "<&", "<>", "<", ">>", ">&", ">|", ">", "(", ")"],
                    key=len, reverse=True)
_REDIRECTIONS = frozenset(["&>>", "&>", "<<<", "<<-", "<<", "<&", "<>", "<", ">>", ">&", ">|",
                           ">"])
_WORD_END = " \t\n;&|<>()"
# Characters with no special meaning inside a word (note: `(` may start an array value).
_PLAIN_RUN = re.compile(r"[^ \t\n;&|<>()\\'\"`$]+")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ASSIGN_WORD = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(\[[^\]]*\])?(\+?)=")
_PARAM = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|[0-9]|[-@*#?$!]")
_OPENERS = frozenset(["if", "while", "until", "for", "select", "case", "{", "[[", "function",
                      "!", "time"])
_CLOSERS = frozenset(["then", "elif", "else", "fi", "do", "done", "esac", "}", "in"])
_LABELS = {"if": "inside an if block", "while": "inside a while loop",
           "until": "inside an until loop", "for": "inside a for loop",
           "select": "inside a select loop", "case": "inside a case block",
           "{": "inside { }", "(": "inside ( )", "$(": "in a command substitution"}
# Builtins that assign, remove or evaluate variables named in their arguments.
_NAME_TAKERS = frozenset(["declare", "typeset", "readonly", "local", "unset", "read", "eval",
                          "alias", "let", "mapfile", "readarray", "getopts", "source", ".",
                          "command", "builtin", "trap", "export", "printf"])
_STOPPERS = frozenset(["return", "exit", "exec", "logout"])


# How deeply $( ), ${ }, double quotes, arrays and [[ ( ) ]] may nest in one
# statement. Each level is a few calls of the scanner's own; Python stops at 1000 frames,
# and dnf's plugin hook or a test runner already uses some. bash accepts hundreds.
MAX_NESTING = 64
TOO_DEEP = (f"more than {MAX_NESTING} levels of $( ), ${{ }}, quotes, arrays or "
            f"parentheses nested")
CANNOT_FOLLOW = "a statement this tool's scanner cannot follow"


class _Unfollowed(Exception):
    """Text bash may parse but this scanner does not follow (offset, what)."""

    def __init__(self, offset: int, message: str):
        super().__init__(message)
        self.offset = offset
        self.message = message


class _Syntax(Exception):
    """bash would stop here: a syntax error (offset, what, the open word if any)."""

    def __init__(self, offset: int, message: str, word_start: int | None = None):
        super().__init__(message)
        self.offset = offset
        self.message = message
        self.word_start = word_start


class Word(namedtuple("Word", "start end text value quoted expands tildes")):
    """One shell word as bash reads it."""

    __slots__ = ()
    # start, end: int; offsets in the text
    # text: str; as written
    # value: str; bash's value when nothing expands: quotes removed, escapes resolved; each
    #   expansion is a NUL (the text inside $'...' and $"..." is kept, for the names in it)
    # quoted: bool; any quoting or expansion in the word
    # expands: bool; a $ or ` expansion (or $'...', $"...") anywhere in the word
    # tildes: tuple[int, ...]; offsets of each unquoted `~` that starts the word or follows
    #   `=` or `:`, where bash may expand one (which, depends on the word's place)


class Assignment(namedtuple("Assignment", "key line start end value_start word bom before after")):
    """A plain top-level line, at the start of a line, that assigns one of the names."""

    __slots__ = ()
    # key: str
    # line: int; 1-based
    # start, end: int; the line's offsets, end just past its end of line
    # value_start: int; offset just after `=` and any blanks after it
    # word: Word | None; the word holding the value (None: an empty value)
    # bom: bool; a byte order mark starts the line
    # before, after: bool; blanks before, after the `=`


class Unsupported(namedtuple("Unsupported", "key line reason")):
    """A statement that may change one of the names but is not a plain top-level line."""

    __slots__ = ()
    # key: str
    # line: int
    # reason: str; short, e.g. "inside an if block", "after ';'", "with declare"


class SyntaxProblem(namedtuple("SyntaxProblem", "line message")):
    """Where bash (or, without bash, this scanner) stops parsing the file."""

    __slots__ = ()
    # line: int
    # message: str; never holds text of the file beyond a token


class Scan(namedtuple("Scan", "assignments unsupported syntax_error unfollowed")):
    """What a text does with the names asked about."""

    __slots__ = ()
    # assignments: tuple[Assignment, ...]
    # unsupported: tuple[Unsupported, ...]; sorted by line, one per line and name
    # syntax_error: SyntaxProblem | None
    # unfollowed: SyntaxProblem | None; where the scanner gave up on text bash may parse
    #   (nested too deeply, or beyond its grammar): nothing from there on is known


class UnreadableValue(Exception):
    """An assignment line of ours whose value does not end on its line (line, key, what)."""

    def __init__(self, line: int, key: str, what: str):
        super().__init__(what)
        self.line = line
        self.key = key
        self.what = what


class _Command:
    """A simple command as it is being read."""

    __slots__ = ("start", "words", "redirected", "prev_op", "line_start", "label", "top")

    def __init__(self, start, prev_op, line_start, label, top):
        self.start = start
        self.words: list[Word] = []
        self.redirected = False
        self.prev_op = prev_op
        self.line_start = line_start
        self.label = label
        self.top = top


class _Frame:
    """An open compound command: kind changes as it goes (if -> then -> else)."""

    __slots__ = ("kind", "opener", "label", "ran", "start")

    def __init__(self, kind, label, start):
        self.kind = kind
        self.opener = kind
        self.label = label
        self.ran = False  # a command completed in the current part
        self.start = start


class _Scanner:
    def __init__(self, text: str, keys: frozenset):
        self.text = text
        self.n = len(text)
        self.keys = keys
        self.pos = 0
        self.mention = re.compile(r"(?<![A-Za-z0-9_])(" + "|".join(
            re.escape(k) for k in sorted(keys)) + r")(?![A-Za-z0-9_])") if keys else None
        self.frames: list[_Frame] = []
        self.heredocs: list[tuple[str, bool]] = []
        self.assignments: list[Assignment] = []
        self.records: list[tuple[str, int, str]] = []  # key, offset, reason
        self.stopped_at: int | None = None  # the first return/exit/exec
        self.top_start = 0  # where the top-level command being read began
        self.at_line_start = True
        self.function_next = False
        self.newlines: list[int] | None = None  # offsets of every "\n", made on first use
        self.depth = 0  # how deeply the constructs being read nest (MAX_NESTING)

    # -- helpers --------------------------------------------------------------------------
    def line_of(self, offset: int) -> int:
        # Every entry and record asks: counting from the start each time made a file of
        # many entries quadratic (40,000 duplicates took 25 s); one index makes each a lookup.
        if self.newlines is None:
            self.newlines = newlines = []
            at = self.text.find("\n")
            while at >= 0:
                newlines.append(at)
                at = self.text.find("\n", at + 1)
        return bisect.bisect_left(self.newlines, offset) + 1

    def record(self, key: str, offset: int, reason: str) -> None:
        self.records.append((key, offset, reason))

    def record_mentions(self, chunk: str, offset: int, reason: str, exact: bool = False) -> None:
        """Record each of our keys named in ``chunk`` (at ``offset``, or in it when exact)."""
        if self.mention is None:
            return
        for match in self.mention.finditer(chunk):
            self.record(match.group(1), offset + match.start() if exact else offset, reason)

    def stop(self, exc: _Syntax) -> SyntaxProblem:
        """bash stops at a syntax error: the failing command and all after it never run."""
        text = self.text
        if exc.word_start is not None:
            line_start = text.rfind("\n", 0, exc.word_start) + 1
            match = _ASSIGNMENT.match(text, line_start)
            if (match and match.group("key") in self.keys
                    and re.fullmatch(r"\ufeff?[ \t]*(?:export[ \t]+)?",
                                     text[line_start:exc.word_start])):
                raise UnreadableValue(self.line_of(line_start), match.group("key"),
                                      "an unterminated quote")
        zone = min(self.top_start, exc.offset)
        line = self.line_of(exc.offset)  # at the end of the file: the line after, as bash says
        self.assignments = [a for a in self.assignments if a.start < zone]
        self.records = [r for r in self.records if r[1] < zone]
        self.record_mentions(text[zone:], zone, f"at or after line {self.line_of(zone)}, in a "
                             f"statement that cannot be parsed", exact=True)
        return SyntaxProblem(line, exc.message)

    def deeper(self) -> None:
        """One more level of the constructs that nest (each is read by a call of its own):
        past MAX_NESTING the line is given up on, before Python's own limit is reached."""
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise _Unfollowed(self.pos, TOO_DEEP)

    def give_up(self, offset: int, message: str) -> SyntaxProblem:
        """Stop where the scanner cannot follow text bash may well parse: as at a syntax
        error, nothing from the statement there on is known, every mention of our keys in
        it is recorded, and the line is named (``Document.unfollowed``)."""
        zone = min(self.top_start, offset, self.n)
        self.assignments = [a for a in self.assignments if a.start < zone]
        self.records = [r for r in self.records if r[1] < zone]
        self.record_mentions(self.text[zone:], zone, f"at or after line {self.line_of(zone)}, "
                             f"in a statement this tool cannot follow", exact=True)
        return SyntaxProblem(self.line_of(offset), message)

    def label(self) -> str | None:
        for frame in reversed(self.frames):
            if frame.label:
                return frame.label
        return None

    def push(self, kind: str, start: int) -> _Frame:
        label = _LABELS.get(kind)
        if self.function_next:
            label, self.function_next = "inside a function", False
        frame = _Frame(kind, label, start)
        self.frames.append(frame)
        return frame

    def pop(self) -> None:
        self.frames.pop()
        if self.frames:
            self.frames[-1].ran = True

    # -- tokens ---------------------------------------------------------------------------
    def token(self):
        text, n = self.text, self.n
        while self.pos < n:
            c = text[self.pos]
            if c in " \t":
                self.pos += 1
            elif c == "\\" and text.startswith("\n", self.pos + 1):
                self.pos += 2
            elif c == "#":
                end = text.find("\n", self.pos)
                self.pos = n if end < 0 else end
            else:
                break
        if self.pos >= n:
            return "eof", None, n
        start = self.pos
        c = text[start]
        if c == "\n":
            self.pos += 1
            self.at_line_start = True
            if self.heredocs:
                self.bodies()
            return "nl", None, start
        if c in "<>" and text.startswith("(", start + 1):
            return "word", self.word(), start
        if c in ";&|<>()":
            for op in _OPERATORS:
                if text.startswith(op, start):
                    self.pos += len(op)
                    self.at_line_start = False
                    return "op", op, start
        return "word", self.word(), start

    def word(self) -> Word:
        text, n = self.text, self.n
        start = self.pos
        value: list[str] = []
        quoted = expands = False
        tildes: list[int] = []
        while self.pos < n:
            plain = _PLAIN_RUN.match(text, self.pos)
            if plain:  # the common case, in one step
                run = plain.group()
                at = run.find("~")
                while at >= 0:  # rare where it matters: a secret holds `Q~` in every value
                    if self.pos + at == start or text[self.pos + at - 1] in "=:":
                        tildes.append(self.pos + at)
                    at = run.find("~", at + 1)
                value.append(run)
                self.pos = plain.end()
                continue
            c = text[self.pos]
            if c in "<>" and self.pos == start and text.startswith("(", self.pos + 1):
                self.pos += 2
                self.substitution(start)
                value.append("\0")
                quoted = expands = True
                continue
            if c == "(" and _ASSIGN_WORD.fullmatch(text, start, self.pos):
                self.array(start)
                value.append("\0")
                quoted = True
                continue
            if c in _WORD_END:
                break
            if c == "\\":
                if self.pos + 1 >= n:  # the file's last character: bash keeps it
                    value.append(c)
                    self.pos += 1
                    break
                if text[self.pos + 1] != "\n":  # else a line continuation: nothing
                    value.append(text[self.pos + 1])
                self.pos += 2
            elif c == "'":
                close = text.find("'", self.pos + 1)
                if close < 0:
                    raise _Syntax(n, "a quote (') that is never closed", start)
                value.append(text[self.pos + 1:close])
                quoted = True
                self.pos = close + 1
            elif c == '"':
                expands = self.double_quoted(value, start) or expands
                quoted = True
            elif c == "`":
                self.backticks(start)
                value.append("\0")
                quoted = expands = True
            elif c == "$":
                if self.dollar(value, start):
                    quoted = expands = True
            else:
                value.append(c)
                self.pos += 1
        self.at_line_start = False
        return Word(start, self.pos, text[start:self.pos], "".join(value), quoted, expands,
                    tuple(tildes))

    def dollar(self, value: list[str], word_start: int) -> bool:  # noqa: PLR0911 - one per form
        """An expansion at ``self.pos`` ('$'); returns whether it expands."""
        text, n = self.text, self.n
        nxt = text[self.pos + 1] if self.pos + 1 < n else ""
        if nxt == "'":  # ANSI-C quoting: a backslash escapes the next character, even a quote
            i = self.pos + 2
            while i < n and text[i] != "'":
                i += 2 if text[i] == "\\" else 1
            if i >= n:
                raise _Syntax(n, "a quote ($') that is never closed", word_start)
            value.append(text[self.pos + 2:i])
            self.pos = i + 1
            return True
        if nxt == '"':
            self.pos += 1
            self.double_quoted(value, word_start)
            return True
        if nxt == "(":
            if text.startswith("(", self.pos + 2):
                self.pos += 3
                self.arithmetic(word_start)
            else:
                self.pos += 2
                self.substitution(word_start)
            value.append("\0")
            return True
        if nxt == "[":
            close = text.find("]", self.pos)
            if close < 0:
                raise _Syntax(n, "a $[ that is never closed", word_start)
            self.record_mentions(text[self.pos:close], self.pos, "in arithmetic")
            self.pos = close + 1
            value.append("\0")
            return True
        if nxt == "{":
            self.braces(word_start)
            value.append("\0")
            return True
        match = _PARAM.match(text, self.pos + 1)
        if match:  # $NAME: a reference, which changes nothing
            self.pos = match.end()
            value.append("\0")
            return True
        value.append("$")
        self.pos += 1
        return False

    def double_quoted(self, value: list[str], word_start: int) -> bool:
        """A "..." string at ``self.pos``; returns whether anything in it expands."""
        text, n = self.text, self.n
        self.deeper()
        self.pos += 1
        expands = False
        while True:
            if self.pos >= n:
                raise _Syntax(n, 'a quote (") that is never closed', word_start)
            c = text[self.pos]
            if c == '"':
                self.pos += 1
                self.depth -= 1
                return expands
            if c == "\\":
                escaped = text[self.pos + 1:self.pos + 2]
                if escaped in ('"', "\\", "$", "`"):
                    value.append(escaped)
                elif escaped != "\n":  # a line continuation is nothing; other pairs stay
                    value.append(text[self.pos:self.pos + 2])
                self.pos += 2
            elif c == "`":
                self.backticks(word_start)
                expands = True
            elif c == "$" and not text.startswith(("$'", '$"'), self.pos):
                expands = self.dollar(value, word_start) or expands
            else:
                value.append(c)
                self.pos += 1

    def braces(self, word_start: int) -> None:
        """${...}: an assignment to our key through it is recorded; the rest is skipped."""
        text, n = self.text, self.n
        self.deeper()
        start = self.pos
        i = self.pos + 2
        if i < n and text[i] in "!#":
            i += 1
        match = _NAME.match(text, i)
        if match and match.group() in self.keys:
            op = text[match.end():match.end() + 2]
            if op[:1] in "=?" or op in (":=", ":?"):
                self.record(match.group(), start, "in a ${...:=...} expansion")
        self.pos = match.end() if match else i
        while True:
            if self.pos >= n:
                raise _Syntax(n, "a ${ that is never closed", word_start)
            c = text[self.pos]
            if c == "}":
                self.pos += 1
                self.depth -= 1
                return
            if c == "\\":
                self.pos += 2
            elif c == "'":
                close = text.find("'", self.pos + 1)
                if close < 0:
                    raise _Syntax(n, "a quote (') that is never closed", word_start)
                self.pos = close + 1
            elif c == '"':
                self.double_quoted([], word_start)
            elif c == "`":
                self.backticks(word_start)
            elif c == "$":
                self.dollar([], word_start)
            else:
                self.pos += 1

    def backticks(self, word_start: int) -> None:
        text, n = self.text, self.n
        i = self.pos + 1
        while i < n and text[i] != "`":
            i += 2 if text[i] == "\\" else 1
        if i >= n:
            raise _Syntax(n, "a backtick (`) that is never closed", word_start)
        inner = text[self.pos + 1:i]
        if self.mention is not None:
            for match in self.mention.finditer(inner):
                before = inner[:match.start()]
                if before.endswith("$") or (before.endswith("${") and not re.match(
                        r"(:?[=?])", inner[match.end():])):
                    continue  # a reference
                self.record(match.group(1), self.pos, "in a command substitution")
        self.pos = i + 1

    def arithmetic(self, word_start: int) -> None:
        """After `((` or `$((`: to the matching `))`. Names in arithmetic may be assigned."""
        text, n = self.text, self.n
        start = self.pos
        depth = 0
        while True:
            if self.pos >= n:
                raise _Syntax(n, "a (( that is never closed", word_start)
            c = text[self.pos]
            if c == "(":
                depth += 1
            elif c == ")":
                if depth == 0:
                    if not text.startswith(")", self.pos + 1):
                        raise _Syntax(self.pos, "a (( closed by a single )", word_start)
                    break
                depth -= 1
            elif c in "'\"":
                close = text.find(c, self.pos + 1)
                self.pos = n if close < 0 else close
            self.pos += 1
        self.record_mentions(text[start:self.pos], start, "in arithmetic")
        self.pos += 2

    def substitution(self, word_start: int) -> None:
        """After `$(`, `<(` or `>(`: the commands inside, up to the matching `)`."""
        self.deeper()
        saved = self.at_line_start, self.function_next
        self.function_next = False
        self.push("$(", self.pos)
        self.commands(len(self.frames) - 1)
        self.at_line_start, self.function_next = saved
        self.depth -= 1

    def array(self, word_start: int) -> None:
        """NAME=( ... ): the words of an array value, up to the `)`."""
        self.deeper()
        self.pos += 1
        while True:
            kind, value, at = self.token()
            if kind == "eof":
                raise _Syntax(self.n, "an array ( that is never closed", word_start)
            if kind == "op":
                if value == ")":
                    self.depth -= 1
                    return
                raise _Syntax(at, f"unexpected '{value}' in an array")

    def bodies(self) -> None:
        """The here-document bodies that start after this newline: text, not code."""
        text, n = self.text, self.n
        for delimiter, strip_tabs in self.heredocs:
            while self.pos < n:
                end = text.find("\n", self.pos)
                stop = n if end < 0 else end
                line = text[self.pos:stop]
                self.pos = n if end < 0 else end + 1
                if (line.lstrip("\t") if strip_tabs else line) == delimiter:
                    break
                self.record_mentions(line, stop - len(line), "in a here-document", exact=True)
        self.heredocs = []
        self.at_line_start = True

    # -- the grammar ------------------------------------------------------------------------
    def commands(self, base: int) -> None:
        """Read commands until the frame at ``base`` closes (or, for base 0 at top, EOF)."""
        cmd: _Command | None = None
        last = "sep"  # "sep": a command may start; "conn": one must; "done": one just ended
        prev_op = None
        nested = base > 0 or bool(self.frames)
        while True:
            if cmd is None and self.frames and self.frames[-1].kind == "case":
                if self.case_pattern():
                    last = "done"
                    continue
            line_start = self.at_line_start
            kind, value, at = self.token()
            if kind == "word":
                if cmd is None:
                    reserved = value.text if not value.quoted else None
                    if reserved in _OPENERS or reserved in _CLOSERS:
                        if last == "done" and reserved in _OPENERS:
                            raise _Syntax(at, f"unexpected '{reserved}'")
                        last, prev_op = self.reserved(reserved, at, last, prev_op)
                        continue
                    if last == "done" or self.function_next:
                        raise _Syntax(at, "unexpected word after a command")
                    if not self.frames:
                        self.top_start = at
                    cmd = _Command(at, prev_op, line_start, self.label(), not self.frames)
                    cmd.words.append(value)
                    self.maybe_function(cmd)
                    if cmd.words is None:  # it was a function definition
                        cmd, last, prev_op = None, "sep", None
                else:
                    cmd.words.append(value)
                continue
            if kind == "op" and value in _REDIRECTIONS:
                if cmd is not None and cmd.words and cmd.words[-1].end == at and re.fullmatch(
                        r"[0-9]+|\{[A-Za-z_][A-Za-z0-9_]*\}", cmd.words[-1].text):
                    cmd.words.pop()  # `2>`, `{fd}>`: part of the redirection, not a word
                if cmd is None:
                    if last != "done":
                        cmd = _Command(at, prev_op, line_start, self.label(), not self.frames)
                target = self.token()
                if target[0] != "word":
                    raise _Syntax(target[2], f"nothing after '{value}'")
                if value in ("<<", "<<-"):
                    self.heredocs.append((target[1].value.replace("\0", "$"), value == "<<-"))
                if cmd is not None:
                    cmd.redirected = True
                continue
            if kind == "op" and value == "(":
                if cmd is not None or last == "done":
                    raise _Syntax(at, "unexpected '('")
                if self.text.startswith("(", self.pos):
                    self.pos += 1
                    self.arithmetic(at)
                    if self.frames:
                        self.frames[-1].ran = True
                    last = "done"
                else:
                    self.push("(", at)
                    last, prev_op = "sep", None
                continue
            if cmd is not None:
                self.finish(cmd, value if kind == "op" else kind)
                cmd = None
                if self.frames:
                    self.frames[-1].ran = True
                last = "done"
            if kind == "nl":
                if last != "conn":
                    last, prev_op = "sep", None
                    if not nested and not self.frames:
                        self.top_start = self.pos  # what came before is complete: bash ran it
                continue
            if kind == "eof":
                if last == "conn":
                    raise _Syntax(at, "unexpected end of file after an operator")
                if self.frames:
                    frame = self.frames[-1]
                    raise _Syntax(at, f"the '{frame.opener}' on line "
                                      f"{self.line_of(frame.start)} is never closed")
                return
            # a control operator
            if value in (";", "&"):
                if last != "done":
                    raise _Syntax(at, f"unexpected '{value}'")
                last, prev_op = "sep", value
            elif value in ("&&", "||", "|", "|&"):
                if last != "done":
                    raise _Syntax(at, f"unexpected '{value}'")
                last, prev_op = "conn", value
            elif value in (";;", ";&", ";;&"):
                if not self.frames or self.frames[-1].kind != "casebody" or last == "conn":
                    raise _Syntax(at, f"unexpected '{value}'")
                self.frames[-1].kind = "case"
                last, prev_op = "sep", None
            elif value == ")":
                frame = self.frames[-1] if self.frames else None
                if frame is None or last == "conn" or frame.kind not in ("(", "$(") or (
                        frame.kind == "(" and not frame.ran):
                    raise _Syntax(at, "unexpected ')'")
                self.pop()
                if frame.kind == "$(" and len(self.frames) == base:
                    return
                last = "done"
            else:
                raise _Syntax(at, f"unexpected '{value}'")
            if not nested and not self.frames and value in (";", "&"):
                self.top_start = self.pos

    def maybe_function(self, cmd: _Command) -> None:
        """NAME ( ) compound: a function definition."""
        text = self.text
        i = self.pos
        while i < self.n and text[i] in " \t":
            i += 1
        if not text.startswith("(", i):
            return
        j = i + 1
        while j < self.n and text[j] in " \t":
            j += 1
        if not text.startswith(")", j):
            return
        self.pos = j + 1
        name = cmd.words[0]
        self.record_mentions(name.value, name.start, "as a function name")
        self.function_next = True
        cmd.words = None

    def reserved(self, word: str, at: int, last: str, prev_op):  # noqa: PLR0911 - one per word
        frame = self.frames[-1] if self.frames else None
        kind = frame.kind if frame else None
        if last == "conn" and word in _CLOSERS:
            raise _Syntax(at, f"unexpected '{word}'")
        if word in ("!", "time"):
            return "conn" if last != "conn" else last, prev_op or "!"
        if word == "in":
            raise _Syntax(at, "unexpected 'in'")
        if not self.frames and not self.function_next:
            self.top_start = at
        if word in ("if", "while", "until", "{"):
            self.push(word, at)
        elif word in ("for", "select"):
            self.push(word, at)
            self.loop_header(at)
        elif word == "case":
            self.push("case", at)
            self.case_header(at)
        elif word == "[[":
            self.conditional(at)
            if frame:
                frame.ran = True
            return "done", prev_op
        elif word == "function":
            name = self.token()
            if name[0] != "word":
                raise _Syntax(name[2], "a function without a name")
            self.record_mentions(name[1].value, name[2], "as a function name")
            rest = self.text[self.pos:self.pos + 64].lstrip(" \t")
            if rest.startswith("("):
                self.token()
                if self.token()[1] != ")":
                    raise _Syntax(self.pos, "a function name followed by '(' without ')'")
            self.function_next = True
            return "sep", None
        elif word == "then" and kind in ("if", "elif") and frame.ran:
            frame.kind, frame.ran = "then", False
        elif word in ("elif", "else") and kind == "then" and frame.ran:
            frame.kind, frame.ran = word, False
        elif word == "fi" and kind in ("then", "else") and frame.ran:
            self.pop()
            return "done", prev_op
        elif word == "do" and kind in ("while", "until") and frame.ran:
            frame.kind, frame.ran = "do", False
        elif word == "done" and kind == "do" and frame.ran:
            self.pop()
            return "done", prev_op
        elif word == "}" and kind == "{" and frame.ran:
            self.pop()
            return "done", prev_op
        elif word == "esac" and kind == "casebody":
            self.pop()
            return "done", prev_op
        else:
            raise _Syntax(at, f"unexpected '{word}'")
        return "sep", None

    def loop_header(self, at: int) -> None:
        """After `for`/`select`: NAME [in WORDS] ; do   or   (( ... )) ; do"""
        frame = self.frames[-1]
        kind, value, where = self.token()
        if kind == "op" and value == "(" and self.text.startswith("(", self.pos):
            self.pos += 1
            self.arithmetic(where)
        elif kind == "word" and _NAME.fullmatch(value.text):
            self.record_mentions(value.text, where, frame.label)
            kind, value, where = self.token()
            while kind == "nl":
                kind, value, where = self.token()
            if kind == "word" and value.text == "in" and not value.quoted:
                while True:
                    kind, value, where = self.token()
                    if kind != "word":
                        break
            if kind in ("nl", "op") and value in (None, ";"):
                pass
            elif kind == "word" and value.text == "do":
                frame.kind = "do"
                return
            else:
                raise _Syntax(where, f"unexpected token in a '{frame.kind}' header")
        else:
            raise _Syntax(where, f"a '{frame.kind}' without a variable name")
        while True:
            kind, value, where = self.token()
            if kind == "nl" or (kind == "op" and value == ";"):
                continue
            if kind == "word" and value.text == "do" and not value.quoted:
                frame.kind = "do"
                return
            raise _Syntax(where, f"a '{frame.kind}' without 'do'")

    def case_header(self, at: int) -> None:
        kind, value, where = self.token()
        if kind != "word":
            raise _Syntax(where, "a 'case' without a word")
        kind, value, where = self.token()
        while kind == "nl":
            kind, value, where = self.token()
        if kind != "word" or value.text != "in":
            raise _Syntax(where, "a 'case' without 'in'")

    def case_pattern(self) -> bool:
        """Where a case pattern or `esac` is expected. True when `esac` closed the case."""
        kind, value, where = self.token()
        while kind == "nl":
            kind, value, where = self.token()
        if kind == "word" and value.text == "esac" and not value.quoted:
            self.pop()
            return True
        if kind == "op" and value == "(":
            kind, value, where = self.token()
        while True:
            if kind != "word":
                raise _Syntax(where, "a case pattern was expected")
            kind, value, where = self.token()
            if kind == "op" and value == ")":
                break
            if not (kind == "op" and value == "|"):
                raise _Syntax(where, "a case pattern without ')'")
            kind, value, where = self.token()
        self.frames[-1].kind = "casebody"
        self.frames[-1].ran = False
        return False

    def conditional(self, at: int) -> None:
        """[[ ... ]]: a bare name of ours in it may be evaluated arithmetically (and assigned)."""
        items = []
        while True:
            kind, value, where = self.token()
            if kind == "eof":
                raise _Syntax(where, "a '[[' that is never closed")
            if kind == "nl":
                items.append(("op", "newline", where))  # allowed only after && and ||
                continue
            if kind == "word":
                if value.text == "]]" and not value.quoted:
                    break
                if not value.quoted:
                    self.record_mentions(value.value, where, "inside [[ ]]")
                items.append(("word", "\0" if value.quoted else value.text, where))
            else:
                items.append(("op", value, where))
        # bash checks this grammar while parsing (and `bash -n` exits 0 even so).
        depth = 0
        for _kind, value, where in items:
            depth += 1 if value == "(" else -1 if value == ")" else 0
            if depth > MAX_NESTING:  # _condition reads each ( with a call of its own
                raise _Unfollowed(where, TOO_DEEP)
        rest = _condition(items, 0)
        if rest != len(items):
            raise _Syntax(items[rest][2] if rest < len(items) else at,
                          "a [[ ]] expression bash cannot parse")

    # -- what a simple command means for our keys ----------------------------------------
    def finish(self, cmd: _Command, terminator: str) -> None:
        words = cmd.words
        consumed = 0
        if cmd.top and cmd.prev_op is None and cmd.line_start:
            consumed = self.assignment(cmd, terminator)
        if self.mention is None:
            return
        context = cmd.label or (f"after '{cmd.prev_op}'" if cmd.prev_op else None)
        name = None
        name_at = 0
        for index, word in enumerate(words):
            if name is None:
                match = _ASSIGN_WORD.match(word.text)
                if match:
                    key = match.group(1)
                    if index >= consumed and key in self.keys:
                        has_command = any(not _ASSIGN_WORD.match(w.text) for w in words)
                        self.record(key, word.start, context or (
                            "with +=" if match.group(3) else
                            "as an array element" if match.group(2) else
                            "as a prefix to a command" if has_command else
                            "with other assignments on the line"))
                    continue
                name = word.value if not word.quoted else "\0"
                name_at = index
                if (name in _STOPPERS and self.stopped_at is None and not self.in_substitution()
                        and (name != "exec" or index + 1 < len(words))):
                    self.stopped_at = word.start
                if index >= consumed and not word.quoted:
                    self.record_mentions(word.value, word.start, context or "as a command name")
                continue
            if index < consumed:
                continue
            found = [m.group(1) for m in self.mention.finditer(word.value)]
            if not found:
                continue
            args = words[name_at + 1:]
            if name == "export" and all(not w.quoted and _NAME.fullmatch(w.text)
                                        for w in args):
                continue  # `export NAME ...` marks names exported; set -a does that anyway
            if name == "export":
                reason = "in a multi-name export" if len(args) > 1 else "with export options"
            elif name == "printf":
                reason = "with printf -v" if any(w.text == "-v" for w in args) else None
            elif name in _NAME_TAKERS:
                reason = f"with {name}"
            else:
                reason = None
            if reason is None:
                names = "|".join(re.escape(k) for k in found)
                looks_assigned = re.match(rf"({names})(\+?=|\[|$)", word.value)
                if word.quoted or not looks_assigned:
                    continue  # text handed to a command, not a variable of this shell
                reason = f"as an argument to {name if name != chr(0) else 'a command'}"
            for key in found:
                self.record(key, word.start, context or reason)

    def in_substitution(self) -> bool:
        return any(frame.kind == "$(" for frame in self.frames)

    def assignment(self, cmd: _Command, terminator: str) -> int:
        """A line-start top-level command of ours is an Assignment; returns the words it used."""
        text = self.text
        line_start = text.rfind("\n", 0, cmd.start) + 1
        end = text.find("\n", line_start)
        end = self.n if end < 0 else end + 1
        match = _ASSIGNMENT.match(text, line_start, end)
        if not match or match.group("key") not in self.keys:
            return 0
        bom, key, before, after = match.group("bom", "key", "before", "after")
        if bom and line_start != 0:
            return 0  # a BOM only means something at the very start
        words = cmd.words
        value_start = match.end()
        used = 0  # the words up to the `=` and any blanks after it
        while used < len(words) and words[used].start < value_start:
            used += 1
        own = words[used - 1]
        word = own if own.end > value_start else words[used] if (
            used < len(words) and words[used].start == value_start) else None
        line = self.line_of(line_start)
        if text.find("\n", line_start, word.end if word else own.end) >= 0:
            raise UnreadableValue(line, key, "a value continued onto the next line")
        self.assignments.append(Assignment(key, line, line_start, end, value_start, word,
                                           bool(bom), bool(before), bool(after)))
        exported = words[0].text == "export" and used > 1
        reasons = []
        if terminator not in ("nl", "eof"):
            reasons.append(f"followed by '{terminator}'")
        if cmd.redirected:
            reasons.append("with a redirection")
        if "=(" in own.text[:len(key) + 3]:
            reasons.append("as an array")
        rest = words[used:]
        if rest and rest[0].start == value_start and (before or after):
            rest = rest[1:]  # `KEY = value`: the value is a word of its own (a spaced entry)
        if exported and rest:
            reasons.append("in a multi-name export")
        elif rest and all(_ASSIGN_WORD.match(w.text) for w in rest):
            reasons.append("with other assignments on the line")
        if self.stopped_at is not None:
            reasons.append(f"after return/exit on line {self.line_of(self.stopped_at)}")
        for reason in reasons[:1]:
            self.record(key, line_start, reason)
        return used


_UNARY_TESTS = frozenset("-" + c for c in "abcdefghknoprstuvwxzGLNORS")
_BINARY_TESTS = frozenset(["==", "=", "!=", "<", ">", "-eq", "-ne", "-lt", "-le", "-gt", "-ge",
                           "-nt", "-ot", "-ef"])


def _condition(items: list, i: int) -> int:
    """Parse a [[ ]] expression from items[i]; the index after it (raises at an error)."""
    i = _condition_and(items, i)
    while i < len(items) and items[i][1] == "||":
        i = _condition_and(items, _after_newlines(items, i + 1))
    return i


def _after_newlines(items: list, i: int) -> int:
    while i < len(items) and items[i][1] == "newline":
        i += 1
    return i


def _condition_and(items: list, i: int) -> int:
    i = _condition_term(items, i)
    while i < len(items) and items[i][1] == "&&":
        i = _condition_term(items, _after_newlines(items, i + 1))
    return i


def _condition_term(items: list, i: int) -> int:
    def bad(at):
        where = items[at][2] if at < len(items) else items[-1][2] if items else 0
        raise _Syntax(where, "a [[ ]] expression bash cannot parse")

    if i >= len(items):
        bad(i)
    kind, value, _ = items[i]
    while kind == "word" and value == "!":  # a loop: any number of them costs no stack
        i += 1
        if i >= len(items):
            bad(i)
        kind, value, _ = items[i]
    if kind == "op" and value == "(":
        i = _condition(items, i + 1)
        if i >= len(items) or items[i][1] != ")":
            bad(i)
        return i + 1
    if kind == "word" and value in _UNARY_TESTS and (
            i + 1 >= len(items) or items[i + 1][0] == "word"):
        if i + 1 >= len(items):
            bad(i)
        return i + 2
    if kind != "word":
        bad(i)
    if i + 1 < len(items) and items[i + 1][1] == "=~":
        return len(items)  # the regular expression runs to ]] (its parentheses are its own)
    if i + 1 < len(items) and (items[i + 1][1] in _BINARY_TESTS):
        if i + 2 >= len(items) or items[i + 2][0] != "word":
            bad(i + 2)
        return i + 3
    return i + 1



def scan(text: str, keys: Iterable[str]) -> Scan:
    """Find what ``text`` does with any of ``keys``, the way bash reads it.

    Raises UnreadableValue when the value of a plain line of ours does not end on its line.
    """
    scanner = _Scanner(text, frozenset(keys))
    problem = unfollowed = None
    try:
        scanner.commands(0)
    except _Syntax as exc:
        problem = scanner.stop(exc)
    except _Unfollowed as exc:
        unfollowed = scanner.give_up(exc.offset, exc.message)
    except RecursionError:  # a nesting MAX_NESTING does not count: the same answer
        unfollowed = scanner.give_up(scanner.pos, TOO_DEEP)
    except UnreadableValue:
        raise
    except Exception:  # noqa: BLE001 - a line bash parses but the scanner cannot: a finding
        unfollowed = scanner.give_up(scanner.pos, CANNOT_FOLLOW)
    return Scan(tuple(scanner.assignments), _unsupported(scanner), problem, unfollowed)


def _unsupported(scanner: _Scanner) -> tuple[Unsupported, ...]:
    seen = {}
    for key, offset, reason in scanner.records:
        line = scanner.line_of(offset)
        seen.setdefault((line, key), Unsupported(key, line, reason))
    return tuple(seen[k] for k in sorted(seen))
