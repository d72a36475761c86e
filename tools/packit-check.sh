#!/bin/bash
# `make packit`: packit's own checks of .packit.yaml, run the way Packit runs them, offline.
#   1. `packit config validate --offline`: the schema (keys, job types, triggers). Offline:
#      the online part only asks Fedora's dist-git whether the package exists there, and
#      these machines reach no Fedora host.
#   2. Both COPR jobs target EPEL 9, EPEL 10 and Fedora.
#   3. `packit srpm` in a clone of HEAD plus what `git add -A` would add to it: the
#      SRPM built through .packit.yaml's actions (get-current-version, create-archive) as
#      Packit builds it for COPR. A clone, because packit rewrites the spec's Version and
#      Release in place.
#   4. The SRPM is onedesk-azuread at the version onedesk_azuread/__init__.py says.
# packit and rpmbuild run with a private HOME whose .rpmmacros moves the rpm database into
# build/ (Debian's rpm keeps it under $HOME: ../shared/FACTS.md), and which holds no user
# configuration of packit, copr or fedpkg. Usage: tools/packit-check.sh PACKIT_BIN
set -euo pipefail
packit=$(realpath "$1")
top=$(git rev-parse --show-toplevel)
cd "$top"
build="$top/build/packit"
version=$(make -s --no-print-directory version)
rm -rf "$build"
mkdir -p "$build/home" "$build/out"
printf '%%_dbpath %s\n' "$build/rpmdb" > "$build/home/.rpmmacros"
export HOME="$build/home"
# packit's one warning at start-up: fedpkg (for dist-git work) is not installed; not needed.
quiet() { grep -v '^fedpkg is not executable' || true; }

"$packit" config validate --offline . 2>&1 | quiet
test "${PIPESTATUS[0]}" -eq 0
# What the schema cannot know: both COPR jobs (pull requests, commits to main) build for EPEL 9,
# EPEL 10 (COPR's epel-10 chroot) and Fedora (the dnf 5 subpackage: the spec's conditionals).
"$(dirname "$packit")/python" - <<'EOF'
import sys
import yaml
with open(".packit.yaml") as handle:
    jobs = [job for job in yaml.safe_load(handle)["jobs"] if job["job"] == "copr_build"]
wanted = {"epel-9-x86_64", "epel-10-x86_64"}
triggers = {job["trigger"] for job in jobs}
for job in jobs:
    targets = set(job["targets"])
    if not wanted <= targets or not any(t.startswith("fedora-") for t in targets):
        sys.exit(f"packit-check: .packit.yaml's {job['trigger']} copr_build targets"
                 f" {sorted(targets)}, not {sorted(wanted)} and Fedora's")
if triggers != {"pull_request", "commit"}:
    sys.exit(f"packit-check: .packit.yaml builds in COPR on {sorted(triggers)}, not on pull"
             " requests and commits")
EOF

src="$build/src"
git init -q "$src"
git -C "$src" fetch -q "$top" HEAD
branch=$(git rev-parse --abbrev-ref HEAD)
[ "$branch" = HEAD ] && branch=detached
git -C "$src" checkout -q -b "$branch" FETCH_HEAD
# What `git add -A` would commit: changed tracked files and new files not ignored.
git diff --binary HEAD | git -C "$src" apply --index --allow-empty
git ls-files -z --others --exclude-standard | tar --null -T - -cf - | tar -xf - -C "$src"
git -C "$src" add -A
if ! git -C "$src" diff --cached --quiet; then
    git -C "$src" -c user.name=packit-check -c user.email=packit-check@invalid \
        commit -q -m "uncommitted changes"
fi
# packit logs its `git describe` as an ERROR while the repository has no tag: harmless, the
# Release then carries the date, branch and commit instead.
(cd "$src" && "$packit" srpm --output "$build/out/srpm.src.rpm") 2>&1 | quiet
test "${PIPESTATUS[0]}" -eq 0

srpm="$build/out/srpm.src.rpm"
got=$(rpm --dbpath "$build/rpmdb" -qp --qf '%{NAME} %{VERSION}' "$srpm")
if [ "$got" != "onedesk-azuread $version" ]; then
    echo "packit-check: packit's SRPM is '$got', not 'onedesk-azuread $version'" >&2
    exit 1
fi
built=$(rpm --dbpath "$build/rpmdb" -qp --qf '%{NAME}-%{VERSION}-%{RELEASE}.src.rpm' "$srpm")
echo "packit-check: .packit.yaml is valid; packit srpm built $built"
