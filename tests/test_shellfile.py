"""Entries, values and the writer agree with bash, which is the reference."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from onedesk_azuread import KEYS, shellfile
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
    ("A=1\nAZUREAD_CIS=abc\\", 2),
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


def test_with_bash_error_drops_what_bash_never_reaches():
    doc = parse("AZUREAD_CID=a\nX=1\nAZUREAD_CIS=b\n")
    cut = shellfile.with_bash_error(doc, 2, "syntax error near unexpected token `)'")
    assert cut.value("AZUREAD_CID") == "a"
    assert cut.value("AZUREAD_CIS") is None
    assert [(u.key, u.line) for u in cut.unsupported] == [("AZUREAD_CIS", 3)]
    assert cut.syntax_error == (2, "syntax error near unexpected token `)'")
    with pytest.raises(ParseError):
        shellfile.rewrite(cut, {"AZUREAD_CID": "z"})


@pytest.mark.parametrize("line", [
    "export AZUREAD_CID = '{x}'\r\n", "AZUREAD_CID = x\n", "export AZUREAD_CID= x\n",
])
def test_a_spaced_entry_is_repairable_not_unsupported(line):
    doc = parse(line)
    assert doc.unsupported == ()
    assert shellfile.SPACED in doc.last("AZUREAD_CID").problems
