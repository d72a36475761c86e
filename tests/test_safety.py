"""Nothing lost: bad input, odd files, full and read-only disks, concurrency, kill -9."""

import json
import os
import subprocess
import sys

import pytest

from onedesk_azuread import shellfile

from .conftest import CLIENT_ID, SECRET, Cli, snapshot

GOOD = f"AZUREAD_CID={CLIENT_ID}\nAZUREAD_CIS={SECRET}\n"
SET = ("set", "--client-id", CLIENT_ID, "--secret-stdin")
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mounts need root (CI runs as root)")


def assert_one_line_error(result, *words):
    assert result.exit_code == 1
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    for word in words:
        assert word in lines[0]
    assert SECRET not in result.stderr + result.stdout


@pytest.mark.parametrize("content, words", [
    (b"A=1\n\xff\xfe=2\n", ["not valid UTF-8", ":2:"]),
    (b"A=1\nB=2\x00\n", ["NUL byte", ":2:"]),
    (b"A=1\nAZUREAD_CIS='unterminated\nB=2\n", ["unterminated quote", ":2:"]),
])
@pytest.mark.parametrize("command", [("check",), ("show",), SET, ("unset",), ("check", "--fix")])
def test_unreadable_content_is_a_one_line_error_and_nothing_changes(run, root, settings_path,
                                                                   content, words, command):
    settings_path.write_bytes(content)
    before = snapshot(root)
    result = run(*command, input=SECRET)
    assert_one_line_error(result, str(settings_path), *words)
    assert snapshot(root) == before


@pytest.mark.parametrize("command", [("check",), SET, ("show",)])
def test_a_directory_is_not_a_settings_file(run, root, settings_path, command):
    settings_path.mkdir()
    before = snapshot(root)
    assert_one_line_error(run(*command, input=SECRET), str(settings_path), "is a directory")
    assert snapshot(root) == before


def test_symlinks_are_read_but_never_written_through(run, root, settings_path, tmp_path):
    real = tmp_path / "real"
    real.write_text(GOOD)
    settings_path.symlink_to(real)
    assert run("check").exit_code in (0, 1)  # reading through the link is fine
    result = run("set", "--secret-stdin", input="Qa92Q~zY8xW7vU6tS5rQ4pO3nM2lK1jI0hG9fE8d")
    assert_one_line_error(result, "symbolic link")
    assert real.read_text() == GOOD and settings_path.is_symlink()


def test_an_unreadable_file_is_a_one_line_error(root, settings_path):
    settings_path.write_text(GOOD)
    os.chmod(settings_path, 0o600)
    os.chmod(root / "root", 0o755)
    # Drop to an unprivileged user (after importing, as the venv may be private) so that
    # permissions apply even when the tests run as root.
    code = ("import os, sys; from onedesk_azuread.cli import main\n"
            "if os.geteuid() == 0: os.setgid(65534); os.setuid(65534)\n"
            "sys.argv[0] = 'onedesk-azuread'; main()")
    proc = subprocess.run([sys.executable, "-c", code, "--root", str(root), "check"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip().count("\n") == 0
    assert "Permission denied" in proc.stderr and str(settings_path) in proc.stderr


@pytest.fixture
def small_fs(tmp_path):
    mount = tmp_path / "mnt"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs", str(mount)],
                   check=True)
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=True)


@needs_root
@pytest.mark.parametrize("used_before", [True, False])
def test_read_only_filesystem(small_fs, used_before):
    (small_fs / "root").mkdir()
    path = small_fs / "root" / ".OneDesk"
    path.write_text("A=1\n")
    state_dir = small_fs / "var/lib/onedesk-azuread"
    if used_before:  # the lock file exists: it is locked read-only, and the write fails
        state_dir.mkdir(parents=True, mode=0o700)
        (state_dir / "lock").touch(mode=0o600)
    subprocess.run(["mount", "-o", "remount,ro", str(small_fs)], check=True)
    before = snapshot(small_fs)
    result = Cli(small_fs)(*SET, input=SECRET)
    # A fresh system fails at the first thing to write: the state directory (with the lock).
    assert_one_line_error(result, str(path if used_before else state_dir),
                          "Read-only file system")
    assert snapshot(small_fs) == before


@needs_root
def test_full_filesystem(small_fs):
    (small_fs / "root").mkdir()
    path = small_fs / "root" / ".OneDesk"
    path.write_bytes(b"# padding\n" * 2000)  # 20 kB that must be written twice (file + backup)
    filler = small_fs / "filler"
    # Unbuffered: Python 3.14's larger default buffer would keep the 64 kB in memory and
    # fail only at close(), outside the try.
    with open(filler, "wb", buffering=0) as handle:
        try:
            handle.write(b"\0" * (64 * 1024))
        except OSError:
            pass
    os.truncate(filler, os.path.getsize(filler) - 8192)  # room for a little, not for the file
    before = snapshot(small_fs / "root")
    result = Cli(small_fs)(*SET, input=SECRET)
    assert_one_line_error(result, str(path), "No space left on device")
    assert snapshot(small_fs / "root") == before  # no temp file left, nothing changed


