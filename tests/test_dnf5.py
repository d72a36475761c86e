"""dnf 5: the shipped actions file driving `onedesk-azuread-dnf5-hook`, with the real dnf5.

dnf5 and its actions plugin run in a Debian sid root (tests/dnf5bed.py) against
throw-away installroots; the fixture packages' install scripts record what they
read. Each scenario asserts on those records, the package set (`rpm -qa`) and
dnf5's cache, not only on exit codes.
"""

import json
import os
import re
import stat

import pytest

from onedesk_azuread import dnf5hook

from .conftest import CLIENT_ID, OTHER_SECRET, SECRET, SECRET_ID
from .dnf5bed import ACTIONS_FILE, PROC_NEW_PIDS, PROC_NONE, Dnf5Bed, Root, remove_root
from .rpmbed import HERE, ONEDESK, run

GOOD = f"OTHER_SETTING=kept\nAZUREAD_CID={CLIENT_ID}\nAZUREAD_CIS={SECRET}\n"
PASTED_ID = f"AZUREAD_CID={CLIENT_ID}\nAZUREAD_CIS={SECRET_ID}\n"
STOPPED = "Action calls for stop: onedesk-azuread:"
# Fails pre_transaction after ours ran (its file sorts after ours) while the installroot
# holds FAIL_NOW: a transaction that stops after our hand-off was written, nothing installed.
FAIL_NOW = "fail-now"
FAIL_AFTER_US = ("pre_transaction:onedesk-db-utils:in:raise_error=1:/bin/sh -c "
                 "test\\ !\\ -e\\ ${conf.installroot}/" + FAIL_NOW + "\n")


@pytest.fixture(scope="module")
def dnf5bed(bed):
    made = Dnf5Bed(bed)
    yield made
    made.cleanup()


@pytest.fixture
def new_root(dnf5bed, request):
    def make(**options):
        return Root(dnf5bed, f"{request.node.originalname}-{dnf5bed.serial()}", **options)
    return make


@pytest.fixture
def root(new_root):
    return new_root()


def output(result):
    text = result.stdout + result.stderr
    assert "Traceback" not in text
    return text


def applied(root):
    path = os.path.join(root.state_dir, "applied.json")
    with open(path) as handle:
        text = handle.read()
    assert SECRET not in text and CLIENT_ID not in text
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    return json.loads(text)


def status(root):
    """`onedesk-azuread status` as installed in the sid root: (exit code, state)."""
    result = root.cli("status", "--json")
    assert "Traceback" not in result.stderr
    return result.returncode, json.loads(result.stdout)["state"]


def assert_no_secret(root, *texts, secret=SECRET):
    for text in texts + (root.logs(),):
        assert secret not in text


def test_valid_entries_are_installed_and_recorded(root):
    root.write_settings(GOOD)
    result = root.dnf("install", "onedesk-db-utils-1.0")
    text = output(result)
    assert root.installed() == ["onedesk-db-utils-1.0-1"]
    seen = root.seen("onedesk-db-utils")
    # dnf 5 hands nothing to the scripts' environment: they read the validated file.
    assert (seen["env_cid"], seen["env_cis"]) == (None, None)
    assert seen["file"] == GOOD and seen["sourced_cis"] == SECRET and seen["args"] == ["1"]
    assert applied(root)["packages"] == ["onedesk-db-utils-1.0-1.noarch"]
    pending = os.path.join(root.state_dir, dnf5hook.HANDOFF_DIR)
    [handoff] = os.listdir(pending)  # this run's, emptied; the next run removes it
    assert os.listdir(os.path.join(pending, handoff)) == []
    assert status(root) == (0, "in sync")
    assert "onedesk-azuread: checking the Azure AD settings for onedesk-db-utils-1.0-1" in text
    assert "validated and canonical for the install scripts" in text
    assert_no_secret(root, text)


