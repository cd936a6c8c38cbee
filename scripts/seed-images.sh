#!/usr/bin/env bash
# Puts the test appliance in DATA_DIR/images, where the all-in-one finds it
# at start, publishes it in its Marketplace (the seed catalogue) and the
# gateway serves it at /images/appliance.img:
#
#   scripts/seed-images.sh DATA_DIR
#
# The image is built once by scripts/appliance.sh in the user's cache
# (~/.cache/stratuslab/appliance, shared with the e2e tests) and copied in.
# An image already in DATA_DIR is kept as it is, so that the catalogue's
# entry stays the same from one `make run` to the next (delete the file to
# take a newer kernel). The first build installs the Debian packages it
# needs when run as root and downloads Debian's kernel package (about 70 MB)
# with apt: offline, or as another user without those packages, this
# script says why and the cloud starts with an empty catalogue.
#
# Exits 0 whatever happens: the catalogue is a convenience, not a reason
# for `make run` to fail.
set -uo pipefail

[ $# -eq 1 ] || { echo "usage: $0 DATA_DIR" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
images="$1/images"
target="$images/appliance.img"

skip() {
	echo "seed-images: $*; the Marketplace starts empty" >&2
	exit 0
}

[ -f "$target" ] && exit 0
[ "$(dpkg --print-architecture 2>/dev/null)" = amd64 ] || skip "the test appliance is built for amd64 Debian machines only"

# What scripts/appliance.sh builds with; `make test` installs them too
# (scripts/deps.sh), `make build` does not need them.
missing=()
for p in busybox-static syslinux syslinux-common mtools cpio; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	[ "$(id -u)" = 0 ] || skip "the test appliance needs Debian packages: apt-get install ${missing[*]} (as root)"
	echo "seed-images: installing ${missing[*]}" >&2
	{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >/dev/null ||
		skip "could not install ${missing[*]}"
fi

cache=${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/stratuslab/appliance
mkdir -p "$cache" "$images" || skip "cannot create $cache or $images"
echo "seed-images: building the test appliance (the first time downloads Debian's kernel package)" >&2
if ! out=$("$here/appliance.sh" "$cache/appliance.img" 2>&1); then
	# A fresh Debian machine may have no package lists yet.
	if [[ $out == *"apt knows no"* ]] && [ "$(id -u)" = 0 ]; then
		apt-get update -qq >/dev/null 2>&1
		out=$("$here/appliance.sh" "$cache/appliance.img" 2>&1) || skip "$(tail -n 1 <<<"$out")"
	else
		skip "$(tail -n 1 <<<"$out")"
	fi
fi
# Copied aside, then renamed: the cloud never sees half an image.
cp "$cache/appliance.img" "$images/.appliance.img.tmp" && mv "$images/.appliance.img.tmp" "$target" ||
	skip "cannot copy the appliance into $images"
echo "seed-images: $target ready ($(tail -n 1 <<<"$out" | cut -d' ' -f2))" >&2
