"""The dnf plugin and the CLI's status/apply with real rpm, rpmbuild, createrepo_c and dnf.

Each scenario asserts on what the fixture packages' install scripts recorded and
on the root's package set (`rpm --root ... -qa`), not only on exit codes.
"""

import json
import os
import stat

import pytest

from .conftest import CLIENT_ID, GOOD, OTHER_SECRET, SECRET, SECRET_ID
from .rpmbed import ONEDESK, cli


@pytest.fixture
def root(new_root):
    return new_root()


def assert_no_secret(root, *outputs, secret=SECRET):
    for text in outputs + (root.logs(),):
        assert secret not in text


def test_valid_entries_reach_the_install_script_exactly(root):
    root.write_settings(GOOD)
    result = root.dnf("install", "onedesk-db-utils-1.0")
    assert root.installed() == ["onedesk-db-utils-1.0-1"]
    seen = root.seen("onedesk-db-utils")
    # Never exported: the script gets the values from the file it sources.
    assert (seen["env_cid"], seen["env_cis"], seen["sourced_cis"]) == (None, None, SECRET)
    assert seen["file"] == GOOD and seen["args"] == ["1"]
    applied = os.path.join(root.path, "var/lib/onedesk-azuread/applied.json")
    assert stat.S_IMODE(os.stat(applied).st_mode) == 0o600
    record = json.load(open(applied))
    assert record["packages"] == ["onedesk-db-utils-1.0-1.noarch"]
    assert SECRET not in open(applied).read() and CLIENT_ID not in open(applied).read()
    assert ("is validated and canonical for the install scripts of "
            "onedesk-db-utils-1.0-1.noarch") in result.stdout + result.stderr
    assert_no_secret(root, result.stdout, result.stderr)


@pytest.mark.parametrize("text, words", [
    (f"AZUREAD_CID={CLIENT_ID}\nAZUREAD_CIS={SECRET_ID}\n",
     "the Secret ID was pasted, not the Secret Value"),
    (f"AZUREAD_CID=onedesk-app\nAZUREAD_CIS={SECRET}\n", "AZUREAD_CID is not a GUID"),
    (f"AZUREAD_CID={CLIENT_ID}\n", "AZUREAD_CIS is not set"),
])
def test_invalid_entries_stop_dnf_before_anything_is_installed(root, text, words):
    root.dnf("install", "unrelated-tool")
    root.write_settings(text)
    before = open(root.settings).read()
    result = root.dnf("install", *ONEDESK, "unrelated-tool", check=False)
    assert result.returncode == 1
    output = result.stdout + result.stderr
    assert "Error: onedesk-azuread:" in output and words in output
    assert "onedesk-azuread set" in output  # the command that fixes it
    assert "Traceback" not in output
    assert root.installed() == ["unrelated-tool-1-1"]  # the package set is unchanged
    assert root.seen("onedesk-db-utils")["runs"] == 0
    assert open(root.settings).read() == before


def test_require_stops_a_transaction_without_entries(new_root):
    root = new_root(require=True)
    root.write_settings("OTHER_SETTING=1\n")
    result = root.dnf("install", "onedesk-db-utils", check=False)
    assert result.returncode == 1
    assert "no Azure AD entries and require = 1" in result.stdout + result.stderr
    assert root.installed() == []


def test_without_require_no_entries_installs_without_azure_ad(root):
    root.write_settings("OTHER_SETTING=1\n")
    result = root.dnf("install", "onedesk-db-utils")
    assert "has no Azure AD entries" in result.stdout + result.stderr
    assert root.installed() == ["onedesk-db-utils-2.0-1"]
    assert root.seen("onedesk-db-utils")["sourced_cis"] == ""
    assert not os.path.exists(os.path.join(root.path, "var/lib/onedesk-azuread/applied.json"))


def test_windows_quoted_and_braced_entries_reach_the_script_canonical(root):
    messy = (f"OTHER_SETTING=kept\r\nexport AZUREAD_CID = '{{{CLIENT_ID}}}'\r\n"
             f'AZUREAD_CIS="{SECRET}"\r\n')
    root.write_settings(messy, mode=0o644)
    result = root.dnf("install", "onedesk-db-utils")
    seen = root.seen("onedesk-db-utils")
    assert (seen["env_cid"], seen["env_cis"], seen["sourced_cis"]) == (None, None, SECRET)
    assert seen["file"] == f"OTHER_SETTING=kept\r\nAZUREAD_CID={CLIENT_ID}\nAZUREAD_CIS={SECRET}\n"
    assert stat.S_IMODE(os.stat(root.settings).st_mode) == 0o600
    assert open(root.settings + ".bak", newline="").read() == messy
    output = result.stdout + result.stderr
    assert "repaired crlf" in output and "repaired client-id-braces" in output
    assert_no_secret(root, output)


