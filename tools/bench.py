"""make bench: costs measured side by side in one run, as ratios of interleaved pairs.

show: `onedesk-azuread show` against `python -c 'import click, configobj'` (the floor
any click + configobj tool pays). Goal: median ratio at most 1.15.
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
BIN = os.path.dirname(sys.executable)
PAIRS = int(os.environ.get("BENCH_PAIRS", "40"))


def wall(argv, env):
    start = time.perf_counter()
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def paired(name, goal, first, second, env, pairs=PAIRS):
    """Run ``first`` and ``second`` alternately; report median times and the median ratio."""
    for _ in range(3):  # warm the page cache
        wall(first, env)
        wall(second, env)
    a, b, ratios = [], [], []
    for i in range(pairs):
        if i % 2:  # alternate which goes first, so drift hits both alike
            tb, ta = wall(second, env), wall(first, env)
        else:
            ta, tb = wall(first, env), wall(second, env)
        a.append(ta)
        b.append(tb)
        ratios.append(ta / tb)
    ratio = statistics.median(ratios)
    verdict = "ok" if ratio <= goal else "OVER GOAL"
    print(f"{name}: {statistics.median(a) * 1000:.1f} ms vs {statistics.median(b) * 1000:.1f} ms,"
          f" median ratio {ratio:.3f} over {pairs} pairs (goal <= {goal}) {verdict}")
    return ratio


def main():
    compileall.compile_dir(os.path.join(HERE, "onedesk_azuread"), quiet=1)
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    root = tempfile.mkdtemp(prefix="onedesk-bench.")
    try:
        os.makedirs(os.path.join(root, "root"), mode=0o700)
        # A configured server with a recorded expiry: show reads both.
        subprocess.run([os.path.join(BIN, "onedesk-azuread"), "--root", root, "set",
                        "--client-id", "0b5c3a1e-7d2f-4c8a-9e61-3f4d2b1a0c9e", "--secret-stdin",
                        "--expires", "2099-01-01"],
                       input=b"Xk74Q~pL.mN3-rT_vW8yZ1aB2cD3eF4gH5iJ6kL7",
                       check=True, stderr=subprocess.DEVNULL)
        paired("show", 1.15,
               [os.path.join(BIN, "onedesk-azuread"), "--root", root, "show"],
               [sys.executable, "-c", "import click, configobj"], env)
    finally:
        shutil.rmtree(root)


if __name__ == "__main__":
    main()
