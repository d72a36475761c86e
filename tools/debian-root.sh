#!/bin/bash
# Another Debian's Python, rpm and dnf for the tests, in a debootstrap'd root cached under
# build/ (Debian 11: EL 9's Python 3.9 and rpm 4.16; ../shared/FACTS.md).
#
#   tools/debian-root.sh build ROOT SUITE PACKAGES PIP_REQUIREMENTS
#       Make ROOT unless a finished one for the same recipe is there. PACKAGES is
#       debootstrap's comma-separated --include list; PIP_REQUIREMENTS are installed into
#       the root's system Python (/usr/local), where the root's dnf sees them too.
#   tools/debian-root.sh run ROOT COMMAND...
#       Run COMMAND as root inside ROOT, in /src: a fresh copy of this working tree
#       (tracked and untracked files that git does not ignore; never build leftovers).
#       ROOT is one `build` made, or the sid root of the dnf 5 bed (tests/dnf5bed.py).
#   tools/debian-root.sh machine ROOT SUITE
#       What CI does on a fresh Debian SUITE machine, for real: a fresh root (copied from a
#       cached debootstrap in ROOT.base) with this machine's CA certificates and pip
#       configuration, a clone of this repository's committed HEAD in /work, and
#       `CI=true bash .ci/run` there, as root, without stdin. Its own roots nest inside.
#   tools/debian-root.sh remove DIR...
#       rm -rf DIR once whatever is mounted below it is unmounted (make clean).
#
# Needs root (debootstrap, mount, chroot). Every mount this script makes is undone when it
# exits, fails or is interrupted, and mounts left by a killed run are undone before the next.
set -euo pipefail

MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
ROOT_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
TOP=$(cd "$(dirname "$0")/.." && pwd)
PATH=$PATH:/usr/sbin:/sbin  # chroot and debootstrap, for a root whose PATH lacks them

die() { echo "debian-root: $*" >&2; exit 1; }
need_root() {
    [ "$(id -u)" = 0 ] || die "needs root (debootstrap, mount and chroot); CI runs as root"
}

# --- mounts: each one recorded, all undone on the way out ---------------------------------
MOUNTS=()
mount_at() {  # mount_at TARGET MOUNT-ARGUMENTS...
    local target=$1; shift
    mkdir -p "$target"
    mount "$@" "$target"
    MOUNTS+=("$target")
}
bind_ro() {
    mount_at "$2" --bind "$1"
    mount -o remount,bind,ro "$2"
}
unmount_ours() {
    local i
    for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
        umount "${MOUNTS[i]}" 2>/dev/null || umount -l "${MOUNTS[i]}"
    done
    MOUNTS=()
}
unmount_under() {  # whatever is still mounted at or below $1 (a run that was killed)
    local target
    awk -v root="$1" '$2 == root || index($2, root "/") == 1 { print $2 }' /proc/mounts \
        | sort -r | while read -r target; do
            echo "debian-root: unmounting $target, left by an earlier run" >&2
            umount "$target" 2>/dev/null || umount -l "$target"
        done
}
trap unmount_ours EXIT
trap 'unmount_ours; exit 130' INT
trap 'unmount_ours; exit 143' TERM
trap 'unmount_ours; exit 129' HUP

mount_system() {  # what dnf, rpm, Python and the tests expect of a running system
    local root=$1
    mount_at "$root/proc" -t proc proc
    mount_at "$root/sys" -t sysfs sysfs 2>/dev/null || mount_at "$root/sys" --bind /sys
    mount_at "$root/dev" --bind /dev
    mount_at "$root/dev/pts" --bind /dev/pts
    mount_at "$root/dev/shm" -t tmpfs tmpfs
}

