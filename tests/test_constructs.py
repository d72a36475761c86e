"""bash decides what /root/.OneDesk means: a corpus of constructs, each checked against bash.

For every construct, either the tool's view (`show --json`) is exactly what bash assigns when
it sources the file, or the tool reports `unsupported-construct` (then it shows no value for
that key) and every write refuses with nothing changed: `set --client-id`, `set --secret-stdin`
(both with --force, which never bypasses write safety), `unset` and `check --fix`.
"""

import json
import os
import stat

import pytest

from onedesk_azuread import KEYS, bashcheck, hook, shellfile
from onedesk_azuread.errors import ParseError
from onedesk_azuread.paths import Paths

from .conftest import CLIENT_ID, OTHER_SECRET, SECRET, bash_reads

CID = f"AZUREAD_CID={CLIENT_ID}\n"
CIS = f"AZUREAD_CIS={SECRET}\n"
OTHER_ID = "11111111-2222-4333-8444-555555555555"

# name -> file text. Each one is sourced by bash and read by the tool.
CORPUS = {
    "plain": CID + CIS,
    "export": f"export AZUREAD_CID={CLIENT_ID}\nexport AZUREAD_CIS='{SECRET}'  # note\n",
    "comments-and-similar-names": "# AZUREAD_CIS=old\nAZUREAD_CISX=1\n" + CID + CIS,
    "if-block-false": CID + f"if [ -n \"$NEVER\" ]; then\n  AZUREAD_CIS={SECRET}\nfi\n",
    "if-elif-else": CID + f"if false; then :\nelif false; then :\nelse\n  {CIS}fi\n",
    "case": CID + f"case \"$HOSTNAME\" in\n  *) AZUREAD_CIS={SECRET} ;;\nesac\n",
    "for-loop": CID + f"for x in 1; do AZUREAD_CIS={SECRET}; done\n",
    "while-loop": CID + f"while false; do\n  AZUREAD_CIS={SECRET}\ndone\n",
    "until-loop": CID + f"until true; do AZUREAD_CIS={SECRET}; done\n",
    "select-loop": CID + f"select x in a; do AZUREAD_CIS={SECRET}; break; done </dev/null\n",
    "function-never-called": CID + f"setup() {{\n  AZUREAD_CIS={SECRET}\n}}\n",
    "function-called": CID + f"function setup {{\n  AZUREAD_CIS={SECRET}\n}}\nsetup\n",
    "local-in-function": CID + f"f() {{ local AZUREAD_CIS={SECRET}; }}\nf\n",
    "braces": CID + f"{{ AZUREAD_CIS={SECRET}; }}\n",
    "subshell": CID + f"( AZUREAD_CIS={SECRET} )\n",
    "here-doc-body": CID + f"cat <<EOF >/dev/null\n{CIS}EOF\n",
    "here-docs-two-on-a-line": (CID + "cat <<-'EOF' - <<\"END\" >/dev/null\n"
                                f"\t{CIS}\tEOF\nAZUREAD_CIS=x\nEND\n"),
    "here-doc-sourced": CID + f". /dev/stdin <<EOF\n{CIS}EOF\n",
    "after-semicolon": CID + f"true; AZUREAD_CIS={SECRET}\n",
    "after-and": CID + f"false && AZUREAD_CIS={SECRET}\n",
    "after-or": CID + f"true || AZUREAD_CIS={SECRET}\n",
    "after-pipe": CID + f"echo | AZUREAD_CIS={SECRET}\n",
    "followed-by-semicolon": CID + f"AZUREAD_CIS={SECRET}; unset AZUREAD_CIS\n",
    "readonly": CID + f"readonly AZUREAD_CIS={SECRET}\n",
    "declare": CID + f"declare -x AZUREAD_CIS={SECRET}\n",
    "typeset": CID + f"typeset AZUREAD_CIS={SECRET}\n",
    "unset-later": CID + CIS + "unset AZUREAD_CIS\n",
    "read": CID + f"read -r AZUREAD_CIS <<< '{SECRET}'\n",
    "printf-v": CID + f"printf -v AZUREAD_CIS %s '{SECRET}'\n",
    "eval": CID + f"eval 'AZUREAD_CIS={SECRET}'\n",
    "alias": CID + CIS + f"alias AZUREAD_CIS={OTHER_SECRET}\n",
    "multi-name-export": CID + f"export A=1 AZUREAD_CIS={SECRET}\n",
    "plus-equals": CID + CIS + "AZUREAD_CIS+=tail\n",
    "default-assignment": CID + f": ${{AZUREAD_CIS:={SECRET}}}\n",
    "arithmetic": CID + "(( AZUREAD_CIS = 42 ))\n",
    "command-substitution": CID + CIS + f"X=$(AZUREAD_CIS={OTHER_SECRET}; echo)\n",
    "after-return": CID + "return 0 2>/dev/null || true\n" + CIS,
    "after-exit-in-a-branch": CID + 'if [ -n "$NEVER" ]; then exit 0; fi\n' + CIS,
    "negated": CID + f"! AZUREAD_CIS={SECRET}\n",
    "other-assignments-on-the-line": CID + f"AZUREAD_CIS={SECRET} B=1\n",
    "prefix-to-a-command": CID + f"AZUREAD_CIS={SECRET} true\n",
    "array": CID + f"AZUREAD_CIS=({SECRET})\n",
    # Other lines that fool a scanner knowing only '...' and "...":
    "ansi-c-quote-before": f"OTHER=$'it\\'s'\n{CID}{CIS}",
    "ansi-c-quote-between": f"{CID}OTHER=$'a\\'b' ; Y=$'c'\n{CIS}",
    "locale-quote": f"OTHER=$\"it's\"\n{CID}{CIS}",
    "single-quote-spanning-lines": f"Q='first\nAZUREAD_CIS={OTHER_SECRET}\nlast'\n{CID}{CIS}",
    "backtick-and-substitution": (f"A=`echo \"'\"`\nB=$(echo ')' \"$(echo x)\")\nC=$((1 + (2)))\n"
                                  f"D=${{HOME:-'}}'}}\n{CID}{CIS}"),
    "references-are-harmless": (f"{CID}{CIS}OTHER=\"$AZUREAD_CIS\"\n"
                                f"[ -n \"${{AZUREAD_CID:-}}\" ] && echo ok >/dev/null\n"
                                "export AZUREAD_CID AZUREAD_CIS\n"),
    "compound-commands-elsewhere": ("if true; then X=1; fi\ncase a in a|b) :;; esac\n"
                                    "for i in 1 2; do :; done\nf() { :; }\n[[ -n x ]]\n"
                                    f"arr=(1\n2)\n{CID}{CIS}"),
    "line-continuation-swallows-ours": f"{CID}OTHER=a\\\n{CIS}",
    "line-continuation-of-export": f"{CID}export \\\n  {CIS}",
    "crlf-compound": CID + f"if true; then\r\n  AZUREAD_CIS={SECRET}\r\nfi\r\n",
    "syntax-error-before": CID + "foo )\n" + CIS,
    "syntax-error-unclosed-quote-before": CID + "X=\"unclosed\n" + CIS,
    "syntax-error-unclosed-if": CID + "if true; then\n" + CIS,
}


