#!/usr/bin/env bash
# Builds every guest artifact Kindling's tests, benchmarks and `npm start` use, from Debian
# packages only, into a cache outside the repository:
#
#   $KINDLING_CACHE/guest/<key>/        key = kernel package version + busybox version + recipe hash
#     vmlinuz                Debian's stock kernel (bzImage) — guests and the KVM sandbox
#     kernel-release         its `uname -r`
#     guest-initrd.cpio.gz   busybox + scripts/guest/init + virtio (mmio and pci)/ext4/vsock/virtiofs modules
#     guest-vsock-initrd.cpio.gz  the same, plus a second archive with Debian's socat and its
#                            shared libraries (the vsock tests' and bench's guest tool; apart,
#                            so the other guests do not unpack 4 MB more at every boot)
#     guest-net-initrd.cpio.gz    the same, with Debian's iperf3 instead (the net bench)
#     rootfs.ext4            the same tree as an ext4 image (mke2fs -d, no loop mount)
#     sandbox-initrd.cpio.gz busybox + scripts/sandbox/init + kvm-amd/9p modules, loop and
#                            dm-mod for the disk fault tests (test/helpers/disk-faults.ts), and
#                            vhost_vsock for QEMU's vhost-vsock-device in the vsock bench
#     vmlinux-6.1-mini       minimal ELF kernel (devices on the command line)
#     bzImage-6.1-mini       the same build as a bzImage
#     vmlinux-6.1-fc         Firecracker's CI guest config (PVH note, devices via ACPI)
#
# The minimal kernels are taken from ../shared/guest when their SHA256SUMS match, otherwise
# built from linux-source-6.1 with the recipe in ../shared/guest/README.md (~15–30 min).
# Prints the fixture directory on its last line; $KINDLING_CACHE/guest/current points at it.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cache=${KINDLING_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kindling}
shared=${KINDLING_SHARED_GUEST:-$repo/../shared/guest}
log() { echo "guest-fixtures: $*" >&2; }
die() { log "error: $*"; exit 1; }

for tool in apt-get apt-cache dpkg-deb cpio gzip mke2fs depmod modprobe sha256sum; do
  command -v "$tool" >/dev/null || die "missing $tool (apt-get install -y cpio e2fsprogs kmod)"
done
# The list goes through a variable, not a pipe: with pipefail, `busybox --list | grep -q`
# fails whenever grep exits at its match before busybox has written the rest (SIGPIPE); seen
# once as a spurious "missing static busybox" with busybox-static installed.
bblist=$( [ -x /bin/busybox ] && /bin/busybox --list 2>/dev/null || true )
grep -qx insmod <<<"$bblist" || die "missing static busybox (apt-get install -y busybox-static)"

# --- which Debian packages (the cache key) ----------------------------------------------
kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[0-9].*-amd64\)$/\1/p' | head -n1)
if [ -z "$kpkg" ] && [ "$(id -u)" = 0 ]; then
  log "apt lists look empty: apt-get update"
  apt-get update -qq >&2
  kpkg=$(apt-cache depends linux-image-amd64 | sed -n 's/^ *Depends: \(linux-image-[0-9].*-amd64\)$/\1/p' | head -n1)
fi
[ -n "$kpkg" ] || die "cannot resolve linux-image-amd64 (run apt-get update as root)"
kver=$(apt-cache policy "$kpkg" | sed -n 's/^ *Candidate: //p')
bbver=$(dpkg-query -W -f '${Version}' busybox-static 2>/dev/null || echo unknown)
scver=$(apt-cache policy socat | sed -n 's/^ *Candidate: //p')
[ -n "$scver" ] || die "cannot resolve socat (run apt-get update as root)"
ipver=$(apt-cache policy iperf3 | sed -n 's/^ *Candidate: //p')
[ -n "$ipver" ] || die "cannot resolve iperf3 (run apt-get update as root)"
recipe=$(cat "$0" "$repo/scripts/guest/init" "$repo/scripts/guest/inittab" "$repo/scripts/sandbox/init" \
  | sha256sum | cut -c1-12)
