"""The dnf plugin's guarantees under faults: where the secret goes, what is checked just before
the install, a bad plugin configuration, a passed expiry date, an expiry record it cannot read.

The dnf scenarios use the real rpm/dnf bed (tests/rpmbed.py); the race is also driven
directly through onedesk_azuread.hook on a throw-away root, without dnf.
"""

import json
import os
from datetime import date

import pytest

from onedesk_azuread import hook, settings, state

from .conftest import (
    CLIENT_ID,
    OTHER_SECRET,
    SECRET,
    SECRET_ID,
    make_runner,
    read_settings,
    write_settings,
)
from .rpmbed import ENV_RECORDER, RECORDS, run

GOOD = f"OTHER_SETTING=kept\nAZUREAD_CID={CLIENT_ID}\nAZUREAD_CIS={SECRET}\n"
PASTED_ID = f"OTHER_SETTING=kept\nAZUREAD_CID={CLIENT_ID}\nAZUREAD_CIS={SECRET_ID}\n"
APPLIED = "var/lib/onedesk-azuread/applied.json"


def output(result):
    return result.stdout + result.stderr


def ours(result):
    """The plugin's lines in dnf's output."""
    return [line for line in output(result).splitlines() if "onedesk-azuread" in line]


def assert_clean(root, *results, secret=SECRET):
    for result in results:
        assert "Traceback" not in output(result)
        assert secret not in output(result)
    assert secret not in root.logs()


def cli(root, *args):
    from onedesk_azuread.cli import cli as command

    result = make_runner().invoke(command, ["--root", root.path, *args], env=root.env,
                                  catch_exceptions=False)
    assert "Traceback" not in result.stderr
    return result


# --- item 1: the secret reaches OneDesk's install scripts and nothing else ------------------

def _read_proc(pid, name):
    with open(f"/proc/{pid}/{name}", "rb") as handle:
        return handle.read()


def test_no_other_scriptlet_and_no_process_left_running_sees_the_secret(new_root):
    root = new_root()
    root.write_settings(GOOD)
    records = os.path.join(root.path, RECORDS, ENV_RECORDER)
    try:
        result = root.dnf("install", "onedesk-db-utils", ENV_RECORDER)  # ONE transaction
        assert root.installed() == sorted([f"{ENV_RECORDER}-1-1", "onedesk-db-utils-2.0-1"])
        assert root.seen("onedesk-db-utils")["sourced_cis"] == SECRET  # OneDesk still gets it
        with open(os.path.join(records, "env"), "rb") as handle:
            scriptlet_env = handle.read()
        assert b"PATH=" in scriptlet_env  # the record is real
        # The process the scriptlet left running, as another user, after dnf has exited.
        pid = root.recorder_daemon()
        assert pid is not None
        uids = [line for line in _read_proc(pid, "status").splitlines() if line.startswith(b"Uid:")]
        assert uids[0].split()[1:] == [b"65534"] * 4
        daemon_env = _read_proc(pid, "environ")
        assert b"PATH=" in daemon_env
        for place, text in (("scriptlet", scriptlet_env), ("daemon", daemon_env)):
            for word in (b"AZUREAD_CID", b"AZUREAD_CIS", SECRET.encode()):
                assert word not in text, (place, word)
        assert_clean(root, result)
    finally:
        root.stop_recorder_daemon()


def test_a_stale_export_from_the_calling_shell_never_reaches_the_scripts(new_root):
    root = new_root()
    root.write_settings(GOOD)
    # The administrator's shell still exports an old pair (`set -a; . /root/.OneDesk`).
    env = dict(root.env, AZUREAD_CID=CLIENT_ID, AZUREAD_CIS=OTHER_SECRET)
    result = run(root.dnf_argv("install", "onedesk-db-utils"), env=env, check=False)
    assert result.returncode == 0, output(result)
    seen = root.seen("onedesk-db-utils")
    assert (seen["env_cid"], seen["env_cis"], seen["sourced_cis"]) == (None, None, SECRET)
    assert_clean(root, result)


# --- item 3: the guard checks, under the lock, what it hands over --------------------------

# Runs after ours in every hook: dnf 4.14 imports plugins directory by directory, in
# pluginpath order, and calls each hook in import order. Its `resolved` plays the
# administrator who pastes the Secret ID while dnf waits at its prompt.
RACER = """\
import os

import dnf


class Racer(dnf.Plugin):
    name = "onedesk_test_racer"

    def resolved(self):
        if any(p.name == "onedesk-db-utils" for p in self.base.transaction.install_set):
            path = os.path.join(self.base.conf.installroot, "root/.OneDesk")
            with open(path) as handle:
                text = handle.read()
            with open(path, "w") as handle:
                handle.write(text.replace({secret!r}, {secret_id!r}))
"""


