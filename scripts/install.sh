#!/usr/bin/env bash
# Installs what nym and its test suite need, idempotently: the Rust target
# for unikernel images and the Debian packages of the real peers the tests
# drive (Graphviz's dot). Safe to run again; does nothing when all is there.
set -euo pipefail

say() { printf '[install] %s\n' "$*" >&2; }

sudo_if_needed() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        say "need root to run: $*"; exit 1
    fi
}

if ! command -v cargo >/dev/null; then
    say "cargo is not installed: install Rust with rustup first (https://rustup.rs)"
    exit 1
fi

# Guest images and the no_std check of libos build for this target.
if ! rustup target list --installed 2>/dev/null | grep -qx x86_64-unknown-none; then
    say "adding the x86_64-unknown-none Rust target"
    rustup target add x86_64-unknown-none
fi

# QEMU 10 comes from Debian's bookworm-backports (bookworm's own is 7.2):
# add the suite from the same mirror as the machine's other entries.
ensure_backports() {
    grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/ && return
    local uri
    uri=$(grep -rhs '^URIs:' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n1 | awk '{print $2}')
    [ -n "$uri" ] || uri=http://deb.debian.org/debian
    say "adding bookworm-backports from $uri"
    printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "$uri" |
        sudo_if_needed tee /etc/apt/sources.list.d/nym-backports.sources >/dev/null
}

# Debian packages: binary to look for, package that provides it.
missing=()
for pair in dot:graphviz gdb:gdb nvim:neovim curl:curl openssl:openssl ip:iproute2 tmux:tmux \
    virsh:libvirt-clients libvirtd:libvirt-daemon-system testssl:testssl.sh; do
    bin=${pair%%:*} pkg=${pair#*:}
    command -v "$bin" >/dev/null || [ -x "/usr/sbin/$bin" ] || missing+=("$pkg")
done
need_qemu=
command -v qemu-system-x86_64 >/dev/null || need_qemu=1
if [ ${#missing[@]} -gt 0 ] || [ -n "$need_qemu" ]; then
    if ! command -v apt-get >/dev/null; then
        say "please install: ${missing[*]} ${need_qemu:+qemu-system-x86 (10 or later)} (no apt-get here)"
        exit 1
    fi
    [ -n "$need_qemu" ] && ensure_backports
    sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    if [ ${#missing[@]} -gt 0 ]; then
        say "installing ${missing[*]}"
        sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
    if [ -n "$need_qemu" ]; then
        say "installing qemu-system-x86 from bookworm-backports"
        sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            -t bookworm-backports qemu-system-x86 >/dev/null
    fi
fi
# Xen for the xen target's tests: the hypervisor from Debian's package,
# uncompressed (QEMU's -kernel takes the multiboot image), without installing
# the package (no boot-loader hooks on this machine).
XEN=/var/cache/nym/xen-4.17-amd64
if [ ! -s "$XEN" ]; then
    say "extracting the Xen 4.17 hypervisor to $XEN"
    tmp=$(mktemp -d)
    (cd "$tmp" && apt-get download -qq xen-hypervisor-4.17-amd64 2>/dev/null) || {
        sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        (cd "$tmp" && apt-get download -qq xen-hypervisor-4.17-amd64)
    }
    dpkg-deb -x "$tmp"/xen-hypervisor-4.17-amd64_*.deb "$tmp/x"
    sudo_if_needed mkdir -p "$(dirname "$XEN")"
    zcat "$tmp"/x/boot/xen-4.17-amd64.gz | sudo_if_needed tee "$XEN.tmp" >/dev/null
    sudo_if_needed mv "$XEN.tmp" "$XEN"
    rm -rf "$tmp"
fi
# libvirt drives QEMU as root here (/dev/kvm is root's): the daemon's QEMU
# runs as root too. The tests start libvirtd when it is not running.
QEMU_CONF=/etc/libvirt/qemu.conf
if [ -f "$QEMU_CONF" ] && ! grep -qx 'user = "root"' "$QEMU_CONF"; then
    say "letting libvirt's QEMU run as root ($QEMU_CONF)"
    sudo_if_needed sed -i -e 's/^#\?user = .*/user = "root"/' -e 's/^#\?group = .*/group = "root"/' "$QEMU_CONF"
    # A running daemon reads the file at start.
    if pgrep -x libvirtd >/dev/null; then sudo_if_needed pkill -x libvirtd || true; fi
fi
say "all set"
