"""A real dnf 5 test bed: Debian sid's dnf5 and its actions plugin, in a root made with mmdebstrap.

Debian 12 and 13 have no dnf5; sid does (../shared/FACTS.md). The sid root is
made once with mmdebstrap and cached under build/dnf5-sid; its marker file,
written last, names the package list it was made with, so a root that was cut
short or made for another list is made again. Each test session copies in what
the dnf 4 bed (tests/rpmbed.py) built on the host: the fixture repositories,
and our library and CLI unpacked from the RPMs that `make rpm` built, at the
paths those RPMs install them. dnf5 then runs in the sid root (`chroot`, with
/proc mounted in a mount namespace of its own, as a real system has it),
against throw-away installroots inside it, with a private configuration:
`reposdir=` (no repositories but ours), and `plugin_conf_dir=` pointing at a
private directory holding the actions plugin's own actions.conf and OUR shipped
actions file (dnf-plugin/onedesk_azuread.actions), so the real actions plugin
runs the real hook command. Nothing here touches the host's rpm database.
"""

import contextlib
import fcntl
import glob
import os
import shutil
import subprocess
import textwrap

from . import rpmbed
from .rpmbed import HERE, SHELL_PACKAGE, run

CACHE = os.path.join(HERE, "build", "dnf5-sid")
MARKER = ".onedesk-dnf5-bed"
SUITE, MIRROR = "sid", "http://deb.debian.org/debian"
# dnf5 and libdnf5-2 (the actions plugin, actions.so), rpm and createrepo-c as in FACTS.md;
# python3 with click and configobj so that our CLI, the hook dnf5 runs, runs in the root.
PACKAGES = ("dnf5", "libdnf5-2", "rpm", "createrepo-c", "busybox-static", "python3",
            "python3-click", "python3-configobj")
# The same root runs the suite on sid's Python (`make test-py314`), with Debian's own
# msal and test tools, and the dnf 4 bed with python3-dnf and sid's rpmbuild (`make rpm`
# there): one sid root for both, made once.
PACKAGES += ("python3-msal", "python3-pytest", "python3-hypothesis", "python3-trustme",
             "python3-dnf", "dnf", "rpm2cpio", "cpio", "make", "groff-base", "mandoc", "mount",
             "python3-setuptools", "locales")  # locales: localedef's sources (test_cli)
ACTIONS_FILE = os.path.join(HERE, "dnf-plugin", "onedesk_azuread.actions")
ACTIONS_NAME = "onedesk_azuread.actions"
# The sid root's environment for dnf5: nothing of the test process's (PYTHONPATH, proxies).
ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root", "LC_ALL": "C.UTF-8"}
# How dnf5 sees /proc (Dnf5Bed.chroot_argv).
PROC_HOST, PROC_NEW_PIDS, PROC_NONE = "host", "new-pids", "none"


def _mmdebstrap():
    if shutil.which("mmdebstrap"):
        return
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    if run(["apt-get", "install", "-y", "-q", "mmdebstrap"], env=env, check=False).returncode:
        run(["apt-get", "update", "-q"], env=env)
        run(["apt-get", "install", "-y", "-q", "mmdebstrap"], env=env)


def remove_root(path):
    """rm -rf ``path``, never through a mount: `make test-py314` mounts the host's /proc, /sys
    and /dev in the sid root, and a run killed with SIGKILL leaves them mounted there."""
    removed = run(["bash", os.path.join(HERE, "tools", "debian-root.sh"), "remove", path],
                  check=False)
    assert removed.returncode == 0, removed.stderr[-3000:]


