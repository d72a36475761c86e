"""check.conf: read strictly (one line naming the file, the line and the fix for anything
else), and used only when root alone can change it: otherwise the secret is sent nowhere.
"""

import os
import re

import pytest

from onedesk_azuread import checkconf, watch

from .conftest import TENANT, expire_in, no_traceback, state_dir, write_conf

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# --- check.conf ------------------------------------------------------------------------------

def test_the_shipped_check_conf_is_all_defaults_and_each_example_is_valid():
    with open(os.path.join(HERE, "etc/check.conf")) as handle:
        shipped = handle.read()
    conf = checkconf.parse_conf(shipped, "check.conf")
    assert (conf.tenant, conf.cloud, conf.authority_host, conf.metrics) == (
        None, "public", None, None)
    examples = re.findall(r"^#(\w+ = .+)$", shipped, re.M)
    assert [e.split(" = ")[0] for e in examples] == list(checkconf.CONF_KEYS)
    every = checkconf.parse_conf("\n".join(examples) + "\n", "check.conf")  # uncommented: valid
    assert every.tenant == TENANT and every.timeout == 10.0
    assert every.metrics == "/var/lib/node_exporter/textfile_collector/onedesk_azuread.prom"


@pytest.mark.parametrize("text, words", [
    ("tenant = contoso.onmicrosoft.com\ntennant = x\n", ":2: 'tennant' is not a setting"),
    ("tenant = a.example.com\ntenant = b.example.com\n",
     ":2: tenant is set twice (first on line 1)"),
    ("[main]\n", ":1: sections are not used here"),
    ("tenant\n", ":1: 'tenant' is not `key = value`"),
    ("tenant =\n", ":1: tenant is empty"),
    ("tenant = 'contoso.onmicrosoft.com'\n", ":1: tenant = 'contoso.onmicrosoft.com': write the "
                                            "value without quotes"),
    ("tenant = contoso.onmicrosoft.com # ours\n", ":1: tenant = 'contoso.onmicrosoft.com # ours' "
                                                 "has a comment after the value"),
    ("tenant = common\n", "names no directory"),
    ("tenant = x.example.com\ncloud = moon\n", ":2: cloud = 'moon' is not one of public"),
    ("tenant = x.example.com\nauthority_host = http://login.example.com\n",
     ":2: authority_host = 'http://login.example.com' must be an https:// URL"),
    ("tenant = x.example.com\ntimeout = ten\n", ":2: timeout = 'ten' is not a number of seconds"),
    ("tenant = x.example.com\ntimeout = nan\n", "is not a number of seconds from 0.1 to 300"),
    ("tenant = x.example.com\ntimeout = 301\n", "is not a number of seconds from 0.1 to 300"),
    ("timeout = 5\n", "timeout is set but tenant is not"),
    ("metrics = metrics.prom\n", ":1: 'metrics.prom' is not an absolute path of a *.prom file"),
    ("metrics = /var/lib/node_exporter/onedesk.txt\n", "is not an absolute path of a *.prom"),
    ("metrics = /var/lib/../../etc/x.prom\n", "is not an absolute path of a *.prom"),
])
def test_a_bad_check_conf_is_one_line_naming_file_line_and_fix(run, configured, root, text,
                                                               words):
    path = write_conf(root, text)
    result = run("check", "--scheduled")
    no_traceback(result)
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(path + ":") and words in lines[0], lines[0]
    assert result.stdout == ""
    assert not os.path.exists(os.path.join(state_dir(root), watch.WATCH_FILE))


@pytest.mark.parametrize("kind", ["directory", "fifo", "link-loop", "not-utf8"])
def test_an_unreadable_check_conf_is_one_line(run, configured, root, kind):
    path = write_conf(root, "")
    os.unlink(path)
    if kind == "directory":
        os.mkdir(path)
    elif kind == "fifo":
        os.mkfifo(path)  # opened without blocking: never hangs the timer's run
    elif kind == "not-utf8":
        with open(path, "wb") as handle:
            handle.write(b"tenant = \xff\n")
    else:  # root reads any mode: a link that loops is an open that fails, for root too
        os.symlink(os.path.basename(path), path)
    result = run("check", "--scheduled")
    no_traceback(result)
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(path + ": "), lines
    assert any(w in lines[0] for w in ("not a regular file", "cannot be read", "not UTF-8"))


# --- check.conf counts only when root alone can change it -----------------------------------

