#!/usr/bin/env bash
# Builds the StratusLab test appliance: a tiny bootable disk image whose init
# reads the contextualisation CD-ROM and reports on the serial console.
#
#   scripts/appliance.sh OUT.img
#
# The image is a raw disk holding one FAT filesystem (no partition table) with
# syslinux, Debian's kernel and a busybox initramfs. It boots from a virtio,
# IDE or SATA disk under `qemu-system-x86_64 -accel tcg` in a few seconds.
#
# Nothing needs root: the kernel .deb is downloaded with `apt-get download`
# and unpacked with dpkg-deb, the filesystem is written with mtools and the
# boot sector with `syslinux --install`. The build is cached by its inputs
# (this script, the kernel package version, busybox-static and syslinux
# versions): OUT.img is rebuilt only when one of them changes. Concurrent runs
# for the same OUT.img wait for each other.
#
# Environment:
#   APPLIANCE_KERNEL  kernel package to use (default: what linux-image-amd64
#                     depends on in apt's lists)
#   APPLIANCE_CACHE   where downloaded .debs are kept (default: OUT's folder)
#
# On success prints "PATH SHA1" of the image on stdout.
#
# What the guest prints on ttyS0, one line each, all starting with
# "STRATUS-APPLIANCE: ":
#   booted kernel=VERSION uptime=SECONDS
#   context=LABEL dev=DEVICE            (or context=none)
#   context-vars=NAME,NAME,...          (the keys context.sh defines)
#   hostname=NAME key=FIRST40 ip=ADDR   (each on its own line, empty if unset)
#   instance-id=ID                      (NoCloud seeds only)
#   ready                               (the power button is watched from now)
#   disks=vda sr0 ...                   (whenever the set of disks changes)
#   disk-added=NAME bytes=N / disk-removed=NAME
#   powering off                        (after an ACPI power button press)
set -euo pipefail

die() {
	echo "appliance: $*" >&2
	exit 1
}