key="${kpkg#linux-image-}_${kver}_bb${bbver//[:+~]/_}_socat${scver//[:+~]/_}_iperf${ipver//[:+~]/_}_${recipe}"
out="$cache/guest/$key"
shared_ok() { [ -f "$shared/SHA256SUMS" ] && (cd "$shared" && grep " $1\$" SHA256SUMS | sha256sum -c --quiet - >/dev/null 2>&1); }
if [ -f "$out/.complete" ]; then
  # A cache built where ../shared/guest was absent lacks the fc kernel: add it once it is here.
  if [ ! -f "$out/vmlinux-6.1-fc" ] && shared_ok vmlinux-6.1-fc.gz; then
    gzip -dc "$shared/vmlinux-6.1-fc.gz" > "$out/vmlinux-6.1-fc.partial" && mv "$out/vmlinux-6.1-fc.partial" "$out/vmlinux-6.1-fc"
    log "added vmlinux-6.1-fc from $shared"
  fi
  ln -sfn "$out" "$cache/guest/current"
  log "cached: $out"
  echo "$out"
  exit 0
fi
log "building $out"
mkdir -p "$cache/debs" "$cache/guest"
work=$(mktemp -d "$cache/work.XXXXXX")
trap 'rm -rf "$work"' EXIT
rm -rf "$out.partial" && mkdir -p "$out.partial"

# --- Debian kernel ----------------------------------------------------------------------
deb=$(ls "$cache"/debs/"${kpkg}_${kver//:/%3a}"_amd64.deb 2>/dev/null | head -n1 || true)
if [ -z "$deb" ]; then
  (cd "$cache/debs" && apt-get download "$kpkg=$kver" >&2) || die "apt-get download $kpkg=$kver failed"
  deb=$(ls "$cache"/debs/"${kpkg}"_*_amd64.deb | head -n1)
fi
dpkg-deb -x "$deb" "$work/k"
release=$(ls "$work/k/lib/modules" | head -n1)
cp "$work/k/boot/vmlinuz-$release" "$out.partial/vmlinuz"
echo "$release" > "$out.partial/kernel-release"
depmod -b "$work/k" "$release"

# Copies the modules (with their dependencies, in load order) into an image tree and writes
# the ordered list to etc/kindling-modules for the init scripts.
add_modules() {
  local root=$1; shift
  local list
  list=$(for m in "$@"; do modprobe -d "$work/k" -S "$release" --show-depends "$m"; done \
    | sed -n "s|^insmod $work/k/lib/modules/$release/||p" | sed 's/ *$//' | awk '!seen[$0]++')
  [ -n "$list" ] || die "no modules resolved for: $*"
  mkdir -p "$root/etc"
  : > "$root/etc/kindling-modules"
  while read -r rel; do
    mkdir -p "$root/lib/modules/$release/$(dirname "$rel")"
    cp "$work/k/lib/modules/$release/$rel" "$root/lib/modules/$release/$rel"
    echo "$rel" >> "$root/etc/kindling-modules"
  done <<< "$list"
}

# A busybox tree with the given init script as /init (and /sbin/init for an ext4 root).
make_tree() {
  local root=$1 init=$2
  mkdir -p "$root"/{bin,sbin,etc,proc,sys,dev,tmp,run,root,mnt}
  cp /bin/busybox "$root/bin/busybox"
  ln -s busybox "$root/bin/sh"
  install -m 0755 "$init" "$root/init"
  ln -s ../init "$root/sbin/init"
}