CONF_DIR = "etc/onedesk-azuread"


def _loose_file(root, conf):
    os.chmod(conf, 0o664)
    return conf, "is writable by group or others", f"chmod go-w {conf}"


def _foreign_file(root, conf):
    os.chown(conf, 1000, 1000)
    return conf, "is not owned by root", f"chown root:root {conf}"


def _loose_directory(root, conf):
    os.chmod(os.path.dirname(conf), 0o777)
    directory = os.path.dirname(conf)
    return directory, "is writable by group or others", f"chmod go-w {directory}"


def _foreign_directory(root, conf):
    os.chown(os.path.join(str(root), "etc"), 1000, 1000)
    directory = os.path.join(str(root), "etc")
    return directory, "is not owned by root", f"chown root:root {directory}"


def _link_into_a_loose_directory(root, conf):
    """The README's configuration management: /etc/onedesk-azuread/check.conf a symlink."""
    elsewhere = os.path.join(str(root), "srv/cm")
    os.makedirs(elsewhere)
    os.chmod(elsewhere, 0o777)
    os.rename(conf, os.path.join(elsewhere, "check.conf"))
    os.symlink("../../srv/cm/check.conf", conf)
    return elsewhere, "is writable by group or others", f"chmod go-w {elsewhere}"


def _foreign_link(root, conf):
    elsewhere = os.path.join(str(root), "srv")
    os.makedirs(elsewhere)
    os.rename(conf, os.path.join(elsewhere, "check.conf"))
    os.symlink(os.path.join(elsewhere, "check.conf"), conf)  # absolute: followed on the host
    os.chown(conf, 1000, 1000, follow_symlinks=False)  # its owner could point it anywhere
    return conf, "is not owned by root", f"chown -h root:root {conf}"


@pytest.mark.parametrize("loosen", [_loose_file, _foreign_file, _loose_directory,
                                    _foreign_directory, _link_into_a_loose_directory,
                                    _foreign_link])
def test_a_check_conf_others_could_change_is_refused_and_sends_the_secret_nowhere(
        run, root, configured, azure, loosen):
    expire_in(root, 10)  # a warning that would be recorded
    os.makedirs(os.path.join(str(root), "var/lib/node"))
    conf = write_conf(root, f"tenant = {TENANT}\nauthority_host = {azure.url}\n"
                            f"metrics = /var/lib/node/od.prom\n")
    assert run("check", "--scheduled").exit_code == 0 and azure.seen  # root's alone: used
    os.unlink(os.path.join(str(root), "var/lib/node/od.prom"))
    os.unlink(os.path.join(state_dir(root), watch.WATCH_FILE))
    del azure.seen[:]
    offender, what, fix = loosen(root, conf)
    result = run("check", "--scheduled")
    no_traceback(result)
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [result.stderr.strip()], result.stderr
    line = result.stderr.strip()
    assert line.startswith(f"{conf}: not used: {offender} {what} (owner uid "), line
    assert fix in line, line
    assert azure.seen == []  # not even discovery: the secret went nowhere
    assert os.listdir(os.path.join(str(root), "var/lib/node")) == []  # no metrics
    assert not os.path.exists(os.path.join(state_dir(root), watch.WATCH_FILE))


def test_a_check_conf_others_could_replace_is_refused_even_when_absent(run, root, configured):
    conf = write_conf(root, "")
    os.unlink(conf)
    os.chmod(os.path.dirname(conf), 0o777)  # anyone could put a check.conf there tomorrow
    result = run("check", "--scheduled")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"{conf}: not used: {os.path.dirname(conf)} is writable")


def test_a_check_conf_linked_from_a_place_only_root_can_change_is_used(run, root, configured,
                                                                       azure):
    conf = write_conf(root, "")
    os.unlink(conf)
    # A world-writable directory with the sticky bit, like /tmp: no one but root can
    # rename or remove what root owns in it.
    sticky = os.path.join(str(root), "tmp")
    os.makedirs(os.path.join(sticky, "cm"))
    os.chmod(sticky, 0o1777)
    with open(os.path.join(sticky, "cm/check.conf"), "w") as handle:
        handle.write(f"tenant = {TENANT}\nauthority_host = {azure.url}\n")
    os.symlink("../../tmp/cm/../cm/check.conf", conf)
    result = run("check", "--scheduled")
    assert result.exit_code == 0, result.stderr
    assert "online: valid" in result.stderr and azure.seen
