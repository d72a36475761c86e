"""The package story on a throw-away root, with real rpm and dnf (make demo, part 2).

Builds this project's RPMs and stand-in OneDesk packages whose install script
records what it read, then: configure, install, change the secret, status,
apply, an apply killed after the removal and completed, the daily check with
its metrics, `rotate` in one step, and a pasted Secret ID that dnf refuses.
The credentials are made up; secrets are shown masked, as the tool shows them.
Azure is the tests' stand-ins: tests/fake_az.py as `az` and the local fake
authority (tests/fake_azure.py), which share one state.
"""

import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from datetime import date, timedelta

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, HERE)

from tests.rpmbed import KILL_APPLY, ONEDESK, Bed, Root, dnf_wrapper  # noqa: E402

CLIENT_ID = "0b5c3a1e-7d2f-4c8a-9e61-3f4d2b1a0c9e"
FIRST = "Xk74Q~pL.mN3-rT_vW8yZ1aB2cD3eF4gH5iJ6kL7"
SECOND = "Qa92Q~zY8xW7vU6tS5rQ4pO3nM2lK1jI0hG9fE8d"
SECRET_ID = "9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a"
MASKS = {FIRST: FIRST[:3] + "…", SECOND: SECOND[:3] + "…"}


def step(title):
    print(f"\n\033[1m== {title}\033[0m", flush=True)


def masked(text):
    for secret, mask in MASKS.items():
        text = text.replace(secret, mask)
    return text


TENANT = "contoso.onmicrosoft.com"


def stand_in_azure(top, env):
    """The stand-in `az` on PATH (holding FIRST as the app's secret) and the fake authority
    sharing its state; returns the authority (close it) and its URL."""
    import trustme

    from onedesk_azuread.rotate import server_name
    from tests import fake_az
    from tests.fake_azure import FakeAzure

    ca = trustme.CA()
    bundle = os.path.join(top, "ca.pem")
    ca.cert_pem.write_to_path(bundle)
    directory = os.path.join(top, "az-bin")
    os.mkdir(directory)
    with open(os.path.join(HERE, "tests", "fake_az.py")) as handle:
        body = handle.read().split("\n", 1)[1]
    with open(os.path.join(directory, "az"), "w") as handle:
        handle.write(f"#!{sys.executable}\n{body}")
    os.chmod(os.path.join(directory, "az"), 0o700)
    az_state = os.path.join(top, "az-state.json")
    end = (date.today() + timedelta(days=10)).isoformat() + "T09:12:44Z"
    # Named as this server's own earlier rotation named it: rotate --retire-old retires only
    # a key it can tie to this server.
    mine = f"onedesk-azuread {server_name()} {date.today() - timedelta(days=300)}"
    fake_az.make_state(az_state, CLIENT_ID, [(FIRST, fake_az.stale_start(), end, mine)])
    authority = FakeAzure(ca, FIRST)
    authority.az_state = az_state
    env.update(PATH=directory + os.pathsep + env["PATH"], FAKE_AZ_STATE=az_state,
               REQUESTS_CA_BUNDLE=bundle, NO_PROXY="127.0.0.1,localhost")
    return authority


def show(argv, env, stdin=None, shown=None):
    print("$ " + (shown or " ".join(shlex.quote(a) for a in argv)), flush=True)
    result = subprocess.run(argv, env=env, input=stdin, capture_output=True, text=True,
                            check=False)
    output = (result.stdout + result.stderr).rstrip()
    if argv[0] == "dnf":  # dnf's own tables, trimmed to what the story needs
        keep = ("onedesk-azuread", "Error", "  (run", "Complete!")
        output = "\n".join(line for line in output.splitlines()
                           if line.startswith(keep) or "onedesk-azuread" in line)
    elif "apply" in argv or "rotate" in argv:  # dnf's output live (indented): keep ours
        output = "\n".join(line for line in output.splitlines()
                           if not line.startswith("    ") or "onedesk-azuread" in line)
    if output:
        print(masked(output))
    if result.returncode:
        print(f"(exit {result.returncode})")
    return result


def received(root, package="onedesk-db-utils"):
    seen = root.seen(package)
    secret = seen["sourced_cis"]
    print(f"  {package}'s install script ran {seen['runs']} time(s), last with $1 = "
          f"{seen['args'][-1] if seen['args'] else '-'}; sourcing /root/.OneDesk it read")
    print(f"    AZUREAD_CIS = {MASKS.get(secret, secret[:3] + '…')}")
    print(f"  and in its environment: AZUREAD_CIS {'unset' if seen['env_cis'] is None else 'SET'}"
          f" (the plugin never exports the secret)")