def test_unrelated_transactions_are_untouched(root):
    root.write_settings(f"AZUREAD_CID={CLIENT_ID}\nAZUREAD_CIS={SECRET_ID}\n", mode=0o644)
    before = open(root.settings).read()
    result = root.dnf("install", "unrelated-tool")
    assert "onedesk-azuread" not in result.stdout + result.stderr
    assert root.installed() == ["unrelated-tool-1-1"]
    assert open(root.settings).read() == before
    assert stat.S_IMODE(os.stat(root.settings).st_mode) == 0o644
    assert not os.path.exists(os.path.join(root.path, "var/lib/onedesk-azuread"))


def test_upgrade_downgrade_and_reinstall_are_guarded_and_carry_the_values(root):
    root.write_settings(GOOD)
    root.dnf("install", "onedesk-db-utils-1.0")
    root.dnf("upgrade", "onedesk-db-utils")
    assert root.installed() == ["onedesk-db-utils-2.0-1"]
    root.dnf("downgrade", "onedesk-db-utils")
    assert root.installed() == ["onedesk-db-utils-1.0-1"]
    root.dnf("reinstall", "onedesk-db-utils")
    seen = root.seen("onedesk-db-utils")
    assert seen["args"] == ["1", "2", "2", "2"]  # $1: fresh install, then upgrade-like
    assert seen["runs"] == 4 and seen["sourced_cis"] == SECRET
    record = json.load(open(os.path.join(root.path, "var/lib/onedesk-azuread/applied.json")))
    assert record["packages"] == ["onedesk-db-utils-1.0-1.noarch"]
    root.write_settings(f"AZUREAD_CID={CLIENT_ID}\nAZUREAD_CIS={SECRET_ID}\n")
    for action in ("upgrade", "reinstall"):
        blocked = root.dnf(action, "onedesk-db-utils", check=False)
        assert blocked.returncode == 1, action
        assert "Secret ID was pasted" in blocked.stdout + blocked.stderr
    assert root.installed() == ["onedesk-db-utils-1.0-1"]
    assert root.seen("onedesk-db-utils")["runs"] == 4


def test_removal_is_never_blocked(root):
    root.write_settings(GOOD)
    root.dnf("install", *ONEDESK)
    root.write_settings(f"AZUREAD_CID={CLIENT_ID}\nAZUREAD_CIS={SECRET_ID}\n")
    root.dnf("remove", "onedesk-db-utils")  # takes the three siblings with it
    assert root.installed() == []


def test_a_settings_file_that_cannot_be_read_is_one_clear_line(root):
    os.makedirs(root.settings)
    result = root.dnf("install", "onedesk-db-utils", check=False)
    assert result.returncode == 1
    output = result.stdout + result.stderr
    assert "Error: onedesk-azuread:" in output and "is a directory" in output
    assert "Traceback" not in output
    assert root.installed() == []


def test_status_before_and_after(root):
    root.write_settings(GOOD)
    first = cli(root, "status", "--json")
    assert first.exit_code == 1
    assert json.loads(first.stdout)["state"] == "not installed"
    root.dnf("install", *ONEDESK)
    synced = cli(root, "status")
    assert synced.exit_code == 0, synced.stdout
    assert "in sync" in synced.stdout and "onedesk-webapps-2.0-1.noarch" in synced.stdout
    assert cli(root, "set", "--secret-stdin", input=OTHER_SECRET).exit_code == 0
    pending = cli(root, "status", "--json")
    assert pending.exit_code == 1
    report = json.loads(pending.stdout)
    assert report["state"] == "pending" and report["valid"] is True
    assert report["installed"]["onedesk-customerapps"] == "onedesk-customerapps-2.0-1.noarch"
    text = cli(root, "status").stdout
    assert "run `onedesk-azuread apply`" in text
    assert_no_secret(root, text, secret=OTHER_SECRET)


def test_status_never_applied(new_root):
    root = new_root(plugin=False)
    root.write_settings(GOOD)
    root.dnf("install", "onedesk-db-utils")
    assert json.loads(cli(root, "status", "--json").stdout)["state"] == "never applied"