def sid_root(path=CACHE):
    """The cached sid root with dnf5, made when missing or incomplete (about 35 s)."""
    key = " ".join(PACKAGES) + "\n"
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another session may be making it right now
        marker = os.path.join(path, MARKER)
        with contextlib.suppress(OSError), open(marker) as handle:
            if handle.read() == key:
                return path
        _mmdebstrap()
        remove_root(path)
        made = run(["mmdebstrap", "--variant=essential", "--mode=root", "--quiet",
                    "--aptopt=Acquire::Check-Valid-Until \"false\"",
                    "--include=" + ",".join(PACKAGES), SUITE, path, MIRROR], check=False)
        assert made.returncode == 0, made.stderr[-3000:]
        with open(marker, "w") as handle:  # last: the root is complete
            handle.write(key)
    return path


class Dnf5Bed:
    """One test session's part of the sid root: repositories, our library, plugin directories."""

    def __init__(self, bed, sid=None):
        self.bed = bed
        self.sid = sid or sid_root()
        self.inside = f"/onedesk-bed/{os.getpid()}"  # as dnf5 in the sid root sees it
        self.top = self.host(self.inside)
        shutil.rmtree(self.top, ignore_errors=True)
        os.makedirs(self.top)
        shutil.copytree(os.path.join(bed.top, "repos"), os.path.join(self.top, "repos"))
        self._install_ours()
        with open(os.path.join(self.sid, "etc/dnf/libdnf5-plugins/actions.conf")) as handle:
            self.actions_conf = handle.read()
        with open(ACTIONS_FILE) as handle:
            self.shipped_actions = handle.read()
        self.plugins = {"on": self.plugin_dir("on", self.shipped_actions),
                        "off": self.plugin_dir("off", None)}
        self._serial = 0
        probe = run(self.chroot_argv("true"), check=False)
        assert probe.returncode == 0, (
            f"dnf5 bed: cannot mount /proc for dnf5 in a mount namespace of its own: "
            f"{probe.stderr.strip()[-500:]} (unshare needs / to be a mount point, as on a "
            f"real machine; in a chroot, bind-mount its root onto itself first)")

    def serial(self):
        """A new number for a unique name in this session."""
        self._serial += 1
        return self._serial

    def host(self, inside):
        """The host's path of a path inside the sid root."""
        return os.path.join(self.sid, inside.lstrip("/"))

    def _install_ours(self):
        """Our CLI, the dnf 5 hook and the library where the RPMs put them (the sid root's
        python3 finds them)."""
        self.ours = []
        for relative in ("usr/bin/onedesk-azuread", "usr/bin/onedesk-azuread-dnf5-hook",
                         os.path.join(os.path.relpath(self.bed.sitelib, self.bed.unpacked),
                                      "onedesk_azuread")):
            source = os.path.join(self.bed.unpacked, relative)
            target = os.path.join(self.sid, relative)
            self._remove(target)
            if os.path.isdir(source):
                shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(source, target)
            self.ours.append(target)

    @staticmethod
    def _remove(path):
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        elif os.path.lexists(path):
            os.unlink(path)

    def plugin_dir(self, name, actions_text, extra=None):
        """A plugin_conf_dir: the actions plugin's actions.conf, and actions.d/ with
        ``actions_text`` as our actions file (none when None) and ``extra`` files."""
        inside = f"{self.inside}/plugins/{name}"
        actions_d = os.path.join(self.host(inside), "actions.d")
        os.makedirs(actions_d)
        with open(os.path.join(self.host(inside), "actions.conf"), "w") as handle:
            handle.write(self.actions_conf)
        files = dict(extra or {})
        if actions_text is not None:
            files[ACTIONS_NAME] = actions_text
        for file_name, text in files.items():
            with open(os.path.join(actions_d, file_name), "w") as handle:
                handle.write(text)
        return inside

    def chroot_argv(self, *argv, proc=PROC_HOST):
        """``argv`` run in the sid root, with nothing of this process's environment.

        ``proc``: PROC_HOST mounts /proc in the root, as on a real system (the dnf 5 hook
        tells one dnf 5 run from another by it), PROC_NEW_PIDS also gives the run a new
        pid namespace (dnf5 is pid 1 every time, as in a container), PROC_NONE runs it
        without /proc. The mount lives in a mount namespace of its own (unshare), so it
        goes away with the process and never shows outside.
        """
        chroot = ["chroot", self.sid, "env", "-i", *(f"{k}={v}" for k, v in ENV.items()),
                  *argv]
        if proc == PROC_NONE:
            return chroot
        pids = ["--pid", "--fork"] if proc == PROC_NEW_PIDS else []
        return ["unshare", *pids, f"--mount-proc={self.host('/proc')}", *chroot]

    def chroot(self, *argv, check=False, proc=PROC_HOST):
        return run(self.chroot_argv(*argv, proc=proc), check=check)

    def cleanup(self):
        shutil.rmtree(self.top, ignore_errors=True)
        with contextlib.suppress(OSError):
            os.rmdir(os.path.dirname(self.top))
        for path in self.ours:  # the cached root stays as mmdebstrap made it
            self._remove(path)


