#!/usr/bin/env bash
# Python 3.14 and 3.15 for the tests, on a machine (Debian 12) that lacks them.
#
#   tools/pythons.sh setup              make 3.14 and 3.15 runnable; says what it did
#   tools/pythons.sh run 3.14 CMD...    run CMD under Python 3.14, in the same directory
#   tools/pythons.sh status             what is there now, changing nothing
#
# Debian serves python3.14 and python3.15 only in sid, built for a newer libc than
# Debian 12's, so they live in a sid chroot made by debootstrap, outside the
# repository: $ASYNCIODEPTH_SID, by default /var/cache/asynciodepth/sid. The checkout
# is bind-mounted inside at its own absolute path, so paths are the same in and out
# (a venv made inside, .venv-3.14, is run inside again by `run`). A Python 3.X found
# on the machine itself (pyenv, or python3.X on PATH) is used instead of the chroot.
#
# Setup is idempotent: it reuses the chroot and mounts only what /proc/mounts does not
# already show. It needs root (debootstrap, mount, chroot), and network to Debian's
# registry only the first time (about 60 MB, 40 s). On anything but Linux it skips
# 3.14 and 3.15 with a message and exits 0; `run` then exits 3.
set -euo pipefail

SID=${ASYNCIODEPTH_SID:-/var/cache/asynciodepth/sid}
VERSIONS="3.14 3.15"
PACKAGES=python3.14,python3.14-venv,python3.15,python3.15-venv,libpython3.14-testsuite,libpython3.15-testsuite,ca-certificates
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)

say() { echo "pythons.sh: $*" >&2; }
die() { say "error: $*"; exit 1; }

# 0 if Python $1 runs on the machine itself (then no chroot is needed for it).
native() {
    local full
    full=$(pyenv versions --bare 2>/dev/null | grep -E "^${1//./\\.}\.[0-9]+$" | sort -V | tail -n 1 || true)
    if [ -n "$full" ] && PYENV_VERSION=$full python3 -c '' 2>/dev/null; then return 0; fi
    command -v "python$1" >/dev/null 2>&1 && "python$1" -c '' 2>/dev/null
}

mounted() { awk -v m="$1" '$2 == m { found = 1 } END { exit !found }' /proc/mounts; }

# Mount $2 (a mount type, or --bind/--rbind) of $1 at $SID$3 unless it is there.
mount_once() {
    local what=$1 how=$2 where=$SID$3
    if mounted "$where"; then return; fi
    mkdir -p "$where"
    if [ "$how" = proc ]; then mount -t proc proc "$where"; else mount "$how" "$what" "$where"; fi
    # Why: a recursive bind shares propagation with the host by default; as a slave,
    # unmounting it later cannot take the host's /dev/pts with it.
    if [ "$how" = --rbind ]; then mount --make-rslave "$where"; fi
    did="$did mounted $3;"
}

build_chroot() {
    command -v debootstrap >/dev/null || {
        say "installing debootstrap"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
    } || die "debootstrap is not installed and apt-get could not install it"
    command -v debootstrap >/dev/null || die "debootstrap is still missing after apt-get"
    say "building a Debian sid chroot at $SID with $PACKAGES (about a minute)"
    rm -rf "$SID.tmp"
    mkdir -p "$(dirname "$SID")"
    debootstrap --variant=minbase --include="$PACKAGES" sid "$SID.tmp" \
        >"$(dirname "$SID")/debootstrap.log" 2>&1 ||
        die "debootstrap failed; see $(dirname "$SID")/debootstrap.log"
    mv "$SID.tmp" "$SID"
    did="$did built $SID;"
}

