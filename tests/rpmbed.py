"""A real rpm + dnf test bed: fixture packages, repositories, throw-away installroots.

Everything runs the real tools (rpmbuild, createrepo_c, dnf, rpm) with a
private HOME whose .rpmmacros points the rpm database inside each root, so the
host's database is never touched. The packaged plugin is what is tested: the
RPMs from `make rpm` are unpacked and dnf's pluginpath and the Python path
point at the unpacked files.
"""

import glob
import os
import shutil
import signal
import subprocess
import textwrap

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ONEDESK = ("onedesk-db-utils", "onedesk-webapps", "onedesk-microservices", "onedesk-customerapps")
SHELL_PACKAGE = "onedesk-test-shell"
RECORDS = "var/lib/onedesk-fixture"

# %post of every OneDesk fixture: record what the install script saw, the way
# OneDesk's own scripts read their settings (the environment, then the file).
POST = r"""
d=/var/lib/onedesk-fixture/%{name}
mkdir -p "$d"
printf '%s\n' "$1" >> "$d/args"
FRESH_ONLY_CHECK
n=0; [ -f "$d/runs" ] && n=$(cat "$d/runs"); echo $((n + 1)) > "$d/runs"
rm -f "$d/env_cid" "$d/env_cis"
[ -n "${AZUREAD_CID+x}" ] && printf '%s' "$AZUREAD_CID" > "$d/env_cid"
[ -n "${AZUREAD_CIS+x}" ] && printf '%s' "$AZUREAD_CIS" > "$d/env_cis"
if [ -f /root/.OneDesk ]; then cat /root/.OneDesk > "$d/file"; else rm -f "$d/file"; fi
if [ -f /root/.OneDesk ]; then
  ( set -a; . /root/.OneDesk; printf '%s' "${AZUREAD_CIS-}" > "$d/sourced_cis" )
fi
"""

FIXTURE_SPEC = """\
Name: {name}
Version: {version}
Release: {release}
Summary: OneDesk stand-in for tests
License: MIT
BuildArch: noarch
{requires}
%description
Test fixture: its install script records what it saw.
%post
{post}
%files
"""

# A third party's package that requires onedesk-db-utils: `dnf remove onedesk-db-utils`
# takes it away too, and apply must install it again. Its %post records only what it
# was run with (not the environment: it is not OneDesk's and must not see the secret).
ADDON = "acme-onedesk-addon"
ADDON_SPEC = """\
Name: acme-onedesk-addon
Version: 1
Release: 1
Summary: a third-party add-on that requires onedesk-db-utils
License: MIT
BuildArch: noarch
Requires: onedesk-db-utils
%description
Test fixture.
%post
d=/var/lib/onedesk-fixture/%{name}
mkdir -p "$d"
printf '%s\\n' "$1" >> "$d/args"
n=0; [ -f "$d/runs" ] && n=$(cat "$d/runs"); echo $((n + 1)) > "$d/runs"
%files
"""

SHELL_SPEC = """\
Name: {name}
Version: 1
Release: 1
Summary: busybox as /bin/sh for throw-away test roots
License: GPL-2.0-only
BuildArch: noarch
Provides: /bin/sh
AutoReqProv: no
%description
Test fixture: a shell for scriptlets in an otherwise empty root.
%install
mkdir -p %{{buildroot}}/bin
cp {busybox} %{{buildroot}}/bin/busybox
for t in sh cat mkdir printf echo rm test env start-stop-daemon sleep; do
  ln -s busybox "%{{buildroot}}/bin/$t"; done
%files
/bin/*
"""

UNRELATED_SPEC = """\
Name: unrelated-tool
Version: 1
Release: 1
Summary: a package OneDesk has nothing to do with
License: MIT
BuildArch: noarch
%description
Test fixture.
%files
"""

