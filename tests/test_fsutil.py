"""fsutil's own behaviour: what a replaced file keeps (its SELinux label), and what a POSIX
ACL on it allows, read from the extended attributes themselves (setting `security.selinux`
works without SELinux active; tmp_path is on a file system with ACLs)."""

import errno
import os
import struct

import pytest

from onedesk_azuread import fsutil
from onedesk_azuread.errors import SettingsError

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
