#!/usr/bin/env bash
# Installs what building and testing need, and only what is missing:
# Debian packages (as root, through apt) and pinned Go tools in bin/tools.
#
#   scripts/deps.sh          Debian packages and the tools tests need
#   scripts/deps.sh --debs   Debian packages only (enough to build and run)
#   scripts/deps.sh --all    also buf and the nats CLI
set -euo pipefail
cd "$(dirname "$0")/.."
all=${1:-}

debs=(protobuf-compiler libvirt-dev pkg-config qemu-utils gcc make git ca-certificates)
if [ "$all" != "--debs" ]; then
	debs+=(docker-compose) # make compose-check validates deploy/compose without an engine
	debs+=(slapd ldap-utils) # a throwaway LDAP server per authn test
	debs+=(chromium)       # the web UI tests drive a real headless browser
	debs+=(tgt qemu-block-extra) # pdisk's iSCSI export tests run a tgtd and open its targets with qemu's iscsi driver
	debs+=(cloud-init xorriso genisoimage) # vmctl contextdisk tests read context disks with Debian's cloud-init and check the ISO with xorriso and isoinfo
	debs+=(dnsmasq-base isc-dhcp-server) # vmctl addresses tests check the DHCP host entries with dnsmasq --test and dhcpd -t
	debs+=(qemu-system-x86 libvirt-daemon-driver-qemu) # vmctl hypervisor tests boot real TCG guests through libvirt's embedded QEMU driver (qemu:///embed)
	debs+=(libvirt-daemon) # vmctl hypervisor tests run a session libvirtd (no services started) and kill it to test reconnects
	debs+=(busybox-static syslinux syslinux-common mtools cpio xorriso qemu-system-x86) # scripts/appliance.sh builds the test appliance (it also downloads a kernel .deb with apt-get download); vmctl appliance tests boot it with QEMU
	debs+=(util-linux) # vmctl agent tests compare the swap disk's header with mkswap's and read it with blkid
	debs+=(xmlsec1 libxml2-utils) # client/metadata/xmlsig interop tests sign and verify with xmlsec1 and cross-check canonical XML with xmllint --c14n
	debs+=(openssl libxml2-utils bzip2 xz-utils) # client/metadata tests compare DN with openssl -nameopt RFC2253, read rendered entries with xmllint and build entries of bzip2/xz-compressed images (qemu-img makes the qcow2/vmdk/vdi/vhdx ones)
	debs+=(openssl xmlsec1) # services/marketplace upload tests accept a certificate made by openssl req and entries signed by xmlsec1 (also with a 1024-bit legacy key)
	debs+=(openssl xmlsec1 cloud-init coreutils) # client/cmd/stratus Marketplace tests sign with keys made by openssl, check signed entries with xmlsec1 --verify and identifiers with sha1sum, and read create-image's user data with cloud-init's own parser and schema
fi
missing=()
for p in "${debs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "deps: missing Debian packages: ${missing[*]}; run as root or install them" >&2
		exit 1
	fi
	echo "deps: installing ${missing[*]}"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Run as root, libvirt's embedded QEMU driver (vmctl hypervisor tests) looks up Debian's QEMU user
# before it reads the qemu.conf that runs QEMU as root; libvirt-daemon-system would create the user
# but also installs and starts libvirtd.
if [ "$all" != "--debs" ] && [ "$(id -u)" = 0 ] && ! getent passwd libvirt-qemu >/dev/null; then
	getent group libvirt-qemu >/dev/null || groupadd --system libvirt-qemu
	useradd --system --gid libvirt-qemu --no-create-home --home-dir /var/lib/libvirt --shell /usr/sbin/nologin libvirt-qemu
fi

export PATH="/usr/local/go/bin:$PATH"
if ! command -v go >/dev/null; then
	echo "deps: Go is not installed; install Go 1.26 (https://go.dev/doc/install) at /usr/local/go" >&2
	exit 1
fi

if [ "$all" = "--debs" ]; then
	exit 0
fi

# Pinned tools, built from the module proxy into bin/tools.
tools=(
	"google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12 protoc-gen-go"
	"honnef.co/go/tools/cmd/staticcheck@v0.8.2 staticcheck"
)
if [ "$all" = "--all" ]; then
	tools+=(
		"github.com/bufbuild/buf/cmd/buf@v1.75.0 buf"
	)
fi
mkdir -p bin/tools
for t in "${tools[@]}"; do
	set -- $t
	stamp="bin/tools/.$2.version"
	if [ -x "bin/tools/$2" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$1" ]; then
		continue
	fi
	echo "deps: building $1"
	GOBIN="$PWD/bin/tools" GOFLAGS=-mod=mod go install "$1"
	echo "$1" >"$stamp"
done

# The proxy refuses natscli's version list, which `go install pkg@version`
# needs: build it from its own pinned module (tools/nats/go.mod) instead.
if [ "$all" = "--all" ] && { [ ! -x bin/tools/nats ] || [ tools/nats/go.mod -nt bin/tools/nats ]; }; then
	echo "deps: building the nats CLI (tools/nats)"
	(cd tools/nats && GOWORK=off go build -o ../../bin/tools/nats github.com/nats-io/natscli/nats)
fi