# An unrelated package whose %post records its whole environment and leaves a
# process running as nobody, as a daemon started by an install script would.
# It ships what that needs in an empty root: /dev/null and a passwd entry.
ENV_RECORDER = "env-recorder"
ENV_RECORDER_SPEC = """\
Name: env-recorder
Version: 1
Release: 1
Summary: records the environment its install script gets
License: MIT
BuildArch: noarch
AutoReqProv: no
%description
Test fixture.
%install
mkdir -p %{buildroot}/etc
echo 'nobody:x:65534:65534::/:/bin/sh' > %{buildroot}/etc/passwd
echo 'nobody:x:65534:' > %{buildroot}/etc/group
%post
d=/var/lib/onedesk-fixture/env-recorder
mkdir -p "$d"
env > "$d/env"
start-stop-daemon -S -b -c 65534:65534 -m -p "$d/daemon.pid" -x /bin/sleep -- 3600
%files
/etc/passwd
/etc/group
%dev(c, 1, 3) %attr(0666, root, root) /dev/null
"""


def cli(root, *args, input=None, env=None):
    """The CLI as an administrator runs it, with dnf and rpm set up for this root."""
    from onedesk_azuread.cli import cli as command

    from .conftest import make_runner

    result = make_runner().invoke(command, ["--root", root.path, *args], input=input,
                                  env=env or root.env, catch_exceptions=False)
    assert "Traceback" not in result.stderr
    return result


def run(argv, env=None, check=True, **kwargs):
    return subprocess.run(argv, env=env, check=check, capture_output=True, text=True, **kwargs)


# --- Faults for apply -------------------------------------------------------------------------

def dnf_wrapper(path, before=None, after=None):
    """A dnf command for $ONEDESK_AZUREAD_DNF that runs the real dnf, and a shell command
    before or after the apply step named: ``prefetch`` (a --downloadonly run), ``remove``
    or ``install`` (not the prefetch). Returns the script's path."""
    script = textwrap.dedent("""\
        #!/bin/sh
        case " $* " in
          *" --downloadonly "*) step=prefetch ;;
          *" remove "*) step=remove ;;
          *" install "*) step=install ;;
          *) step=other ;;
        esac
        if [ "$step" = "{before_step}" ]; then {before_action}
        fi
        dnf "$@"; rc=$?
        if [ "$step" = "{after_step}" ]; then {after_action}
        fi
        exit $rc
        """)
    (before_step, before_action), (after_step, after_action) = [
        next(iter(hook.items())) if hook else ("-", ":") for hook in (before, after)]
    with open(path, "w") as handle:
        handle.write(script.format(before_step=before_step, before_action=before_action,
                                   after_step=after_step, after_action=after_action))
    os.chmod(path, 0o755)
    return str(path)


# What the wrapper runs to SIGKILL the apply that started it (its parent), refusing to
# signal anything that is not onedesk-azuread.
KILL_APPLY = ('grep -q onedesk-azuread /proc/$PPID/cmdline '
              '&& kill -KILL $PPID || { echo "not apply: $PPID" >&2; exit 99; }')


class RepoServer:
    """A fixture repository served over HTTP on 127.0.0.1 (port 0), in a thread.

    GET /stop closes the listening socket for good before it answers, so that whoever
    asked knows the repository is gone. ``requests`` lists the paths asked for.
    """

    def __init__(self, directory):
        import functools
        import http.server
        import threading

        server_ref = self
        self.requests = []

        class Handler(http.server.SimpleHTTPRequestHandler):
            def do_GET(self):
                server_ref.requests.append(self.path)
                if self.path == "/stop":
                    server_ref.httpd.shutdown()
                    server_ref.httpd.server_close()
                    self.send_response(200)
                    self.end_headers()
                    return
                super().do_GET()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(Handler, directory=directory))
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def stop_command(self):
        """A shell command that stops the server (for dnf_wrapper)."""
        return (f"/usr/bin/python3 -c 'import urllib.request; "
                f"urllib.request.urlopen(\"{self.url}stop\").read()'")

    def close(self):
        if self.thread.is_alive():
            self.httpd.shutdown()
            self.httpd.server_close()


