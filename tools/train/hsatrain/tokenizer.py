"""Byte-level BPE tokenizer of the learned hsamem encoder.

Token ids: 0..255 are the raw bytes; 256..256+N_SPECIAL-1 are special tokens
(see SPECIALS); every later id is a merge of two earlier ids, in the order the
merges were learned (merge i makes id FIRST_MERGE + i).

Encoding (what a C implementation must reproduce exactly):
1. Split the input bytes into pieces, scanning left to right. At position i:
   - let c = byte i. If c is a space (0x20) and byte i+1 exists and is not
     whitespace, the piece starts with that space and its class is the class of
     byte i+1; otherwise the piece starts at c with c's class;
   - classes: letter = A-Z, a-z or any byte >= 0x80; digit = 0-9;
     whitespace = one of 0x20 \\t \\n \\v \\f \\r; other = everything else;
   - a letter piece takes the longest run of letters, a digit piece exactly one
     digit, an "other" piece the longest run of "other" bytes, a whitespace
     piece exactly that one byte.
2. Each piece starts as its byte ids. Repeatedly find the adjacent pair with the
   lowest merge rank (among pairs present in the merge table); merge the
   leftmost occurrence of that pair and every later non-overlapping occurrence
   scanning left to right; stop when no adjacent pair is in the table.
3. Concatenate the pieces' ids. Special tokens never come out of encoding text;
   callers insert them by id.
Decoding concatenates each id's bytes (special tokens decode to nothing).

File format (UTF-8 text, one item per line):
    hsamem-bpe 1
    vocab <V>
    specials <N>
    <name> <id>             (N lines)
    merges <M>
    <left id> <right id>    (M lines; line i defines id 256+N+i)

Usage:
    python3 -m hsatrain.tokenizer train INPUT.txt OUT.tok [--vocab 8192] [--max-chars 60000000]
    python3 -m hsatrain.tokenizer encode TOKFILE "text"
"""
import argparse
import collections
import heapq
import re
import sys

SPECIALS = ["<|pad|>", "<|eos|>", "<|q|>", "<|a|>", "<|sep|>",
            "<|reserved5|>", "<|reserved6|>", "<|reserved7|>"]
PAD, EOS, QTOK, ATOK, SEPTOK = 256, 257, 258, 259, 260
N_SPECIAL = len(SPECIALS)
FIRST_MERGE = 256 + N_SPECIAL

PIECE_RE = re.compile(rb" ?[A-Za-z\x80-\xff]+| ?[0-9]| ?[^A-Za-z0-9\x80-\xff \t\n\x0b\x0c\r]+|[ \t\n\x0b\x0c\r]")


def pieces(data):
    return PIECE_RE.findall(data)