# The constructs the tool reads exactly as bash does; every other one it must refuse to edit.
READ_AS_BASH_DOES = {
    "plain", "export", "comments-and-similar-names", "ansi-c-quote-before",
    "ansi-c-quote-between", "locale-quote", "single-quote-spanning-lines",
    "backtick-and-substitution", "references-are-harmless", "compound-commands-elsewhere",
    "line-continuation-swallows-ours", "prefix-to-a-command",
}


def _write(path, text):
    path.write_bytes(text.encode("utf-8"))
    os.chmod(path, 0o640)  # so that check --fix has a repair to attempt (the mode)


def _view(run):
    result = run("show", "--json", "--reveal")
    assert result.exit_code == 0, result.stderr
    shown = json.loads(result.stdout)
    return [shown["client_id"], shown["secret"]]


def _findings(run):
    return json.loads(run("check", "--json").stdout)["findings"]


WRITES = [
    ("set", "--client-id", OTHER_ID, "--force"),
    ("set", "--secret-stdin", "--force"),
    ("unset",),
    ("check", "--fix"),
]


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_view_equals_bash_or_every_write_refuses(run, settings_path, name):
    text = CORPUS[name]
    _write(settings_path, text)
    bash = bash_reads(settings_path, *KEYS)
    view = _view(run)
    findings = _findings(run)
    unsupported = {f["key"] for f in findings if f["code"] == "unsupported-construct"}
    if name in READ_AS_BASH_DOES:
        assert not unsupported, findings
        assert view == bash, f"{name}: the tool shows {view}, bash assigns {bash}"
        return
    assert unsupported, f"{name}: no unsupported-construct finding (view {view}, bash {bash})"
    for f in findings:
        if f["code"] == "unsupported-construct":
            assert f["severity"] == "error" and f["repairable"] is False
            assert f["line"] and "by hand" in f["message"] and "plain top-level" in f["message"]
            assert SECRET not in f["message"]
    for key, shown, assigned in zip(KEYS, view, bash):
        if key in unsupported:
            assert shown is None  # never a value bash might not use
        else:
            assert shown == assigned
    before = settings_path.read_bytes()
    for command in WRITES:
        result = run(*command, input=OTHER_SECRET)
        assert result.exit_code == 1, (name, command, result.stderr)
        assert "Traceback" not in result.stderr
        assert settings_path.read_bytes() == before, (name, command)
        assert stat.S_IMODE(settings_path.stat().st_mode) == 0o640
        assert SECRET not in result.stderr + result.stdout
        assert OTHER_SECRET not in result.stderr + result.stdout
    assert not (settings_path.parent / ".OneDesk.bak").exists()