[ $# -eq 1 ] || die "usage: $0 OUT.img"
out=$(realpath -m "$1")
dir=$(dirname "$out")
mkdir -p "$dir"
cache=${APPLIANCE_CACHE:-$dir}
self=$(realpath "${BASH_SOURCE[0]}")

for tool in apt-cache apt-get dpkg-deb dpkg-query cpio gzip mformat mcopy syslinux sha1sum flock; do
	command -v "$tool" >/dev/null || die "$tool is missing: run scripts/deps.sh as root"
done
dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'install ok installed' ||
	die "busybox-static is not installed: run scripts/deps.sh as root"
[ -f /usr/lib/syslinux/modules/bios/ldlinux.c32 ] || die "syslinux-common is not installed: run scripts/deps.sh as root"

# One build at a time per output; the loser of the race finds the cache warm.
exec 9>"$out.lock"
flock 9

# One apt-cache call names the kernel package and its version: each takes
# about a second where apt keeps no binary package cache (Debian's container
# images turn it off).
if [ -n "${APPLIANCE_KERNEL:-}" ]; then
	read -r kpkg kver < <(apt-cache show --no-all-versions "$APPLIANCE_KERNEL" 2>/dev/null |
		sed -n "s/^Version: /$APPLIANCE_KERNEL /p") || true
else
	read -r kpkg kver < <(apt-cache show --no-all-versions linux-image-amd64 2>/dev/null |
		sed -n 's/^Depends: \(linux-image-[0-9][^ ,]*\) (= \([^)]*\)).*/\1 \2/p') || true
fi
[ -n "${kver:-}" ] || die "apt knows no ${APPLIANCE_KERNEL:-linux-image-amd64}: run 'apt-get update' (as root) and retry"
bbver=$(dpkg-query -W -f='${Version}' busybox-static)
slver=$(dpkg-query -W -f='${Version}' syslinux)
key=$(printf '%s\n' "$(sha1sum <"$self")" "$kpkg=$kver" "busybox-static=$bbver" "syslinux=$slver" | sha1sum | cut -d' ' -f1)

if [ -f "$out" ] && [ "$(cat "$out.inputs" 2>/dev/null)" = "$key" ]; then
	echo "$out $(sha1sum <"$out" | cut -d' ' -f1)"
	exit 0
fi

work=$(mktemp -d "$dir/.appliance.XXXXXX")
trap 'rm -rf "$work"' EXIT

# The kernel: download once, unpack only the parts the initramfs may need.
deb="$cache/debs/${kpkg}_${kver//:/%3a}_amd64.deb"
if [ ! -f "$deb" ]; then
	mkdir -p "$cache/debs"
	rm -f "$cache/debs/linux-image-"*.deb # an older kernel nobody will use again
	(cd "$work" && apt-get download -q "$kpkg=$kver" 2>&1 | grep -v '^W: Download is performed unsandboxed' >&2 || true)
	[ -f "$work/$(basename "$deb")" ] || die "could not download $kpkg=$kver (is apt's mirror reachable? try 'apt-get update')"
	mv "$work/$(basename "$deb")" "$deb"
fi
mkdir -p "$work/k"
kernel_parts=(drivers/block drivers/virtio drivers/ata drivers/scsi drivers/cdrom drivers/acpi drivers/input fs block lib crypto arch)
dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$work/k" --wildcards './boot/vmlinuz-*' \
	"${kernel_parts[@]/#/./lib/modules/*/kernel/}"
vmlinuz=$(echo "$work"/k/boot/vmlinuz-*)
[ -f "$vmlinuz" ] || die "$deb holds no /boot/vmlinuz-*"
kmods=$(echo "$work"/k/lib/modules/*)
[ -d "$kmods/kernel" ] || die "$deb holds no modules"

# The initramfs: busybox, the modules (with what they depend on, in load
# order) and /init.
root="$work/root"
mkdir -p "$root"/{bin,dev,proc,sys,mnt,etc,lib/modules,tmp}
cp /bin/busybox "$root/bin/busybox"
for applet in $(/bin/busybox --list); do
	[ "$applet" = busybox ] || ln -s busybox "$root/bin/$applet"
done

# Disks on virtio-blk, virtio-scsi, IDE (pc) and SATA (q35); the context CD
# (ISO 9660, or FAT for a NoCloud seed); the ACPI power button as an input
# event device. PCI hot-plug (ACPI and PCIe) is built into Debian's kernel.
modules=(virtio_pci virtio_blk virtio_scsi ata_piix ahci sd_mod sr_mod isofs vfat nls_cp437 nls_ascii button evdev)
declare -A added=()
order=()
add_module() {
	local name=${1//-/_} file deps dep
	[ -z "${added[$name]:-}" ] || return 0
	added[$name]=1
	file=$(find "$kmods/kernel" \( -name "$name.ko" -o -name "${name//_/-}.ko" \) -print -quit)
	[ -n "$file" ] || die "module $name is not in $deb (built in? compressed? under ${kernel_parts[*]}?)"
	deps=$(tr '\0' '\n' <"$file" | sed -n 's/^depends=//p')
	for dep in ${deps//,/ }; do
		add_module "$dep"
	done
	cp "$file" "$root/lib/modules/$name.ko"
	order+=("$name")
}
for m in "${modules[@]}"; do
	add_module "$m"
done
printf '%s\n' "${order[@]}" >"$root/etc/modules"

cat >"$root/init" <<'INIT'
#!/bin/sh
# PID 1 of the StratusLab test appliance: reports what it finds on the serial
# console in lines starting with "STRATUS-APPLIANCE: ", which tests parse.
PATH=/bin
export PATH
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
mount -t proc proc /proc
mount -t sysfs sysfs /sys

say() {
	echo "STRATUS-APPLIANCE: $*"
}

say "booted kernel=$(uname -r) uptime=$(cut -d' ' -f1 /proc/uptime)"
while read -r m; do
	insmod "/lib/modules/$m.ko" || say "warning: cannot load $m"
done </etc/modules

# insmod returns once the drivers' asynchronous probes are done, so the
# context disk is usually there already; allow three seconds for stragglers
# (sd_mod probes asynchronously), less once a CD-ROM labelled otherwise is.
find_context() {
	for label in _STRATUSLAB CONTEXT cidata CIDATA; do
		dev=$(findfs "LABEL=$label" 2>/dev/null) && return 0
	done
	label=
	return 1
}
tries=0
cd_tries=0
until find_context; do
	tries=$((tries + 1))
	[ -e /sys/block/sr0 ] && cd_tries=$((cd_tries + 1))
	[ $tries -ge 15 ] || [ $cd_tries -ge 3 ] && break
	sleep 0.2
done

if [ -z "$label" ]; then
	say "context=none"
elif ! mount -r "$dev" /mnt; then
	say "context=$label dev=$dev"
	say "warning: cannot mount $dev"
else
	say "context=$label dev=$dev"
	# A NoCloud seed (meta-data) is read as cloud-init reads it, even when
	# it also carries the original StratusLab context.sh (CLOUD_INIT_* keys).
	if [ -f /mnt/context.sh ] && [ ! -f /mnt/meta-data ]; then
		say "context-vars=$(sed -n 's/^[[:space:]]*\(export[[:space:]]\{1,\}\)\{0,1\}\([A-Za-z_][A-Za-z0-9_]*\)=.*/\2/p' /mnt/context.sh | tr '\n' ',' | sed 's/,$//')"
		# Sourced as the HEPiX scripts did: a context.sh that is not valid
		# shell shows here as missing values.
		(
			. /mnt/context.sh
			name=${SET_HOSTNAME:-${HOSTNAME:-}}
			say "hostname=$name"
			say "key=$(printf '%s' "${SSH_PUBLIC_KEY:-${PUBLIC_KEY:-}}" | head -n 1 | cut -c1-40)"
			say "ip=${ETH0_IP:-}"
			[ -z "$name" ] || hostname "$name"
		)
	else
		# A NoCloud seed: meta-data and #cloud-config user-data.
		name=$(sed -n 's/^local-hostname:[[:space:]]*//p' /mnt/meta-data 2>/dev/null | tr -d "\"'" | head -n 1)
		say "instance-id=$(sed -n 's/^instance-id:[[:space:]]*//p' /mnt/meta-data 2>/dev/null | tr -d "\"'" | head -n 1)"
		say "hostname=$name"
		say "key=$(grep -h -o 'ssh-[a-z0-9-]* [A-Za-z0-9+/=]*' /mnt/user-data /mnt/meta-data 2>/dev/null | head -n 1 | cut -c1-40)"
		say "ip="
		[ -z "$name" ] || hostname "$name"
	fi
	umount /mnt
fi

# ACPI power button: evdev hands out whole input events only, so read one
# event-sized block; any event from the button is a press. A press before a
# watcher holds its device open is lost, so "ready" waits for them all.
watchers=0
for ev in /sys/class/input/event*; do
	[ "$(cat "$ev/device/name" 2>/dev/null)" = "Power Button" ] || continue
	watchers=$((watchers + 1))
	(
		node=/dev/input/${ev##*/}
		i=0
		while [ ! -c "$node" ] && [ $i -lt 50 ]; do
			sleep 0.1
			i=$((i + 1))
		done
		exec 3<"$node"
		touch "/tmp/watching.${ev##*/}"
		dd bs=4096 count=1 <&3 >/dev/null 2>&1
		say "powering off"
		sync
		poweroff -f
	) &
done
i=0
while [ "$(ls /tmp/watching.* 2>/dev/null | wc -l)" -lt $watchers ] && [ $i -lt 50 ]; do
	sleep 0.1
	i=$((i + 1))
done
[ $watchers -gt 0 ] || say "warning: no ACPI power button: shut down by power button will not work"
say ready

# Report the disks whenever they change, so hot-plug shows.
last=
while :; do
	now=
	for b in /sys/block/*; do
		case ${b##*/} in loop* | ram* | zram*) continue ;; esac
		now="$now ${b##*/}"
	done
	now=${now# }
	if [ "$now" != "$last" ]; then
		for d in $now; do
			case " $last " in *" $d "*) ;; *) [ -z "$last" ] || say "disk-added=$d bytes=$(($(cat /sys/block/$d/size) * 512))" ;; esac
		done
		for d in $last; do
			case " $now " in *" $d "*) ;; *) say "disk-removed=$d" ;; esac
		done
		say "disks=$now"
		last=$now
	fi
	sleep 1