@pytest.mark.parametrize("text, words", [
    (PASTED_ID, "the Secret ID was pasted, not the Secret Value"),
    (f"AZUREAD_CID=onedesk-app\nAZUREAD_CIS={SECRET}\n", "AZUREAD_CID is not a GUID"),
    (f"AZUREAD_CID={CLIENT_ID}\n", "AZUREAD_CIS is not set"),
])
def test_wrong_entries_stop_dnf5_before_anything_is_downloaded(root, text, words):
    root.dnf("install", "unrelated-tool")
    root.write_settings(text)
    result = root.dnf("install", *ONEDESK, check=False)
    said = output(result)
    assert result.returncode == 1
    assert STOPPED in said and words in said
    assert "onedesk-azuread set" in said  # the command that fixes it
    assert root.downloaded() == ["unrelated-tool-1-1.noarch.rpm"]  # keepcache=1: all it fetched
    assert root.installed() == ["unrelated-tool-1-1"]
    assert root.seen("onedesk-db-utils")["runs"] == 0
    assert open(root.settings).read() == text
    assert not os.path.exists(root.state_dir)


def test_require_stops_a_transaction_without_entries(dnf5bed, new_root):
    required = dnf5bed.shipped_actions.replace("--require=0", "--require=1")
    lines = [line for line in required.splitlines() if "--require=1" in line]
    assert [line.split(":")[0] for line in lines if not line.startswith("#")] == [
        "goal_resolved", "pre_transaction"]
    root = new_root(plugins=dnf5bed.plugin_dir("required", required))
    root.write_settings("OTHER_SETTING=1\n")
    result = root.dnf("install", "onedesk-db-utils", check=False)
    assert result.returncode == 1
    assert "no Azure AD entries and require = 1" in output(result)
    assert root.installed() == [] and root.downloaded() == []


def test_without_require_no_entries_installs_without_azure_ad(root):
    root.write_settings("OTHER_SETTING=1\n")
    result = root.dnf("install", "onedesk-db-utils")
    assert "has no Azure AD entries" in output(result)
    assert root.installed() == ["onedesk-db-utils-2.0-1"]
    assert root.seen("onedesk-db-utils")["sourced_cis"] == ""
    assert not os.path.exists(os.path.join(root.state_dir, "applied.json"))


def test_windows_quoted_and_braced_entries_are_repaired_before_the_script_reads_them(root):
    messy = (f"OTHER_SETTING=kept\r\nexport AZUREAD_CID = '{{{CLIENT_ID}}}'\r\n"
             f'AZUREAD_CIS="{SECRET}"\r\n')
    root.write_settings(messy, mode=0o644)
    result = root.dnf("install", "onedesk-db-utils")
    seen = root.seen("onedesk-db-utils")
    assert seen["file"] == f"OTHER_SETTING=kept\r\nAZUREAD_CID={CLIENT_ID}\nAZUREAD_CIS={SECRET}\n"
    assert seen["sourced_cis"] == SECRET
    assert stat.S_IMODE(os.stat(root.settings).st_mode) == 0o600
    assert open(root.settings + ".bak", newline="").read() == messy
    said = output(result)
    assert "repaired crlf" in said and "repaired client-id-braces" in said
    assert status(root) == (0, "in sync")
    assert_no_secret(root, said)


def test_unrelated_transactions_run_no_hook(root):
    root.write_settings(PASTED_ID, mode=0o644)
    for args in (("install", "unrelated-tool"), ("reinstall", "unrelated-tool"),
                 ("remove", "unrelated-tool")):
        result = root.dnf(*args)
        assert "onedesk-azuread" not in output(result), args
    assert "Actions plugin" not in root.logs()  # no action ran at all
    assert open(root.settings).read() == PASTED_ID
    assert stat.S_IMODE(os.stat(root.settings).st_mode) == 0o644
    assert not os.path.exists(root.state_dir)


def test_upgrade_downgrade_and_reinstall_are_guarded(root):
    root.write_settings(GOOD)
    root.dnf("install", "onedesk-db-utils-1.0")
    root.dnf("upgrade", "onedesk-db-utils")
    assert root.installed() == ["onedesk-db-utils-2.0-1"]
    assert applied(root)["packages"] == ["onedesk-db-utils-2.0-1.noarch"]
    root.dnf("downgrade", "onedesk-db-utils")
    assert root.installed() == ["onedesk-db-utils-1.0-1"]
    root.write_settings(GOOD.replace(SECRET, OTHER_SECRET))
    assert status(root) == (1, "pending")
    root.dnf("reinstall", "onedesk-db-utils")
    seen = root.seen("onedesk-db-utils")
    assert seen["args"] == ["1", "2", "2", "2"]  # $1: fresh install, then upgrade-like
    assert seen["runs"] == 4 and seen["sourced_cis"] == OTHER_SECRET
    assert applied(root)["packages"] == ["onedesk-db-utils-1.0-1.noarch"]
    assert status(root) == (0, "in sync")
    root.write_settings(PASTED_ID)
    for action in ("upgrade", "reinstall"):
        blocked = root.dnf(action, "onedesk-db-utils", check=False)
        assert blocked.returncode == 1, action
        assert STOPPED in output(blocked) and "Secret ID was pasted" in blocked.stderr
    assert root.installed() == ["onedesk-db-utils-1.0-1"]
    assert root.seen("onedesk-db-utils")["runs"] == 4


