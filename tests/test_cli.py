"""The CLI contract: commands, output streams, exit codes, masking, the bash oracle."""

import json
import os
import stat

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from onedesk_azuread.shellfile import quote

from .conftest import CLIENT_ID, OTHER_SECRET, SECRET, SECRET_ID, Cli, bash_reads

GOOD = f"AZUREAD_CID={CLIENT_ID}\nAZUREAD_CIS={SECRET}\n"


def no_secret_in(result, secret=SECRET):
    assert secret not in result.stdout
    assert secret not in result.stderr


def set_good(run):
    result = run("set", "--client-id", CLIENT_ID, "--secret-stdin", input=SECRET + "\n")
    assert result.exit_code == 0, result.stderr
    return result


def test_set_from_stdin_creates_a_private_file_and_says_what_next(run, settings_path):
    result = set_good(run)
    assert settings_path.read_text() == GOOD
    st_ = settings_path.stat()
    assert stat.S_IMODE(st_.st_mode) == 0o600
    assert st_.st_uid == os.geteuid()
    assert f"AZUREAD_CIS: added ({SECRET[:3]}…)" in result.stderr
    assert "onedesk-azuread apply" in result.stderr
    assert result.stdout == ""
    no_secret_in(result)
    assert bash_reads(settings_path, "AZUREAD_CID", "AZUREAD_CIS") == [CLIENT_ID, SECRET]


def test_set_from_file_and_from_hidden_prompt(run, settings_path, tmp_path):
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET + "\r\n")
    assert run("set", "--client-id", CLIENT_ID, "--secret-file", str(secret_file)).exit_code == 0
    assert settings_path.read_text() == GOOD
    result = run("set", "--secret-prompt", input=OTHER_SECRET + "\n")
    assert result.exit_code == 0, result.stderr
    assert bash_reads(settings_path, "AZUREAD_CIS") == [OTHER_SECRET]
    no_secret_in(result, OTHER_SECRET)


def test_set_without_options_asks_for_both(run, settings_path):
    result = run("set", input=f"{CLIENT_ID}\n{SECRET}\n")
    assert result.exit_code == 0, result.stderr
    assert settings_path.read_text() == GOOD
    assert "Application (client) ID" in result.stderr
    no_secret_in(result)


def test_set_with_an_option_never_prompts(run, settings_path):
    result = run("set", "--client-id", CLIENT_ID, input=f"{SECRET}\n")
    assert result.exit_code == 1  # the secret is missing, and nobody was asked for it
    assert "AZUREAD_CIS is not set" in result.stderr
    assert not settings_path.exists()


@pytest.mark.parametrize("args, words", [
    (["--secret-stdin", "--secret-prompt"], "one way only"),
    (["--force"], "nothing to set"),
    (["--expires", "31/12/2027"], "YYYY-MM-DD"),
    (["--secret", SECRET], "No such option"),
])
def test_set_usage_errors_exit_2(run, settings_path, args, words):
    result = run("set", *args, input="")
    assert result.exit_code == 2
    assert words in result.stderr
    assert not settings_path.exists()


def test_pasted_secret_id_is_refused_and_nothing_changes(run, settings_path):
    set_good(run)
    before = settings_path.read_bytes()
    result = run("set", "--secret-stdin", input=SECRET_ID)
    assert result.exit_code == 1
    assert "the Secret ID was pasted, not the Secret Value" in result.stderr
    assert "Traceback" not in result.stderr
    assert settings_path.read_bytes() == before
    forced = run("set", "--secret-stdin", "--force", input=SECRET_ID)
    assert forced.exit_code == 0
    assert "the Secret ID was pasted" in forced.stderr
    assert bash_reads(settings_path, "AZUREAD_CIS") == [SECRET_ID]


