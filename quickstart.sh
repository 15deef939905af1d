#!/bin/sh
# Installs what is missing, builds, and runs hsamemd in the foreground with the built-in lexical
# encoder, its state in ./var. Stop it with Ctrl-C.
set -eu
cd "$(dirname "$0")"
sh scripts/deps.sh
echo "hsamem: building..."
sh scripts/build.sh
mkdir -p var
sock="ipc://$PWD/var/hsamemd.sock"
cat <<MSG

hsamemd is starting, with its state in ./var and its socket at $sock.
In another terminal:

    export HSAMEM_SOCKET=$sock
    ./hsamem ping
    ./hsamem append alice "Alice's cat is named Whiskers."
    ./hsamem append alice --lines < some-notes.txt
    ./hsamem query alice "what is the name of the cat?"
    ./hsamem stats alice
    ./hsamem --help

The learned encoder (models/hsa-small, loaded from this tree) for a memory of its own:

    ./hsamem create bob --encoder hsa-small
    ./hsamem append bob "One of the special magic numbers for quiet-harbor is: 4829301."
    ./hsamem flush bob
    ./hsamem query bob "What is the special magic number for quiet-harbor?"

Ctrl-C stops the daemon.

MSG
exec ./hsamemd -l "$sock" -d "$PWD/var/state"
