"""fsutil's own behaviour: how a regular file is opened and what is refused in the caller's
words, the lock's bounded wait, what a replaced file keeps (its SELinux label), and what a
POSIX ACL on it allows, read from the extended attributes themselves (setting
`security.selinux` works without SELinux active; tmp_path is on a file system with ACLs).
What the settings file, the state and the lock refuse, end to end: test_settings.py,
test_safety.py and test_state.py."""

import errno
import os
import struct
import subprocess
import sys

import pytest

from onedesk_azuread import fsutil
from onedesk_azuread.errors import SettingsError, StateError

WORDS = {"link": "a link", "not_regular": "not regular", "directory": "a directory"}


def opened(path, dir_fd=None, **options):
    """open_regular with WORDS as the refusals; the fd closed, (its fstat) returned."""
    how = fsutil.Opening(SettingsError, **{**WORDS, **options})
    result = fsutil.open_regular(str(path), how, dir_fd)
    if result is None:
        return None
    os.close(result.fd)
    return result.stat


def test_open_regular_opens_a_regular_file_and_says_absent_with_none(tmp_path):
    path = tmp_path / "file"
    assert opened(path) is None
    path.write_bytes(b"x" * 70000)
    result = fsutil.open_regular(str(path), fsutil.Opening(SettingsError, **WORDS))
    try:
        assert result.stat.st_size == 70000
        assert fsutil.read_fd(result.fd) == b"x" * 70000
    finally:
        os.close(result.fd)


@pytest.mark.parametrize("kind, words", [("symlink", "a link"), ("fifo", "not regular"),
                                         ("directory", "a directory")])
def test_open_regular_refuses_in_the_callers_words_and_never_blocks(tmp_path, kind, words):
    path = tmp_path / "file"
    if kind == "symlink":
        (tmp_path / "target").write_bytes(b"")
        path.symlink_to(tmp_path / "target")
    elif kind == "fifo":
        os.mkfifo(path)  # no writer: an open that blocked would hang here
    else:
        path.mkdir()
    for options in ({}, {"create": True}):  # never made anew in its place either
        with pytest.raises(SettingsError, match=f"^{words}$"):
            opened(path, **options)
    if kind == "symlink":
        assert opened(path, follow=True, link=None).st_size == 0
    else:
        with pytest.raises(SettingsError, match=f"^{words}$"):
            opened(path, follow=True, link=None)


def test_open_regular_in_a_directory_held_open_names_the_whole_path(tmp_path):
    (tmp_path / "file").write_bytes(b"A")
    (tmp_path / "link").symlink_to(tmp_path / "file")
    directory = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert opened("/elsewhere/file", dir_fd=directory).st_size == 1
        assert opened("/elsewhere/absent", dir_fd=directory) is None
        with pytest.raises(SettingsError, match="^a link$"):
            opened("/elsewhere/link", dir_fd=directory)
    finally:
        os.close(directory)


def test_open_regular_creates_mode_0600_and_closes_what_check_refuses(tmp_path):
    path = tmp_path / "lock"
    assert opened(path, create=True, action="lock").st_mode & 0o777 == 0o600
    seen = []

    def refuse(fd, st):
        seen.append(fd)
        raise StateError("not ours")

    with pytest.raises(StateError, match="^not ours$"):
        opened(path, check=refuse)
    with pytest.raises(OSError) as closed:
        os.fstat(seen[0])
    assert closed.value.errno == errno.EBADF
    with pytest.raises(SettingsError, match=f"^{tmp_path}/none/lock: cannot lock: "):
        opened(tmp_path / "none" / "lock", create=True, action="lock")


def test_read_private_file_reads_at_most_its_limit(tmp_path):
    path = tmp_path / "state.json"
    path.write_bytes(b"{}")
    os.chmod(path, 0o600)
    assert fsutil.read_private_file(str(path), 2, StateError, "fix it") == b"{}"
    with pytest.raises(StateError, match="is 2 bytes, more than the 1 bytes a state file can "
                                         "be; fix it$"):
        fsutil.read_private_file(str(path), 1, StateError, "fix it")
    os.chmod(path, 0o622)
    with pytest.raises(StateError, match=r"is not a private file of .* mode 0622\), so it "
                                         r"cannot be trusted; fix it$"):
        fsutil.read_private_file(str(path), 2, StateError, "fix it")


def test_the_default_wait_is_bounded_and_a_bad_setting_is_refused(monkeypatch):
    monkeypatch.delenv("ONEDESK_AZUREAD_LOCK_TIMEOUT", raising=False)
    assert fsutil.lock_timeout() == 10.0
    for bad in ("forever", "-1", "inf", "nan", "1e9"):
        monkeypatch.setenv("ONEDESK_AZUREAD_LOCK_TIMEOUT", bad)
        with pytest.raises(StateError, match="ONEDESK_AZUREAD_LOCK_TIMEOUT"):
            fsutil.lock_timeout()


LABEL = b"system_u:object_r:admin_home_t:s0\0"  # what EL's policy gives /root's files

# linux/posix_acl_xattr.h: version 2, then (u16 tag, u16 perm, u32 id) little-endian.
USER_OBJ, USER, GROUP_OBJ, GROUP, MASK, OTHER = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
NOBODY = 0xFFFFFFFF  # the id of the entries that have none


def acl(*entries):
    return struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *e) for e in entries)


