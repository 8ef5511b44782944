#!/usr/bin/env bash
# Continue a training run on a GPU for a fixed time, and hand its state back in pieces small enough to carry.
#
#   bash benchmarks/gpu_train.sh RUN DATA MINUTES OUTDIR [train options...]
#   bash benchmarks/gpu_train.sh join DIR
#
# RUN is the run's name as given to `inpaint-backend train --out` (e.g. ~/.cache/inpaint-backend/runs/isnet-open:
# RUN.json, RUN.safetensors and the resumable state in RUN.train/), or the same files as this script wrote them
# (split: they are joined first, and their checksums checked). The run resumes from its last step with the
# method, recipe and step goal of RUN.json on --device cuda (its precision "auto" is bf16 where the GPU has it),
# gets SIGTERM after MINUTES (it saves at the step it is on), and OUTDIR receives RUN.json, the served
# checkpoint and the last step's state, every file over PART_BYTES (default 16 MiB) split into NAME.part-aa,
# NAME.part-ab, ... beside NAME.sha256. Options after OUTDIR go to `inpaint-backend train` (e.g. --device cpu,
# --set batch=32). INPAINT_TRAIN replaces the train command (default: inpaint-backend). The last lines printed
# are the steps done and the images/s of the run.
set -euo pipefail

part_bytes=${PART_BYTES:-16777216}

join_parts() {  # join DIR: every NAME.part-* group back into NAME, checked against NAME.sha256
    local dir=$1 first name
    for first in $(find "$dir" -name '*.part-aa' | sort); do
        name=${first%.part-aa}
        cat "$name".part-?? > "$name.joining"
        if [ -f "$name.sha256" ] && [ "$(sha256sum < "$name.joining" | cut -d' ' -f1)" != "$(cat "$name.sha256")" ]; then
            echo "error: $name: the joined parts do not match $name.sha256" >&2
            rm -f "$name.joining"
            exit 1
        fi
        mv "$name.joining" "$name"
        rm -f "$name".part-?? "$name.sha256"
    done
}

put() {  # put FILE DESTDIR: copy, split when larger than part_bytes
    local file=$1 dest=$2 base
    base=$dest/$(basename "$file")
    if [ "$(stat -c %s "$file")" -gt "$part_bytes" ]; then
        split -b "$part_bytes" -a 2 "$file" "$base.part-"
        sha256sum < "$file" | cut -d' ' -f1 > "$base.sha256"
    else
        cp "$file" "$base"
    fi
}

if [ "${1:-}" = join ]; then
    join_parts "${2:?usage: gpu_train.sh join DIR}"
    exit 0
fi

run=${1:?usage: gpu_train.sh RUN DATA MINUTES OUTDIR [train options...]}
data=${2:?usage: gpu_train.sh RUN DATA MINUTES OUTDIR [train options...]}
minutes=${3:?usage: gpu_train.sh RUN DATA MINUTES OUTDIR [train options...]}
out=${4:?usage: gpu_train.sh RUN DATA MINUTES OUTDIR [train options...]}
shift 4
run=${run%.json}
[ -d "$run.train" ] || { echo "error: no run state in $run.train" >&2; exit 1; }
join_parts "$(dirname "$run")"
join_parts "$run.train"

read -r method recipe steps before < <(python - "$run.json" <<'EOF'
import json, sys
meta = json.load(open(sys.argv[1]))
cfg = meta["config"]
print(meta["method"], cfg.get("recipe") or "paper", cfg["steps"], meta["step"])
EOF
)
echo "resuming $method ($recipe) at step $before of $steps for $minutes min"
# shellcheck disable=SC2086 # INPAINT_TRAIN may be a command with arguments
set +e
timeout -s TERM -k 600 "${minutes}m" ${INPAINT_TRAIN:-inpaint-backend} train --method "$method" --recipe "$recipe" \
    --data "$data" --out "$run" --steps "$steps" --resume --device cuda "$@"
rc=$?
set -e
# 0: the step goal was reached; 124 or 130: stopped by the time limit, after saving.
case $rc in 0 | 124 | 130) ;; *) echo "error: training exited with $rc" >&2; exit "$rc" ;; esac

mkdir -p "$out/$(basename "$run").train"
stem=$(python -c 'import json, sys; print(json.load(open(sys.argv[1]))["stem"])' "$run.train/latest.json")
for f in "$run.json" "$run.safetensors"; do put "$f" "$out"; done
for f in "$run.train/latest.json" "$run.train/$stem".* "$run.train/curves.png"; do
    [ -f "$f" ] && put "$f" "$out/$(basename "$run").train"
done
python - "$run.json" "$before" <<'EOF'
import json, sys
meta = json.load(open(sys.argv[1]))
print(f"steps: {int(sys.argv[2])} -> {meta['step']} of {meta['config']['steps']}")
print(f"images/s: {meta['training']['images_per_s']} on {meta['training']['hardware']}")
EOF
