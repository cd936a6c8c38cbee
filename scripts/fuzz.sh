#!/usr/bin/env bash
# Runs every Go fuzz target of the workspace for the given time (default
# 60s) and fails if any of them found an input that breaks it.
#
# Go 1.26's fuzz coordinator can end a clean run with "context deadline
# exceeded" at the -fuzztime boundary (go.dev/issue/75804, fixed in 1.27).
# A real finding always writes its input under testdata/fuzz/<target>, so a
# failure without a new file there is reported as that race, not a finding.
set -uo pipefail
cd "$(dirname "$0")/.."
time=${1:-60s}
passed=0 failed=0
while read -r f; do
	dir=$(dirname "$f")
	for target in $(grep -o '^func Fuzz[A-Za-z0-9_]*' "$f" | cut -d' ' -f2); do
		corpus="$dir/testdata/fuzz/$target"
		before=$(ls "$corpus" 2>/dev/null | sort)
		echo "fuzz: $dir $target for $time"
		log=$(mktemp)
		if (cd "$dir" && go test -run '^$' -fuzz "^$target\$" -fuzztime "$time" .) >"$log" 2>&1; then
			passed=$((passed + 1))
		elif [ "$(ls "$corpus" 2>/dev/null | sort)" != "$before" ] || ! grep -q 'context deadline exceeded' "$log"; then
			cat "$log"
			echo "fuzz: $target FAILED; new inputs in $corpus:"
			comm -13 <(echo "$before") <(ls "$corpus" 2>/dev/null | sort)
			failed=$((failed + 1))
		else
			echo "fuzz: $target ran its $time and stopped on Go's deadline race (go.dev/issue/75804): no failing input"
			passed=$((passed + 1))
		fi
		grep -E '^fuzz: elapsed' "$log" | tail -1
		rm -f "$log"
	done
done < <(grep -rl --include='*_test.go' '^func Fuzz' platform services client proto cmd test 2>/dev/null)
echo "fuzz: $passed passed, $failed failed"
[ "$failed" = 0 ]
