"""Every finding: its code, severity, key, line, whether the rewrite repairs it."""

import glob
import os
import re
from datetime import date, timedelta

import pytest

from onedesk_azuread import KEYS, shellfile, validation

from .conftest import CLIENT_ID, SECRET, SECRET_ID

TODAY = date(2026, 11, 26)
GOOD = f"AZUREAD_CID={CLIENT_ID}\nAZUREAD_CIS={SECRET}\n"


def findings(text, expires=None, today=TODAY, **facts):
    doc = shellfile.parse(text, KEYS, "/root/.OneDesk")
    return validation.validate(doc, validation.FileFacts(**facts), expires=expires, today=today)


def only(text, **facts):
    found = findings(text, **facts)
    assert len(found) == 1, found
    return found[0]


def test_good_entries_have_no_findings():
    assert findings(GOOD, mode=0o600, uid=0, expires=TODAY + timedelta(days=300)) == []


@pytest.mark.parametrize("text, code, key, line", [
    (f"AZUREAD_CID={CLIENT_ID}\r\nAZUREAD_CIS={SECRET}\n", "crlf", "AZUREAD_CID", 1),
    (f"\ufeffAZUREAD_CID={CLIENT_ID}\nAZUREAD_CIS={SECRET}\n", "bom", "AZUREAD_CID", 1),
    (f"AZUREAD_CID = {CLIENT_ID}\nAZUREAD_CIS={SECRET}\n", "spaced-assignment", "AZUREAD_CID", 1),
    (f"AZUREAD_CID={CLIENT_ID}\nAZUREAD_CIS ={SECRET}\n", "spaced-assignment", "AZUREAD_CIS", 2),
    (f"AZUREAD_CID={{{CLIENT_ID}}}\nAZUREAD_CIS={SECRET}\n", "client-id-braces", "AZUREAD_CID", 1),
    (f"AZUREAD_CID=' {CLIENT_ID} '\nAZUREAD_CIS={SECRET}\n", "client-id-braces", "AZUREAD_CID", 1),
])
def test_repairable_errors(text, code, key, line):
    finding = only(text)
    assert (finding.code, finding.severity, finding.key, finding.line) == (code, "error", key, line)
    assert finding.repairable
    assert "onedesk-azuread check --fix" in finding.message
    doc = shellfile.parse(text, KEYS)
    repaired = shellfile.rewrite(doc, validation.canonical_values(doc))
    assert findings(repaired) == []


@pytest.mark.parametrize("text, code, key, words", [
    (f"AZUREAD_CIS={SECRET}\n", "missing", "AZUREAD_CID", "not set"),
    (f"AZUREAD_CID={CLIENT_ID}\n", "missing", "AZUREAD_CIS", "not set"),
    (f"AZUREAD_CID=\nAZUREAD_CIS={SECRET}\n", "empty", "AZUREAD_CID", "empty"),
    (f"AZUREAD_CID={CLIENT_ID}\nAZUREAD_CIS=''\n", "empty", "AZUREAD_CIS", "empty"),
    (f"AZUREAD_CID=my-app\nAZUREAD_CIS={SECRET}\n", "client-id-not-guid", "AZUREAD_CID",
     "not a GUID"),
    (f"AZUREAD_CID={CLIENT_ID}\nAZUREAD_CIS={SECRET_ID}\n", "secret-is-secret-id", "AZUREAD_CIS",
     "the Secret ID was pasted, not the Secret Value"),
    (f"AZUREAD_CID={CLIENT_ID}\nAZUREAD_CIS=short1Q~abc\n", "secret-length", "AZUREAD_CIS",
     "11 characters"),
    (f"AZUREAD_CID={CLIENT_ID}\nAZUREAD_CIS={'a' * 65}\n", "secret-length", "AZUREAD_CIS",
     "65 characters"),
    (f"AZUREAD_CID={CLIENT_ID}\nAZUREAD_CIS='{SECRET[:20]} {SECRET[20:]}'\n", "secret-charset",
     "AZUREAD_CIS", "whitespace"),
    (f"AZUREAD_CID={CLIENT_ID}\nAZUREAD_CIS='{SECRET}\t'\n", "secret-charset", "AZUREAD_CIS",
     "control"),
    (f"AZUREAD_CID={CLIENT_ID}\nAZUREAD_CIS=$SECRET\n", "shell-expansion", "AZUREAD_CIS",
     "shell expansion"),
    (f"AZUREAD_CID={CLIENT_ID}\nAZUREAD_CIS=abc def\n", "shell-syntax", "AZUREAD_CIS",
     "does not set it"),
])
def test_errors_that_need_the_administrator(text, code, key, words):
    found = [f for f in findings(text) if f.severity == "error"]
    assert [(f.code, f.key) for f in found] == [(code, key)]
    assert not found[0].repairable
    assert words in found[0].message
    assert "onedesk-azuread set" in found[0].message


