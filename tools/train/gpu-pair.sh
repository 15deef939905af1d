#!/bin/sh
# Two fine-tunes and their full evaluations on one GPU machine, in three calls made back to back
# (the machine stays warm about half a minute after a call): A trains alone; then B trains while
# A is evaluated; then B is evaluated. Each call returns what is ready, at most 8 files of < 16 MiB.
#   tools/train/gpu-pair.sh start DIR "VARS_A" "VARS_B"   (from the top of the source tree,
#       .train-pack present): copies the tree's tools, models and pack to DIR/tree and starts the
#       chain there in the background, once (a second start while DIR/started exists does nothing)
#   tools/train/gpu-pair.sh collect DIR STAGE RESULT: waits for STAGE (1: A trained; 2: A
#       evaluated and B trained; 3: B evaluated), at most WAIT seconds (default 570), then copies
#       into RESULT, flat: 1: A-model-000/001.safetensors, A-train.log; 2: A-eval-{overwrite,
#       append}.{json,md} and B's model and train.log as A's; 3: B-eval-* as A's, and B's model
#       and train.log again (in case stage 2 ended before B's training). Exits 1 if the stage was
#       not reached (what is ready is copied).
# VARS_A and VARS_B are gpu-finetune.sh's knobs as words "NAME=value ..." (no spaces in a value);
# give each a TRAIN_LIMIT: B shares the GPU with A's evaluation for a few minutes (v23n took 538
# s for the 2,400 steps that took 449 s alone, on an H100). The evaluation is gpu-evaluate.sh's,
# both modes, LIMIT 330 a mode; TINY=1 makes all of it toy-sized for the CPU (a check of the
# script). Logs: DIR/A.train.out, DIR/A.eval.out, DIR/B.train.out, DIR/B.eval.out.
set -eu
here=$(cd "$(dirname "$0")" && pwd)

run() {
    dir=$1
    cd "$dir/tree"
    train() { # NAME VARS
        # shellcheck disable=SC2086 # VARS are words by design
        env $2 sh tools/train/gpu-finetune.sh "$dir/$1" > "$dir/$1.train.out" 2>&1 || true
        touch "$dir/$1.trained"
    }
    evaluate() { # NAME
        MODES=overwrite,append LIMIT=${LIMIT:-330} sh tools/train/gpu-evaluate.sh "$dir/$1-eval" \
            "$dir/$1/run/model.safetensors" > "$dir/$1.eval.out" 2>&1 || true
        touch "$dir/$1.evaluated"
    }
    train A "$2"
    evaluate A &
    train B "$3"
    wait
    evaluate B
}

reached() { # DIR STAGE
    case $2 in
    1) [ -f "$1/A.trained" ] ;;
    2) [ -f "$1/A.evaluated" ] && [ -f "$1/B.trained" ] ;;
    3) [ -f "$1/B.evaluated" ] ;;
    *) echo "gpu-pair: stage 1, 2 or 3, not '$2'" >&2; exit 2 ;;
    esac
}

take() { # FROM TO: copy if there
    if [ -f "$1" ]; then cp "$1" "$2"; else echo "gpu-pair: $1 not there" >&2; fi
}

model() { # DIR NAME RESULT
    for p in 000 001; do take "$1/$2/run/model-parts/model-$p.safetensors" "$3/$2-model-$p.safetensors"; done
    take "$1/$2/run/train.log" "$3/$2-train.log"
    tail -n 3 "$1/$2.train.out" 2>/dev/null || true
}

evals() { # DIR NAME RESULT
    for m in overwrite append; do
        for x in json md; do take "$1/$2-eval/eval-full-$m/eval.$x" "$3/$2-eval-$m.$x"; done
    done
}

case ${1:-} in
start)
    [ $# -eq 4 ] || { echo "usage: gpu-pair.sh start DIR \"VARS_A\" \"VARS_B\"" >&2; exit 2; }
    mkdir -p "$2"
    dir=$(cd "$2" && pwd)
    [ -f "$dir/started" ] && { echo "gpu-pair: $dir already started"; exit 0; }
    pack=${PACK:-.train-pack}
    [ -f "$pack/tokens.npz" ] || { echo "gpu-pair: no $pack/tokens.npz" >&2; exit 1; }
    mkdir -p "$dir/tree"
    cp -r tools models "$dir/tree/"
    cp -r "$pack" "$dir/tree/.train-pack"
    touch "$dir/started"
    setsid sh "$here/gpu-pair.sh" run "$dir" "$3" "$4" > "$dir/pair.out" 2>&1 < /dev/null &
    echo "gpu-pair: started in $dir"
    ;;
run)
    run "$2" "$3" "$4"
    ;;
collect)
    [ $# -eq 4 ] || { echo "usage: gpu-pair.sh collect DIR STAGE RESULT" >&2; exit 2; }
    dir=$2 stage=$3 result=$4
    t=0
    while ! reached "$dir" "$stage" && [ "$t" -lt "${WAIT:-570}" ]; do
        sleep 5
        t=$((t + 5))
    done
    mkdir -p "$result"
    case $stage in
    1) model "$dir" A "$result" ;;
    2) evals "$dir" A "$result"; model "$dir" B "$result" ;;
    3) evals "$dir" B "$result"; model "$dir" B "$result" ;;
    esac
    ls -l "$result"
    reached "$dir" "$stage" || { echo "gpu-pair: stage $stage not reached after $t s" >&2; exit 1; }
    ;;
*)
    echo "usage: gpu-pair.sh start DIR \"VARS_A\" \"VARS_B\" | collect DIR STAGE RESULT" >&2
    exit 2
    ;;
esac
