#!/bin/sh
# Build the training data of the learned encoder from Debian packages:
#   DATADIR/text/{train,heldout}.txt   plain text documents (hsatrain/corpus.py)
#   DATADIR/hsamem-bpe.tok              byte-level BPE tokenizer (hsatrain/tokenizer.py)
#   DATADIR/text/heldout_extra.txt      evaluation-only text of dictd packages (corpus.py --extra)
#   DATADIR/tokens.npz                  the splits tokenized, uint16 (hsatrain/pack.py)
#   DATADIR/synonyms.txt                WordNet synonyms from wordnet-base (hsatrain/lexdb.py)
# Usage: tools/train/corpus.sh [DATADIR]   (default .train-data; needs root for apt-get)
# TOKENIZER=FILE uses that tokenizer (e.g. models/hsa-small/hsamem-bpe.tok, which a fine-tune of
# the shipped model needs) instead of training one; it is copied to DATADIR/hsamem-bpe.tok.
# Reproducible: the same Debian package versions give byte-identical outputs.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
data=${1:-.train-data}
py=${PYTHON:-/usr/bin/python3}
pkgs="linux-doc python3-doc debian-reference-en debian-handbook dict-gcide bible-kjv fortunes gnu-standards python3-numpy \
      wordnet-base dict-foldoc dict-jargon dict-wn dict-vera dict-devil"
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
"$py" -m hsatrain.corpus "$data/text" --extra
if [ -n "${TOKENIZER:-}" ]; then
    cp "$TOKENIZER" "$data/hsamem-bpe.tok"
else
    "$py" -m hsatrain.tokenizer train "$data/text/train.txt" "$data/hsamem-bpe.tok" --vocab 8192
fi
"$py" -m hsatrain.lexdb "$data/synonyms.txt"
"$py" -m hsatrain.pack "$data/text" "$data/hsamem-bpe.tok" "$data/tokens.npz"