# A Debian program in an image tree: socat (VSOCK-LISTEN / VSOCK-CONNECT, as Firecracker's
# docs/vsock.md uses it) and iperf3 (the net bench). Each is dynamically linked: its package
# and its dependency closure are unpacked side by side, libc6's own loader lists the shared
# objects the program really loads, and only those go in (/lib/x86_64-linux-gnu by soname,
# the loader at the program's PT_INTERP /lib64/...).
add_program() { # root package version binary-in-package
  local root=$1 pkg=$2 ver=$3 bin=$4 debs="$cache/debs/$2-${3//[:+~]/_}" tree="$work/$2" pkgs
  if [ ! -f "$debs/.complete" ]; then
    rm -rf "$debs" && mkdir -p "$debs"
    # The closure includes maintainer-script helpers (debconf, adduser, ...): unpacked, never
    # run; only the shared objects the loader lists below are copied.
    pkgs=$(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks --no-replaces \
      --no-enhances "$pkg" | grep -E '^[a-z0-9]' | sort -u)
    # shellcheck disable=SC2086 # one word per package
    (cd "$debs" && apt-get download $pkgs >&2) || die "apt-get download $pkg and its libraries failed"
    touch "$debs/.complete"
  fi
  mkdir -p "$tree"
  for d in "$debs"/*.deb; do dpkg-deb -x "$d" "$tree"; done
  local ldso="$tree/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"
  [ -x "$ldso" ] && [ -x "$tree$bin" ] || die "$pkg or the glibc loader missing from the unpacked packages"
  mkdir -p "$root/lib/x86_64-linux-gnu" "$root/lib64"
  local listed
  listed=$("$ldso" --library-path "$tree/lib/x86_64-linux-gnu:$tree/usr/lib/x86_64-linux-gnu" --list "$tree$bin") \
    || die "the glibc loader cannot resolve $pkg's libraries"
  while read -r soname arrow path _; do
    [ "$arrow" = "=>" ] || continue
    case "$soname" in
      /lib64/*) cp -L "$path" "$root$soname" ;;
      *) cp -L "$path" "$root/lib/x86_64-linux-gnu/$soname" ;;
    esac
  done <<< "$listed"
  [ -f "$root/lib64/ld-linux-x86-64.so.2" ] || die "$pkg's loader was not listed"
  install -m 0755 "$tree$bin" "$root/bin/${bin##*/}"
}

pack_cpio() { (cd "$1" && find . | sort | cpio -o -H newc --quiet -R 0:0) | gzip -9 > "$2"; }

# --- the guest tree: initramfs and ext4 rootfs ------------------------------------------
make_tree "$work/guest" "$repo/scripts/guest/init"
cp "$repo/scripts/guest/inittab" "$work/guest/etc/inittab"
add_modules "$work/guest" virtio_mmio virtio_pci virtio_blk virtio_net virtio-rng virtio_balloon virtiofs \
  vmw_vsock_virtio_transport ext4
pack_cpio "$work/guest" "$out.partial/guest-initrd.cpio.gz"
# The kernel unpacks concatenated initramfs archives in order, each compressed on its own.
mkdir -p "$work/socat-root/bin" "$work/iperf3-root/bin"
add_program "$work/socat-root" socat "$scver" /usr/bin/socat
pack_cpio "$work/socat-root" "$work/socat.cpio.gz"
cat "$out.partial/guest-initrd.cpio.gz" "$work/socat.cpio.gz" > "$out.partial/guest-vsock-initrd.cpio.gz"
add_program "$work/iperf3-root" iperf3 "$ipver" /usr/bin/iperf3
pack_cpio "$work/iperf3-root" "$work/iperf3.cpio.gz"
cat "$out.partial/guest-initrd.cpio.gz" "$work/iperf3.cpio.gz" > "$out.partial/guest-net-initrd.cpio.gz"
mke2fs -q -t ext4 -L kindling-root -d "$work/guest" "$out.partial/rootfs.ext4" 64M