setup() {
    local start=$SECONDS missing="" v
    did=""
    for v in $VERSIONS; do native "$v" || missing="$missing $v"; done
    if [ -z "$missing" ]; then say "3.14 and 3.15 are installed here; no chroot needed"; return; fi
    if [ "$(uname -s)" != Linux ]; then
        say "skipping$missing: they come from a Debian chroot, which needs Linux"
        return
    fi
    [ "$(id -u)" = 0 ] || die "Python$missing come from a chroot at $SID: run as root (or install them, e.g. with pyenv)"
    [ -x "$SID/usr/bin/python3.15" ] || build_chroot
    # pip inside uses the host's CA bundle (PIP_CERT may point at it; a proxy's CA is in it).
    if [ -f /etc/ssl/certs/ca-certificates.crt ] &&
        ! cmp -s /etc/ssl/certs/ca-certificates.crt "$SID/etc/ssl/certs/ca-certificates.crt"; then
        mkdir -p "$SID/etc/ssl/certs"
        cp /etc/ssl/certs/ca-certificates.crt "$SID/etc/ssl/certs/"
        did="$did copied the CA bundle;"
    fi
    cp -L /etc/resolv.conf "$SID/etc/resolv.conf" 2>/dev/null || true
    mount_once proc proc /proc
    mount_once /dev --rbind /dev
    # Why: a chroot whose /dev was bound without --rbind lacks these two, and CPython's
    # tests need ptys (/dev/pts) and POSIX semaphores for multiprocessing (/dev/shm).
    for v in /dev/pts /dev/shm; do
        if mounted "$v"; then mount_once "$v" --bind "$v"; fi
    done
    # The checkout at its own path, unless an enclosing bind already shows it there.
    # Why the umount: a bind left by an earlier checkout at the same path (deleted and
    # cloned again) still shows the old directory there.
    if ! [ "$REPO" -ef "$SID$REPO" ]; then
        if mounted "$SID$REPO"; then umount -l "$SID$REPO"; did="$did unmounted a stale $REPO;"; fi
        mount_once "$REPO" --bind "$REPO"
    fi
    [ "$REPO" -ef "$SID$REPO" ] || die "$SID$REPO is not the checkout $REPO"
    for v in $missing; do
        say "python$v: $(chroot "$SID" "python$v" -c 'import sys; print(sys.version.split()[0])')"
    done
    say "setup:${did:- nothing to do, all in place;} took $((SECONDS - start)) s"
}

status() {
    local v
    for v in $VERSIONS; do
        if native "$v"; then say "$v: on the machine";
        elif [ -x "$SID/usr/bin/python$v" ]; then say "$v: in the chroot $SID";
        else say "$v: missing"; fi
    done
    for v in /proc /dev /dev/pts /dev/shm; do
        if mounted "$SID$v"; then say "mounted: $SID$v"; fi
    done
    if [ "$REPO" -ef "$SID$REPO" ]; then say "the checkout is visible at $SID$REPO"; fi
}

run() {
    [ $# -ge 2 ] || die "usage: $0 run VERSION CMD..."
    local version=$1; shift
    if native "$version"; then exec "$@"; fi
    if [ "$(uname -s)" != Linux ]; then say "Python $version is not available here"; exit 3; fi
    [ "$(id -u)" = 0 ] || die "Python $version lives in the chroot $SID: run as root"
    [ -x "$SID/usr/bin/python$version" ] && [ "$REPO" -ef "$SID$REPO" ] && mounted "$SID/proc" ||
        die "Python $version is not set up: run $0 setup (as root)"
    local here
    here=$(pwd -P)
    [ "$here" -ef "$SID$here" ] || die "$here is not visible inside the chroot"
    # Why: the host's wheel folder (PIP_FIND_LINKS) does not exist inside the chroot,
    # and pip would warn about it on every line.
    exec chroot "$SID" /usr/bin/env -u PIP_FIND_LINKS sh -c 'cd "$1" && shift && exec "$@"' sh "$here" "$@"
}

case ${1:-} in
    setup) setup ;;
    status) status ;;
    run) shift; run "$@" ;;
    *) echo "usage: $0 setup | status | run VERSION CMD..." >&2; exit 2 ;;
esac