def base(mask=None, *named):
    """user::rw-, the named entries, group::---, [mask], other::---"""
    entries = [(USER_OBJ, 6, NOBODY), *named, (GROUP_OBJ, 0, NOBODY)]
    if mask is not None:
        entries.append((MASK, mask, NOBODY))
    return acl(*entries, (OTHER, 0, NOBODY))


def label_of(path):
    try:
        return os.getxattr(path, fsutil.SELINUX_XATTR)
    except OSError as exc:
        assert exc.errno == errno.ENODATA
        return None


def test_the_new_file_and_the_backup_keep_the_old_files_selinux_label(tmp_path):
    path = tmp_path / ".OneDesk"
    path.write_bytes(b"OLD=1\n")
    os.setxattr(path, fsutil.SELINUX_XATTR, LABEL)
    fsutil.replace_file(str(path), b"NEW=1\n", backup=b"OLD=1\n")
    assert path.read_bytes() == b"NEW=1\n" and label_of(path) == LABEL
    backup = tmp_path / ".OneDesk.bak"
    assert backup.read_bytes() == b"OLD=1\n" and label_of(backup) == LABEL


def test_without_an_old_label_the_policy_default_stays(tmp_path):
    # Nothing is set: the kernel's label for a new file there (none without SELinux).
    path = tmp_path / ".OneDesk"
    fsutil.replace_file(str(path), b"NEW=1\n")  # no old file
    fsutil.replace_file(str(path), b"NEWER=1\n", backup=b"NEW=1\n")
    assert label_of(path) is None and label_of(tmp_path / ".OneDesk.bak") is None


def test_a_label_that_cannot_be_kept_changes_nothing(tmp_path, monkeypatch):
    path = tmp_path / ".OneDesk"
    path.write_bytes(b"OLD=1\n")
    os.setxattr(path, fsutil.SELINUX_XATTR, LABEL)

    def refused(*args):
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "setxattr", refused)
    with pytest.raises(SettingsError) as raised:
        fsutil.replace_file(str(path), b"NEW=1\n", backup=b"OLD=1\n")
    assert str(raised.value) == (f"{path}: not changed: cannot give the new file the old "
                                 f"one's SELinux label (Operation not permitted); nothing was "
                                 f"written")
    assert sorted(os.listdir(tmp_path)) == [".OneDesk"] and path.read_bytes() == b"OLD=1\n"


@pytest.mark.parametrize("raw, grants", [
    (base(), ()),  # no named entry: the mode says it all
    (base(4, (USER, 4, 1000)), (("uid 1000", "read"),)),
    (base(6, (GROUP, 6, 4242)), (("gid 4242", "read and write"),)),
    (base(2, (USER, 6, 1000)), (("uid 1000", "write"),)),  # the mask limits the entry
    (base(0, (USER, 6, 1000), (GROUP, 4, 4242)), ()),  # mask ---: grants nothing
    (base(6, (USER, 6, 0), (GROUP, 6, 0)), ()),  # root: who has access anyway
    (base(7, (USER, 1, 1000)), ()),  # execute only: not the secret
    (b"\x01\x00\x00\x00", (("an ACL this tool cannot read", "read and write"),)),
], ids=["no-named-entry", "user-read", "group-read-write", "masked-to-write", "mask-none",
        "root", "execute-only", "unknown-version"])
def test_parse_acl_finds_who_else_may_read_or_write(monkeypatch, raw, grants):
    monkeypatch.setattr(fsutil, "_who", lambda tag, ident: f"{'uid' if tag == USER else 'gid'} "
                                                           f"{ident}")
    assert fsutil.parse_acl(raw) == grants


def test_acl_grants_reads_the_kernels_attribute(tmp_path):
    path = tmp_path / ".OneDesk"
    path.write_bytes(b"A=1\n")
    os.chmod(path, 0o600)
    os.setxattr(path, fsutil.ACL_XATTR, base(4, (USER, 4, 65432)))
    assert os.stat(path).st_mode & 0o070 == 0o040  # the kernel took it: the mask is the group
    fd = os.open(path, os.O_RDONLY)
    try:
        assert fsutil.acl_grants(fd, str(path)) == (("uid 65432", "read"),)
    finally:
        os.close(fd)
    plain = tmp_path / "plain"
    plain.write_bytes(b"")
    fd = os.open(plain, os.O_RDONLY)
    try:
        assert fsutil.acl_grants(fd, str(plain)) == ()
    finally:
        os.close(fd)


def test_held_says_whether_another_process_holds_a_lock_file(tmp_path):
    path = str(tmp_path / "lock")
    assert fsutil.held(path) is False  # absent
    with fsutil.locked(path):
        holder = subprocess.run(
            [sys.executable, "-c", "import sys; from onedesk_azuread import fsutil; "
             "sys.exit(0 if fsutil.held(sys.argv[1]) else 1)", path], check=False)
        assert holder.returncode == 0  # another process sees it held
    assert fsutil.held(path) is False  # released
    link = str(tmp_path / "link")
    os.symlink(path, link)
    with fsutil.locked(path):
        follow = subprocess.run(
            [sys.executable, "-c", "import sys; from onedesk_azuread import fsutil; "
             "sys.exit(0 if fsutil.held(sys.argv[1]) else 1)", link], check=False)
        assert follow.returncode == 1  # a link to a held lock is not followed