# --- the sandbox tree --------------------------------------------------------------------
make_tree "$work/sandbox" "$repo/scripts/sandbox/init"
add_modules "$work/sandbox" kvm-amd virtio_pci 9pnet_virtio 9p tun loop dm-mod vhost_vsock
pack_cpio "$work/sandbox" "$out.partial/sandbox-initrd.cpio.gz"

# --- the minimal kernels -----------------------------------------------------------------

build_kernel() { # $1 = mini|fc: the recipe of ../shared/guest/README.md
  local flavour=$1 src="$cache/linux-build-$1"
  log "building the $flavour kernel from linux-source-6.1 (this takes 15-30 minutes)"
  [ "$(id -u)" = 0 ] || die "building kernels needs root for apt-get (or provide $shared)"
  apt-get install -y -qq linux-source-6.1 flex bison libelf-dev bc build-essential >&2
  rm -rf "$src" && mkdir -p "$src"
  tar xf /usr/src/linux-source-6.1.tar.xz -C "$src" --strip-components=1
  if [ "$flavour" = mini ]; then
    make -C "$src" tinyconfig >&2
    local opt
    for opt in 64BIT PRINTK TTY SERIAL_8250 SERIAL_8250_CONSOLE BLK_DEV_INITRD RD_GZIP \
      BINFMT_ELF BINFMT_SCRIPT PROC_FS SYSFS DEVTMPFS DEVTMPFS_MOUNT TMPFS VIRTIO_MENU VIRTIO \
      VIRTIO_MMIO VIRTIO_MMIO_CMDLINE_DEVICES BLOCK BLK_DEV VIRTIO_BLK NET INET NETDEVICES \
      NET_CORE VIRTIO_NET VSOCKETS VIRTIO_VSOCKETS VIRTIO_BALLOON HW_RANDOM HW_RANDOM_VIRTIO \
      EXT4_FS SMP X86_MPPARSE ACPI PCI KVM_GUEST HYPERVISOR_GUEST PARAVIRT UNIX PACKET \
      MULTIUSER FUTEX EPOLL SIGNALFD TIMERFD EVENTFD SHMEM POSIX_TIMERS INPUT SERIO \
      SERIO_I8042 KEYBOARD_ATKBD INPUT_KEYBOARD; do
      "$src/scripts/config" --file "$src/.config" -e "$opt"
    done
  else
    [ -f "$repo/../shared/guest/config-6.1-fc" ] || die "the fc kernel needs Firecracker's CI config"
    cp "$repo/../shared/guest/config-6.1-fc" "$src/.config"
  fi
  make -C "$src" olddefconfig >&2
  make -C "$src" -j"$(nproc)" vmlinux bzImage >&2
  strip -o "$out.partial/vmlinux-6.1-$flavour" "$src/vmlinux"
  [ "$flavour" = mini ] && cp "$src/arch/x86/boot/bzImage" "$out.partial/bzImage-6.1-mini"
  rm -rf "$src"
}

if shared_ok vmlinux-6.1-mini.gz && shared_ok bzImage-6.1-mini; then
  gzip -dc "$shared/vmlinux-6.1-mini.gz" > "$out.partial/vmlinux-6.1-mini"
  cp "$shared/bzImage-6.1-mini" "$out.partial/bzImage-6.1-mini"
else
  build_kernel mini
fi
if shared_ok vmlinux-6.1-fc.gz; then
  gzip -dc "$shared/vmlinux-6.1-fc.gz" > "$out.partial/vmlinux-6.1-fc"
elif [ "${KINDLING_BUILD_FC_KERNEL:-0}" = 1 ]; then
  build_kernel fc
else
  log "note: vmlinux-6.1-fc not in $shared; set KINDLING_BUILD_FC_KERNEL=1 to build it"
fi

touch "$out.partial/.complete"
rm -rf "$out" && mv "$out.partial" "$out"
ln -sfn "$out" "$cache/guest/current"
log "done: $(du -sh "$out" | cut -f1) in $out"
echo "$out"