def test_a_file_made_invalid_after_the_first_check_installs_nothing(new_root, tmp_path):
    root = new_root()
    racer = tmp_path / "racer"
    racer.mkdir()
    (racer / "onedesk_test_racer.py").write_text(RACER.format(secret=SECRET, secret_id=SECRET_ID))
    with open(root.conf) as handle:
        conf = handle.read()
    ours_path = root.bed.pluginpath
    with open(root.conf, "w") as handle:
        handle.write(conf.replace(f"pluginpath={ours_path}\n",
                                  f"pluginpath={ours_path}, {racer}\n"))
    root.dnf("install", "unrelated-tool")
    root.write_settings(GOOD)
    result = root.dnf("install", "onedesk-db-utils", "onedesk-webapps", check=False)
    assert result.returncode == 1, output(result)
    text = output(result)
    assert "changed after dnf checked it" in text  # stopped just before the install...
    assert "the Secret ID was pasted, not the Secret Value" in text  # ...with the finding
    assert root.installed() == ["unrelated-tool-1-1"]
    assert root.seen("onedesk-db-utils")["runs"] == 0
    assert not os.path.exists(os.path.join(root.path, APPLIED))
    with open(root.settings) as handle:
        assert handle.read() == PASTED_ID  # refused: not rewritten
    assert_clean(root, result)


def test_inject_refuses_a_file_made_invalid_after_the_preflight(paths):
    write_settings(paths, GOOD)
    assert not hook.preflight(paths, require=True).blocking
    write_settings(paths, PASTED_ID)  # while dnf waits at its prompt and downloads
    with pytest.raises(hook.Blocked) as refused:
        hook.inject(paths)
    message = str(refused.value)
    assert "changed after dnf checked it" in message and "Secret ID was pasted" in message
    assert SECRET_ID not in message
    assert read_settings(paths) == PASTED_ID
    assert not os.path.exists(os.path.join(paths.state_dir, "applied.json"))  # nothing recorded


def test_inject_validates_under_the_lock_what_it_repairs(paths, monkeypatch):
    # A repairable file, so that the repair would be written; it turns bad at the last
    # moment before the lock is taken: what is validated is what is read under the lock.
    write_settings(paths, GOOD.replace("\n", "\r\n"))
    real = state.locked

    def racing(*args, **kwargs):
        write_settings(paths, PASTED_ID.replace("\n", "\r\n"))
        return real(*args, **kwargs)
    monkeypatch.setattr(state, "locked", racing)
    with pytest.raises(hook.Blocked):
        hook.inject(paths)
    assert read_settings(paths) == PASTED_ID.replace("\n", "\r\n")  # nothing written


def test_the_pair_recorded_is_the_pair_validated_and_written_under_the_lock(paths, monkeypatch):
    write_settings(paths, GOOD.replace("\n", "\r\n"))
    real = settings.update

    def then_changed(*args, **kwargs):
        result = real(*args, **kwargs)
        # Right after the lock is released:
        write_settings(paths, GOOD.replace(SECRET, OTHER_SECRET))
        return result
    monkeypatch.setattr(settings, "update", then_changed)
    repaired, values = hook.inject(paths)
    assert values == {"AZUREAD_CID": CLIENT_ID, "AZUREAD_CIS": SECRET}
    assert {f.code for f in repaired} == {"crlf"}
    hook.record(paths, values, ["onedesk-db-utils-2.0-1.noarch"])
    applied = state.load_applied(paths.state_dir)
    assert state.sync_state(applied, CLIENT_ID, SECRET) == state.IN_SYNC


# --- item 6: a bad plugin configuration fails closed and quietly ---------------------------