def test_removal_is_never_blocked(root):
    root.write_settings(GOOD)
    root.dnf("install", *ONEDESK)
    root.write_settings(PASTED_ID)
    result = root.dnf("remove", *ONEDESK)
    assert "onedesk-azuread" not in output(result)
    assert root.installed() == []


def test_entries_spoiled_after_the_check_are_refused_before_installing(dnf5bed, new_root):
    # Another action (its file sorts first) spoils the file between goal_resolved and
    # pre_transaction: the re-check stops dnf 5 before any package is installed.
    spoil = ("pre_transaction:onedesk-db-utils:in::/bin/sh -c "
             "echo\\ AZUREAD_CIS=" + SECRET_ID + "\\ >>${conf.installroot}/root/.OneDesk\n")
    plugins = dnf5bed.plugin_dir("spoiled", dnf5bed.shipped_actions,
                                 extra={"00-spoil.actions": spoil})
    root = new_root(plugins=plugins)
    root.write_settings(GOOD)
    result = root.dnf("install", "onedesk-db-utils", check=False)
    said = output(result)
    assert result.returncode == 1
    assert "Action sent error message: onedesk-azuread:" in said
    assert "Secret ID was pasted" in said
    assert root.installed() == [] and root.seen("onedesk-db-utils")["runs"] == 0
    assert not os.path.exists(os.path.join(root.state_dir, "applied.json"))


def test_the_record_is_the_pair_the_scripts_read_even_if_the_file_changes_after(dnf5bed,
                                                                                 new_root):
    # The file changes after the packages were installed, before our post_transaction
    # runs: the record must still name what the install scripts read, so status says
    # "pending" for the new secret (re-reading the file would claim "in sync").
    change = ("post_transaction:onedesk-db-utils:in::/bin/sh -c "
              "echo\\ AZUREAD_CIS=" + OTHER_SECRET + "\\ >>${conf.installroot}/root/.OneDesk\n")
    plugins = dnf5bed.plugin_dir("changed", dnf5bed.shipped_actions,
                                 extra={"00-change.actions": change})
    root = new_root(plugins=plugins)
    root.write_settings(GOOD)
    root.dnf("install", "onedesk-db-utils")
    assert root.seen("onedesk-db-utils")["sourced_cis"] == SECRET
    assert OTHER_SECRET in open(root.settings).read()
    assert status(root) == (1, "pending")
    root.write_settings(GOOD)  # what the scripts read: in sync
    assert status(root) == (0, "in sync")


def test_a_failed_record_says_the_packages_were_installed(root):
    root.write_settings(GOOD)
    os.makedirs(os.path.join(root.state_dir, "applied.json"))
    result = root.dnf("install", "onedesk-db-utils", check=False)
    said = output(result)
    assert result.returncode == 1
    assert "the packages were installed, but what was applied could not be recorded" in said
    assert root.installed() == ["onedesk-db-utils-2.0-1"]
    assert root.seen("onedesk-db-utils")["sourced_cis"] == SECRET


def test_an_unreadable_settings_file_is_one_clear_stop(root):
    os.makedirs(root.settings)
    result = root.dnf("install", "onedesk-db-utils", check=False)
    said = output(result)
    assert result.returncode == 1
    assert STOPPED in said and "is a directory" in said
    assert root.installed() == []