def test_apply_end_to_end_with_a_fresh_install_only_package(new_root):
    root = new_root(repo="fresh")
    root.write_settings(GOOD)
    root.dnf("install", *ONEDESK)
    assert root.seen("onedesk-db-utils")["sourced_cis"] == SECRET
    assert cli(root, "set", "--secret-stdin", input=OTHER_SECRET).exit_code == 0
    # A plain reinstall would not do: this db-utils applies settings only when $1 = 1.
    root.dnf("reinstall", "onedesk-db-utils")
    assert root.seen("onedesk-db-utils")["sourced_cis"] == SECRET
    dry = cli(root, "apply", "--dry-run")
    assert dry.exit_code == 0 and "remove -y --noautoremove onedesk-db-utils" in dry.stdout
    assert root.installed() == sorted(["onedesk-db-utils-2.0-1.fresh"] +
                                      [f"{n}-2.0-1" for n in ONEDESK[1:]])
    result = cli(root, "apply", "--yes")
    assert result.exit_code == 0, result.stderr
    assert "done: in sync" in result.stderr
    seen = root.seen("onedesk-db-utils")
    assert seen["args"][-1] == "1" and seen["sourced_cis"] == OTHER_SECRET
    assert root.seen("onedesk-webapps")["sourced_cis"] == OTHER_SECRET
    assert sorted(p.rsplit("-", 2)[0] for p in root.installed()) == sorted(ONEDESK)
    assert cli(root, "status").exit_code == 0
    assert_no_secret(root, result.stdout, result.stderr, secret=OTHER_SECRET)


def test_apply_removes_nothing_when_a_package_cannot_come_back(root):
    root.write_settings(GOOD)
    root.dnf("install", *ONEDESK)
    before = root.installed()
    root.set_repo("partial")
    result = cli(root, "apply", "--yes")
    assert result.exit_code == 1
    assert "nothing was removed" in result.stderr
    assert "onedesk-customerapps" in result.stderr
    assert root.installed() == before


def test_apply_refuses_bad_entries_before_touching_packages(root):
    root.write_settings(GOOD)
    root.dnf("install", *ONEDESK)
    before = root.installed()
    root.write_settings(f"AZUREAD_CID={CLIENT_ID}\nAZUREAD_CIS={SECRET_ID}\n")
    result = cli(root, "apply", "--yes")
    assert result.exit_code == 1
    assert "Secret ID was pasted" in result.stderr
    assert "--force" not in result.stderr  # apply has no --force to offer
    assert "(fix them first)" in result.stderr
    assert root.installed() == before


def test_apply_refuses_a_secret_recorded_as_expired_but_dnf_only_warns(root):
    from datetime import date, timedelta

    from onedesk_azuread import state

    root.write_settings(GOOD)
    root.dnf("install", *ONEDESK)
    before = root.installed()
    past = date.today() - timedelta(days=1)
    state.save_expiry(os.path.join(root.path, "var/lib/onedesk-azuread"), SECRET, past)
    result = cli(root, "apply", "--yes")
    assert result.exit_code == 1
    assert f"the client secret expired on {past.isoformat()}" in result.stderr
    assert root.installed() == before  # nothing removed for a secret Azure AD refuses
    assert root.dnf("reinstall", "onedesk-db-utils").returncode == 0  # dnf: a warning


def test_apply_says_what_state_the_system_is_in_when_install_fails(root, tmp_path):
    root.write_settings(GOOD)
    root.dnf("install", *ONEDESK)
    # dnf itself, except that the install step fails the way a lost mirror makes it fail.
    wrapper = tmp_path / "dnf-failing-install"
    wrapper.write_text('#!/bin/sh\nfor a; do [ "$a" = install ] && '
                       '{ echo "Error: Failed to download metadata for repo" >&2; exit 1; }; done\n'
                       'exec dnf "$@"\n')
    wrapper.chmod(0o755)
    env = dict(root.env, ONEDESK_AZUREAD_DNF=f"{wrapper} -c {root.conf} --releasever=9")
    result = cli(root, "apply", "--yes", env=env)
    assert result.exit_code == 1
    message = result.stderr.strip().splitlines()[-1]
    assert "were removed and are NOT installed again" in message
    assert "Failed to download metadata" in message
    assert root.installed() == []  # as the message says
    # The completing command resumes the journalled plan (it was the raw dnf install).
    completing = message.split("Complete the job with: ")[1]
    assert completing == f"onedesk-azuread --root {root.path} apply"
    assert os.path.exists(os.path.join(root.path, "var/lib/onedesk-azuread/apply.json"))
    done = cli(root, *completing.split()[3:], "--yes")
    assert done.exit_code == 0, done.stderr
    assert sorted(p.rsplit("-", 2)[0] for p in root.installed()) == sorted(ONEDESK)


