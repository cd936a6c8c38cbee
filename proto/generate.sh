#!/usr/bin/env bash
# Regenerates the Go code of every .proto under proto/stratus.
#
#   proto/generate.sh [OUT_DIR]
#
# Each .pb.go lands next to its .proto, relative to OUT_DIR (default: proto/
# itself, i.e. in place). Stale .pb.go files under OUT_DIR/stratus are
# removed. The output is byte-for-byte reproducible only with the exact
# tool versions below, which the generated headers record; the drift test
# (proto/drift_test.go) relies on that.
#
# Tools: protoc 3.21.12 (Debian bookworm's protobuf-compiler, includes in
# /usr/include) and protoc-gen-go v1.36.12 (bin/tools/protoc-gen-go, built
# by `make deps`). Override their paths with PROTOC, PROTOC_INCLUDE and
# PROTOC_GEN_GO.
set -euo pipefail

want_protoc="libprotoc 3.21.12"
want_plugin="protoc-gen-go v1.36.12"

here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
out="${1:-$here}"

die() {
	echo "generate.sh: $*" >&2
	exit 1
}

protoc="${PROTOC:-$(command -v protoc || true)}"
[ -n "$protoc" ] && [ -x "$protoc" ] ||
	die "protoc not found; run 'make deps' (installs Debian's protobuf-compiler) or set PROTOC"
got="$("$protoc" --version)"
[ "$got" = "$want_protoc" ] ||
	die "need $want_protoc (Debian bookworm protobuf-compiler), found '$got' at $protoc; other versions change the generated headers"

include="${PROTOC_INCLUDE:-$(dirname "$(dirname "$protoc")")/include}"
[ -f "$include/google/protobuf/timestamp.proto" ] ||
	die "protobuf well-known types not found in $include; set PROTOC_INCLUDE to the directory holding google/protobuf/*.proto"

plugin="${PROTOC_GEN_GO:-$root/bin/tools/protoc-gen-go}"
if [ ! -x "$plugin" ]; then
	plugin="$(command -v protoc-gen-go || true)"
fi
[ -n "$plugin" ] && [ -x "$plugin" ] ||
	die "protoc-gen-go not found; run 'make deps' (builds it into bin/tools) or set PROTOC_GEN_GO"
got="$("$plugin" --version)"
[ "$got" = "$want_plugin" ] ||
	die "need $want_plugin, found '$got' at $plugin; run 'make deps'"

mkdir -p "$out"
out="$(cd "$out" && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

cd "$here"
mapfile -t files < <(find stratus -name '*.proto' | LC_ALL=C sort)
[ ${#files[@]} -gt 0 ] || die "no .proto files under $here/stratus"

"$protoc" -I . -I "$include" \
	--plugin=protoc-gen-go="$plugin" \
	--go_out="$tmp" --go_opt=module=stratuslab.dev/proto \
	"${files[@]}"

# Replace the old output only once everything generated.
if [ -d "$out/stratus" ]; then
	find "$out/stratus" -name '*.pb.go' -delete
fi
(cd "$tmp" && find stratus -name '*.pb.go' | LC_ALL=C sort) | while read -r f; do
	mkdir -p "$out/$(dirname "$f")"
	cp "$tmp/$f" "$out/$f"
done