def test_a_hand_off_of_an_earlier_failed_run_with_the_same_pid_is_never_adopted(dnf5bed,
                                                                                new_root):
    # As in a container, every dnf5 run here has the same pid (1, in a pid namespace of
    # its own). The first validates the pair, hands it off, then fails: nothing installed.
    plugins = dnf5bed.plugin_dir("fail-after-us", dnf5bed.shipped_actions,
                                 extra={"zz-fail.actions": FAIL_AFTER_US})
    root = new_root(plugins=plugins, proc=PROC_NEW_PIDS)
    root.write_settings(GOOD)
    open(os.path.join(root.path, FAIL_NOW), "w").close()
    failed = root.dnf("install", "onedesk-db-utils", check=False)
    assert failed.returncode == 1 and root.installed() == [], output(failed)
    pending = os.path.join(root.state_dir, dnf5hook.HANDOFF_DIR)
    [stale] = os.listdir(pending)
    assert "applied.json" in os.listdir(os.path.join(pending, stale))
    # The next run, with the same pid, installs without Azure AD entries.
    os.unlink(os.path.join(root.path, FAIL_NOW))
    root.write_settings("OTHER_SETTING=1\n")
    output(root.dnf("install", "onedesk-db-utils"))
    assert root.installed() == ["onedesk-db-utils-2.0-1"]
    assert root.seen("onedesk-db-utils")["sourced_cis"] == ""
    assert not os.path.exists(os.path.join(root.state_dir, "applied.json"))
    assert stale not in os.listdir(pending)  # removed, never adopted
    root.write_settings(GOOD)  # the failed run's pair, which the scripts never read
    assert status(root)[1] == "never applied"


def test_without_proc_dnf5_installs_and_records_nothing_and_says_so(new_root):
    root = new_root(proc=PROC_NONE)
    root.write_settings(GOOD)
    result = root.dnf("install", "onedesk-db-utils")  # exit 0: the packages are installed
    said = output(result)
    assert root.installed() == ["onedesk-db-utils-2.0-1"]
    assert root.seen("onedesk-db-utils")["sourced_cis"] == SECRET
    assert said.count("cannot tell this dnf 5 run") == 2  # pre_ and post_transaction
    assert "run dnf 5 with /proc mounted" in said
    assert not os.path.exists(os.path.join(root.state_dir, "applied.json"))
    assert status(root)[1] == "never applied"
    assert_no_secret(root, said)


def test_a_link_planted_in_the_state_directory_stops_dnf5_and_is_never_followed(dnf5bed, root):
    elsewhere = f"{dnf5bed.inside}/elsewhere-{dnf5bed.serial()}"  # as the hook sees it
    os.makedirs(os.path.join(dnf5bed.host(elsewhere), "data"))
    for name in ("keep", "data/keep"):
        with open(os.path.join(dnf5bed.host(elsewhere), name), "w") as handle:
            handle.write("precious\n")
    os.makedirs(root.state_dir, mode=0o700)
    os.symlink(elsewhere, os.path.join(root.state_dir, dnf5hook.HANDOFF_DIR))
    root.write_settings(GOOD)
    result = root.dnf("install", "onedesk-db-utils", check=False)
    said = output(result)
    assert sorted(os.listdir(dnf5bed.host(elsewhere))) == ["data", "keep"]
    assert os.listdir(os.path.join(dnf5bed.host(elsewhere), "data")) == ["keep"]
    assert result.returncode == 1 and root.installed() == []
    assert "Action sent error message: onedesk-azuread:" in said
    assert f"{dnf5hook.HANDOFF_DIR}: is a symbolic link" in said and "rm -r" in said


# --- the hook without dnf5 ----------------------------------------------------------------

def test_the_hook_ignores_packages_going_out(tmp_path):
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / ".OneDesk").write_text(PASTED_ID)
    for action in ("E", "O", "?"):
        for callback in dnf5hook.CALLBACKS:
            call = dnf5hook.Call(callback, str(tmp_path), action, "onedesk-db-utils-1-1.noarch",
                                 "42")
            assert dnf5hook.run(call) == ""
    assert sorted(os.listdir(tmp_path)) == ["root"]


def test_the_hook_answers_in_one_line_per_message(tmp_path):
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / ".OneDesk").write_text(PASTED_ID + "AZUREAD_CID=x\n")
    said = []
    text = dnf5hook.run(dnf5hook.Call("goal_resolved", str(tmp_path), "I",
                                      "onedesk-db-utils-1-1.noarch", "42"), say=said.append)
    lines = text.splitlines()
    assert all(line.startswith(("stop=", "log.INFO=", "log.WARNING=")) for line in lines)
    stop = [line for line in lines if line.startswith("stop=")]
    assert len(stop) == 1 and "Secret ID was pasted" in stop[0] and "not a GUID" in stop[0]
    assert "--root " + str(tmp_path) in stop[0]  # the commands that fix it, for this root
    assert said and all(SECRET_ID not in line for line in said + lines)


