#!/usr/bin/env bash
# What a refactor must not change, in one folder: build fingerprints (the embedded default, the
# real samples of ../shared/data, a 24:4 drawn build), the hash of every file of three mixes, the
# three exports and the corpora, the stage-1 (20 steps) and stage-2 (5 steps) loss curves and the
# eval JSON (timings left out).
#
#   benchmarks/behaviour_fingerprint.sh TREE OUT     # run with the code of checkout TREE
#   diff -r OUT_BEFORE/summary OUT_AFTER/summary     # nothing printed: same behaviour
#
# TREE is a checkout (e.g. `git worktree add /tmp/before <rev>`); the CLIs of this repo's .venv
# run with PYTHONPATH=TREE, so one venv serves both sides. Runs in a fixed scratch folder
# (/tmp/owl-fingerprint-work), so paths written into mix.json and owl_export.json match between
# runs; about 45 s on 2 cores.
set -euo pipefail
TREE=$(cd "$1" && pwd); OUT=$2
HERE=$(cd "$(dirname "$0")/.." && pwd)
V=$HERE/.venv/bin
DATA=$(cd "$HERE/../shared/data" && pwd)
W=/tmp/owl-fingerprint-work
exec 9>"$W.lock"; flock 9
rm -rf "$W"; mkdir -p "$W/summary"
export PYTHONPATH=$TREE OMP_NUM_THREADS=1
TRAIN="--set batch_size=4 --set log_every=1 --set save_every=0 --set num_workers=0 --set max_pixels=31360"
cd "$TREE"
{
  "$V/owl-data" build --out "$W/def" --workers 2
  "$V/owl-data" build --out "$W/real" --workers 2 --source "cityscapes=$DATA/cityscapes" \
    --source "coco=$DATA/coco_instances:$DATA/coco_instances/annotations.json" --source "drivelm=$DATA/drivelm"
  "$V/owl-data" build --out "$W/big" --workers 2 --scenes 24:4
  "$V/owl-data" mix "$W/def" --ratio 5:1:2:2 --num-samples 300 --out "$W/mix_def"
  "$V/owl-data" mix "$W/real" --tasks point_vqa --ratio 1 --num-samples 100 --out "$W/mix_real"
  "$V/owl-data" mix "$W/big" --ratio 5:1:2:2 --num-samples 400 --out "$W/mix_big"
  for f in hf llava sharegpt; do "$V/owl-data" export "$W/real" --format $f --out "$W/exp_$f"; done
  "$V/owl-train" init-tiny "$W/tiny"
  "$V/owl-train" stage1 --config pipelines/stage1.yaml --model "$W/tiny" --corpus "$W/big" --mix "$W/mix_big" \
    --out "$W/s1" --max-steps 20 $TRAIN
  "$V/owl-train" stage2 --config pipelines/stage2.yaml --init "$W/s1" --corpus "$W/big" --out "$W/s2" --max-steps 5 $TRAIN
  "$V/owl-train" eval --model "$W/s2" "$W/big" --limit 8 --max-new-tokens 8 --json "$W/eval.json"
} > "$W/log.txt" 2>&1
for c in def real big; do
  "$V/owl-data" manifest "$W/$c" | "$V/python" -c "import json,sys; print('$c', json.load(sys.stdin)['fingerprint'])"
done > "$W/summary/fingerprints.txt"
(cd "$W" && find mix_def mix_real mix_big def real big exp_hf exp_llava exp_sharegpt -type f | sort | xargs sha256sum) \
  > "$W/summary/files.txt"
"$V/python" - "$W" > "$W/summary/losses.txt" <<'PY'
import json, sys
for stage in ("s1", "s2"):
    for line in open(f"{sys.argv[1]}/{stage}/logs/metrics.jsonl"):
        row = json.loads(line)
        print(stage, {k: v for k, v in row.items() if k in ("step", "loss", "lr", "grad_norm", "samples")})
PY
"$V/python" -c "import json,sys; d=json.load(open(sys.argv[1])); d.pop('seconds', None); print(json.dumps(d, sort_keys=True, indent=1))" \
  "$W/eval.json" | grep -v '"seconds"' > "$W/summary/eval.txt"
rm -rf "$OUT"; mkdir -p "$(dirname "$OUT")"; mv "$W" "$OUT"
cat "$OUT/summary/fingerprints.txt"
