#!/bin/bash
# Benchmark (not a test): `hamn disks --json` next to `lsblk -J` on a generated umockdev
# testbed of MAPS multipath maps over MAPS*PATHS paths (default 256 x 4 = 1,024 paths).
# umockdev's preload slows every file access, so compare the ratio, not absolute times.
# Testbed set-up grows faster than linearly with devices (about 30 s for 1,280 here).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo >/dev/null || . "$HOME/.cargo/env"
maps=${MAPS:-256}
paths=${PATHS_PER_MAP:-4}
runs=${RUNS:-10}
cargo build --release --quiet
work=$(mktemp -d /tmp/hamn-bench-disks.XXXXXX)
trap 'rm -rf "$work"' EXIT
python3 tests/fixtures/gen_fixture.py --maps "$maps" --paths "$paths" >"$work/san.umockdev"
echo "testbed: $maps maps over $((maps * paths)) paths ($((maps * (paths + 1))) block devices)"
start=$(date +%s.%N)
umockdev-run --device "$work/san.umockdev" -- \
    hyperfine -N --style basic --runs "$runs" --warmup 1 --export-json "$work/r.json" \
    "$PWD/target/release/hamn --json disks" "lsblk -J" >/dev/null 2>"$work/err" ||
    { grep -v "File exists" "$work/err" >&2; exit 1; }
echo "testbed set-up and runs took $(echo "$(date +%s.%N) - $start" | bc) s"
python3 - "$work/r.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
h, l = r[0]["median"], r[1]["median"]
print(f"  hamn --json disks   {h*1000:8.1f} ms (median)")
print(f"  lsblk -J            {l*1000:8.1f} ms (median)   ratio lsblk/hamn {l/h:5.2f}  (target >= 1)")
PY
