#!/bin/bash
# Benchmark (not a test): whole-process median times against one ipmi_sim, side by side
# with what an admin would otherwise run. Prints the ratios.
#   hamn fence            vs fence_ipmilan --lanplus -C 3 -o off (defaults, and --power-wait 0)
#   hamn power status     vs ipmitool -I lanplus -C 3 chassis power status
# Every fence run starts with the simulated server powered on (hyperfine --prepare).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo >/dev/null || . "$HOME/.cargo/env"
runs=${RUNS:-15}
cargo build --release --quiet
hamn=$PWD/target/release/hamn
work=$(mktemp -d /tmp/hamn-bench.XXXXXX)
trap 'bash scripts/sim-bmc stop "$work"; rm -rf "$work"' EXIT
port=$((20000 + RANDOM % 20000))
bash scripts/sim-bmc start "$work" "$port"
cat >"$work/hamn.toml" <<CONF
node = "mn2"
[peers.mn1.bmc]
address = "127.0.0.1"
port = $port
user = "admin"
password_file = "$work/password"
# Pinned like fence_ipmilan's -C 3 (unpinned, hamn first proposes 17 and is refused).
cipher_suite = 3
CONF
printf '#!/bin/sh\ncat %s\n' "$work/password" >"$work/pwscript"
chmod 700 "$work/pwscript"
ipmi="-I lanplus -C 3 -H 127.0.0.1 -p $port -U admin -E"
export IPMI_PASSWORD=hamn-demo-pw
on="ipmitool $ipmi chassis power on >/dev/null"
fil="/usr/sbin/fence_ipmilan --lanplus -C 3 -a 127.0.0.1 -u $port -l admin -S $work/pwscript -o off"

hf() {
    hyperfine --style basic --runs "$runs" --export-json "$work/$1.json" "${@:2}" >/dev/null 2>"$work/$1.err" ||
        { cat "$work/$1.err" >&2; exit 1; }
}
hf hamn_fence --prepare "$on" "$hamn --config $work/hamn.toml fence mn1"
hf fil_default --prepare "$on" "$fil"
hf fil_wait0 --prepare "$on" "$fil --power-wait 0"
hf hamn_status "$hamn --config $work/hamn.toml power status mn1"
hf ipmitool_status "ipmitool $ipmi chassis power status"

python3 - "$work" <<'PY'
import json, sys
w = sys.argv[1]
m = {k: json.load(open(f"{w}/{k}.json"))["results"][0]["median"] for k in
     ["hamn_fence", "fil_default", "fil_wait0", "hamn_status", "ipmitool_status"]}
ms = lambda k: f"{m[k]*1000:8.1f} ms"
print("median whole-process time against ipmi_sim on 127.0.0.1")
print(f"  hamn fence (off + confirmed)              {ms('hamn_fence')}")
print(f"  fence_ipmilan -o off, defaults            {ms('fil_default')}   ratio {m['fil_default']/m['hamn_fence']:6.1f}x  (target >= 20x)")
print(f"  fence_ipmilan -o off, --power-wait 0      {ms('fil_wait0')}   ratio {m['fil_wait0']/m['hamn_fence']:6.1f}x")
print(f"  hamn power status                         {ms('hamn_status')}")
print(f"  ipmitool chassis power status             {ms('ipmitool_status')}   ratio {m['ipmitool_status']/m['hamn_status']:6.1f}x  (target > 1x)")
PY