def test_concurrent_cli_processes_leave_a_parseable_file(root, settings_path):
    secrets = [f"abc{i}Q~" + "x" * 34 for i in range(6)]
    code = "import sys; from onedesk_azuread.cli import main; sys.argv[0]='t'; main()"
    procs = [subprocess.Popen([sys.executable, "-c", code, "--root", str(root), "set",
                               "--client-id", CLIENT_ID, "--secret-stdin"],
                              stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL) for _ in secrets]
    for proc, secret in zip(procs, secrets):
        proc.communicate(secret.encode())
        assert proc.returncode == 0
    doc = shellfile.parse(settings_path.read_text(), ["AZUREAD_CID", "AZUREAD_CIS"])
    assert doc.value("AZUREAD_CIS") in secrets
    assert len(doc.entries) == 2


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root (CI runs as root)")
def test_owner_is_kept_on_write_and_made_root_by_fix(run, settings_path):
    settings_path.write_text("A=1\n")
    os.chown(settings_path, 1000, 1000)
    assert run(*SET, input=SECRET).exit_code == 0
    assert (settings_path.stat().st_uid, settings_path.stat().st_gid) == (1000, 1000)
    backup = settings_path.parent / ".OneDesk.bak"
    assert backup.stat().st_uid == 1000 and oct(backup.stat().st_mode & 0o777) == "0o600"
    result = run("check", "--fix", "--json")
    assert "file-owner" in result.stdout
    assert (settings_path.stat().st_uid, settings_path.stat().st_gid) == (0, 0)
    assert run("check").exit_code == 0


# --- A second name (hard link) for the settings file: an error, never written

def test_a_hard_linked_settings_file_is_an_error_finding(run, settings_path, linked):
    result = run("check", "--json")
    assert result.exit_code == 1
    found = [f for f in json.loads(result.stdout)["findings"] if f["code"] == "hard-links"]
    assert len(found) == 1 and found[0]["severity"] == "error"
    assert found[0]["repairable"] is False
    assert "a chmod cannot protect the other name" in found[0]["message"]
    assert "remove the other link" in found[0]["message"]


@pytest.mark.parametrize("command", [SET, SET + ("--force",), ("check", "--fix"), ("unset",)])
def test_no_write_goes_through_a_hard_linked_settings_file(run, root, settings_path, linked,
                                                           command):
    before = snapshot(root)
    result = run(*command, input=SECRET)
    assert result.exit_code == 1
    assert "Traceback" not in result.stderr
    assert "hard links" in result.stderr.strip().splitlines()[-1]
    assert snapshot(root) == before
    assert os.lstat(settings_path).st_nlink == 2 and os.lstat(linked).st_mode & 0o044


# --- What a write keeps and refuses: the SELinux label, a POSIX ACL -------------------------
# Through the extended attributes themselves: setting security.selinux works here without
# SELinux active, and tmp_path's file system keeps POSIX ACLs.
SELINUX = "security.selinux"
LABEL = b"system_u:object_r:admin_home_t:s0\0"


@pytest.mark.parametrize("command", [SET, ("check", "--fix"), ("unset",)])
def test_every_write_keeps_the_selinux_label_on_the_file_and_its_backup(run, settings_path,
                                                                       command):
    settings_path.write_text(GOOD.replace("\n", "\r\n"))  # repairable: check --fix writes
    os.chmod(settings_path, 0o600)
    os.setxattr(settings_path, SELINUX, LABEL)
    result = run(*command, input=SECRET)
    assert result.exit_code == 0, result.stderr
    assert settings_path.read_text() != GOOD.replace("\n", "\r\n")  # it was replaced
    assert os.getxattr(settings_path, SELINUX) == LABEL
    assert os.getxattr(settings_path.parent / ".OneDesk.bak", SELINUX) == LABEL


def _acl(*named, mask=4):
    """user::rw-, the named (tag, perm, id) entries, group::---, mask, other::---"""
    entries = [(0x01, 6, 0xFFFFFFFF), *named, (0x04, 0, 0xFFFFFFFF), (0x10, mask, 0xFFFFFFFF),
               (0x20, 0, 0xFFFFFFFF)]
    import struct

    return struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *e) for e in entries)


@pytest.fixture
def shared(settings_path):
    """The settings file with an ACL entry that lets uid 65432 read it."""
    settings_path.write_text(GOOD.replace("\n", "\r\n"))  # repairable: check --fix would write
    os.chmod(settings_path, 0o600)
    os.setxattr(settings_path, "system.posix_acl_access", _acl((0x02, 4, 65432)))
    return settings_path


def test_an_acl_that_lets_another_user_read_the_secret_is_an_error_finding(run, shared):
    result = run("check", "--json")
    assert result.exit_code == 1
    found = [f for f in json.loads(result.stdout)["findings"] if f["code"] == "acl-grants-access"]
    assert [(f["severity"], f["repairable"], f["key"]) for f in found] == [("error", False, None)]
    assert found[0]["message"] == (
        f"a POSIX ACL lets uid 65432 read the file, which holds the secret; nothing is "
        f"written while it does (a new file would keep that access or silently drop it). "
        f"Fix: setfacl -b {shared}")


@pytest.mark.parametrize("command", [SET, SET + ("--force",), ("check", "--fix"), ("unset",)])
def test_no_write_carries_over_or_drops_an_acl_that_grants_access(run, root, shared, command):
    before = snapshot(root)
    result = run(*command, input=SECRET)
    assert result.exit_code == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"Error: {shared}: has a POSIX ACL that lets uid 65432 read it; refusing to write: the "
        f"new file would either keep that access to the secret or silently drop what someone "
        f"set; remove the ACL first (setfacl -b {shared}), then run the command again")
    assert snapshot(root) == before
    assert os.getxattr(shared, "system.posix_acl_access") == _acl((0x02, 4, 65432))


def test_an_acl_that_grants_nothing_beyond_the_mode_is_no_finding(run, settings_path):
    settings_path.write_text(GOOD)
    os.chmod(settings_path, 0o600)
    os.setxattr(settings_path, "system.posix_acl_access", _acl((0x02, 6, 0), (0x02, 4, 65432),
                                                               mask=0))
    assert run("check").exit_code == 0
