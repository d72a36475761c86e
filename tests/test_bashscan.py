"""The scanner reads a text as bash does: which statements run, where bash stops, and
what it cannot follow (bash is the reference)."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from onedesk_azuread import KEYS, bashcheck, bashscan, shellfile
from onedesk_azuread.errors import ParseError

from .conftest import bash_reads


def parse(text):
    return shellfile.parse(text, KEYS, "/root/.OneDesk")


@pytest.mark.parametrize("text", [
    'X="a\\$b \\q \\" \\\\ \\`"\n', "X=a\\ b\\'c'd\"e'\"f\"\n", "export X='it'\\''s'\n",
    "X=tail\\",  # the file's last character: bash keeps the backslash
])
def test_a_word_carries_the_value_bash_assigns(tmp_path, text):
    path = tmp_path / "f"
    path.write_text(text)
    (found,) = bashscan.scan(text, ["X"]).assignments
    assert not found.word.expands
    assert [found.word.value[found.value_start - found.word.start:]] == bash_reads(path, "X")


@pytest.mark.parametrize("value", ["$HOME", "\"$1\"", "`id`", "$(id)", "${X:-y}", "$'a'",
                                   '$"a"', "$[1+1]", "$((1+1))", "\"`id`\""])
def test_a_word_with_an_expansion_says_so(value):
    (found,) = bashscan.scan(f"X={value}\n", ["X"]).assignments
    assert found.word.expands


def test_quote_carries_a_statement_over_lines(tmp_path):
    text = "OTHER='first\nAZUREAD_CIS=hidden-in-a-value\nlast'\nAZUREAD_CID=real\n"
    doc = parse(text)
    assert [e.key for e in doc.entries] == ["AZUREAD_CID"]
    path = tmp_path / "f"
    path.write_text(text)
    assert bash_reads(path, "AZUREAD_CIS", "AZUREAD_CID") == [None, "real"]


# --- The scanner against bash: statements around our entries ------------------------------
# Lines that do not touch our keys, in forms that fool a scanner knowing only '...' and "...".
HARMLESS_LINES = [
    "OTHER=$'it\\'s'\n", "Y=$'a\\\\' ; Z=$\"b'\"\n", "A=`echo \"'\"`\n", "B=$(echo ')' '#')\n",
    "C=$((1 + (2 * 3)))\n", "D=${HOME:-'}'}\n", "if true; then X=1; fi\n",
    "case a in a|b) Y=2 ;; *) ;; esac\n", "for i in 1 2; do :; done\n", "f() { :; }\n",
    "[[ -n x && ( a == a ) ]]\n", "arr=(1\n2 ')')\n", "cat <<'EOF' >/dev/null\nQ='\nEOF\n",
    "cat <<-X >/dev/null\n\tAZ=1\n\tX\n", "R=\"$AZUREAD_CIS\"  # a reference\n",
    "export AZUREAD_CID AZUREAD_CIS\n", "L=a\\\n  b\n", "echo '#' \"#\" # c\n",
    "M=\"multi\nline\"\n", "{ N=1; }\n", "( O=1 )\n", "true && P=1 || P=2\n",
]
PLAIN_ENTRIES = st.lists(st.tuples(st.sampled_from(KEYS), st.sampled_from(
    ["plain", "'quoted value'", '"dq value"', "a\\ b"]), st.booleans()), max_size=3)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.sampled_from(HARMLESS_LINES), max_size=8), PLAIN_ENTRIES,
       st.randoms(use_true_random=False))
def test_plain_entries_among_other_statements_read_as_bash_does(tmp_path_factory, others,
                                                                ours, rnd):
    lines = list(others)
    for key, value, exported in ours:
        lines.insert(rnd.randint(0, len(lines)), f"{'export ' if exported else ''}{key}={value}\n")
    text = "".join(lines)
    path = tmp_path_factory.mktemp("s") / "f"
    path.write_text(text)
    doc = parse(text)
    assert doc.unsupported == () and doc.syntax_error is None, text
    assert [doc.value(k) for k in KEYS] == bash_reads(path, *KEYS), text


@pytest.mark.parametrize("text", [
    "A=1\nfi\nAZUREAD_CIS=b\n", "A=1\n{ }\nAZUREAD_CIS=b\n", "X=$(\nAZUREAD_CIS=b\n",
    "A=1\nif then\nAZUREAD_CIS=b\n", "A=1\n[[ a b ]]\nAZUREAD_CIS=b\n", "a ;; b\nAZUREAD_CIS=b\n",
])
def test_the_scanner_stops_where_bash_stops(tmp_path, text):
    path = tmp_path / "f"
    path.write_text(text)
    doc = parse(text)
    assert bash_reads(path, "AZUREAD_CIS") == [None]
    assert doc.value("AZUREAD_CIS") is None and doc.unsupported_for("AZUREAD_CIS")
    assert doc.syntax_error is not None


# --- What bash accepts and the scanner cannot follow: a finding, never a traceback -----------
LIMIT = 64  # bashscan.MAX_NESTING
DEPTH = 500  # bash accepts it (each case is checked with bash -n); Python's stack would not
DEEP_LINES = {
    "command substitution": "X=" + "$(echo " * DEPTH + "hi" + ")" * DEPTH,
    "quoted substitution": "X=" + '"$(echo ' * DEPTH + "hi" + ')"' * DEPTH,
    "parameter expansion": "X=" + "${Y:-" * DEPTH + "hi" + "}" * DEPTH,
    "quoted parameter expansion": "X=" + '${Y:-"' * DEPTH + "hi" + '"}' * DEPTH,
    "process substitution": "cat " + "<(cat " * DEPTH + "/dev/null" + ")" * DEPTH,
    "array of substitutions": "X=(" + "$(Y=(" * DEPTH + "a" + "))" * DEPTH + ")",
    "[[ ]] parentheses": "[[ " + "( " * DEPTH + "a" + " )" * DEPTH + " ]]",
}


@pytest.mark.parametrize("name", sorted(DEEP_LINES))
def test_nesting_deeper_than_the_scanner_follows_is_unfollowed_not_a_crash(name):
    text = f"AZUREAD_CID=before\n{DEEP_LINES[name]}\nAZUREAD_CIS=after\n"
    assert bashcheck.check(text) is None  # bash parses it (sourcing it would take seconds)
    doc = parse(text)
    assert doc.unfollowed == (2, bashscan.TOO_DEEP)
    assert doc.value("AZUREAD_CID") == "before"  # what bash ran before it is known
    assert doc.value("AZUREAD_CIS") is None  # from that statement on, nothing is
    assert [(u.key, u.line) for u in doc.unsupported] == [("AZUREAD_CIS", 3)]
    with pytest.raises(ParseError, match=r"^/root/.OneDesk:2: not changed: this tool cannot "
                                         r"follow the file here \(more than 64 levels"):
        shellfile.rewrite(doc, {"AZUREAD_CID": "z"})


@pytest.mark.parametrize("line", [
    "X=" + "$(echo " * LIMIT + "hi" + ")" * LIMIT,
    "X=" + "${Y:-" * LIMIT + "hi" + "}" * LIMIT,
    "[[ " + "! " * DEPTH + "a ]]",  # negations are a loop: any number is followed
])
def test_nesting_up_to_the_limit_is_followed(line):
    doc = parse(f"{line}\nAZUREAD_CIS=after\n")
    assert doc.unfollowed is None and doc.value("AZUREAD_CIS") == "after"


def test_a_recursion_the_limit_does_not_count_is_the_same_finding(monkeypatch):
    # The last resort at the parse boundary, for a nesting MAX_NESTING does not cover.
    monkeypatch.setattr(bashscan, "MAX_NESTING", 10 ** 6)
    doc = parse(f"AZUREAD_CID=before\n{DEEP_LINES['command substitution'] * 4}\n")
    assert doc.unfollowed == (2, bashscan.TOO_DEEP) and doc.value("AZUREAD_CID") == "before"


def test_any_failure_of_the_scanner_is_unfollowed_at_its_line(monkeypatch):
    def broken(self, word_start):
        raise IndexError("string index out of range")

    monkeypatch.setattr(bashscan._Scanner, "braces", broken)
    doc = parse("AZUREAD_CID=before\nX=1\nY=${X}\nAZUREAD_CIS=after\n")
    assert doc.unfollowed == (3, bashscan.CANNOT_FOLLOW)
    assert doc.value("AZUREAD_CID") == "before" and doc.value("AZUREAD_CIS") is None


SHELL_PIECES = st.sampled_from([
    "AZUREAD_CIS=", "AZUREAD_CID", "export ", "x", "=", " ", "\n", "\t", ";", "&", "|", "<", ">",
    "(", ")", "{", "}", "[[", "]]", "$", "$(", "${", "`", "'", '"', "\\", "#", "!", "if ",
    "then ", "fi", "case ", " in ", "esac", "do ", "done", "for ", "<<", "EOF", "((", "))",
    "function ", ":=", "-", "*", "~", "\r", "\ufeff", "é"])


@settings(max_examples=400, deadline=None)
@given(st.lists(SHELL_PIECES, max_size=40).map("".join))
def test_parse_raises_nothing_but_a_one_line_error(text):
    try:
        doc = parse(text)
    except ParseError as exc:
        assert "\n" not in str(exc)
    else:
        assert isinstance(doc, shellfile.Document)


# --- Linear in the file's size ------------------------------------------------------------
class _Scanned(str):
    """The text, counting the characters its search methods go over: a measure of the
    scanner's work that does not depend on the machine's speed."""

    scanned = 0

    def _span(self, start, end):
        start = 0 if start is None else start
        end = len(self) if end is None else min(end, len(self))
        _Scanned.scanned += max(end - start, 0)

    def count(self, sub, start=None, end=None):
        self._span(start, end)
        return str.count(self, sub, start, end)

    def find(self, sub, start=None, end=None):
        found = str.find(self, sub, start, end)
        self._span(start, found + len(sub) if found >= 0 else end)
        return found

    def rfind(self, sub, start=None, end=None):
        found = str.rfind(self, sub, start, end)
        self._span(found if found >= 0 else start, end)
        return found

    def __getitem__(self, index):
        if isinstance(index, slice):
            self._span(index.start, index.stop)
        return str.__getitem__(self, index)


@pytest.mark.parametrize("line", ["AZUREAD_CIS=abcdefghijklmnopqrstuvwxyz0123456789-{i}\n",
                                  "OTHER_{i}=abcdefghijklmnopqrstuvwxyz0123456789\n",
                                  "X=$AZUREAD_CIS; AZUREAD_CID=x{i}\n"])
def test_parsing_goes_over_the_text_a_bounded_number_of_times(monkeypatch, line):
    # 4,000 entries: counting lines from the start for each made it 2,000 passes.
    text = _Scanned("".join(line.format(i=i) for i in range(4000)))
    monkeypatch.setattr(_Scanned, "scanned", 0)
    parse(text)
    assert _Scanned.scanned <= 10 * len(text)
