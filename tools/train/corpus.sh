#!/bin/sh
# Build the training data of the learned encoder from Debian packages:
#   DATADIR/text/{train,heldout}.txt   plain text documents (hsatrain/corpus.py)
#   DATADIR/hsamem-bpe.tok              byte-level BPE tokenizer (hsatrain/tokenizer.py)
#   DATADIR/tokens.npz                  both splits tokenized, uint16 (hsatrain/pack.py)
# Usage: tools/train/corpus.sh [DATADIR]   (default .train-data; needs root for apt-get)
# Reproducible: the same Debian package versions give byte-identical outputs.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
data=${1:-.train-data}
py=${PYTHON:-/usr/bin/python3}
pkgs="linux-doc python3-doc debian-reference-en debian-handbook dict-gcide bible-kjv fortunes gnu-standards python3-numpy"
missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing
fi
mkdir -p "$data"
dpkg-query -W $pkgs > "$data/packages.txt"
# The steps are modules of the hsatrain package, which lives beside this script.
PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONPATH
"$py" -m hsatrain.corpus "$data/text"
"$py" -m hsatrain.tokenizer train "$data/text/train.txt" "$data/hsamem-bpe.tok" --vocab 8192
"$py" -m hsatrain.pack "$data/text" "$data/hsamem-bpe.tok" "$data/tokens.npz"
