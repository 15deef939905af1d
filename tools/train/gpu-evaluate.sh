#!/bin/sh
# The full evaluation of a model on one GPU within one run of the GPU machine (at most 9 minutes):
# every task at LENGTHS with CELL trials a cell, in the modes MODES, BM25 and lexical beside it.
#   tools/train/gpu-evaluate.sh OUT [MODEL [RESULT]]  (default MODEL: OUT/run/model.safetensors;
#   MODEL may be a folder of model-NNN.safetensors parts, as gpu-finetune.sh returns them)
# Writes OUT/eval-full-MODE/ (eval.log, eval.json, eval.md); with RESULT, copies them to
# RESULT/eval-full-MODE.{md,json,log} (flat: the GPU machine returns at most 8 files). Defaults: LENGTHS 4096,65536,1048576,
# 4194304,16777216, CELL 100, MODES overwrite (run it a second time with MODES=append), TASKS all,
# LIMIT 300 (no new length is started after it). TINY=1: toy sizes on the CPU.
set -eu
out=${1:?usage: gpu-evaluate.sh OUT [MODEL [RESULT]]}
model=${2:-$out/run/model.safetensors}
result=${3:-}
here=$(cd "$(dirname "$0")" && pwd)
PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONPATH
py=${PYTHON:-python3}
pack=${PACK:-.train-pack}
lengths=${LENGTHS:-4096,65536,1048576,4194304,16777216}
cell=${CELL:-100}
if [ "${TINY:-0}" = 1 ]; then
    lengths=${LENGTHS:-4096}
    cell=${CELL:-2}
fi
modes=${MODES:-overwrite}
mkdir -p "$out"
if [ -d "$model" ]; then
    "$py" -m hsatrain.ckpt join "$model" "$out/joined.safetensors"
    model=$out/joined.safetensors
fi
for mode in $(echo "$modes" | tr , ' '); do
    mkdir -p "$out/eval-full-$mode"
    "$py" -m hsatrain.evaluate --model "$model" --tok "$pack/hsamem-bpe.tok" --data "$pack/tokens.npz" \
        --out "$out/eval-full-$mode" --lengths "$lengths" --cell-trials "$cell" --modes "$mode" \
        --tasks "${TASKS:-all}" --time-limit "${LIMIT:-300}" 2>&1
    if [ -n "$result" ]; then
        mkdir -p "$result"
        for f in md json log; do cp "$out/eval-full-$mode/eval.$f" "$result/eval-full-$mode.$f"; done
    fi
done