def main():
    top = tempfile.mkdtemp(prefix="onedesk-demo-rpm.")
    try:
        step("1. Build the RPMs (make rpm), and stand-in OneDesk packages in a repository")
        bed = Bed(top)
        for rpm in bed.our_rpms:
            print("  " + os.path.relpath(rpm, HERE))
        # The fresh-install-only db-utils: it applies settings only when $1 = 1, which
        # is why the vendor says remove, then install.
        root = Root(bed, os.path.join(top, "server"), repo="fresh")
        env = dict(root.env)
        env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env["PATH"]
        tool = ["onedesk-azuread", "--root", root.path]
        dnf = root.dnf_argv()
        short_dnf = "dnf --installroot " + root.path
        print(f"  a throw-away server root: {root.path}")
        print("  the dnf plugin is loaded from the unpacked python3-dnf-plugin-onedesk-azuread")

        step("2. Configure the Azure AD entries (the secret from stdin)")
        show(tool + ["set", "--client-id", CLIENT_ID, "--secret-stdin", "--expires",
                     "2028-05-31"], env, stdin=FIRST)

        step("3. Install OneDesk with dnf: the plugin checks the entries, then re-checks them "
             "under the lock just before the install scripts read the file")
        show(dnf + ["install", *ONEDESK], env, shown=f"{short_dnf} install {' '.join(ONEDESK)}")
        received(root)
        show(tool + ["status"], env)

        step("4. Rotate the secret: the packages still carry the old one")
        show(tool + ["set", "--secret-stdin", "--expires", "2028-11-30"], env, stdin=SECOND)
        show(tool + ["status"], env)
        print("  (a plain `dnf reinstall` would not help: this onedesk-db-utils applies "
              "settings only on a fresh install)")

        step("5. apply: the vendor's remove + install, checked first, confirmed after")
        show(tool + ["apply", "--yes"], env)
        received(root)
        show(tool + ["status"], env)

        step("6. apply killed (SIGKILL) right after the removal: status says so, apply completes")
        show(tool + ["set", "--secret-stdin"], env, stdin=FIRST)
        killer = dnf_wrapper(os.path.join(top, "dnf-killing-apply"), after={"remove": KILL_APPLY})
        kill_env = dict(env, ONEDESK_AZUREAD_DNF=env["ONEDESK_AZUREAD_DNF"].replace(
            "dnf", killer, 1))
        show(tool + ["apply", "--yes"], kill_env, shown="onedesk-azuread --root ... apply --yes"
             "   (killed by the test's dnf wrapper after the removal)")
        print(f"  installed now: {', '.join(root.installed()) or 'nothing'}")
        show(tool + ["status"], env)
        show(tool + ["apply", "--yes"], env)
        received(root)

        step("7. The daily check (what onedesk-azuread-check.timer runs): 10 days left is a "
             "warning; Azure AD proves the pair; metrics for node_exporter")
        azure_env = dict(env)
        authority = stand_in_azure(top, azure_env)
        soon = (date.today() + timedelta(days=10)).isoformat()
        show(tool + ["set", "--expires", soon], env)
        metrics = "/var/lib/node_exporter/textfile_collector/onedesk_azuread.prom"
        os.makedirs(root.path + os.path.dirname(metrics))
        os.makedirs(os.path.join(root.path, "etc/onedesk-azuread"), exist_ok=True)
        with open(os.path.join(root.path, "etc/onedesk-azuread/check.conf"), "w") as handle:
            handle.write(f"tenant = {TENANT}\nauthority_host = {authority.url}\n"
                         f"metrics = {metrics}\n")
        print(f"  check.conf: tenant = {TENANT}, authority_host = (the local fake), "
              f"metrics = {metrics}")
        show(tool + ["check", "--scheduled"], azure_env)
        with open(root.path + metrics) as handle:
            print("  " + "\n  ".join(line for line in handle.read().splitlines()
                                     if not line.startswith("#")))

        step("8. rotate: a new secret with az (--append), accepted by Azure AD, written, "
             "applied, then the old one retired")
        show(tool + ["rotate", "--tenant", TENANT, "--authority-host", authority.url,
                     "--retire-old"], azure_env,
             shown=f"onedesk-azuread --root ... rotate --tenant {TENANT} --retire-old")
        received(root)
        show(tool + ["check", "--scheduled"], azure_env)
        authority.close()

        step("9. Someone pastes the Secret ID by hand; dnf refuses before installing anything")
        with open(root.settings) as handle:
            text = handle.read()
        root.write_settings(re.sub(r"^AZUREAD_CIS=.*$", f"AZUREAD_CIS={SECRET_ID}", text,
                                   flags=re.M))
        show(dnf + ["remove", "onedesk-db-utils"], env,
             shown=f"{short_dnf} remove onedesk-db-utils")
        show(dnf + ["install", *ONEDESK], env, shown=f"{short_dnf} install {' '.join(ONEDESK)}")
        print(f"  installed now: {', '.join(root.installed()) or 'nothing'}")
        show(tool + ["check"], env)
    finally:
        shutil.rmtree(top, ignore_errors=True)


if __name__ == "__main__":
    main()
