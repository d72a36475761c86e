"""For `make bench`'s outage figure: OneDesk packages of a real size, a repository served
slowly over HTTP on 127.0.0.1, and a watcher that asks rpm which of them are installed.

The packages are built once (random, incompressible data, an uncompressed payload so
rpmbuild takes seconds) and kept under build/ by a key of their recipe; the test suite's
bed stays light.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import os
import shutil
import subprocess
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CACHE = os.path.join(HERE, "build", "bench-outage")
VERSION = "9.0"  # above the bed's fixtures, never mixed with them
PAYLOAD_DIR = "/opt/onedesk-bench"

HEAVY_SPEC = """\
Name: {name}
Version: {version}
Release: 1
Summary: OneDesk stand-in of a real size (make bench)
License: MIT
BuildArch: noarch
AutoReqProv: no
{requires}
%description
Random data, so that downloading and installing it costs what a real package does.
%install
mkdir -p %{{buildroot}}{payload_dir}
head -c {size} /dev/urandom > %{{buildroot}}{payload_dir}/%{{name}}.bin
%files
{payload_dir}/%{{name}}.bin
"""

# rpmbuild's defaults would compress 50 MB of random data for nothing and look for ELF
# files to strip in it.
RPMBUILD_DEFINES = {
    "_binary_payload": "w0.ufdio",
    "__os_install_post": "%{nil}",
    "debug_package": "%{nil}",
    "_build_name_fmt": "%{NAME}-%{VERSION}-%{RELEASE}.%{ARCH}.rpm",
}


def heavy_repo(names, size, env):
    """A repository directory of ``names`` (the first required by the others, as OneDesk's
    db-utils is), each carrying ``size`` bytes; built once per recipe. Returns its path."""
    specs = [HEAVY_SPEC.format(name=name, version=VERSION, size=size, payload_dir=PAYLOAD_DIR,
                               requires="" if name == names[0] else f"Requires: {names[0]}")
             for name in names]
    rpmbuild = subprocess.run(["rpmbuild", "--version"], capture_output=True, text=True,
                              check=True).stdout
    key = hashlib.sha256("\0".join([rpmbuild, repr(sorted(RPMBUILD_DEFINES.items()))] + specs)
                         .encode()).hexdigest()[:16]
    repo = os.path.join(CACHE, key)
    if os.path.exists(os.path.join(repo, ".ready")):
        return repo
    shutil.rmtree(CACHE, ignore_errors=True)  # an older recipe's 200 MB
    os.makedirs(repo)
    with tempfile.TemporaryDirectory(prefix="onedesk-bench-heavy.", dir=CACHE) as work:
        # rpmbuild opens an rpm database: a private one, never the host's.
        defines = dict(RPMBUILD_DEFINES, _topdir=os.path.join(work, "top"),
                       _dbpath=os.path.join(work, "db"), _rpmdir=repo)
        argv = ["rpmbuild", "-bb", "--nodeps"]
        for macro, value in defines.items():
            argv += ["--define", f"{macro} {value}"]
        for name, spec in zip(names, specs):
            path = os.path.join(work, f"{name}.spec")
            with open(path, "w") as handle:
                handle.write(spec)
            done = subprocess.run(argv + [path], env=env, capture_output=True, text=True,
                                  check=False)
            if done.returncode:
                raise RuntimeError(f"rpmbuild {name}: {done.stderr.strip()[-500:]}")
    subprocess.run(["createrepo_c", "-q", repo], env=env, check=True)
    open(os.path.join(repo, ".ready"), "w").close()
    return repo


def rpm_files(repo):
    return sorted(os.path.join(repo, name) for name in os.listdir(repo) if name.endswith(".rpm"))


class Throttle:
    """One pace for every connection: ``rate`` bytes a second in all (dnf downloads several
    packages at once). Each chunk takes the next free slot; an idle spell earns no burst."""

    def __init__(self, rate):
        self.rate = rate
        self.lock = threading.Lock()
        self.free = time.monotonic()

    def wait(self, size):
        with self.lock:
            now = time.monotonic()
            start = max(self.free, now)
            self.free = start + size / self.rate
        if start > now:
            time.sleep(start - now)


class SlowRepo:
    """``directory`` served over HTTP on 127.0.0.1 (a free port) at ``rate`` bytes a second,
    in a thread of this process; ``close`` stops it, and so does the process's end."""

    CHUNK = 64 * 1024

    def __init__(self, directory, rate):
        throttle = Throttle(rate)
        chunk = self.CHUNK

        class Handler(http.server.SimpleHTTPRequestHandler):
            timeout = 60  # a client that stops reading does not hold a thread for ever

            def copyfile(self, source, outputfile):
                while True:
                    data = source.read(chunk)
                    if not data:
                        return
                    throttle.wait(len(data))
                    outputfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(Handler, directory=directory))
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class Watcher:
    """Asks `rpm -q` every ``interval`` seconds, in a thread, whether all of ``names`` are
    installed in ``root``; ``stop`` returns the outage: from the first query that found one
    missing to the first one after it that found all installed (0 when none was missing).
    Each query is timed at its start, so the figure is good to one query's period."""

    def __init__(self, root, names, env, interval=0.02):
        self.argv = ["rpm", "--root", root, "-q", "--qf", "%{NAME}\\n", *names]
        self.names = set(names)
        self.env = env
        self.interval = interval
        self.samples: list[tuple[float, bool]] = []  # (time, all installed)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        while not self.samples and self._thread.is_alive():
            time.sleep(0.005)  # the first answer is the state before the measured command
        if not self.samples or not self.samples[0][1]:
            self.stop()
            raise RuntimeError(f"rpm -q in {root}: not all of {', '.join(names)} installed "
                               f"before the measurement")

    def _watch(self):
        while not self._stopping.is_set():
            started = time.perf_counter()
            done = subprocess.run(self.argv, env=self.env, capture_output=True, text=True,
                                  check=False)
            lines = done.stdout.splitlines()
            installed = sum(1 for line in lines if line in self.names)
            missing = sum(1 for line in lines if line.endswith(" is not installed"))
            if installed + missing == len(self.names):  # else rpm could not say: no sample
                self.samples.append((started, missing == 0))
            self._stopping.wait(self.interval)

    def stop(self):
        self._stopping.set()
        self._thread.join()
        gone = [t for t, present in self.samples if not present]
        if not gone:
            return 0.0
        back = [t for t, present in self.samples if present and t > gone[0]]
        if not back:
            raise RuntimeError("the packages were not all installed again at the end")
        if any(not present for t, present in self.samples if t > back[0]):
            raise RuntimeError("the packages went missing twice")
        return back[0] - gone[0]

    @property
    def period(self):
        times = [t for t, _ in self.samples]
        steps = [b - a for a, b in zip(times, times[1:])]
        return sorted(steps)[len(steps) // 2] if steps else 0.0