def test_a_line_break_in_the_secret_is_refused_even_with_force(run, settings_path):
    result = run("set", "--client-id", CLIENT_ID, "--secret-stdin", "--force",
                 input=SECRET[:20] + "\n" + SECRET[20:])
    assert result.exit_code == 1
    assert "line break" in result.stderr
    assert not settings_path.exists()


def test_setting_the_same_values_changes_nothing(run, settings_path):
    set_good(run)
    inode, data = settings_path.stat().st_ino, settings_path.read_bytes()
    result = run("set", "--client-id", CLIENT_ID, "--secret-stdin", input=SECRET)
    assert result.exit_code == 0
    assert "unchanged" in result.stderr
    assert (settings_path.stat().st_ino, settings_path.read_bytes()) == (inode, data)
    assert not (settings_path.parent / ".OneDesk.bak").exists()


def test_set_keeps_other_lines_and_a_backup(run, settings_path):
    original = (b"DB_HOST=db1\r\n# keep me\n"
                b"AZUREAD_CIS=old1Q~xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\nZ=1")
    settings_path.write_bytes(original)
    os.chmod(settings_path, 0o644)
    assert set_good(run).exit_code == 0
    ours = f"AZUREAD_CIS={SECRET}\nZ=1\nAZUREAD_CID={CLIENT_ID}\n".encode()
    assert settings_path.read_bytes() == b"DB_HOST=db1\r\n# keep me\n" + ours
    backup = settings_path.parent / ".OneDesk.bak"
    assert backup.read_bytes() == original
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600
    assert stat.S_IMODE(settings_path.stat().st_mode) == 0o600


def test_expiry_is_recorded_in_state_not_in_the_file(run, root, settings_path):
    result = run("set", "--client-id", CLIENT_ID, "--secret-stdin", "--expires", "2099-01-31",
                 input=SECRET)
    assert result.exit_code == 0, result.stderr
    assert "2099" not in settings_path.read_text()
    record = root / "var/lib/onedesk-azuread/expiry.json"
    assert stat.S_IMODE(record.stat().st_mode) == 0o600
    assert SECRET not in record.read_text()
    shown = json.loads(run("show", "--json").stdout)
    assert shown["expires"] == "2099-01-31"
    # A new secret without --expires does not inherit the old secret's date.
    assert run("set", "--secret-stdin", input=OTHER_SECRET).exit_code == 0
    assert json.loads(run("show", "--json").stdout)["expires"] is None


def test_expiry_alone_applies_to_the_current_secret_and_past_dates_refuse(run, settings_path):
    set_good(run)
    assert run("set", "--expires", "2099-02-01").exit_code == 0
    assert json.loads(run("show", "--json").stdout)["expires"] == "2099-02-01"
    result = run("set", "--expires", "2020-01-01")
    assert result.exit_code == 1
    assert "expired on 2020-01-01" in result.stderr
    assert json.loads(run("show", "--json").stdout)["expires"] == "2099-02-01"


def test_unset_removes_both_and_keeps_a_backup(run, settings_path):
    settings_path.write_text("A=1\n" + GOOD + "B=2\n")
    result = run("unset")
    assert result.exit_code == 0
    assert settings_path.read_text() == "A=1\nB=2\n"
    assert (settings_path.parent / ".OneDesk.bak").read_text() == "A=1\n" + GOOD + "B=2\n"
    assert run("unset").exit_code == 0
    assert "no Azure AD entries" in run("unset").stderr


def test_show_masks_unless_reveal(run, settings_path):
    set_good(run)
    text = run("show")
    assert text.exit_code == 0
    assert f"{SECRET[:3]}… (masked" in text.stdout
    assert CLIENT_ID in text.stdout and "mode 0600" in text.stdout
    no_secret_in(text)
    data = json.loads(run("show", "--json").stdout)
    assert data == {"file": str(settings_path), "exists": True, "mode": "0600",
                    "owner": "root" if os.geteuid() == 0 else data["owner"],
                    "client_id": CLIENT_ID, "secret": SECRET[:3] + "…",
                    "secret_revealed": False, "expires": None, "expiry_error": None}
    assert json.loads(run("show", "--json", "--reveal").stdout)["secret"] == SECRET
    assert SECRET in run("show", "--reveal").stdout