@pytest.mark.parametrize("shipped, bad, fix", [
    ("require = 0", "require = ture", "require = 0 or require = 1"),
    ("require = 0", "require = 0   # 1: stop", "comments after a value"),
    ("packages = onedesk-db-utils", "packages =", "packages = onedesk-db-utils"),
    ("packages = onedesk-db-utils", "packages = onedesk-db-utils # x", "comments after a value"),
    ("file = /root/.OneDesk", "file = root/.OneDesk", "file = /root/.OneDesk"),
    ("file = /root/.OneDesk", "file = /root/../etc/.OneDesk", "file = /root/.OneDesk"),
    ("require = 0", "requre = 1", "correct its name or remove it"),
])
def test_a_bad_configuration_stops_only_guarded_transactions_with_one_line(
        new_root, shipped, bad, fix):
    root = new_root()
    with open(root.plugin_conf) as handle:
        conf = handle.read()
    assert shipped in conf
    with open(root.plugin_conf, "w") as handle:
        handle.write(conf.replace(shipped, bad))
    root.write_settings(GOOD)
    key = bad.split("=")[0].strip()
    unrelated = root.dnf("install", "unrelated-tool", check=False)
    assert unrelated.returncode == 0, output(unrelated)
    warning = ours(unrelated)
    assert len(warning) == 1 and root.plugin_conf in warning[0] and key in warning[0]
    assert root.installed() == ["unrelated-tool-1-1"]
    guarded = root.dnf("install", "onedesk-db-utils", check=False)
    assert guarded.returncode == 1, output(guarded)
    lines = ours(guarded)
    assert len(lines) == 1, lines
    assert lines[0].startswith("Error: onedesk-azuread: ")
    assert root.plugin_conf in lines[0] and key in lines[0] and fix in lines[0]
    assert root.installed() == ["unrelated-tool-1-1"]
    assert_clean(root, unrelated, guarded)


def _replace_in_conf(root, old, new):
    with open(root.plugin_conf) as handle:
        conf = handle.read()
    assert old in conf
    with open(root.plugin_conf, "w") as handle:
        handle.write(conf.replace(old, new))


@pytest.mark.parametrize("loosen", ["file-mode", "file-owner", "directory", "link"])
def test_a_configuration_others_could_change_stops_onedesk_transactions_only(
        new_root, tmp_path, loosen):
    root = new_root()
    root.write_settings(GOOD)
    conf = root.plugin_conf
    offender, what = conf, "is writable by group or others"
    if loosen == "file-mode":
        os.chmod(conf, 0o666)
    elif loosen == "file-owner":
        os.chown(conf, 1000, 1000)
        what = "is not owned by root"
    elif loosen == "directory":
        offender = os.path.dirname(conf)
        os.chmod(offender, 0o777)
    else:  # linked from configuration management's directory, which others may write
        offender = str(tmp_path / "cm")
        os.mkdir(offender)
        os.chmod(offender, 0o777)
        os.rename(conf, os.path.join(offender, "onedesk_azuread.conf"))
        os.symlink(os.path.join(offender, "onedesk_azuread.conf"), conf)
    unrelated = root.dnf("install", "unrelated-tool", check=False)
    assert unrelated.returncode == 0, output(unrelated)
    assert ours(unrelated) == []  # not even looked at
    guarded = root.dnf("install", "onedesk-db-utils", check=False)
    assert guarded.returncode == 1, output(guarded)
    lines = ours(guarded)
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"Error: onedesk-azuread: {conf}: not used: {offender} {what} "
                               f"(owner uid "), lines
    assert lines[0].endswith("; nothing was installed") and "chown root:root" in lines[0]
    assert root.installed() == ["unrelated-tool-1-1"]
    assert_clean(root, unrelated, guarded)


def test_a_loose_configuration_cannot_turn_the_guard_away_from_onedesk(new_root):
    root = new_root()
    root.write_settings(PASTED_ID)
    _replace_in_conf(root, "packages = onedesk-db-utils", "packages = some-other-package")
    os.chmod(root.plugin_conf, 0o666)  # anyone could have written that line
    guarded = root.dnf("install", "onedesk-db-utils", check=False)
    assert guarded.returncode == 1, output(guarded)
    assert "not used:" in output(guarded) and root.installed() == []
    os.chmod(root.plugin_conf, 0o644)  # root's alone: root's choice counts
    assert root.dnf("install", "onedesk-db-utils").returncode == 0
    assert root.installed() == ["onedesk-db-utils-2.0-1"]


def test_a_settings_path_with_control_characters_is_refused_in_one_printable_line(new_root):
    root = new_root()
    root.write_settings(GOOD)
    _replace_in_conf(root, "file = /root/.OneDesk", "file = /root/.One\x1b[2J\rDesk")
    guarded = root.dnf("install", "onedesk-db-utils", check=False)
    assert guarded.returncode == 1, output(guarded)
    lines = ours(guarded)
    assert len(lines) == 1 and "file = '/root/.One\\x1b[2J\\rDesk'" in lines[0], lines
    assert "\x1b" not in output(guarded) and "\r" not in output(guarded)
    assert root.installed() == []


