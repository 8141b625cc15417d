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
    virsh:libvirt-clients libvirtd:libvirt-daemon-system testssl:testssl.sh wrk:wrk dig:bind9-dnsutils \
    tshark:tshark; do
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
    # An install cut off part-way (a machine shut down under apt) leaves dpkg
    # refusing every later one until it is finished: finish it first.
    if [ -n "$(ls -A /var/lib/dpkg/updates 2>/dev/null)" ] || dpkg --audit 2>/dev/null | grep -q .; then
        say "finishing an interrupted package install (dpkg --configure -a)"
        sudo_if_needed env DEBIAN_FRONTEND=noninteractive dpkg --configure -a >/dev/null || true
        sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -f -y -qq >/dev/null
    fi
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
# The xen target's Xen host: a Linux dom0 for that hypervisor, assembled
# from Debian's packages without installing them or booting anything:
# the kernel (booted as a PV dom0) and the modules dom0 needs (netback,
# blkback, the bridge, loop, 9p and virtio for QEMU's devices), the Xen
# tools (xl, xenstored, xenconsoled, the hotplug scripts), bash, flock and
# busybox, unpacked into an initramfs. nym adds its own scripts at each
# boot (driver/src/xen/dom0/). Rebuilt when the layout or a package
# version changes.
DOM0=/var/cache/nym/xen-dom0
DOM0_LAYOUT=1
dom0_packages="busybox-static bash libc6 libtinfo6 libgcc-s1 util-linux xen-utils-4.17 xen-utils-common
    xenstore-utils libxenmisc4.17 libxenstore4 libxencall1 libxenevtchn1 libxenforeignmemory1 libxengnttab1
    libxentoollog1 libxenhypfs1 libxentoolcore1 libxendevicemodel1 libyajl2 liblzma5 libuuid1 zlib1g libzstd1"
dom0_modules="xen-evtchn xen-gntdev xen-gntalloc xen-privcmd xenfs xen-netback xen-blkback bridge loop
    9pnet_virtio 9p virtio_pci virtio_net"
kernel_pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
if [ -z "$kernel_pkg" ]; then
    sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    kernel_pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
fi
dom0_version="layout $DOM0_LAYOUT; $(apt-cache policy $kernel_pkg $dom0_packages 2>/dev/null | awk '/^[^ ]/ {p=$1} /Candidate:/ {printf "%s%s ", p, $2}')"
if [ "$(cat "$DOM0/VERSION" 2>/dev/null)" != "$dom0_version" ] || [ ! -s "$DOM0/initrd.gz" ]; then
    say "assembling the xen target's dom0 (Linux $kernel_pkg, Xen's tools, busybox) in $DOM0"
    tmp=$(mktemp -d)
    # shellcheck disable=SC2086 # the lists are words
    (cd "$tmp" && apt-get download -qq $kernel_pkg $dom0_packages 2>/dev/null) || {
        sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        (cd "$tmp" && apt-get download -qq $kernel_pkg $dom0_packages)
    }
    root=$tmp/root
    mkdir -p "$root" "$tmp/kernel" "$tmp/util-linux"
    for deb in "$tmp"/*.deb; do
        case "$(basename "$deb")" in
            linux-image-*) dpkg-deb -x "$deb" "$tmp/kernel" ;;
            util-linux_*) dpkg-deb -x "$deb" "$tmp/util-linux" ;;
            *) dpkg-deb -x "$deb" "$root" ;;
        esac
    done
    bb=$root/bin/busybox
    # Only flock of util-linux (Xen's hotplug scripts lock with it).
    mkdir -p "$root/usr/bin"
    cp "$tmp/util-linux/usr/bin/flock" "$root/usr/bin/flock"
    # What dom0 never uses: documentation, headers, static libraries,
    # Xen's stub domains and OCaml xenstored.
    rm -rf "$root"/usr/share "$root"/usr/include "$root"/usr/lib/x86_64-linux-gnu/pkgconfig \
        "$root"/usr/lib/x86_64-linux-gnu/gconv "$root"/var/lib/dpkg "$root"/usr/lib/xen-4.17/boot \
        "$root"/usr/lib/xen-4.17/bin/oxenstored "$root"/usr/sbin/oxenstored "$root"/lib/x86_64-linux-gnu/libmvec.so.1
    find "$root" -name '*.a' -delete
    for applet in $("$bb" --list); do
        [ -e "$root/bin/$applet" ] || [ -e "$root/usr/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
    done
    # The modules and what they depend on (read from each module's
    # .modinfo), then busybox's depmod for modprobe.
    kver=${kernel_pkg#linux-image-}
    kmods=$tmp/kernel/lib/modules/$kver
    mkdir -p "$root/lib/modules/$kver"
    cp "$kmods/modules.order" "$kmods/modules.builtin" "$root/lib/modules/$kver/"
    want=$dom0_modules seen=" "
    while [ -n "${want// /}" ]; do
        # shellcheck disable=SC2086
        set -- $want
        m=$1; shift; want="$*"
        case "$seen" in *" $m "*) continue ;; esac
        seen="$seen$m "
        f=$(grep -E "/$m\.ko$" "$kmods/modules.order" | head -n1)
        [ -n "$f" ] || { say "no module $m in $kernel_pkg"; exit 1; }
        mkdir -p "$root/lib/modules/$kver/$(dirname "$f")"
        cp "$kmods/$f" "$root/lib/modules/$kver/$f"
        want="$want $("$bb" strings -n 3 "$kmods/$f" | sed -n 's/^depends=//p' | tr ',' ' ')"
    done
    "$bb" depmod -b "$root" "$kver"
    mkdir -p "$root"/proc "$root"/sys "$root"/dev "$root"/run "$root"/tmp "$root"/host \
        "$root"/var/lib/xen "$root"/var/log/xen "$root"/var/lib/xenstored "$root"/etc/xen/auto "$root"/root
    ln -sfn /run "$root/var/run"
    sudo_if_needed mkdir -p "$DOM0"
    (cd "$root" && find . | "$bb" cpio -o -H newc 2>/dev/null) | gzip -6 > "$tmp/initrd.gz"
    sudo_if_needed cp "$tmp/initrd.gz" "$DOM0/initrd.gz.tmp"
    sudo_if_needed mv "$DOM0/initrd.gz.tmp" "$DOM0/initrd.gz"
    sudo_if_needed cp "$tmp/kernel/boot/vmlinuz-$kver" "$DOM0/vmlinuz"
    printf '%s\n' "$dom0_version" | sudo_if_needed tee "$DOM0/VERSION" >/dev/null
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