class Bed:
    """Built once per test session: RPMs, fixture repositories, the unpacked plugin."""

    def __init__(self, top):
        self.top = top
        self.home = os.path.join(top, "home")
        os.makedirs(self.home)
        with open(os.path.join(self.home, ".rpmmacros"), "w") as handle:
            # Inside each installroot, as on EL; never the host's database.
            handle.write("%_dbpath /var/lib/rpm\n")
        self.env = {
            "HOME": self.home,
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "LC_ALL": "C.UTF-8",
        }
        self._build_ours()
        self._build_fixtures()

    # --- our packages, as shipped ---------------------------------------------------------
    def _build_ours(self):
        make = run(["make", "-s", "-C", HERE, "rpm"], env=self.env, check=False)
        assert make.returncode == 0, make.stderr[-3000:]
        rpms = sorted(glob.glob(os.path.join(HERE, "dist", "*.noarch.rpm")))
        self.our_rpms = [r for r in rpms if os.path.basename(r).startswith(
            ("onedesk-azuread-", "python3-dnf-plugin-onedesk-azuread-"))]
        assert len(self.our_rpms) == 2, rpms
        self.unpacked = os.path.join(self.top, "unpacked")
        os.makedirs(self.unpacked)
        for rpm in self.our_rpms:
            payload = subprocess.run(["rpm2cpio", rpm], check=True, capture_output=True).stdout
            subprocess.run(["cpio", "-idm", "--quiet"], input=payload, cwd=self.unpacked,
                           check=True)
        sitelibs = glob.glob(os.path.join(self.unpacked, "usr/lib*/python3*/*-packages"))
        self.sitelib = next(p for p in sitelibs if os.path.isdir(os.path.join(p, "dnf-plugins")))
        self.pluginpath = os.path.join(self.sitelib, "dnf-plugins")
        self.plugin_conf = os.path.join(self.unpacked, "etc/dnf/plugins/onedesk_azuread.conf")
        self.cli = os.path.join(self.unpacked, "usr/bin/onedesk-azuread")

    # --- fixtures -------------------------------------------------------------------------
    def _rpmbuild(self, spec_text, name):
        specs = os.path.join(self.top, "specs")
        os.makedirs(specs, exist_ok=True)
        spec = os.path.join(specs, name + ".spec")
        with open(spec, "w") as handle:
            handle.write(spec_text)
        out = os.path.join(self.top, "rpms")
        result = run(["rpmbuild", "-bb", "--nodeps",
                      "--define", f"_topdir {self.top}/rpmbuild",
                      "--define", f"_dbpath {self.top}/builddb",
                      "--define", f"_rpmdir {out}",
                      "--define", "_build_name_fmt %{NAME}-%{VERSION}-%{RELEASE}.%{ARCH}.rpm",
                      "--define", "_binaries_in_noarch_packages_terminate_build 0",
                      spec], env=self.env, check=False)
        assert result.returncode == 0, result.stderr[-3000:]

    def _fixture(self, name, version, release="1", fresh_only=False):
        requires = "" if name == "onedesk-db-utils" else "Requires: onedesk-db-utils"
        check = '[ "$1" -eq 1 ] || exit 0' if fresh_only else ""
        post = textwrap.dedent(POST).replace("FRESH_ONLY_CHECK", check).strip()
        self._rpmbuild(FIXTURE_SPEC.format(name=name, version=version, release=release,
                                           requires=requires, post=post),
                       f"{name}-{version}-{release}")

    def _build_fixtures(self):
        busybox = shutil.which("busybox") or "/bin/busybox"
        self._rpmbuild(SHELL_SPEC.format(name=SHELL_PACKAGE, busybox=busybox), SHELL_PACKAGE)
        self._rpmbuild(UNRELATED_SPEC, "unrelated-tool")
        self._rpmbuild(ENV_RECORDER_SPEC, ENV_RECORDER)
        for version in ("1.0", "2.0"):
            for name in ONEDESK:
                self._fixture(name, version)
        self._fixture("onedesk-db-utils", "2.0", release="1.fresh", fresh_only=True)
        self._rpmbuild(ADDON_SPEC, ADDON)
        rpms = os.path.join(self.top, "rpms")
        every = sorted(os.listdir(rpms))
        fresh = [f for f in every if f.startswith("onedesk-db-utils-2.0-1.fresh")]
        plain = [f for f in every if f not in fresh]
        self.repos = {
            # everything, both versions
            "main": plain,
            # db-utils applies settings only on a fresh install ($1 = 1)
            "fresh": [f for f in plain if not f.startswith("onedesk-db-utils-")] + fresh,
            # onedesk-customerapps is missing
            "partial": [f for f in plain if not f.startswith("onedesk-customerapps-")],
        }
        for repo, files in self.repos.items():
            path = os.path.join(self.top, "repos", repo)
            os.makedirs(path)
            for name in files:
                shutil.copy(os.path.join(rpms, name), path)
            run(["createrepo_c", "-q", path], env=self.env)

    def repo_url(self, repo):
        return "file://" + os.path.join(self.top, "repos", repo)