# --- pip inside the root: this machine's pip configuration, read-only ----------------------
PIP_ENV=()
pip_config_files() {
    local home=${HOME:-/root}
    printf '%s\n' /etc/pip.conf /etc/xdg/pip/pip.conf "$home/.config/pip/pip.conf" \
        "$home/.pip/pip.conf" "${PIP_CONFIG_FILE:-}"
}
bring_pip_config() {
    local root=$1 home=${HOME:-/root} file kv path dest
    while IFS= read -r file; do
        [ -n "$file" ] && [ -f "$file" ] || continue
        case $file in  # the user's files go to the HOME inside, /root
            "$home"/*) dest=$root/root/${file#"$home"/} ;;
            *) dest=$root$file ;;
        esac
        mkdir -p "$(dirname "$dest")"
        cp "$file" "$dest"
    done < <(pip_config_files)
    while IFS= read -r -d '' kv; do
        case $kv in PIP_*) PIP_ENV+=("$kv") ;; esac
    done < <(env -0)
    # The local paths the configuration names: find-links, file:// indexes (with their
    # parent: their pages link to ../../files), constraints, certificates.
    {
        while IFS= read -r file; do
            [ -n "$file" ] && [ -f "$file" ] || continue
            grep -v '^[[:space:]]*[#;]' "$file" || true
        done < <(pip_config_files)
        printf '%s\n' "${PIP_ENV[@]#*=}"
    } | tr ' \t=,' '\n\n\n\n' | sed -En 's|^(file://)?(/.*)|\2|p' | sort -u \
        | while IFS= read -r path; do
            path=${path%/}
            case $path in */simple) path=${path%/simple} ;; esac
            echo "$path"
        done | sort -u > "$root/.pip-paths"
    while IFS= read -r path; do
        if [ -d "$path" ]; then
            bind_ro "$path" "$root$path"
        elif [ -f "$path" ]; then
            mkdir -p "$(dirname "$root$path")"
            cp "$path" "$root$path"
        fi
    done < "$root/.pip-paths"
    rm -f "$root/.pip-paths"
}

# --- build ---------------------------------------------------------------------------------
remove() {  # rm -rf, but never through a mount (a bind mount of /opt would be emptied)
    unmount_under "$1"
    if awk -v root="$1" '$2 == root || index($2, root "/") == 1 { found = 1 } END { exit !found }' \
            /proc/mounts; then
        die "something is still mounted under $1: not removing it"
    fi
    [ ! -e "$1" ] || rm -rf --one-file-system "$1"
}

bring_certificates() {  # pip reaches PyPI through this machine's CAs (a proxy's among them)
    [ ! -f /etc/ssl/certs/ca-certificates.crt ] \
        || cp /etc/ssl/certs/ca-certificates.crt "$1/etc/ssl/certs/ca-certificates.crt"
}

build() {
    local root suite=$2 packages=$3 requirements=$4 recipe start=$SECONDS
    root=$(realpath -m "$1")
    recipe="suite=$suite mirror=$MIRROR packages=$packages pip=$requirements"
    if [ -f "$root/.ready" ] && [ "$(cat "$root/.ready")" = "$recipe" ]; then
        return 0
    fi
    command -v debootstrap >/dev/null || die "debootstrap is missing: make system-deps"
    remove "$root"
    mkdir -p "$(dirname "$root")"
    echo "debian-root: making a Debian $suite root in $root (cached for later runs)" >&2
    if ! debootstrap --variant=minbase --include="$packages" "$suite" "$root" "$MIRROR" \
            > "$root.log" 2>&1; then
        tail -n 20 "$root.log" >&2
        die "debootstrap $suite failed; the whole log: $root.log"
    fi
    bring_certificates "$root"
    if [ -z "$requirements" ]; then
        finish "$root" "$recipe"
        return 0
    fi
    bring_pip_config "$root"
    mount_at "$root/proc" -t proc proc
    # shellcheck disable=SC2086  # the requirements are words
    if ! chroot "$root" env -i PATH="$ROOT_PATH" HOME=/root LC_ALL=C.UTF-8 "${PIP_ENV[@]}" \
            python3 -m pip install -q --no-warn-script-location $requirements \
            >> "$root.log" 2>&1; then
        tail -n 20 "$root.log" >&2
        die "pip install in the $suite root failed; the whole log: $root.log"
    fi
    unmount_ours
    finish "$root" "$recipe"
    echo "debian-root: the $suite root took $((SECONDS - start)) s to make" >&2
}

finish() {  # written last: a root without it is half made and is made again
    printf '%s\n' "$2" > "$1/.ready"
}

