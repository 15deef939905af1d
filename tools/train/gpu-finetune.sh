#!/bin/sh
# hsa-small v2: fine-tune the shipped model on one GPU within one run of the GPU machine, then a
# quick evaluation. Writes under OUT: run/ (train.log, model.safetensors: bf16 weights, the same
# in parts below 16 MiB in model-parts/ (python3 -m hsatrain.ckpt join DIR FILE rejoins them),
# ckpt/: the resumable checkpoint in parts below 16 MiB) and eval-quick/ (eval.log, eval.json, eval.md).
# With RESULT, copies what must leave the machine into RESULT, flat, in 6 files of < 16 MiB
# (train.log, model-000/001.safetensors, eval-quick.md/.json/.log): the GPU machine returns at
# most 8 files, 64 MiB in all, so the checkpoint (85 MB) stays in OUT.
#   tools/train/gpu-finetune.sh OUT [RESULT]  (from the top of the source tree, .train-pack present)
# Budget: at most 9.5 minutes in all; training stops at TRAIN_LIMIT seconds (default 420, counted
# from its start), the evaluation starts no new length after EVAL_LIMIT seconds (default 75).
# TINY=1: the same steps at a toy size on the CPU (a few minutes), to check the script.
# Other knobs (for ablations): EXTRA_TASKS, HARD_KEYS, MARGIN, QUEUE, BALANCE (1/0), SCHEDULE,
# INIT (default models/hsa-small/model.safetensors), PACK (default .train-pack), WIDEN_DR (the
# landmark widened to that many dimensions at the start: hsatrain.train --widen-dr), CONT_WEIGHT
# (hsatrain.train --cont-weight: the weight of teacher-forced answer positions in the retrieval loss),
# FIRST_WEIGHT (hsatrain.train --first-weight: the weight of a part's first answer token in the
# answer loss, a weighted mean over the answer tokens), SAME_VALUE (hsatrain.train --same-value:
# the share of multikey instances whose distractors carry the asked value but for its last 2
# digits, so the answer's first digits cannot tell the needles apart; unset: off), ADD_ENC
# (hsatrain.train --add-enc: that many chunk-encoder blocks appended at the start, each a copy of
# the last one with its residual output projections attn.wo and mlp.w2 zeroed, so the model is
# unchanged at step 0; unset: off), LMK_POOL (hsatrain.train --lmk-pool: the landmark also reads
# the mean of the chunk's encoder outputs, a new projection zeroed at the start; outside the
# hsamem-hsa 1 format; unset: off), LMK_POOL_LR (--lmk-pool-lr: that projection's learning rate
# as a multiple of the schedule's; unset: 1), BOW (hsatrain.train --bow: the weight of the bag-of-words loss on
# the landmarks and the first positions' retrieval queries; unset: off), KEY_BOW (hsatrain.train
# --key-bow: the weight of the key-decoding loss, the question's distinguishing tokens decoded from
# the target chunk's landmark and from the retrieval query; unset: off), BOW_LR (--bow-lr: the
# learning rate of their decoder as a multiple of the schedule's; unset: 1), HOLD_CONT
# (hsatrain.train --hold-cont: the HSA chunk weights of a part's continued positions pass no
# gradient to the retrieval query and the landmarks; unset: off), KEY_LOOK (hsatrain.train
# --key-look: the weight of the loss on the summary position's attention to the question's
# distinguishing tokens in the target chunk; unset: off), WORD_VALUES (hsatrain.train --word-values:
# the share of single and multikey instances whose values are words, not numbers; unset: off),
# WORD_TASKS (hsatrain.train --word-tasks: the tasks WORD_VALUES applies to, e.g.
# single,multikey,multivalue,multiquery; unset: single,multikey), STRADDLE (hsatrain.train
# --straddle: the probability that a needle lies across a chunk boundary; unset: off), STRADDLE_TASKS
# (hsatrain.train --straddle-tasks: the tasks STRADDLE applies to; unset: all), FREE_ORDER
# (hsatrain.train --free-order: the chunks of a multivalue instance's values not yet answered
# are not negatives of its answer positions in the retrieval and margin losses; unset: off),
# FIRST_PERSON (hsatrain.train --first-person: the share of facts and facts2 training sequences
# whose filler gets first-person lines of the training text in 4-12 chunks; unset: off),
# RET_WEIGHT (hsatrain.train --ret-weight: the weight of the auxiliary retrieval loss; unset: 0.5;
# 0 with MARGIN=0: retrieval learned from the answer and next-token losses alone, as the paper's),
# RET_SKIP_TASKS (hsatrain.train --ret-skip-tasks: the tasks whose answer positions stay out of the
# retrieval and margin losses, e.g. multivalue; unset: none), SEED (hsatrain.train --seed: the
# seed of the data and of every random draw; unset: 1234; another seed repeats a command to
# measure how far two runs of it differ).
set -eu
out=${1:?usage: gpu-finetune.sh OUT [RESULT]}
result=${2:-}
here=$(cd "$(dirname "$0")" && pwd)
PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONPATH
py=${PYTHON:-python3}
pack=${PACK:-.train-pack}
init=${INIT:-models/hsa-small/model.safetensors}
extra=${EXTRA_TASKS-icl:0.2,rarespan:0.1,selfcopy:0.05,facts2:0.2}
schedule=${SCHEDULE:-ft:1600:4096:12:8:0.85:6e-4:1:tune}
train_limit=${TRAIN_LIMIT:-420}
eval_limit=${EVAL_LIMIT:-75}
workers=${WORKERS:-12}
lengths=4096,65536,1048576
cell=${CELL:-50}
if [ "${TINY:-0}" = 1 ]; then
    # a toy model (the shipped one takes minutes a step on a busy CPU) made by one training step
    schedule=${SCHEDULE:-ft:4:512:2:8:0.85:6e-4:1:tune}
    workers=${WORKERS:-2}
    lengths=4096,8192
    cell=${CELL:-2}
    if [ -z "${INIT:-}" ]; then
        "$py" -m hsatrain.train --data "$pack/tokens.npz" --tok "$pack/hsamem-bpe.tok" --out "$out/tiny-init" \
            --config '{"d_model":64,"n_heads":2,"d_mlp":128,"d_h":16,"h_q":4,"d_r":32}' --workers 0 \
            --schedule init:1:512:1:8:0.5:1e-3:0:base --time-limit 600 >/dev/null
        init=$out/tiny-init/model.safetensors
    fi
