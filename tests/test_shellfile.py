"""The parser and the writer agree with bash, which is the reference."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from onedesk_azuread import KEYS, bashcheck, shellfile
from onedesk_azuread.errors import ParseError

from .conftest import bash_reads


def parse(text):
    return shellfile.parse(text, KEYS, "/root/.OneDesk")


@pytest.mark.parametrize("line, value", [
    ("AZUREAD_CIS=plain", "plain"),
    ("export AZUREAD_CIS=plain", "plain"),
    ("  AZUREAD_CIS='single quoted # not a comment'", "single quoted # not a comment"),
    ('AZUREAD_CIS="double \\"escaped\\" \\\\ \\$"', 'double "escaped" \\ $'),
    ('AZUREAD_CIS="keeps \\q backslash"', "keeps \\q backslash"),
    ("AZUREAD_CIS=a\\ b\\'c", "a b'c"),
    ("AZUREAD_CIS=abc # trailing comment", "abc"),
    ("AZUREAD_CIS=abc#not-comment", "abc#not-comment"),
    ("AZUREAD_CIS=mi'x'\"ed\"", "mixed"),
    ("AZUREAD_CIS='it'\\''s'", "it's"),
    ("AZUREAD_CIS=", ""),
    ("AZUREAD_CIS= # empty, then a comment", ""),
    ("AZUREAD_CIS=a~b", "a~b"),
    ("AZUREAD_CIS=$", "$"),
])
def test_values_match_bash(tmp_path, line, value):
    path = tmp_path / "f"
    path.write_text(line + "\n")
    assert parse(line + "\n").value("AZUREAD_CIS") == value
    assert bash_reads(path, "AZUREAD_CIS") == [value]


@pytest.mark.parametrize("line, problem", [
    ("AZUREAD_CIS=$HOME", shellfile.EXPANSION),
    ('AZUREAD_CIS="${HOME}x"', shellfile.EXPANSION),
    ("AZUREAD_CIS=`id`", shellfile.EXPANSION),
    ("AZUREAD_CIS=$(id)", shellfile.EXPANSION),
    ("AZUREAD_CIS=~/x", shellfile.EXPANSION),
    ("AZUREAD_CIS=a:~/x", shellfile.EXPANSION),
    ("AZUREAD_CIS=$'a\\tb'", shellfile.EXPANSION),
    ("AZUREAD_CIS=abc def", shellfile.TRAILING),
    ("AZUREAD_CIS=abc; echo", shellfile.TRAILING),
])
def test_values_bash_would_not_assign_literally_are_unknown(line, problem):
    entry = parse(line + "\n").last("AZUREAD_CIS")
    assert entry.value is None
    assert problem in entry.problems


def test_quote_carries_a_statement_over_lines(tmp_path):
    text = "OTHER='first\nAZUREAD_CIS=hidden-in-a-value\nlast'\nAZUREAD_CID=real\n"
    doc = parse(text)
    assert [e.key for e in doc.entries] == ["AZUREAD_CID"]
    path = tmp_path / "f"
    path.write_text(text)
    assert bash_reads(path, "AZUREAD_CIS", "AZUREAD_CID") == [None, "real"]


def test_comment_lines_and_similar_keys_are_not_entries():
    doc = parse("# AZUREAD_CIS=old\nAZUREAD_CISX=1\nXAZUREAD_CIS=2\n  #AZUREAD_CID=3\n")
    assert doc.entries == ()


def test_crlf_bom_and_spaces_are_reported_with_the_meant_value():
    text = "\ufeffAZUREAD_CID = {abc}\r\nAZUREAD_CIS='v'\r\n"
    doc = parse(text)
    cid, cis = doc.entries
    assert set(cid.problems) == {shellfile.BOM, shellfile.CRLF, shellfile.SPACED}
    assert cid.value == "{abc}"
    assert cis.problems == (shellfile.CRLF,) and cis.value == "v"


def test_bash_keeps_the_carriage_return(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"AZUREAD_CIS=abc\r\n")
    assert bash_reads(path, "AZUREAD_CIS") == ["abc\r"]


@pytest.mark.parametrize("text, line", [
    ("A=1\nAZUREAD_CIS='unterminated\n", 2),
    ('AZUREAD_CID="open\nmore"\n', 1),
    ("AZUREAD_CIS=abc\\\ndef\n", 1),
])
def test_unreadable_entries_raise_naming_file_and_line(text, line):
    with pytest.raises(ParseError) as err:
        parse(text)
    message = str(err.value)
    assert message.startswith(f"/root/.OneDesk:{line}: ")
    assert "\n" not in message
    assert "unterminated" not in text or "unterminated" in message


def test_rewrite_collapses_duplicates_where_the_last_stood():
    text = "AZUREAD_CIS=a\nX=1\nAZUREAD_CIS=b\nY=2"
    new = shellfile.rewrite(parse(text), {"AZUREAD_CIS": "c", "AZUREAD_CID": "id"})
    assert new == "X=1\nAZUREAD_CIS=c\nY=2\nAZUREAD_CID=id\n"


def test_rewrite_removes_for_none_and_keeps_other_bytes():
    text = "A=1\r\n\nAZUREAD_CID=x\n# c\r\nAZUREAD_CIS=y\nB=2"
    assert shellfile.rewrite(parse(text), {k: None for k in KEYS}) == "A=1\r\n\n# c\r\nB=2"


@pytest.mark.parametrize("value, bare", [
    ("Xk74Q~pL.mN3-rT_vW8yZ1aB2cD3eF4gH5iJ6kL7m", True),
    ("~leading", False), ("a:~b", False), ("a b", False), ("it's", False), ("$x", False),
    ("", False), ("a=b+c/d@e%f,g:h", True),
])
def test_quote_is_bare_only_when_bash_reads_it_unchanged(value, bare):
    assert (shellfile.quote(value) == value) is bare


SHELL_ALPHABET = st.characters(
    codec="utf-8", blacklist_characters="\n\x00", blacklist_categories=("Cs",))
WIDE_VALUES = st.one_of(
    st.text(SHELL_ALPHABET, min_size=1, max_size=64),
    st.text(st.sampled_from("'\"$`\\ #~:!*?[]{}();&|<>=\t\r-abcQ9"), min_size=1, max_size=40),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(WIDE_VALUES, min_size=1, max_size=20))
def test_quoted_values_read_back_exactly_in_bash(tmp_path_factory, values):
    path = tmp_path_factory.mktemp("q") / "f"
    keys = [f"V{i}" for i in range(len(values))]
    path.write_text("".join(shellfile.assignment(k, v) for k, v in zip(keys, values)),
                    encoding="utf-8")
    assert bash_reads(path, *keys) == values
    assert [parse_value(path.read_bytes().decode("utf-8"), k) for k in keys] == values


def parse_value(text, key):
    return shellfile.parse(text, [key]).value(key)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(WIDE_VALUES, min_size=1, max_size=10))
def test_parser_agrees_with_bash_on_what_it_reads(tmp_path_factory, values):
    # Values written in the other quoting styles people use by hand.
    path = tmp_path_factory.mktemp("p") / "f"
    lines = []
    for i, v in enumerate(values):
        if "'" not in v:
            lines.append(f"V{i}='{v}'\n")
        else:
            escaped = "".join("\\" + c if c in '"\\$`' else c for c in v)
            lines.append(f'export V{i}="{escaped}"\n')
    text = "".join(lines)
    path.write_text(text, encoding="utf-8")
    keys = [f"V{i}" for i in range(len(values))]
    expected = bash_reads(path, *keys)
    assert [parse_value(text, k) for k in keys] == expected


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


def test_with_bash_error_drops_what_bash_never_reaches():
    doc = parse("AZUREAD_CID=a\nX=1\nAZUREAD_CIS=b\n")
    cut = shellfile.with_bash_error(doc, 2, "syntax error near unexpected token `)'")
    assert cut.value("AZUREAD_CID") == "a"
    assert cut.value("AZUREAD_CIS") is None
    assert [(u.key, u.line) for u in cut.unsupported] == [("AZUREAD_CIS", 3)]
    assert cut.syntax_error == (2, "syntax error near unexpected token `)'")
    with pytest.raises(ParseError):
        shellfile.rewrite(cut, {"AZUREAD_CID": "z"})


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


@pytest.mark.parametrize("line", [
    "export AZUREAD_CID = '{x}'\r\n", "AZUREAD_CID = x\n", "export AZUREAD_CID= x\n",
])
def test_a_spaced_entry_is_repairable_not_unsupported(line):
    doc = parse(line)
    assert doc.unsupported == ()
    assert shellfile.SPACED in doc.last("AZUREAD_CID").problems


# --- What bash accepts and the scanner cannot follow: a finding, never a traceback -----------
LIMIT = 64  # shellfile.MAX_NESTING
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
    assert doc.unfollowed == (2, shellfile.TOO_DEEP)
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
    monkeypatch.setattr(shellfile, "MAX_NESTING", 10 ** 6)
    doc = parse(f"AZUREAD_CID=before\n{DEEP_LINES['command substitution'] * 4}\n")
    assert doc.unfollowed == (2, shellfile.TOO_DEEP) and doc.value("AZUREAD_CID") == "before"


def test_any_failure_of_the_scanner_is_unfollowed_at_its_line(monkeypatch):
    def broken(self, word_start):
        raise IndexError("string index out of range")

    monkeypatch.setattr(shellfile._Scanner, "braces", broken)
    doc = parse("AZUREAD_CID=before\nX=1\nY=${X}\nAZUREAD_CIS=after\n")
    assert doc.unfollowed == (3, shellfile.CANNOT_FOLLOW)
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