def test_a_secret_expiring_soon_is_a_warning_for_dnf5_not_an_info_line(tmp_path):
    from datetime import date, timedelta

    from onedesk_azuread import state

    (tmp_path / "root").mkdir()
    (tmp_path / "root" / ".OneDesk").write_text(GOOD)
    soon = date.today() + timedelta(days=10)
    state.save_expiry(str(tmp_path / "var/lib/onedesk-azuread"), SECRET, soon)
    text = dnf5hook.run(dnf5hook.Call("goal_resolved", str(tmp_path), "I",
                                      "onedesk-db-utils-1-1.noarch", "42"))
    warned = [line for line in text.splitlines() if "expires on" in line]
    assert len(warned) == 1 and warned[0].startswith("log.WARNING="), text
    assert "stop=" not in text and SECRET not in text


def test_a_bad_call_fails_closed(tmp_path):
    def call(callback, pid, **options):
        return dnf5hook.run(dnf5hook.Call(callback, str(tmp_path), "I", "x", pid, **options))

    assert call("goal_resolved", "../1").startswith("stop=")
    assert call("pre_transaction", "").startswith("error=")
    assert call("transaction", "1").startswith("error=")
    for settings in ("root/.OneDesk", "/root/../etc/passwd"):
        said = call("goal_resolved", "1", settings_file=settings)
        assert said.startswith("stop=") and "--settings=/root/.OneDesk" in said
    assert os.listdir(tmp_path) == []


def test_a_settings_path_with_control_characters_is_refused_in_one_printable_line(tmp_path):
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / ".OneDesk").write_text(GOOD)
    said = []
    text = dnf5hook.run(dnf5hook.Call("goal_resolved", str(tmp_path), "I", "x", "1",
                                      settings_file="/root/.One\x1b[2J\x00Desk"),
                        say=said.append)
    assert text.count("\n") == 1 and text.startswith("stop=")
    assert "--settings=/root/.One\\x1b[2J\\x00Desk is not an absolute path" in text
    assert text[:-1].isprintable() and said == []


def test_the_shipped_lines_guard_only_packages_coming_in_and_carry_nothing_secret():
    with open(ACTIONS_FILE) as handle:
        lines = [line for line in handle.read().splitlines() if line and line[0] != "#"]
    fields = [line.split(":", 4) for line in lines]
    assert [f[0] for f in fields] == list(dnf5hook.CALLBACKS)
    assert {(f[1], f[2], f[3]) for f in fields} == {("onedesk-db-utils", "in", "raise_error=1")}
    for callback, *_, command in fields:
        # The command line (visible in ps) holds the root, the package and dnf 5's pid.
        assert set(re.findall(r"\$\{([^}]*)\}", command)) == {
            "conf.installroot", "pkg.action", "pkg.nevra", "pid"}
        assert command.split()[:2] == ["/usr/bin/onedesk-azuread-dnf5-hook",
                                       "--root=${conf.installroot}"]
        assert callback in command.split()


