#!/bin/sh
# The TUF client against python-tuf's, in the same run, on the same files (python-tuf's
# metadata API writes both repositories: tests/tests/tuf_spec/make.py):
#   - a refresh from scratch of a repository with 300 targets;
#   - a refresh from scratch of a repository whose targets delegate to 1,000 hashed bins
#     (path_hash_prefixes), then the search for one target (one bin loaded).
# Both clients read files (no HTTP) and write their metadata directory.
#
#   benches/tuf_refresh.sh [RUNS]     (default 20)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
runs=${1:-20}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
python3 "$root/tests/tests/tuf_spec/make.py" bench_300_targets "$out/t300"
python3 "$root/tests/tests/tuf_spec/make.py" bench_1000_hashed_bins "$out/bins"
cargo build --quiet --release -p ota-core --example tuf_refresh
ours="$root/target/release/examples/tuf_refresh"
target=$(cat "$out/bins/target")
report() {
    awk -v name="$1" -v o="$2" -v p="$3" 'BEGIN {
        printf "%-28s ota %8.2f ms  python-tuf %8.2f ms  %.1fx\n", name, o / 1e6, p / 1e6, p / o }'
}
o=$("$ours" "$out/t300/step0/metadata" "$runs")
p=$(python3 "$here/tuf_refresh.py" "$out/t300/step0/metadata" "$runs")
report "refresh, 300 targets" "$o" "$p"
o=$("$ours" "$out/bins/step0/metadata" "$runs" "$target")
p=$(python3 "$here/tuf_refresh.py" "$out/bins/step0/metadata" "$runs" "$target")
report "refresh + search, 1000 bins" "$o" "$p"