def test_show_prints_control_characters_from_the_file_escaped(run, settings_path):
    settings_path.write_bytes(b"AZUREAD_CID=0b5c\x1b[2J\rx\nAZUREAD_CIS=\x1b[0mabcdefghijklmnop\n")
    settings_path.chmod(0o600)
    text = run("show")
    assert text.exit_code == 0
    assert "AZUREAD_CID:  0b5c\\x1b[2J\\rx\n" in text.stdout
    assert "AZUREAD_CIS:  \\x1b[0… (masked" in text.stdout
    assert "\x1b" not in text.stdout and "\r" not in text.stdout


def test_show_missing_file(run):
    data = json.loads(run("show", "--json").stdout)
    assert (data["exists"], data["client_id"], data["secret"]) == (False, None, None)


def test_check_exit_codes_and_json(run, settings_path):
    settings_path.write_text(GOOD)
    os.chmod(settings_path, 0o600)
    ok = run("check")
    assert ok.exit_code == 0, ok.stdout
    settings_path.write_text(f"AZUREAD_CID={CLIENT_ID}\nAZUREAD_CIS={SECRET_ID}\n")
    bad = run("check", "--json")
    assert bad.exit_code == 1
    report = json.loads(bad.stdout)
    assert report["ok"] is False and report["errors"] == 1
    assert report["findings"][0]["code"] == "secret-is-secret-id"
    assert set(report["findings"][0]) == {"code", "severity", "key", "line", "message",
                                          "repairable"}


UNREADABLE_EXPIRY = {
    "truncated": b'{"expires": "2099-01-31", "secret_hi',
    "hand-edited": json.dumps({"expires": "31/01/2099", "secret_hint": SECRET[:3],
                               "secret_length": len(SECRET)}).encode(),
    "wrong-types": json.dumps({"expires": "2099-01-31", "secret_hint": SECRET[:3],
                               "secret_length": "40"}).encode(),
    "newer-version": json.dumps({"version": 2, "expires": "2099-01-31T00:00:00Z"}).encode(),
}


@pytest.mark.parametrize("content", list(UNREADABLE_EXPIRY.values()),
                         ids=list(UNREADABLE_EXPIRY))
def test_an_unreadable_expiry_record_is_an_error_for_check_and_status_and_show_shows(
        run, root, settings_path, content):
    set_good(run)
    record = root / "var/lib/onedesk-azuread/expiry.json"
    record.write_bytes(content)
    record.chmod(0o600)
    fix = "onedesk-azuread set --expires YYYY-MM-DD"

    checked = run("check")
    assert checked.exit_code == 1
    assert checked.stdout.count("\n") == 1 and f"{settings_path}: error: " in checked.stdout
    assert "recorded expiry cannot be read" in checked.stdout
    assert str(record) in checked.stdout and fix in checked.stdout
    assert "the entries are correct" in checked.stderr
    report = json.loads(run("check", "--json").stdout)
    assert report["ok"] is False and report["errors"] == 1
    assert [f["code"] for f in report["findings"]] == ["expiry-unreadable"]

    now = run("status")
    assert now.exit_code == 1
    assert "1 error(s) (expiry-unreadable); run: onedesk-azuread check" in now.stdout
    assert "expires:   unknown: the record cannot be read" in now.stdout
    assert json.loads(run("status", "--json").stdout)["errors"] == ["expiry-unreadable"]

    shown = run("show")
    assert shown.exit_code == 0, shown.stderr
    assert CLIENT_ID in shown.stdout and f"{SECRET[:3]}… (masked" in shown.stdout
    assert f"expires:      unknown: {record}: " in shown.stdout and fix in shown.stdout
    data = json.loads(run("show", "--json").stdout)
    assert (data["client_id"], data["expires"]) == (CLIENT_ID, None)
    assert data["expiry_error"].startswith(f"{record}: ")
    for result in (checked, now, shown):
        no_secret_in(result)
    assert record.read_bytes() == content  # reported, never rewritten or removed