def test_dnf_logs_exist_and_never_hold_the_secret(root):
    root.write_settings(GOOD)
    root.dnf("install", *ONEDESK)
    logs = set(os.listdir(os.path.join(root.path, "var/log")))
    assert {"dnf.log", "dnf.rpm.log", "hawkey.log"} <= logs
    assert "onedesk-azuread" in root.logs()  # the plugin's lines are there...
    assert SECRET not in root.logs()  # ...the secret is not


def test_untouched_transactions_never_import_the_library(root):
    # With the library unimportable, only a OneDesk transaction notices.
    env = dict(root.env, PYTHONPATH="")
    root.write_settings(GOOD)
    from .rpmbed import run

    quiet = run(root.dnf_argv("install", "unrelated-tool"), env=env, check=False)
    assert quiet.returncode == 0 and "onedesk-azuread" not in quiet.stdout + quiet.stderr
    loud = run(root.dnf_argv("install", "onedesk-db-utils"), env=env, check=False)
    assert loud.returncode == 1
    assert "the onedesk_azuread library cannot be imported" in loud.stdout + loud.stderr
    assert root.installed() == ["unrelated-tool-1-1"]


def test_a_failed_record_says_the_packages_were_installed(root):
    root.write_settings(GOOD)
    # A directory where the record goes: the check before reads nothing there.
    os.makedirs(os.path.join(root.path, "var/lib/onedesk-azuread/applied.json"))
    result = root.dnf("install", "onedesk-db-utils", check=False)
    output = result.stdout + result.stderr
    assert "the packages were installed, but what was applied could not be recorded" in output
    assert "Traceback" not in output
    assert root.installed() == ["onedesk-db-utils-2.0-1"]
    assert root.seen("onedesk-db-utils")["sourced_cis"] == SECRET


def test_apply_installs_the_versions_dnf_install_picks(root):
    root.write_settings(GOOD)
    root.dnf("install", *(f"{name}-1.0" for name in ONEDESK))
    dry = cli(root, "apply", "--dry-run")
    assert "download (upgrade)" in dry.stdout and "upgrade -y --downloadonly" in dry.stdout
    assert root.installed() == sorted(f"{name}-1.0-1" for name in ONEDESK)  # dry run
    result = cli(root, "apply", "--yes")
    assert result.exit_code == 0, result.stderr
    assert root.installed() == sorted(f"{name}-2.0-1" for name in ONEDESK)
    assert root.seen("onedesk-db-utils")["args"] == ["1", "1"]  # removed, then fresh
    assert json.loads(cli(root, "status", "--json").stdout)["state"] == "in sync"


def test_apply_without_onedesk_installed_just_installs(root):
    root.write_settings(GOOD)
    dry = cli(root, "apply", "--dry-run")
    assert "remove" not in dry.stdout
    assert cli(root, "apply").exit_code == 0  # nothing to remove: no question asked
    assert root.installed() == sorted(f"{name}-2.0-1" for name in ONEDESK)


def test_apply_json_says_changed_and_if_needed_does_nothing_once_in_sync(new_root):
    root = new_root()
    root.write_settings(GOOD)
    root.dnf("install", *ONEDESK)
    assert cli(root, "set", "--secret-stdin", input=OTHER_SECRET).exit_code == 0
    first = cli(root, "apply", "--yes", "--if-needed", "--json")
    assert first.exit_code == 0, first.stderr
    done = json.loads(first.stdout)  # the plan went to stderr: stdout is the JSON alone
    assert done["changed"] is True and done["status"]["state"] == "in sync"
    assert done["client_id"] == CLIENT_ID and done["secret"] == OTHER_SECRET[:3] + "…"
    assert "remove -y --noautoremove onedesk-db-utils" in first.stderr
    before = root.installed()
    second = cli(root, "apply", "--yes", "--if-needed", "--json")
    assert second.exit_code == 0, second.stderr
    assert json.loads(second.stdout)["changed"] is False
    assert "nothing to do" in second.stderr and "==> remove" not in second.stderr
    assert root.installed() == before
    assert_no_secret(root, first.stdout, first.stderr, second.stdout, second.stderr,
                     secret=OTHER_SECRET)