done
INIT
chmod 755 "$root/init"
(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --reproducible --quiet) | gzip -9n >"$work/initrd.gz"

# The disk: FAT with syslinux, sized to what it holds plus a little room.
cat >"$work/syslinux.cfg" <<'CFG'
SERIAL 0 115200
DEFAULT appliance
PROMPT 0
TIMEOUT 0
LABEL appliance
  KERNEL vmlinuz
  INITRD initrd.gz
  APPEND console=tty0 console=ttyS0,115200 quiet
CFG
bytes=$(($(stat -c %s "$vmlinuz") + $(stat -c %s "$work/initrd.gz") + 2 * 1024 * 1024))
mib=$(((bytes + 1024 * 1024 - 1) / (1024 * 1024)))
img="$work/appliance.img"
export MTOOLS_SKIP_CHECK=1 MTOOLSRC=/dev/null
mformat -C -i "$img" -T $((mib * 2048)) -h 64 -s 32 -N 5354524c -v STRATUSAPP ::
mcopy -i "$img" "$vmlinuz" ::vmlinuz
mcopy -i "$img" "$work/initrd.gz" ::initrd.gz
mcopy -i "$img" "$work/syslinux.cfg" ::syslinux.cfg
syslinux --install "$img"

mv "$img" "$out"
echo "$key" >"$out.inputs"
echo "$out $(sha1sum <"$out" | cut -d' ' -f1)"