class Root:
    """One throw-away installroot with its own dnf configuration."""

    def __init__(self, bed, path, repo="main", plugin=True, require=False, extra_conf=""):
        self.bed = bed
        self.path = str(path)
        os.makedirs(os.path.join(self.path, "root"), mode=0o700, exist_ok=True)
        conf_dir = os.path.join(self.path + ".conf")
        os.makedirs(os.path.join(conf_dir, "plugins"), exist_ok=True)
        self.conf = os.path.join(conf_dir, "dnf.conf")
        self.plugin_conf = os.path.join(conf_dir, "plugins", "onedesk_azuread.conf")
        with open(bed.plugin_conf) as handle:
            shipped = handle.read()
        with open(self.plugin_conf, "w") as handle:
            handle.write(shipped.replace("require = 0", f"require = {int(require)}")
                         .replace("enabled = 1", f"enabled = {int(plugin)}"))
        self.set_repo(repo, extra_conf)
        self.dnf("install", SHELL_PACKAGE)  # a real system has a shell before OneDesk

    def set_repo(self, repo, extra_conf="", url=None):
        with open(self.conf, "w") as handle:
            handle.write(textwrap.dedent(f"""\
                [main]
                gpgcheck=0
                reposdir=
                plugins=1
                pluginpath={self.bed.pluginpath}
                pluginconfpath={os.path.dirname(self.plugin_conf)}
                metadata_expire=0
                clean_requirements_on_remove=False
                cachedir={self.path}.cache
                {extra_conf}
                [fixtures]
                name=fixtures
                baseurl={url or self.bed.repo_url(repo)}
                gpgcheck=0
                """))

    @property
    def env(self):
        env = dict(self.bed.env)
        env["PYTHONPATH"] = self.bed.sitelib
        env["ONEDESK_AZUREAD_DNF"] = f"dnf -c {self.conf} --releasever=9"
        return env

    def dnf_argv(self, *args):
        return ["dnf", "-c", self.conf, "--releasever=9", f"--installroot={self.path}", "-y",
                *args]

    def dnf(self, *args, check=True):
        result = run(self.dnf_argv(*args), env=self.env, check=False)
        if check:
            assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
        return result

    def installed(self):
        out = run(["rpm", "--root", self.path, "-qa", "--qf", "%{NAME}-%{VERSION}-%{RELEASE}\n"],
                  env=self.env).stdout
        return sorted(line for line in out.splitlines() if line != f"{SHELL_PACKAGE}-1-1")

    def seen(self, package):
        """What ``package``'s install script recorded (None for what it did not see)."""
        base = os.path.join(self.path, RECORDS, package)

        def read(name):
            path = os.path.join(base, name)
            if not os.path.exists(path):
                return None
            with open(path, "rb") as handle:
                return handle.read().decode("utf-8")
        args = read("args")
        return {
            "args": args.split() if args else [],
            "runs": int(read("runs") or 0),
            "env_cid": read("env_cid"),
            "env_cis": read("env_cis"),
            "file": read("file"),
            "sourced_cis": read("sourced_cis"),
        }

    @property
    def settings(self):
        return os.path.join(self.path, "root", ".OneDesk")

    def write_settings(self, text, mode=0o600):
        with open(self.settings, "w", newline="") as handle:
            handle.write(text)
        os.chmod(self.settings, mode)

    def logs(self):
        """Everything dnf wrote to its logs in this root."""
        text = ""
        for path in glob.glob(os.path.join(self.path, "var/log/*")):
            if os.path.isfile(path):
                with open(path, errors="replace") as handle:
                    text += handle.read()
        return text

    def recorder_daemon(self):
        """The pid of the process env-recorder's %post left running, while it runs."""
        pidfile = os.path.join(self.path, RECORDS, ENV_RECORDER, "daemon.pid")
        try:
            with open(pidfile) as handle:
                pid = int(handle.read())
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                return pid if b"sleep" in handle.read() else None  # never another process
        except (OSError, ValueError):
            return None

    def stop_recorder_daemon(self):
        pid = self.recorder_daemon()
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
