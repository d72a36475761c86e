"""What the tool takes from files: root_only's walk (every directory, symlink and the file,
as the kernel walks them) and printable's escaping."""

import errno
import os

import pytest

from onedesk_azuread import trust


@pytest.fixture
def top(tmp_path):
    """A root-owned tree below pytest's directory, whose parents root_only does not judge."""
    path = tmp_path / "top"
    (path / "etc/cm").mkdir(parents=True)
    (path / "etc/cm/file.conf").write_text("x = 1\n")
    return str(path)


def walk(top, relative):
    return trust.root_only(os.path.join(top, relative), top)


def test_a_root_only_file_is_found_through_links_and_dot_dots(top):
    os.symlink("cm/../cm/file.conf", os.path.join(top, "etc/relative"))
    os.symlink(os.path.join(top, "etc/relative"), os.path.join(top, "absolute"))
    for name in ("etc/cm/file.conf", "etc/relative", "absolute", "etc/./cm//file.conf"):
        real, st, problem = walk(top, name)
        assert (real, problem) == (os.path.join(top, "etc/cm/file.conf"), None), name
        assert st.st_size == 6


@pytest.mark.parametrize("where, change, what", [
    ("etc/cm/file.conf", lambda p: os.chmod(p, 0o620), trust.WHAT_MODE),
    ("etc/cm/file.conf", lambda p: os.chmod(p, 0o602), trust.WHAT_MODE),
    ("etc/cm/file.conf", lambda p: os.chown(p, 0, 1000), None),  # its group cannot write
    ("etc/cm/file.conf", lambda p: os.chown(p, 1000, 0), trust.WHAT_OWNER),
    ("etc/cm", lambda p: os.chmod(p, 0o775), trust.WHAT_MODE),
    ("etc", lambda p: os.chown(p, 1000, 1000), trust.WHAT_OWNER),
    ("", lambda p: os.chmod(p, 0o757), trust.WHAT_MODE),  # the top itself is judged
    ("etc/cm", lambda p: os.chmod(p, 0o1777), None),  # sticky: only root moves root's entries
])
def test_the_first_that_others_could_change_is_named(top, where, change, what):
    change(os.path.join(top, where) if where else top)
    offender, _, problem = walk(top, "etc/cm/file.conf")
    if what is None:
        assert problem is None
    else:
        assert problem.offender == offender == os.path.join(top, where).rstrip("/")
        assert problem.what == what


def test_a_link_someone_else_owns_is_named_with_chown_h(top):
    link = os.path.join(top, "link")
    os.symlink("etc/cm/file.conf", link)
    os.chown(link, 1000, 1000, follow_symlinks=False)
    _, _, problem = walk(top, "link")
    assert problem.offender == link
    message = problem.message("check.conf")
    assert message.startswith(f"check.conf: not used: {link} is not owned by root (owner uid "
                              f"1000, mode 0777)")
    assert message.endswith(f"make it root's alone: chown -h root:root {link}")


def test_a_link_out_of_the_top_is_judged_all_the_way(top, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "file.conf").write_text("")
    os.chmod(outside, 0o777)
    os.symlink("../outside/file.conf", os.path.join(top, "link"))
    _, _, problem = walk(top, "link")
    assert problem.offender == str(outside) and problem.what == trust.WHAT_MODE


@pytest.mark.parametrize("name, error", [
    ("etc/absent.conf", errno.ENOENT),
    ("etc/cm/file.conf/more", errno.ENOTDIR),
    ("loop", errno.ELOOP),
])
def test_what_cannot_be_walked_is_the_kernel_s_error(top, name, error):
    os.symlink("loop", os.path.join(top, "loop"))
    with pytest.raises(OSError) as caught:
        walk(top, name)
    assert caught.value.errno == error


def test_printable_escapes_every_control_character_and_only_those():
    text = "a\x1b[31m\r\n\x00<3>b\t\x7f\x85\u2028 é ü ✓ \\x1b"
    shown = trust.printable(text)
    assert shown == "a\\x1b[31m\\r\\n\\x00<3>b\\t\\x7f\\x85\\u2028 é ü ✓ \\x1b"
    assert trust.printable(shown) == shown  # escaping again changes nothing
    assert all(ch.isprintable() for ch in shown)