def test_the_spec_ships_the_actions_file_where_dnf5_reads_it(bed, tmp_path):
    # Fedora's branch of the spec, built here with Debian's rpmbuild: the subpackage, its
    # Requires, the file as %config(noreplace) (the bed already made the tarball).
    tarball = os.path.join(HERE, "dist", "onedesk-azuread-0.1.0.tar.gz")
    assert os.path.exists(tarball)
    built = run(["rpmbuild", "-bb", "--nodeps", "--define", "fedora 42",
                 "--define", f"_topdir {tmp_path}/top", "--define", f"_dbpath {tmp_path}/db",
                 "--define", f"_sourcedir {os.path.dirname(tarball)}",
                 "--define", f"_rpmdir {tmp_path}/out",
                 "--define", "_build_name_fmt %%{NAME}.rpm",  # %% or it names the main package
                 os.path.join(HERE, "specs", "onedesk-azuread.spec")], env=bed.env, check=False)
    assert built.returncode == 0, built.stderr[-3000:]
    rpm = str(tmp_path / "out" / "onedesk-azuread-dnf5.rpm")
    query = run(["rpm", "-qp", "--qf", "[%{FILENAMES} %{FILEFLAGS:fflags}\n]", rpm],
                env=bed.env).stdout
    target = "/etc/dnf/libdnf5-plugins/actions.d/onedesk_azuread.actions"
    assert f"{target} cn" in query.splitlines()  # config, noreplace
    requires = run(["rpm", "-qp", "--requires", rpm], env=bed.env).stdout.splitlines()
    assert "libdnf5-plugin-actions >= 5.2.11.0" in requires
    payload = run(["sh", "-c", f'rpm2cpio "$1" | cpio -i --quiet --to-stdout ".{target}"',
                   "sh", rpm], env=bed.env).stdout
    assert payload == open(ACTIONS_FILE).read()
    on_el10 = run(["rpmspec", "-q", "--define", "rhel 10", "--qf", "%{NAME}\n",
                   os.path.join(HERE, "specs", "onedesk-azuread.spec")], env=bed.env).stdout
    assert "onedesk-azuread-dnf5" not in on_el10.split()


def test_a_passed_expiry_date_warns_and_never_stops_dnf5(root):
    from datetime import date, timedelta

    from onedesk_azuread import state

    root.write_settings(GOOD)
    past = date.today() - timedelta(days=3)
    state.save_expiry(root.state_dir, SECRET, past)
    result = root.dnf("install", "onedesk-db-utils")
    said = output(result)
    assert root.installed() == ["onedesk-db-utils-2.0-1"]
    assert f"the client secret expired on {past.isoformat()}" in said
    assert "installing anyway" in said
    assert_no_secret(root, said)


@pytest.mark.parametrize("content", [
    '{"expires": "2099-01-31", "secr',  # a write cut short
    json.dumps({"version": 2, "expires": "2099-01-31"}),  # a newer version's record
], ids=["truncated", "newer-version"])
def test_an_unreadable_expiry_record_warns_and_never_stops_dnf5(root, content):
    root.write_settings(GOOD)
    os.makedirs(root.state_dir, mode=0o700)
    path = os.path.join(root.state_dir, "expiry.json")
    with open(path, "w") as handle:
        handle.write(content)
    os.chmod(path, 0o600)
    inside = f"{root.inside}/var/lib/onedesk-azuread/expiry.json"  # as the hook names it
    for action in (("install", "onedesk-db-utils-1.0"), ("upgrade",)):
        result = root.dnf(*action)  # exit 0: the transaction went ahead
        said = output(result)
        warned = [line for line in result.stderr.splitlines() if "expiry.json" in line]
        assert len(warned) == 1, said
        assert warned[0].startswith(f"onedesk-azuread: the secret's recorded expiry cannot be "
                                    f"read: {inside}: ")
        assert "installing anyway" in warned[0]
        assert f"onedesk-azuread set --expires YYYY-MM-DD --root {root.inside}" in warned[0]
        assert STOPPED not in said
        assert_no_secret(root, said)
    assert root.installed() == ["onedesk-db-utils-2.0-1"]
    assert root.seen("onedesk-db-utils")["sourced_cis"] == SECRET
    assert applied(root)["packages"] == ["onedesk-db-utils-2.0-1.noarch"]
    check = root.cli("check", "--json")
    assert check.returncode == 1
    assert [f["code"] for f in json.loads(check.stdout)["findings"]] == ["expiry-unreadable"]
    with open(path) as handle:
        assert handle.read() == content  # reported, never rewritten


@pytest.mark.skipif(os.geteuid() != 0, reason="mounts need root (CI runs as root)")
def test_a_root_made_again_is_removed_without_reaching_through_its_mounts(tmp_path):
    """A killed `make test-py314` leaves the host's /dev mounted in the sid root: making the
    root again unmounts it first and deletes nothing of the host's."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "kept").write_text("the host's\n")
    root = tmp_path / "root"
    (root / "dev").mkdir(parents=True)
    run(["mount", "--bind", str(outside), str(root / "dev")])
    try:
        remove_root(str(root))
    finally:
        run(["umount", "-l", str(root / "dev")], check=False)
    assert (outside / "kept").exists()
    assert not root.exists()