def test_secret_never_appears_in_findings():
    text = f"AZUREAD_CID={CLIENT_ID}\nAZUREAD_CIS='{SECRET} x'\n"
    assert all(SECRET[4:] not in f.message for f in findings(text, mode=0o644, uid=7))


def test_expired_secret_is_an_error_and_soon_a_warning():
    expired = only(GOOD, expires=TODAY - timedelta(days=1))
    assert (expired.code, expired.severity) == ("secret-expired", "error")
    assert not expired.repairable
    soon = only(GOOD, expires=TODAY + timedelta(days=30))
    assert (soon.code, soon.severity) == ("secret-expires-soon", "warning")
    assert "in 30 days" in soon.message
    assert findings(GOOD, expires=TODAY + timedelta(days=31)) == []


def test_warnings():
    dup = only(f"AZUREAD_CID={CLIENT_ID}\nAZUREAD_CIS=x\nAZUREAD_CIS={SECRET}\n")
    assert (dup.code, dup.severity, dup.repairable, dup.line) == ("duplicate", "warning", True, 3)
    assert "lines 2, 3" in dup.message
    mode = only(GOOD, mode=0o640, uid=0)
    assert (mode.code, mode.repairable, mode.key) == ("file-mode", True, None)
    assert "0640" in mode.message
    owner = only(GOOD, mode=0o600, uid=1000)
    assert (owner.code, owner.severity, owner.repairable) == ("file-owner", "warning", True)
    old = only(f"AZUREAD_CID={CLIENT_ID}\nAZUREAD_CIS=abcdefghijklmnopqrstuvwxyzABCDEF\n")
    assert (old.code, old.severity, old.repairable) == ("secret-format", "warning", False)


def test_errors_sort_before_warnings():
    text = f"AZUREAD_CID=x\nAZUREAD_CIS={SECRET}\nAZUREAD_CIS={SECRET}\n"
    severities = [f.severity for f in findings(text, mode=0o644)]
    assert severities == sorted(severities)  # "error" < "warning"


def test_a_finding_quoting_the_file_is_one_printable_line():
    # The command bash would run is named in the finding; its escape sequence and carriage
    # return are shown, not sent to the terminal or the journal.
    found = [f for f in findings(f"AZUREAD_CID={CLIENT_ID}\nx\x1b[2J\r AZUREAD_CIS={SECRET}\n")
             if f.code == validation.UNSUPPORTED]
    assert len(found) == 1
    line = found[0].describe("/root/.OneDesk")
    assert "as an argument to x\\x1b[2J\\r," in line
    assert line.isprintable()


def test_a_statement_the_scanner_cannot_follow_is_an_unsupported_construct_error():
    deep = "X=" + "$(echo " * 500 + "hi" + ")" * 500
    found = findings(f"AZUREAD_CID={CLIENT_ID}\n{deep}\nAZUREAD_CIS={SECRET}\n")
    first = found[0]
    assert (first.code, first.severity, first.key, first.line, first.repairable) == (
        "unsupported-construct", "error", None, 2, False)
    assert "more than 64 levels" in first.message and "bash -n FILE" in first.message
    assert [(f.code, f.key, f.line) for f in found[1:]] == [
        ("unsupported-construct", "AZUREAD_CIS", 3)]


def documented_codes():
    """The first column of the findings table (`| code | severity | ...`) in the docs."""
    top = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    pages = [os.path.join(top, "README.md")] + glob.glob(os.path.join(top, "docs", "**", "*.md"),
                                                         recursive=True)
    codes = set()
    for page in pages:
        with open(page, encoding="utf-8") as handle:
            for table in re.findall(r"^\| code \| severity \|.*\n((?:\|.*\n)+)", handle.read(),
                                    re.M):
                for row in table.splitlines()[1:]:
                    codes.update(re.findall(r"`([a-z-]+)`", row.split(" | ")[0]))
    return codes


def test_every_finding_code_is_documented_and_the_docs_name_no_other():
    assert len(set(validation.CODES)) == len(validation.CODES)
    assert documented_codes() == set(validation.CODES)
