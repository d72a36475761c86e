"""The RPMs Debian's rpmbuild makes are test builds: dnf refuses them, naming why; and what
the RPMs carry besides the code."""

import glob
import gzip
import os
import subprocess

from .rpmbed import HERE, Root


def test_a_debian_test_build_says_so_and_never_installs(bed, tmp_path):
    root = Root(bed, tmp_path / "root")
    ours = sorted(glob.glob(os.path.join(HERE, "dist", "onedesk-azuread-*.noarch.rpm")))
    assert ours and all(".testbuild." in os.path.basename(path) for path in ours)
    result = subprocess.run(root.dnf_argv("install", *bed.our_rpms), env=root.env,
                            capture_output=True, text=True, check=False)
    assert result.returncode == 1
    output = result.stdout + result.stderr
    assert ("nothing provides onedesk-azuread-test-build"
            "(made-by-debian-rpmbuild-rebuild-the-srpm-on-el)") in output
    assert root.installed() == []


def test_the_rpm_ships_the_committed_man_page_and_completion(bed):
    """The man page (compressed, as on EL) and the bash completion, byte for byte."""
    ours = next(r for r in bed.our_rpms if os.path.basename(r).startswith("onedesk-azuread-"))
    listed = subprocess.run(["rpm", "-qlp", ours], env=bed.env, capture_output=True, text=True,
                            check=True).stdout.split()
    assert "/usr/share/man/man1/onedesk-azuread.1.gz" in listed
    assert "/usr/share/bash-completion/completions/onedesk-azuread" in listed
    with gzip.open(os.path.join(bed.unpacked, "usr/share/man/man1/onedesk-azuread.1.gz")) as man:
        with open(os.path.join(HERE, "docs", "onedesk-azuread.1"), "rb") as committed:
            assert man.read() == committed.read()
    with open(os.path.join(bed.unpacked, "usr/share/bash-completion/completions/onedesk-azuread"),
              "rb") as shipped, open(os.path.join(HERE, "completion", "onedesk-azuread.bash"),
                                     "rb") as committed:
        assert shipped.read() == committed.read()
    # and the packaged page renders (groff: in every stage's root, unlike man-db)
    with gzip.open(os.path.join(bed.unpacked, "usr/share/man/man1/onedesk-azuread.1.gz")) as man:
        shown = subprocess.run(["groff", "-man", "-Tutf8", "-P", "-cbou"], input=man.read(),
                               capture_output=True, check=True).stdout.decode()
    assert shown.startswith("ONEDESK-AZUREAD(1)") and "EXIT STATUS" in shown


def test_the_rpm_carries_the_daily_check_its_preset_and_check_conf(bed):
    ours = [p for p in bed.our_rpms if os.path.basename(p).startswith("onedesk-azuread-")]
    assert len(ours) == 1, bed.our_rpms
    query = subprocess.run(["rpm", "-qp", "--qf", "[%{FILEFLAGS:fflags} %{FILEMODES:perms} "
                            "%{FILENAMES}\n]", ours[0]], env=bed.env, capture_output=True,
                           text=True, check=True).stdout
    files = {line.split()[-1]: line.split()[:-1] for line in query.splitlines()}
    units = "/usr/lib/systemd/system/"
    shipped = {
        units + "onedesk-azuread-check.service": "systemd/onedesk-azuread-check.service",
        units + "onedesk-azuread-check.timer": "systemd/onedesk-azuread-check.timer",
        "/usr/lib/systemd/system-preset/80-onedesk-azuread.preset":
            "systemd/80-onedesk-azuread.preset",
        "/etc/onedesk-azuread/check.conf": "etc/check.conf",
    }
    for path, source in shipped.items():
        assert files[path][-1] == "-rw-r--r--", (path, files[path])
        with open(os.path.join(bed.unpacked, path.lstrip("/"))) as packed, \
                open(os.path.join(HERE, source)) as original:
            assert packed.read() == original.read(), path
    assert files["/etc/onedesk-azuread/check.conf"][0] == "cn"  # %config(noreplace)
    assert files["/etc/onedesk-azuread"][-1].startswith("d")  # the package owns the directory
    for path in shipped:
        if path.startswith("/usr/"):
            assert files[path][0] == "-rw-r--r--"  # no flags: not %config
    scripts = subprocess.run(["rpm", "-qp", "--scripts", ours[0]], env=bed.env,
                             capture_output=True, text=True, check=True).stdout
    post, preun = (scripts.split(f"{kind} scriptlet")[1].split("scriptlet")[0]
                   for kind in ("postinstall", "preuninstall"))
    # EL's %systemd_post applies the preset on a first install; Debian's fallback does too.
    assert "onedesk-azuread-check.timer" in post and ("preset" in post or "install" in post)
    assert "onedesk-azuread-check.timer" in preun
