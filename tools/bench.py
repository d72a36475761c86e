"""make bench: costs measured side by side in one run, as ratios of interleaved pairs.

1. `onedesk-azuread show` against `python -c 'import click, configobj'`: the floor
   any click + configobj tool pays. Goal: median ratio at most 1.15.
2. `dnf list installed` in a root with the plugin against the same without it
   (--disableplugin). Goal: median ratio at most 1.03.
3. A reinstall of onedesk-db-utils with and without the plugin. Goal: at most
   30 ms more, median of the paired differences.
4. The plugin module's own import time, dnf already loaded. Goal: under 2 ms.
5. dnf 5 (Debian sid's dnf5 in the test bed's root, tests/dnf5bed.py): a reinstall of
   onedesk-db-utils with our actions file against the same without it. Each of the
   three actions starts the CLI (a Python start with click) and does its part of
   the dnf 4 plugin's work, so the goal is, per action, the CLI's own start in the
   same run (`onedesk-azuread --version` there) plus the dnf 4 plugin's whole 30 ms:
   at most 3 x (start + 30 ms) more, median of the paired differences.
6. dnf 5: a reinstall of an unrelated package with and without our actions file:
   only the actions plugin's own filter runs. Goal: median ratio at most 1.03.
"""

import compileall
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, HERE)
BIN = os.path.dirname(sys.executable)
PAIRS = int(os.environ.get("BENCH_PAIRS", "40"))
DNF_PAIRS = int(os.environ.get("BENCH_DNF_PAIRS", "100"))
REINSTALL_PAIRS = int(os.environ.get("BENCH_REINSTALL_PAIRS", "20"))
DNF5_PAIRS = int(os.environ.get("BENCH_DNF5_PAIRS", "30"))
DNF5_UNRELATED_PAIRS = int(os.environ.get("BENCH_DNF5_UNRELATED_PAIRS", "100"))
CLIENT_ID = "0b5c3a1e-7d2f-4c8a-9e61-3f4d2b1a0c9e"
SECRET = "Xk74Q~pL.mN3-rT_vW8yZ1aB2cD3eF4gH5iJ6kL7"  # made up, in Azure's format


def wall(argv, env):
    start = time.perf_counter()
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def paired(first, second, env, pairs, warmup=3):
    """Alternate ``first`` and ``second`` (order swapped every pair); their times."""
    for _ in range(warmup):
        wall(first, env)
        wall(second, env)
    a, b = [], []
    for i in range(pairs):
        if i % 2:
            tb, ta = wall(second, env), wall(first, env)
        else:
            ta, tb = wall(first, env), wall(second, env)
        a.append(ta)
        b.append(tb)
    return a, b


def report(name, a, b, goal, unit="ratio"):
    ma, mb = statistics.median(a) * 1000, statistics.median(b) * 1000
    if unit == "ratio":
        value = statistics.median(x / y for x, y in zip(a, b))
        verdict = "ok" if value <= goal else "OVER GOAL"
        print(f"{name}: {ma:.1f} ms vs {mb:.1f} ms, median ratio {value:.3f} "
              f"over {len(a)} pairs (goal <= {goal}) {verdict}")
    else:
        value = statistics.median((x - y) * 1000 for x, y in zip(a, b))
        verdict = "ok" if value <= goal else "OVER GOAL"
        print(f"{name}: {ma:.1f} ms vs {mb:.1f} ms, median difference {value:+.1f} ms "
              f"over {len(a)} pairs (goal <= {goal} ms) {verdict}")
    sys.stdout.flush()


def bench_show(env):
    root = tempfile.mkdtemp(prefix="onedesk-bench.")
    try:
        os.makedirs(os.path.join(root, "root"), mode=0o700)
        # A configured server with a recorded expiry: show reads both.
        subprocess.run([os.path.join(BIN, "onedesk-azuread"), "--root", root, "set",
                        "--client-id", CLIENT_ID, "--secret-stdin", "--expires", "2099-01-01"],
                       input=SECRET.encode(), check=True, stderr=subprocess.DEVNULL)
        a, b = paired([os.path.join(BIN, "onedesk-azuread"), "--root", root, "show"],
                      [sys.executable, "-c", "import click, configobj"], env, PAIRS)
        report("show vs import click+configobj", a, b, 1.15)
    finally:
        shutil.rmtree(root)