def test_the_corpus_is_large_and_has_both_outcomes(tmp_path):
    assert len(CORPUS) >= 30
    refused = {name for name, text in CORPUS.items()
               if shellfile.parse(text, KEYS, "f").unsupported}
    assert refused == set(CORPUS) - READ_AS_BASH_DOES
    assert len(refused) >= 25


@pytest.mark.parametrize("name, reason", [
    ("if-block-false", "inside an if block"),
    ("case", "inside a case block"),
    ("for-loop", "inside a for loop"),
    ("while-loop", "inside a while loop"),
    ("function-never-called", "inside a function"),
    ("braces", "inside { }"),
    ("subshell", "inside ( )"),
    ("here-doc-body", "in a here-document"),
    ("after-semicolon", "after ';'"),
    ("after-and", "after '&&'"),
    ("after-or", "after '||'"),
    ("after-pipe", "after '|'"),
    ("readonly", "with readonly"),
    ("declare", "with declare"),
    ("typeset", "with typeset"),
    ("unset-later", "with unset"),
    ("read", "with read"),
    ("printf-v", "with printf -v"),
    ("eval", "with eval"),
    ("multi-name-export", "in a multi-name export"),
    ("plus-equals", "with +="),
    ("after-return", "after return/exit on line 2"),
    ("after-exit-in-a-branch", "after return/exit on line 2"),
    ("syntax-error-before", "at or after line 2, in a statement that cannot be parsed"),
])
def test_each_unsupported_construct_names_its_line_and_reason(name, reason):
    doc = shellfile.parse(CORPUS[name], KEYS, "/root/.OneDesk")
    found = doc.unsupported_for("AZUREAD_CIS")
    assert found, name
    assert reason in found[0].reason
    line = CORPUS[name].count("\n", 0, CORPUS[name].rindex("AZUREAD_CIS")) + 1
    assert found[-1].line == line
    assert doc.value("AZUREAD_CIS") is None
    with pytest.raises(ParseError) as err:
        shellfile.rewrite(doc, {"AZUREAD_CID": OTHER_ID})
    message = str(err.value)
    assert message.startswith(f"/root/.OneDesk:{found[0].line}: not changed: ")
    assert "by hand" in message and "\n" not in message and SECRET not in message


