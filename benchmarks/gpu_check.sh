#!/usr/bin/env bash
# The checks that need a GPU, in one short run: the CUDA-only tests, then every engine timed at 512x512
# (fp32, fp16, bf16, NCHW and channels-last), the patch swap at 64x64x256 and PatchMatch; one table in OUTDIR.
#
#   bash benchmarks/gpu_check.sh OUTDIR [--device cuda|cpu] [--repeats N]
#
# --device cpu runs the same steps on the CPU (the CUDA tests then skip), so the script is known to work
# before it first meets a GPU (with longer time limits; use --repeats 1 there). About 4-5 minutes on one GPU; each step has a time limit so a hang cannot
# eat the rest. Results: OUTDIR/gpu_check.md (the table), OUTDIR/*.log (each step's full output).
set -uo pipefail
cd "$(dirname "$0")/.."

out=${1:?usage: gpu_check.sh OUTDIR [--device cuda|cpu] [--repeats N]}
shift
device=cuda repeats=3
while [ $# -gt 0 ]; do
    case $1 in
        --device) device=$2; shift 2 ;;
        --repeats) repeats=$2; shift 2 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done
mkdir -p "$out"
report="$out/gpu_check.md"
python - "$device" > "$report" <<'EOF'
import sys, torch
from backend import compute
d = sys.argv[1]
name = torch.cuda.get_device_name() if d == "cuda" and torch.cuda.is_available() else compute.cpu_name()
print(f"# GPU check on {d}: {name}, torch {torch.__version__}\n")
EOF

scale=1
[ "$device" = cpu ] && scale=10  # a CPU is that much slower: the same steps, longer limits
step() {  # step NAME SECONDS COMMAND...: run with a time limit, keep its log, append its tables to the report
    local name=$1 limit=$(($2 * scale))
    shift 2
    local started=$SECONDS
    timeout "$limit" "$@" > "$out/$name.log" 2>&1
    local rc=$?
    { echo "## $name (exit $rc, $((SECONDS - started)) s)"; echo; grep -E '^\||passed|failed|skipped|error' "$out/$name.log" | tail -40; echo; } >> "$report"
}

cuda_env=()
[ "$device" = cpu ] && cuda_env=(env CUDA_VISIBLE_DEVICES=)
step cuda-tests 150 "${cuda_env[@]}" python -m pytest -q -rs tests/test_precision.py tests/test_patchmatch.py \
    tests/test_compute.py -k "cuda or precision or autocast or channels"
for spec in "isnet --set blocks=4" "cisi --recipe small" "imt --recipe small" "nfgan --recipe large" \
            "semantic --recipe small --option iterations=100 --option candidates=4"; do
    read -r -a args <<< "$spec"
    step "serve-${args[0]}" 90 python benchmarks/method_speed.py --method "${args[@]}" --size 512 \
        --device "$device" --repeats "$repeats"
done
step patch-swap 60 python benchmarks/patch_swap_speed.py --sizes 64 --device "$device" --repeats "$repeats"
cat "$report"
