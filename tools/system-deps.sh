#!/bin/sh
# Install the system tools the tests and the demo run for real: bash, Python's
# venv, groff and mandoc (the man page's lint), glibc's locale sources (a legacy
# locale for the CLI's output), (for the packaging tests) rpm, rpmbuild, dnf,
# createrepo_c, packit's Kerberos modules, and debootstrap (the Debian 11 root that
# stands in for EL 9's Python 3.9 and rpm 4.16: tools/debian-root.sh).
# Does nothing when they are all present; needs root otherwise.
set -eu
need=""
have() { command -v "$1" >/dev/null 2>&1; }
/usr/bin/python3 -c 'import venv, ensurepip' 2>/dev/null || need="$need venv"
for tool in bash rpm rpmbuild rpm2cpio cpio dnf createrepo_c rpmlint debootstrap groff mandoc; do
    have "$tool" || need="$need $tool"
done
/usr/bin/python3 -c 'import dnf, configobj, click, setuptools' 2>/dev/null || need="$need python3-dnf/configobj/click/setuptools"
# packit (`make packit`): its Kerberos modules, which PyPI has only as C sources (gssapi,
# cccolutils, pykerberos for requests-kerberos 0.12, which the Makefile pins).
/usr/bin/python3 -c 'import gssapi, cccolutils, requests_kerberos, kerberos' 2>/dev/null || need="$need python3-gssapi/cccolutils/requests-kerberos/kerberos"
[ -e /bin/busybox ] || [ -e /usr/bin/busybox ] || need="$need busybox"
# The locale sources (tests/test_cli.py makes en_US.ISO-8859-1 from them with localedef).
[ -e /usr/share/i18n/charmaps/ISO-8859-1.gz ] && [ -e /usr/share/i18n/locales/en_US ] || need="$need locales"
# The daily check's tests: `systemd-analyze verify` on the units, `promtool check metrics`.
have systemd-analyze || need="$need systemd-analyze"
# promtool alone: Debian 13 packages it on its own (promtool); Debian 12 only inside the
# prometheus package, whose install would also enable and start a Prometheus server, so
# there its binary (static but for libc) is unpacked into /usr/local/bin instead.
promtool_from_deb() {
    dir=$(mktemp -d)
    (cd "$dir" && apt-get download -qq prometheus) &&
        dpkg-deb --fsys-tarfile "$dir"/prometheus_*.deb | tar -xO ./usr/bin/promtool > "$dir/promtool" &&
        install -m 0755 "$dir/promtool" /usr/local/bin/promtool
    status=$?
    rm -rf "$dir"
    return $status
}
if ! have promtool && have apt-get; then
    apt-get update -qq
    if apt-cache show promtool >/dev/null 2>&1; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends promtool >/dev/null
    else
        promtool_from_deb
    fi
fi
have promtool || need="$need promtool"
[ -z "$need" ] && exit 0
echo "system-deps: installing (missing:$need)" >&2
if have apt-get; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends bash python3-venv python3-setuptools python3-configobj python3-click rpm rpm2cpio cpio dnf \
        python3-dnf createrepo-c busybox-static rpmlint debootstrap groff-base mandoc systemd locales \
        python3-gssapi python3-cccolutils python3-requests-kerberos python3-kerberos >/dev/null
elif have dnf; then
    dnf install -y -q bash python3 python3-setuptools python3-configobj python3-click rpm-build cpio dnf python3-dnf createrepo_c busybox rpmlint debootstrap groff-base mandoc systemd /usr/bin/promtool glibc-locale-source \
        python3-gssapi python3-cccolutils python3-requests-kerberos python3-kerberos
else
    echo "system-deps: need apt-get or dnf to install:$need" >&2
    exit 1
fi
