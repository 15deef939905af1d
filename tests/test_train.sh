#!/bin/sh
# The training code's CPU self-test (python3 -m hsatrain.selftest, tools/train/README.md): dense
# HSA equals the sparse reference, the evaluation path equals the training forward, the tokenizer
# round-trips, no training module imports the evaluation-only facts, and a training run stopped
# and resumed from its checkpoint equals an uninterrupted one. Tiny models; one to two minutes
# on two cores (the resume check starts five training runs). Skips (77) when the python (PYTHON, or
# python3) cannot import torch and numpy, which tools/train/requirements.txt names.
set -u
src=${HSAMEM_TOP_SRCDIR:-${srcdir:-.}}
python=${PYTHON:-python3}
if ! command -v "$python" >/dev/null 2>&1; then
	echo "test_train: no $python; skipped"
	exit 77
fi
if ! why=$("$python" -c 'import torch, numpy' 2>&1); then
	echo "test_train: $python cannot import torch and numpy ($(echo "$why" | tail -n 1)); skipped"
	exit 77
fi
"$python" -c 'import torch, numpy; print("test_train: torch", torch.__version__, "numpy", numpy.__version__)'

# The GPU is not wanted here: the self-test compares CPU results, and a GPU host runs it the same.
# No bytecode is written into the (possibly read-only) source tree.
CUDA_VISIBLE_DEVICES= PYTHONDONTWRITEBYTECODE=1 PYTHONPATH="$src/tools/train${PYTHONPATH:+:$PYTHONPATH}" \
	"$python" -m hsatrain.selftest