class Tokenizer:
    def __init__(self, merges):
        self.merges = list(merges)
        self.rank = {pair: i for i, pair in enumerate(self.merges)}
        self.vocab = [bytes([i]) for i in range(256)] + [b""] * N_SPECIAL
        for a, b in self.merges:
            self.vocab.append(self.vocab[a] + self.vocab[b])
        self.cache = {}

    @property
    def vocab_size(self):
        return len(self.vocab)

    def _encode_piece(self, p):
        ids = list(p)
        rank = self.rank
        while len(ids) > 1:
            best, bi = None, -1
            for i in range(len(ids) - 1):
                r = rank.get((ids[i], ids[i + 1]))
                if r is not None and (best is None or r < best):
                    best, bi = r, i
            if best is None:
                break
            pair = self.merges[best]
            new_id = FIRST_MERGE + best
            out, i = ids[:bi], bi
            while i < len(ids):
                if i < len(ids) - 1 and ids[i] == pair[0] and ids[i + 1] == pair[1]:
                    out.append(new_id)
                    i += 2
                else:
                    out.append(ids[i])
                    i += 1
            ids = out
        return ids

    def encode(self, text):
        data = text.encode("utf-8") if isinstance(text, str) else text
        out = []
        cache = self.cache
        for p in pieces(data):
            ids = cache.get(p)
            if ids is None:
                ids = self._encode_piece(p)
                if len(cache) < 2000000:
                    cache[p] = ids
            out.extend(ids)
        return out

    def decode_bytes(self, ids):
        return b"".join(self.vocab[i] for i in ids if i < len(self.vocab))

    def decode(self, ids):
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    def save(self, path):
        with open(path, "w", encoding="utf-8") as f:
            f.write("hsamem-bpe 1\n")
            f.write(f"vocab {self.vocab_size}\n")
            f.write(f"specials {N_SPECIAL}\n")
            for i, name in enumerate(SPECIALS):
                f.write(f"{name} {256 + i}\n")
            f.write(f"merges {len(self.merges)}\n")
            for a, b in self.merges:
                f.write(f"{a} {b}\n")

    @classmethod
    def load(cls, path):
        with open(path, encoding="utf-8") as f:
            lines = f.read().split("\n")
        if lines[0] != "hsamem-bpe 1":
            raise ValueError(f"{path}: not an hsamem-bpe 1 file")
        vocab = int(lines[1].split()[1])
        nspec = int(lines[2].split()[1])
        if nspec != N_SPECIAL:
            raise ValueError(f"{path}: {nspec} specials, expected {N_SPECIAL}")
        i = 3 + nspec
        nm = int(lines[i].split()[1])
        merges = [tuple(int(x) for x in ln.split()) for ln in lines[i + 1:i + 1 + nm]]
        tok = cls(merges)
        if tok.vocab_size != vocab:
            raise ValueError(f"{path}: vocab {vocab} but {tok.vocab_size} ids defined")
        return tok


def train(text_bytes, vocab_size):
    """Learn merges on the piece frequencies of text_bytes. Deterministic: ties in
    pair frequency go to the smaller (left id, right id) pair."""
    counts = collections.Counter(pieces(text_bytes))
    words = [list(p) for p in counts]
    freqs = [counts[p] for p in counts]
    pair_count = collections.defaultdict(int)
    where = collections.defaultdict(set)
    for wi, w in enumerate(words):
        f = freqs[wi]
        for i in range(len(w) - 1):
            pair_count[(w[i], w[i + 1])] += f
            where[(w[i], w[i + 1])].add(wi)
    heap = [(-c, pr) for pr, c in pair_count.items()]
    heapq.heapify(heap)
    merges = []
    n_merges = vocab_size - FIRST_MERGE
    while len(merges) < n_merges and heap:
        negc, pr = heapq.heappop(heap)
        if pair_count.get(pr, 0) != -negc or negc == 0:
            continue
        new_id = FIRST_MERGE + len(merges)
        merges.append(pr)
        changed = collections.defaultdict(int)
        for wi in list(where[pr]):
            w, f = words[wi], freqs[wi]
            for i in range(len(w) - 1):
                changed[(w[i], w[i + 1])] -= f
            out, i = [], 0
            while i < len(w):
                if i < len(w) - 1 and w[i] == pr[0] and w[i + 1] == pr[1]:
                    out.append(new_id)
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            words[wi] = out
            for i in range(len(out) - 1):
                changed[(out[i], out[i + 1])] += f
                where[(out[i], out[i + 1])].add(wi)
        for p2, d in changed.items():
            if d:
                pair_count[p2] += d
                heapq.heappush(heap, (-pair_count[p2], p2))
        pair_count[pr] = 0
        del where[pr]
    return Tokenizer(merges)


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("input")
    t.add_argument("out")
    t.add_argument("--vocab", type=int, default=8192)
    t.add_argument("--max-chars", type=int, default=60000000)
    e = sub.add_parser("encode")
    e.add_argument("tokfile")
    e.add_argument("text")
    a = ap.parse_args()
    if a.cmd == "train":
        with open(a.input, "rb") as f:
            data = f.read(a.max_chars)
        tok = train(data, a.vocab)
        tok.save(a.out)
        print(f"tokenizer: {tok.vocab_size} ids, {len(tok.merges)} merges -> {a.out}")
    else:
        tok = Tokenizer.load(a.tokfile)
        ids = tok.encode(a.text)
        print(ids)
        print(repr(tok.decode(ids)))


if __name__ == "__main__":
    sys.exit(main())
