"""Fleet-ready output: --json with "changed" on every command that changes something, the
same exit codes on every run, --quiet and --verbose; and the library's shape behind them
(check --online's skip policy, show's light imports)."""

import json
import subprocess
import sys

from onedesk_azuread import cli as cli_module
from onedesk_azuread import verify

from .conftest import CLIENT_ID, SECRET

GOOD = f"AZUREAD_CID={CLIENT_ID}\nAZUREAD_CIS={SECRET}\n"
SHOW_FIELDS = {"file", "exists", "mode", "owner", "client_id", "secret", "secret_revealed",
               "expires", "expiry_error"}


def as_json(result):
    assert result.stdout.count("\n") > 1 and result.stdout.lstrip().startswith("{")
    return json.loads(result.stdout)


def test_set_json_reports_changed_then_not_with_the_same_exit_code(run, settings_path):
    args = ("set", "--client-id", CLIENT_ID, "--secret-stdin", "--expires", "2099-01-31",
            "--json")
    first = run(*args, input=SECRET)
    second = run(*args, input=SECRET)
    assert (first.exit_code, second.exit_code) == (0, 0), first.stderr + second.stderr
    one, two = as_json(first), as_json(second)
    assert one["changed"] is True and two["changed"] is False
    assert SHOW_FIELDS <= set(one) and one["secret"] == SECRET[:3] + "…"
    assert one["client_id"] == CLIENT_ID and one["mode"] == "0600"
    assert one["changes"] == {"AZUREAD_CID": "added", "AZUREAD_CIS": "added"}
    assert two["changes"] == {"AZUREAD_CID": "unchanged", "AZUREAD_CIS": "unchanged"}
    assert one["expires"] == "2099-01-31" and one["expiry_recorded"] == "2099-01-31"
    for result in (first, second):
        assert SECRET not in result.stdout + result.stderr
    assert settings_path.read_text() == GOOD


def test_recording_only_a_new_expiry_is_a_change(run):
    run("set", "--client-id", CLIENT_ID, "--secret-stdin", input=SECRET)
    again = as_json(run("set", "--expires", "2099-01-31", "--json"))
    assert again["changed"] is True and again["written"] is False


def test_unset_json_reports_changed_then_not(run, settings_path):
    settings_path.write_text("OTHER=1\n" + GOOD)
    first, second = run("unset", "--json"), run("unset", "--json")
    assert (first.exit_code, second.exit_code) == (0, 0)
    assert as_json(first)["changed"] is True and as_json(second)["changed"] is False
    assert as_json(second)["client_id"] is None and settings_path.read_text() == "OTHER=1\n"


def test_check_fix_json_reports_changed_then_not(run, settings_path):
    settings_path.write_text(GOOD.replace("\n", "\r\n"))
    settings_path.chmod(0o644)
    first, second = run("check", "--fix", "--json"), run("check", "--fix", "--json")
    assert (first.exit_code, second.exit_code) == (0, 0), first.stdout
    one, two = as_json(first), as_json(second)
    assert one["changed"] is True and {"crlf", "file-mode"} <= set(one["repaired"])
    assert two["changed"] is False and two["repaired"] == []
    assert SHOW_FIELDS <= set(two) and two["mode"] == "0600"
    assert settings_path.read_text() == GOOD


def test_check_json_without_fix_has_no_changed(run, settings_path):
    settings_path.write_text(GOOD)
    assert "changed" not in as_json(run("check", "--json"))


def test_online_is_skipped_by_the_library_when_offline_errors_exist(run, settings_path):
    settings_path.write_text(f"AZUREAD_CID={CLIENT_ID}\n")  # no secret: an error
    # Were the network asked, the test's guard would refuse it and the status would be
    # "unverified", exit 3.
    result = run("check", "--online", "--tenant", "contoso.com", "--json")
    assert result.exit_code == 1
    online = as_json(result)["online"]
    assert online["status"] == verify.SKIPPED == "skipped"
    text = run("check", "--online", "--tenant", "contoso.com")
    assert "online: skipped: not asked: fix the errors above first" in text.stderr


def test_quiet_keeps_errors_only_and_verbose_names_the_files(run, settings_path):
    quiet = run("--quiet", "set", "--client-id", CLIENT_ID, "--secret-stdin", input=SECRET)
    assert quiet.exit_code == 0 and quiet.stderr == "" and quiet.stdout == ""
    assert settings_path.read_text() == GOOD
    refused = run("-q", "set", "--client-id", "not-a-guid")
    assert refused.exit_code == 1 and "not changed" in refused.stderr
    assert "client-id" in refused.stderr or "AZUREAD_CID" in refused.stderr
    verbose = run("--verbose", "show")
    assert verbose.exit_code == 0 and f"settings file: {settings_path}" in verbose.stderr
    assert run("-q", "-v", "show").exit_code == 2


def test_the_cli_knows_the_clouds_and_the_timeout_without_importing_verify():
    assert cli_module.CLOUDS == tuple(verify.CLOUDS)
    assert cli_module.DEFAULT_TIMEOUT == verify.DEFAULT_TIMEOUT


def test_show_imports_neither_verify_nor_tempfile_nor_bash_nor_json_unless_needed(tmp_path):
    # (json: only to read a recorded expiry, and none is recorded here)
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / ".OneDesk").write_text(GOOD)
    # What `show` itself imports: not what this version of click imports anyway (older
    # ones import tempfile).
    probe = ("import sys\n"
             "import click\n"
             "mine = set(sys.modules)\n"
             "from onedesk_azuread import cli\n"
             "sys.argv = ['onedesk-azuread', '--root', sys.argv[1], 'show']\n"
             "try:\n    cli.main()\nexcept SystemExit:\n    pass\n"
             "names = ('onedesk_azuread.verify', 'onedesk_azuread.registration', 'msal',\n"
             "         'onedesk_azuread.status', 'onedesk_azuread.apply', 'tempfile',\n"
             "         'onedesk_azuread.bashcheck', 'json')\n"
             "sys.stderr.write(repr([n for n in names if n in set(sys.modules) - mine]))\n")
    done = subprocess.run([sys.executable, "-c", probe, str(tmp_path)], check=False,
                          capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stderr.endswith("[]"), done.stderr
    assert "AZUREAD_CIS:  Xk7… (masked" in done.stdout