# --- run -----------------------------------------------------------------------------------
copy_tree() {
    local dest=$1
    if git -C "$TOP" rev-parse --git-dir >/dev/null 2>&1; then
        git -C "$TOP" ls-files -z --cached --others --exclude-standard \
            | (cd "$TOP" && while IFS= read -r -d '' f; do
                   if [ -e "$f" ] || [ -L "$f" ]; then printf '%s\0' "$f"; fi
               done) \
            | tar -C "$TOP" --null -T - -cf - | tar -C "$dest" -xf -
    else
        tar -C "$TOP" --exclude=./build --exclude=./dist --exclude='./.venv*' \
            --exclude=__pycache__ -cf - . | tar -C "$dest" -xf -
    fi
}

run() {
    local root
    root=$(realpath -m "$1"); shift
    # .ready: a root this script built; .onedesk-dnf5-bed: the sid root tests/dnf5bed.py made.
    [ -f "$root/.ready" ] || [ -f "$root/.onedesk-dnf5-bed" ] \
        || die "$root is not a finished root: make it with '$0 build' first"
    unmount_under "$root"
    remove "$root/src"
    remove "$root/tmp/pytest-of-root"
    mkdir "$root/src"
    copy_tree "$root/src"
    mount_system "$root"
    # A clean environment: nothing of the host's Python, venv or PATH leaks in.
    local start=$SECONDS rc=0
    chroot "$root" env -i PATH="$ROOT_PATH" HOME=/root LC_ALL=C.UTF-8 TMPDIR=/tmp \
        CI="${CI:-}" ${PYTHONDONTWRITEBYTECODE:+PYTHONDONTWRITEBYTECODE=1} \
        sh -c 'cd /src && exec "$@"' sh "$@" || rc=$?
    echo "debian-root: exit status $rc after $((SECONDS - start)) s in $root" >&2
    return "$rc"
}

# --- machine -------------------------------------------------------------------------------
# A fresh machine as CI gets it: the packages FACTS.md names, nothing of this project's.
MACHINE_PACKAGES=git,make,ca-certificates,python3,python3-venv
machine() {
    local root suite=$2 clone
    root=$(realpath -m "$1")
    build "$root.base" "$suite" "$MACHINE_PACKAGES" ""
    remove "$root"
    echo "debian-root: a fresh Debian $suite machine in $root" >&2
    cp -a "$root.base" "$root"
    rm -f "$root/.ready"
    bring_certificates "$root"
    bring_pip_config "$root"
    # The root as a mount point of its own, as on a real machine: unshare(1), which the
    # dnf 5 test bed uses to mount /proc for dnf5 privately, must make / private in there.
    mount_at "$root" --bind "$root"
    mount_system "$root"
    clone=/work/$(basename "$TOP")
    [ -z "$(git -C "$TOP" status --porcelain --untracked-files=no)" ] \
        || echo "debian-root: note: uncommitted changes are not in the clone (it is HEAD)" >&2
    git clone -q --no-hardlinks "$TOP" "$root$clone"
    echo "debian-root: CI=true bash .ci/run in $root$clone ($(git -C "$TOP" log -1 --format=%h))" >&2
    # As CI runs it: root, no stdin, this machine's pip settings, nothing else of the host.
    local start=$SECONDS rc=0
    chroot "$root" env -i PATH="$ROOT_PATH" HOME=/root LC_ALL=C.UTF-8 TMPDIR=/tmp CI=true \
        "${PIP_ENV[@]}" sh -c 'cd "$1" && exec bash .ci/run' sh "$clone" < /dev/null || rc=$?
    echo "debian-root: CI on Debian $suite: exit status $rc after $((SECONDS - start)) s" >&2
    return "$rc"
}

case ${1:-} in
    build|run|machine) need_root ;;
esac
case ${1:-} in
    build) shift; [ $# = 4 ] || die "usage: $0 build ROOT SUITE PACKAGES PIP_REQUIREMENTS"
           build "$@" ;;
    run) shift; [ $# -ge 2 ] || die "usage: $0 run ROOT COMMAND..."
         run "$@" ;;
    machine) shift; [ $# = 2 ] || die "usage: $0 machine ROOT SUITE"
             machine "$@" ;;
    remove) shift; for dir; do remove "$(realpath -m "$dir")"; done ;;
    *) die "usage: $0 build ROOT SUITE PACKAGES PIP_REQUIREMENTS | run ROOT COMMAND... | machine ROOT SUITE | remove DIR..." ;;
esac