fi
mkdir -p "$out/run" "$out/eval-quick"
[ -f "$pack/tokens.npz" ] && [ -f "$pack/hsamem-bpe.tok" ] || { echo "gpu-finetune: no $pack/tokens.npz or $pack/hsamem-bpe.tok" >&2; exit 1; }
cmp -s "$pack/hsamem-bpe.tok" models/hsa-small/hsamem-bpe.tok || { echo "gpu-finetune: $pack/hsamem-bpe.tok is not the shipped tokenizer" >&2; exit 1; }
t0=$(date +%s)
balance=""
[ "${BALANCE:-1}" = 1 ] && balance=--ret-balance
"$py" -m hsatrain.train --data "$pack/tokens.npz" --tok "$pack/hsamem-bpe.tok" --out "$out/run" \
    --init "$init" --warmup 50 --schedule "$schedule" --time-limit "$train_limit" --workers "$workers" \
    --log-every "${LOG_EVERY:-50}" --extra-tasks "$extra" --hard-keys "${HARD_KEYS:-0.5}" \
    --margin "${MARGIN:-1.0}" --queue "${QUEUE:-32768}" $balance --ckpt-format bf16 \
    ${WIDEN_DR:+--widen-dr "$WIDEN_DR"} ${ADD_ENC:+--add-enc "$ADD_ENC"} ${LMK_POOL:+--lmk-pool} ${LMK_POOL_LR:+--lmk-pool-lr "$LMK_POOL_LR"} ${CONT_WEIGHT:+--cont-weight "$CONT_WEIGHT"} \
    ${FIRST_WEIGHT:+--first-weight "$FIRST_WEIGHT"} ${SAME_VALUE:+--same-value "$SAME_VALUE"} ${BOW:+--bow "$BOW"} ${KEY_BOW:+--key-bow "$KEY_BOW"} ${BOW_LR:+--bow-lr "$BOW_LR"} ${HOLD_CONT:+--hold-cont} ${KEY_LOOK:+--key-look "$KEY_LOOK"} ${WORD_VALUES:+--word-values "$WORD_VALUES"} ${WORD_TASKS:+--word-tasks "$WORD_TASKS"} ${STRADDLE:+--straddle "$STRADDLE"} \
    ${STRADDLE_TASKS:+--straddle-tasks "$STRADDLE_TASKS"} \
    ${FREE_ORDER:+--free-order} ${FIRST_PERSON:+--first-person "$FIRST_PERSON"} \
    ${RET_WEIGHT:+--ret-weight "$RET_WEIGHT"} ${RET_SKIP_TASKS:+--ret-skip-tasks "$RET_SKIP_TASKS"} ${SEED:+--seed "$SEED"} \
    2>&1
"$py" -m hsatrain.ckpt split "$out/run/model.safetensors" "$out/run/model-parts"
t1=$(date +%s)
echo "gpu-finetune: training took $((t1 - t0)) s"
"$py" -m hsatrain.evaluate --model "$out/run/model.safetensors" --tok "$pack/hsamem-bpe.tok" \
    --data "$pack/tokens.npz" --out "$out/eval-quick" --lengths "$lengths" --cell-trials "$cell" \
    --modes overwrite --time-limit "$eval_limit" 2>&1
t2=$(date +%s)
echo "gpu-finetune: evaluation took $((t2 - t1)) s, $((t2 - t0)) s in all"
ls -l "$out/run" "$out/run/ckpt" "$out/eval-quick"
if [ -n "$result" ]; then
    mkdir -p "$result"
    cp "$out/run/train.log" "$out"/run/model-parts/model-*.safetensors "$result/"
    for f in md json log; do cp "$out/eval-quick/eval.$f" "$result/eval-quick.$f"; done
    ls -l "$result"
fi
