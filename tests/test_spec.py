"""The RPMs Debian's rpmbuild makes are test builds: dnf refuses them, naming why."""

import glob
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