def bench_plugin():
    from tests.rpmbed import ONEDESK, Bed, Root

    top = tempfile.mkdtemp(prefix="onedesk-bench-rpm.")
    try:
        bed = Bed(top)
        root = Root(bed, os.path.join(top, "root"))
        root.write_settings(f"AZUREAD_CID={CLIENT_ID}\nAZUREAD_CIS={SECRET}\n")
        root.dnf("install", *ONEDESK)
        env = root.env
        base = root.dnf_argv()
        off = ["--disableplugin=onedesk_azuread"]
        a, b = paired(base + ["list", "installed"], base + off + ["list", "installed"], env,
                      DNF_PAIRS)
        report("dnf list installed, plugin on vs off", a, b, 1.03)
        a, b = paired(base + ["reinstall", "onedesk-db-utils"],
                      base + off + ["reinstall", "onedesk-db-utils"], env, REINSTALL_PAIRS,
                      warmup=1)
        report("dnf reinstall onedesk-db-utils, plugin on vs off", a, b, 30, unit="ms")
        probe = ("import importlib.util, sys, time, dnf, dnf.transaction\n"
                 "spec = importlib.util.spec_from_file_location('plugin', sys.argv[1])\n"
                 "module = importlib.util.module_from_spec(spec)\n"
                 "t = time.perf_counter(); spec.loader.exec_module(module)\n"
                 "print(time.perf_counter() - t)")
        plugin = os.path.join(bed.pluginpath, "onedesk_azuread.py")
        times = [float(subprocess.run(["/usr/bin/python3", "-c", probe, plugin], env=env,
                                      capture_output=True, text=True, check=True).stdout)
                 for _ in range(21)]
        value = statistics.median(times) * 1000
        print(f"plugin module import (dnf loaded): median {value:.2f} ms over 21 runs "
              f"(goal < 2 ms) {'ok' if value < 2 else 'OVER GOAL'}")
    finally:
        shutil.rmtree(top)


def bench_dnf5():
    from tests.dnf5bed import Dnf5Bed
    from tests.dnf5bed import Root as Dnf5Root
    from tests.rpmbed import ONEDESK, Bed

    top = tempfile.mkdtemp(prefix="onedesk-bench-dnf5.")
    dnf5bed = None
    try:
        dnf5bed = Dnf5Bed(Bed(top))
        root = Dnf5Root(dnf5bed, "bench")
        root.write_settings(f"AZUREAD_CID={CLIENT_ID}\nAZUREAD_CIS={SECRET}\n")
        root.dnf("install", *ONEDESK, "unrelated-tool")
        # The same root and configuration; only the plugin directory differs: with our
        # actions file, or with the actions plugin and no actions file at all.
        off = f"--setopt=plugin_conf_dir={dnf5bed.plugins['off']}"
        version = dnf5bed.chroot_argv("onedesk-azuread", "--version")
        wall(version, os.environ)  # writes the sid Python's bytecode
        start = statistics.median(wall(version, os.environ) for _ in range(21)) * 1000
        print(f"onedesk-azuread --version in the sid root: median {start:.1f} ms over 21 runs")
        for package, goal, unit, pairs in (
                ("onedesk-db-utils", round(3 * (start + 30)), "ms", DNF5_PAIRS),
                ("unrelated-tool", 1.03, "ratio", DNF5_UNRELATED_PAIRS)):
            a, b = paired(dnf5bed.chroot_argv(*root.dnf_argv("reinstall", package)),
                          dnf5bed.chroot_argv(*root.dnf_argv(off, "reinstall", package)),
                          dict(os.environ), pairs, warmup=1)
            report(f"dnf5 reinstall {package}, actions file on vs off", a, b, goal, unit=unit)
    finally:
        if dnf5bed is not None:
            dnf5bed.cleanup()
        shutil.rmtree(top)


def main():
    compileall.compile_dir(os.path.join(HERE, "onedesk_azuread"), quiet=1)
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    bench_show(env)
    bench_plugin()
    bench_dnf5()


if __name__ == "__main__":
    main()