def test_show_says_an_entry_is_not_a_plain_assignment(run, settings_path):
    _write(settings_path, CORPUS["if-block-false"])
    result = run("show")
    assert ("AZUREAD_CIS:  present, but not a plain assignment (run: onedesk-azuread check)"
            in result.stdout)
    assert CLIENT_ID in result.stdout


def test_a_crlf_file_shows_the_meant_values_and_is_repaired(run, settings_path):
    # Contract kept from before: bash keeps the CR; the tool reports the meant value and a
    # repairable crlf error, and check --fix makes bash's value the meant one.
    _write(settings_path, (CID + CIS).replace("\n", "\r\n"))
    assert bash_reads(settings_path, *KEYS) == [CLIENT_ID + "\r", SECRET + "\r"]
    assert _view(run) == [CLIENT_ID, SECRET]
    assert {f["code"] for f in _findings(run)} == {"crlf", "file-mode"}
    assert run("check", "--fix").exit_code == 0
    assert bash_reads(settings_path, *KEYS) == [CLIENT_ID, SECRET]


@pytest.mark.parametrize("text, line", [
    (CID + CIS + "[[ a b ]]\n", 3),       # bash's own grammar: the scanner does not model [[ ]]
    (CID + CIS + "if then fi\n", 3),
    (CID + "foo )\n" + CIS, 2),
])
def test_check_reports_where_bash_stops_parsing(run, settings_path, text, line):
    _write(settings_path, text)
    found = [f for f in _findings(run) if f["code"] == "bash-syntax"]
    assert len(found) == 1
    assert (found[0]["line"], found[0]["severity"], found[0]["repairable"]) == (line, "error",
                                                                               False)
    assert "bash -n" in found[0]["message"]
    assert run("check").exit_code == 1
    # bash runs what comes before the error and nothing after; the tool's view agrees.
    bash = bash_reads(settings_path, *KEYS)
    assert _view(run) == bash
    before = settings_path.read_bytes()
    for command in WRITES:
        result = run(*command, input=OTHER_SECRET)
        assert result.exit_code == 1, (command, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert settings_path.read_bytes() == before
    assert bash == ([CLIENT_ID, SECRET] if line == 3 else [CLIENT_ID, None])


def test_without_bash_nothing_is_written(run, settings_path, monkeypatch):
    monkeypatch.setattr(bashcheck, "SEARCH_PATH", "/nonexistent")
    settings_path.write_text(CID)
    before = settings_path.read_bytes()
    result = run("set", "--secret-stdin", input=SECRET)
    assert result.exit_code == 1
    assert "bash is not installed" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert settings_path.read_bytes() == before


def test_the_plugin_blocks_and_its_repair_refuses(root, settings_path):
    # What the dnf plugin calls: the preflight (resolved hook) blocks on the construct, and
    # the repair it runs just before installing (check --fix) refuses, file untouched.
    _write(settings_path, CORPUS["if-block-false"].replace(CID, CID.replace("\n", "\r\n")))
    before = settings_path.read_bytes()
    paths = Paths.under(str(root))
    found = hook.preflight(paths, require=False)
    assert found.present
    assert [f.code for f in found.blocking] == ["unsupported-construct"]
    assert found.blocking[0].line == 3  # and the crlf on line 1 would be repairable
    with pytest.raises(hook.Blocked) as err:  # checked again under the lock
        hook.inject(paths)
    assert f"{settings_path}:3: error: AZUREAD_CIS is set inside an if block" in str(err.value)
    assert settings_path.read_bytes() == before


def test_an_entry_only_in_an_unsupported_construct_still_blocks_the_plugin(root, settings_path):
    # Not "no entries, install without Azure AD": the key is there, set where only bash can
    # follow it, so the preflight stops the transaction instead of waving it through.
    _write(settings_path, f"if true; then\n  AZUREAD_CIS={SECRET}\nfi\n")
    found = hook.preflight(Paths.under(str(root)), require=False)
    assert found.present
    assert "unsupported-construct" in [f.code for f in found.blocking]