class Root:
    """One throw-away installroot inside the sid root, with its own dnf5 configuration."""

    # What the fixture packages' install scripts recorded, and the settings file:
    # the same files as in the dnf 4 bed's roots.
    seen = rpmbed.Root.seen
    settings = rpmbed.Root.settings
    write_settings = rpmbed.Root.write_settings
    logs = rpmbed.Root.logs

    def __init__(self, dbed, name, repo="main", plugins="on", proc=PROC_HOST):
        self.dbed = dbed
        self.proc = proc
        self.inside = f"{dbed.inside}/roots/{name}"
        self.path = dbed.host(self.inside)
        os.makedirs(os.path.join(self.path, "root"), mode=0o700)
        self.conf = f"{self.inside}.conf"
        with open(dbed.host(self.conf), "w") as handle:
            handle.write(textwrap.dedent(f"""\
                [main]
                gpgcheck=0
                reposdir=
                plugin_conf_dir={dbed.plugins.get(plugins, plugins)}
                metadata_expire=0
                keepcache=1
                install_weak_deps=0
                clean_requirements_on_remove=0
                [fixtures]
                name=fixtures
                baseurl=file://{dbed.inside}/repos/{repo}
                gpgcheck=0
                """))
        self.dnf("install", SHELL_PACKAGE)  # a real system has a shell before OneDesk

    def dnf_argv(self, *args):
        return ["dnf5", "-c", self.conf, "--releasever=9", "-y", f"--installroot={self.inside}",
                *args]

    def dnf(self, *args, check=True):
        result = self.dbed.chroot(*self.dnf_argv(*args), proc=self.proc)
        if check:
            assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
        return result

    def cli(self, *args):
        """Our CLI as installed in the sid root, on this installroot."""
        return self.dbed.chroot("onedesk-azuread", "--root", self.inside, *args)

    def installed(self):
        out = self.dbed.chroot("rpm", "--root", self.inside, "-qa", "--qf",
                               "%{NAME}-%{VERSION}-%{RELEASE}\n", check=True).stdout
        return sorted(line for line in out.splitlines() if line != f"{SHELL_PACKAGE}-1-1")

    def downloaded(self):
        """Package files in dnf5's cache (keepcache=1 keeps every one it fetched), but the shell."""
        files = glob.glob(os.path.join(self.path, "var/cache/libdnf5/*/packages/*.rpm"))
        return sorted(name for name in map(os.path.basename, files)
                      if not name.startswith(SHELL_PACKAGE + "-"))

    @property
    def state_dir(self):
        return os.path.join(self.path, "var/lib/onedesk-azuread")


def probe():
    """`python -m tests.dnf5bed`: make the sid root and print its dnf5 version."""
    path = sid_root()
    print(subprocess.run(["chroot", path, "dnf5", "--version"], capture_output=True,
                         text=True, check=True).stdout.splitlines()[0])


if __name__ == "__main__":
    probe()
