#!/usr/bin/env bash
# Fuzz every statement parser for a while each (docs/fuzzing.md).
#   fuzz/run.sh [SECONDS_PER_TARGET [TARGET...]]   (default: 600 seconds, every target)
# No unsafe code, so no AddressSanitizer (it slowed the CSV target tenfold); panics, hangs and memory
# blow-ups are what is looked for. Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`). Seeds each corpus with the
# peer corpus of ../shared/fixtures/bankfiles when it is there; crashes land in fuzz/artifacts/TARGET/.
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-600}"
shift || true
targets="${*:-csv ofx qif camt mt940 auto nesting}"
shared="${MAGPIE_SHARED_DIR:-../../shared}/fixtures/bankfiles"
seed() { # target, then file name patterns
    local target="$1"; shift
    mkdir -p "corpus/$target"
    if [ -d "$shared" ]; then
        for pattern in "$@"; do
            find "$shared" -type f -iname "$pattern" -size -256k -exec cp -n {} "corpus/$target/" \; 2>/dev/null || true
        done
    fi
}
seed csv '*.csv' '*.txt'
seed ofx '*.ofx' '*.qfx' '*.qbo'
seed qif '*.qif'
seed camt '*.xml' '*.zip'
seed mt940 '*.sta' '*.940' '*.mt940' '*.942' '*.txt'
seed auto '*'
status=0
for target in $targets; do
    echo "== $target: ${seconds}s"
    if ! cargo +nightly fuzz run --sanitizer none "$target" "corpus/$target" -- \
        -max_total_time="$seconds" -max_len=262144 -rss_limit_mb=2048 -timeout=10 -print_final_stats=1; then
        echo "!! $target found a crash; see fuzz/artifacts/$target/"
        status=1
    fi
done
exit $status