def test_check_fix_repairs_windows_line_endings_mode_and_owner(run, settings_path):
    other = b"DB_HOST=db1\r\n# comment\r\n"
    settings_path.write_bytes(other + f"AZUREAD_CID = {{{CLIENT_ID}}}\r\n"
                                      f"AZUREAD_CIS='{SECRET}'\r\n".encode())
    os.chmod(settings_path, 0o644)
    assert run("check").exit_code == 1
    before = settings_path.read_bytes()
    result = run("check", "--fix")
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "repaired: crlf" in result.stderr
    assert settings_path.read_bytes() == other + GOOD.encode()
    assert stat.S_IMODE(settings_path.stat().st_mode) == 0o600
    assert (settings_path.parent / ".OneDesk.bak").read_bytes() == before
    assert bash_reads(settings_path, "AZUREAD_CID", "AZUREAD_CIS") == [CLIENT_ID, SECRET]
    no_secret_in(result)


def test_check_fix_leaves_what_it_cannot_repair(run, settings_path):
    settings_path.write_text(f"AZUREAD_CID={CLIENT_ID}\r\nAZUREAD_CIS={SECRET_ID}\n")
    result = run("check", "--fix", "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["repaired"] == ["crlf", "file-mode"]
    assert [f["code"] for f in report["findings"]] == ["secret-is-secret-id"]


def test_file_option_names_the_file(tmp_path):
    target = tmp_path / "custom.env"
    run = Cli(tmp_path)  # with --root: the state and its lock stay under tmp_path, not the host's
    result = run("--file", str(target), "set", "--client-id", CLIENT_ID, "--secret-stdin",
                 input=SECRET)
    assert result.exit_code == 0, result.stderr
    assert bash_reads(target, "AZUREAD_CIS") == [SECRET]
    assert (tmp_path / "var/lib/onedesk-azuread/lock").is_file()


def test_app_registration(run):
    text = run("app-registration", "--url", "https://helpdesk.example.com")
    assert text.exit_code == 0
    assert "https://helpdesk.example.com/integrations/office365/oauth2redirectWithAuthCode" \
        in text.stdout
    assert "https://helpdesk.example.com/integrations/azuread/token" in text.stdout
    manifest = json.loads(run("app-registration", "--url", "https://h.example", "--json").stdout)
    access = manifest["requiredResourceAccess"][0]
    assert access["resourceAppId"] == "00000003-0000-0000-c000-000000000000"
    assert len(access["resourceAccess"]) == 11
    assert {"id": "e1fe6dd8-ba31-4d61-89e7-88639da4683d", "type": "Scope"} \
        in access["resourceAccess"]
    assert manifest["optionalClaims"] == {"idToken": [{"name": "email", "essential": False}]}
    assert manifest["signInAudience"] == "AzureADMultipleOrgs"
    script = run("app-registration", "--url", "https://h.example:8443", "--az").stdout
    assert "az ad sp create" in script and "--append" in script
    assert "--secret-stdin" in script and "https://h.example:8443/integrations" in script


def test_the_registration_script_records_the_last_day_the_secret_works(run, tmp_path):
    """Run the --az script with stand-ins for az and onedesk-azuread that log their arguments:
    az ends the secret at 00:00 UTC of --end-date, so the expiry recorded is the day before."""
    import subprocess
    from datetime import date, timedelta

    from onedesk_azuread import rotate

    script = tmp_path / "register.sh"
    script.write_text(run("app-registration", "--url", "https://h.example", "--az").stdout)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls"
    (bin_dir / "az").write_text(f"#!/bin/sh\nprintf '%s\\n' \"az $*\" >> {log}\n"
                                "case \"$*\" in *'app create'*) echo APPID;; "
                                "*'credential reset'*) echo SECRET-VALUE;; esac\n")
    (bin_dir / "onedesk-azuread").write_text(f"#!/bin/sh\ncat > /dev/null\n"
                                             f"printf '%s\\n' \"set $*\" >> {log}\n")
    for stub in bin_dir.iterdir():
        stub.chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    done = subprocess.run(["sh", str(script)], env=env, capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    calls = log.read_text().splitlines()
    reset = next(c for c in calls if "credential reset" in c).split()
    stored = next(c for c in calls if c.startswith("set ")).split()
    end = date.fromisoformat(reset[reset.index("--end-date") + 1])
    today = date.today()
    assert abs((end - rotate.add_years(today, 2)).days) <= 1  # 29 February: 1 March or 28
    assert stored[stored.index("--expires") + 1] == (end - timedelta(days=1)).isoformat()
    # Named as rotate names its secrets, so rotate --retire-old knows it for this server's.
    name = next(c for c in calls if "credential reset" in c).split("--display-name ")[1]
    assert name.startswith(f"onedesk-azuread {rotate.server_name()} {today.isoformat()}")


@pytest.mark.parametrize("url", ["http://h.example", "https://", "https://h.example/onedesk",
                                 "h.example"])
def test_app_registration_rejects_bad_urls(run, url):
    result = run("app-registration", "--url", url)
    assert result.exit_code == 2
    assert "--url" in result.stderr


OTHER_LINES = st.lists(st.one_of(
    st.sampled_from(["# comment\n", "\n", "DB_HOST=db.local\n", "export PATH_X=/opt/x\n",
                     "WIN=1\r\n", "Q='multi\nAZUREAD_CIS=inside-a-quote\nline'\n",
                     'D="x # y"\n', "  # indented AZUREAD_CID=no\n", "NOEOL=1"]),
    st.from_regex(r"[A-Z][A-Z0-9_]{0,8}=[a-z0-9]{0,8}\n", fullmatch=True),
), max_size=8)
SECRETS = st.text(st.characters(codec="utf-8", blacklist_characters="\n\x00",
                                blacklist_categories=("Cs",)), min_size=1, max_size=64) | \
    st.text(st.sampled_from("'\"$`\\ #~:-abcQ9\t"), min_size=1, max_size=30)


@settings(max_examples=120, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(before=OTHER_LINES, after=OTHER_LINES, old=st.booleans(), secret=SECRETS)
def test_bash_reads_back_exactly_the_secret_and_other_lines_are_kept(tmp_path, before, after,
                                                                     old, secret):
    path = tmp_path / "root" / ".OneDesk"
    path.parent.mkdir(exist_ok=True)
    before = [line if line.endswith("\n") else line + "\n" for line in before]
    ours = ["AZUREAD_CIS='old value'\n"] if old else []
    path.write_bytes("".join(before + ours + after).encode())
    result = Cli(tmp_path)("set", "--secret-stdin", "--force", input=secret)
    assert result.exit_code == 0, result.stderr
    if old:
        expected = "".join(before) + f"AZUREAD_CIS={_quoted(secret)}\n" + "".join(after)
    else:
        rest = "".join(before + after)
        sep = "\n" if rest and not rest.endswith("\n") else ""
        expected = rest + sep + f"AZUREAD_CIS={_quoted(secret)}\n"
    assert path.read_bytes() == expected.encode()
    assert bash_reads(path, "AZUREAD_CIS") == [secret.rstrip("\r\n")]


def _quoted(value):
    return quote(value.rstrip("\r\n"))


def test_show_says_when_an_entry_is_not_a_literal_value(run, settings_path):
    settings_path.write_text(f"AZUREAD_CID={CLIENT_ID}\nAZUREAD_CIS=$SECRET_FROM_ELSEWHERE\n")
    result = run("show")
    assert "AZUREAD_CIS:  present, but not a literal value" in result.stdout
    assert json.loads(run("show", "--json").stdout)["secret"] is None


# --- set prints the owner and mode warnings check prints

def _file_warnings(text):
    return sorted(line for line in text.splitlines() if "warning: the file" in line)


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root (CI runs as root)")
def test_set_prints_the_mode_and_owner_warnings_check_prints(run, settings_path):
    settings_path.write_text(GOOD)
    os.chmod(settings_path, 0o644)
    os.chown(settings_path, 1000, 1000)
    checked = run("check")
    expected = _file_warnings(checked.stdout)
    assert len(expected) == 2  # file-mode and file-owner
    unchanged = run("set", "--client-id", CLIENT_ID, "--secret-stdin", input=SECRET)
    assert unchanged.exit_code == 0 and "unchanged" in unchanged.stderr
    assert _file_warnings(unchanged.stderr) == expected
    # A write leaves mode 0600 and keeps the owner: then only the owner warning is true.
    written = run("set", "--secret-stdin", input=OTHER_SECRET)
    assert written.exit_code == 0, written.stderr
    assert _file_warnings(written.stderr) == _file_warnings(run("check").stdout)
    assert [w for w in _file_warnings(written.stderr) if "owned by uid 1000" in w]
    assert not [w for w in _file_warnings(written.stderr) if "(mode " in w]


# --- --expires takes exactly YYYY-MM-DD on every Python

@pytest.mark.parametrize("given", [
    "20991201",  # Python 3.11+'s date.fromisoformat takes these three
    "2099-W48-2",
    "2099-W48",
    "2099-12-01T00:00",
    "2099-12-1",
    " 2099-12-01",
    "\uff12\uff10\uff19\uff19-12-01",  # fullwidth digits
])
def test_expires_takes_only_yyyy_mm_dd(run, settings_path, given):
    set_good(run)
    before = settings_path.read_bytes()
    result = run("set", "--expires", given)
    assert result.exit_code == 2, result.stderr
    assert "is not a date written YYYY-MM-DD" in result.stderr
    assert settings_path.read_bytes() == before
    assert json.loads(run("show", "--json").stdout)["expires"] is None


# --- Closed stdin, stdout or stderr: no traceback, and the exit status tells the truth -------

MAIN = "import sys; from onedesk_azuread.cli import main; sys.argv[0] = 'onedesk-azuread'; main()"


def closed(root, redirections, *args, stdin=None):
    """Run the real CLI with some of fds 0-2 closed, through bash (`>&-`, `2>&-`, `<&-`)."""
    import shlex
    import subprocess
    import sys

    command = " ".join(shlex.quote(a) for a in [sys.executable, "-c", MAIN, "--root", str(root),
                                                *args])
    return subprocess.run(["bash", "-c", f"exec {command} {redirections}"], input=stdin,
                          capture_output=True, text=True, timeout=60, check=False)


def no_traceback(proc):
    assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr
    no_secret = SECRET not in proc.stdout + proc.stderr
    assert no_secret


@pytest.mark.parametrize("args", [("show",), ("show", "--json"), ("check", "--json")])
def test_a_closed_stdout_is_an_error_when_there_was_output(root, settings_path, args):
    settings_path.write_text(GOOD)
    settings_path.chmod(0o600)
    proc = closed(root, ">&-", *args)
    no_traceback(proc)
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot write the output to stdout" in lines[0], lines


def test_check_with_a_closed_stdout_says_the_findings_were_not_written(root, settings_path):
    settings_path.write_text(f"AZUREAD_CID={CLIENT_ID}\nAZUREAD_CIS={SECRET}\n")
    settings_path.chmod(0o644)  # a warning: check would print it on stdout and exit 0
    proc = closed(root, ">&-", "check")
    no_traceback(proc)
    assert proc.returncode == 1
    assert "cannot write the output to stdout" in proc.stderr


def test_check_with_nothing_to_print_on_stdout_still_succeeds(root, settings_path):
    settings_path.write_text(GOOD)
    settings_path.chmod(0o600)
    proc = closed(root, ">&-", "check")
    no_traceback(proc)
    assert proc.returncode == 0, proc.stderr  # its verdict is on stderr and in the status
    assert proc.stderr.strip().endswith(": OK")


@pytest.mark.parametrize("args, code", [(("show",), 0), (("check",), 0),
                                        (("set", "--client-id", "not-a-guid"), 1)])
def test_a_closed_stderr_keeps_the_exit_status(root, settings_path, args, code):
    settings_path.write_text(GOOD)
    settings_path.chmod(0o600)
    proc = closed(root, "2>&-", *args)
    assert proc.returncode == code
    assert "Traceback" not in proc.stdout
    if args == ("show",):
        assert CLIENT_ID in proc.stdout


def test_set_secret_stdin_with_stdin_closed_refuses_in_one_line(root, settings_path):
    proc = closed(root, "<&-", "set", "--client-id", CLIENT_ID, "--secret-stdin")
    no_traceback(proc)
    assert proc.returncode == 2
    assert "cannot read the secret from stdin" in proc.stderr
    assert not settings_path.exists()


def test_set_without_options_and_stdin_closed_refuses(root, settings_path):
    proc = closed(root, "<&-", "set")
    no_traceback(proc)
    assert proc.returncode == 2
    assert "cannot ask" in proc.stderr
    assert not settings_path.exists()


@pytest.mark.parametrize("redirections", ["2>&-", ">&- 2>&-"])
def test_set_secret_stdin_with_stdout_and_stderr_closed_still_writes(root, settings_path,
                                                                      redirections):
    proc = closed(root, redirections, "set", "--client-id", CLIENT_ID, "--secret-stdin",
                  stdin=SECRET)
    assert proc.returncode == 0  # set prints nothing on stdout; its messages are lost, not lies
    assert bash_reads(settings_path, "AZUREAD_CID", "AZUREAD_CIS") == [CLIENT_ID, SECRET]
    # No file the tool opened became fd 1 or 2: nothing but our two lines in the file.
    assert settings_path.read_text() == GOOD


def test_everything_closed_is_an_error_and_changes_nothing(root, settings_path):
    settings_path.write_text(GOOD)
    before = settings_path.read_bytes()
    proc = closed(root, "<&- >&- 2>&-", "set", "--secret-stdin")
    assert proc.returncode == 2
    assert settings_path.read_bytes() == before


def test_check_fix_on_a_missing_file_creates_none(run, settings_path):
    result = run("check", "--fix")
    assert result.exit_code == 1  # both entries missing
    assert not settings_path.exists()


# --- The real command in a process: what bash accepts, the locale an admin has ---------------

def process(root, *args, env=None):
    """`onedesk-azuread --root ROOT ARGS` as a process of its own (no CliRunner)."""
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-c", MAIN, "--root", str(root), *args],
                          capture_output=True, timeout=120, check=False, env=env)


def test_a_line_nested_hundreds_deep_is_one_finding_not_a_traceback(root, settings_path):
    deep = "X=" + "$(echo " * 500 + "hi" + ")" * 500  # bash -n accepts it
    settings_path.write_text(f"AZUREAD_CID={CLIENT_ID}\n{deep}\nAZUREAD_CIS={SECRET}\n")
    os.chmod(settings_path, 0o600)
    checked = process(root, "check")
    assert checked.returncode == 1, checked.stderr
    assert b"Traceback" not in checked.stderr + checked.stdout
    assert checked.stdout.decode().splitlines()[0] == (
        f"{settings_path}:2: error: this tool cannot follow the file here (more than 64 levels "
        f"of $( ), ${{ }}, quotes, arrays or parentheses nested), though bash may: it "
        f"reports no value set from this statement on and changes nothing in this file. Fix: "
        f"simplify that statement by hand (bash -n FILE checks it)")
    shown = process(root, "show")
    assert shown.returncode == 0 and shown.stderr == b""
    assert f"AZUREAD_CID:  {CLIENT_ID}" in shown.stdout.decode()
    written = process(root, "set", "--client-id", CLIENT_ID.replace("0", "1"))
    assert written.returncode == 1 and b"Traceback" not in written.stderr
    assert written.stderr.decode().splitlines() == [
        f"Error: {settings_path}:2: not changed: this tool cannot follow the file here (more "
        f"than 64 levels of $( ), ${{ }}, quotes, arrays or parentheses nested); simplify "
        f"that statement by hand (bash -n FILE checks it), then run the command again"]


@pytest.fixture(scope="session")
def latin1_locale(tmp_path_factory):
    """A real legacy 8-bit locale, en_US.ISO-8859-1, made with localedef into a private
    directory (LOCPATH): the host's locales stay untouched. Its sources are Debian's
    `locales` package (EL: glibc-locale-source), which tools/system-deps.sh installs."""
    import subprocess
    import sys

    where = tmp_path_factory.mktemp("locale")
    made = subprocess.run(["localedef", "-i", "en_US", "-f", "ISO-8859-1",
                           str(where / "en_US.ISO-8859-1")], capture_output=True, text=True,
                          check=False)
    env = {"PATH": os.environ["PATH"], "LOCPATH": str(where), "LANG": "en_US.ISO-8859-1"}
    python = subprocess.run([sys.executable, "-c", "import sys; print(sys.stdout.encoding)"],
                            env=env, capture_output=True, text=True, check=False)
    assert python.stdout.strip() == "iso8859-1", (
        f"localedef could not make en_US.ISO-8859-1 ({made.stderr.strip()}): install the "
        f"locale sources (sh tools/system-deps.sh)")
    return env


@pytest.mark.parametrize("locale", ["ISO-8859-1", "C", "C.UTF-8"])
def test_every_locale_prints_what_it_can_and_never_a_traceback(tmp_path, locale,
                                                               latin1_locale):
    root = tmp_path / "srv-é€"  # in argv: bytes the locale decodes, and prints back as they came
    (root / "root").mkdir(parents=True)
    settings_path = root / "root" / ".OneDesk"
    settings_path.write_text(f"AZUREAD_CID=0b5c€\nAZUREAD_CIS={SECRET}\n", encoding="utf-8")
    os.chmod(settings_path, 0o600)
    chosen = {"ISO-8859-1": latin1_locale, "C": {"LC_ALL": "C"},
              "C.UTF-8": {"LANG": "C.UTF-8"}}[locale]
    env = {"PATH": os.environ["PATH"], **chosen}  # no PYTHONIOENCODING, no PYTHONUTF8
    encoding = "iso-8859-1" if locale == "ISO-8859-1" else "utf-8"
    shown = process(root, "show", env=env)
    assert shown.returncode == 0 and shown.stderr == b""
    lines = shown.stdout.decode(encoding).splitlines()
    # A character the locale cannot show is written as its escape, the rest as it is.
    cid = "0b5c\\u20ac" if locale == "ISO-8859-1" else "0b5c€"
    assert lines[1] == f"AZUREAD_CID:  {cid}"
    assert os.fsencode(str(settings_path)) in shown.stdout  # the name, byte for byte
    checked = process(root, "check", env=env)
    assert checked.returncode == 1
    assert b"Traceback" not in checked.stderr
    assert f"{settings_path}:1: error: AZUREAD_CID is not a GUID".encode() in checked.stdout
    assert checked.stderr.decode(encoding).endswith("OneDesk would not get correct Azure AD "
                                                    "values\n")