def test_dnf_itself_honours_enabled_and_enableplugin_overrides_it(new_root):
    root = new_root(plugin=False)  # enabled = 0
    root.write_settings(PASTED_ID)
    forced = root.dnf("--enableplugin=onedesk_azuread", "install", "onedesk-db-utils",
                      check=False)
    assert forced.returncode == 1
    assert "the Secret ID was pasted" in output(forced)
    assert root.installed() == []
    off = root.dnf("install", "onedesk-db-utils")
    assert ours(off) == []
    assert root.installed() == ["onedesk-db-utils-2.0-1"]


# --- item 7: expiry never blocks the package manager --------------------------------------

def test_a_passed_expiry_date_warns_in_dnf_and_stays_an_error_for_check(new_root):
    root = new_root()
    root.write_settings(GOOD)
    state.save_expiry(os.path.join(root.path, "var/lib/onedesk-azuread"), SECRET,
                      date(2020, 1, 31))
    for action in (("install", "onedesk-db-utils-1.0"), ("upgrade",)):
        result = root.dnf(*action)
        warned = [line for line in ours(result) if "2020-01-31" in line]
        assert len(warned) == 1, ours(result)
        assert "expired" in warned[0] and "installing anyway" in warned[0]
        assert f"onedesk-azuread set --secret-prompt --expires YYYY-MM-DD --root {root.path}" \
            in warned[0]
        assert_clean(root, result)
    assert root.installed() == ["onedesk-db-utils-2.0-1"]
    assert root.seen("onedesk-db-utils")["sourced_cis"] == SECRET
    check = cli(root, "check", "--json")
    assert check.exit_code == 1
    assert "secret-expired" in [f["code"] for f in json.loads(check.stdout)["findings"]]
    assert cli(root, "status").exit_code == 1


def unreadable_expiry_record(root, tmp_path, kind):
    """An expiry.json the tool cannot read, as a truncated write, a newer version or a
    planted link would leave it; returns its path."""
    state_dir = os.path.join(root.path, "var/lib/onedesk-azuread")
    os.makedirs(state_dir, mode=0o700)
    path = os.path.join(state_dir, "expiry.json")
    if kind == "symlink":  # to a record that would apply, if it were followed
        elsewhere = tmp_path / "elsewhere.json"
        elsewhere.write_text(json.dumps({"expires": "2020-01-31", "secret_hint": SECRET[:3],
                                         "secret_length": len(SECRET)}))
        os.symlink(elsewhere, path)
        return path
    content = {"truncated": '{"expires": "2099-01-31", "secr',
               "newer-version": json.dumps({"version": 2, "expires": "2099-01-31"})}[kind]
    with open(path, "w") as handle:
        handle.write(content)
    os.chmod(path, 0o600)
    return path


@pytest.mark.parametrize("kind", ["truncated", "newer-version", "symlink"])
def test_an_unreadable_expiry_record_warns_in_dnf_and_stays_an_error_for_check(new_root,
                                                                               tmp_path, kind):
    root = new_root()
    root.write_settings(GOOD)
    path = unreadable_expiry_record(root, tmp_path, kind)
    for action in (("install", "onedesk-db-utils-1.0"), ("upgrade",)):
        result = root.dnf(*action)  # exit 0: the transaction went ahead
        warned = [line for line in result.stderr.splitlines() if "expiry.json" in line]
        assert len(warned) == 1, output(result)
        assert warned[0].startswith(f"onedesk-azuread: the secret's recorded expiry cannot be "
                                    f"read: {path}: ")
        assert "installing anyway" in warned[0]
        assert f"onedesk-azuread set --expires YYYY-MM-DD --root {root.path}" in warned[0]
        assert "2020-01-31" not in output(result)  # a link is never followed
        assert_clean(root, result)
    assert root.installed() == ["onedesk-db-utils-2.0-1"]
    assert root.seen("onedesk-db-utils")["sourced_cis"] == SECRET
    assert json.loads(cli(root, "status", "--json").stdout)["state"] == "in sync"
    check = cli(root, "check", "--json")
    assert check.exit_code == 1
    assert [f["code"] for f in json.loads(check.stdout)["findings"]] == ["expiry-unreadable"]
    assert cli(root, "status").exit_code == 1
    assert os.path.islink(path) == (kind == "symlink")  # reported, never replaced
