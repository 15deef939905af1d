"""CPU check of the training data of --same-value and --word-values (hsatrain.tasks, train.py).

With a tiny tokenizer trained here and fixed seeds:
  - same_value 0 gives the multikey training instances of the code before the option (a frozen
    copy below, with hard keys on half of them), and leaves the random stream where it left it;
  - same_value 1: every distractor of every multikey training instance carries the asked value
    but for its last SAME_VALUE_TAIL digits (the first of them differs from the asked value's
    and from every other distractor's), hard keys or not; the answer stays needle 0's value;
  - same_value 1: a training sequence's retrieval labels point at the chunk that holds the asked
    needle (needle 0), and only there;
  - evaluation instances (evaluate=True) of multikey and multikey-near are the same at 0 and 1;
  - same_value 0.5 gives the same-value form to about half of the instances;
  - word_values 1: every single and multikey training instance asks for a word of the
    vocabulary, each needle has its own word (none a word of the asked key) under the asked
    needle's key or a distractor's, and the answer is needle 0's word; evaluation instances are
    those of word_values 0; word_values 0.5 gives words to about half of them;
  - word_tasks with multivalue and multiquery: their training instances ask for words too, each
    needle its own, every part a needle's word under its key; the default word_tasks leaves
    multivalue and multiquery as at word_values 0;
  - straddle 0: every needle of a training sequence lies inside one chunk, the labels on it;
    straddle 1: the asked needle lies across a chunk boundary wherever its next chunk is free,
    and each answer position is labelled with the chunk that holds the token it predicts;
    straddle 1 over straddle_tasks single only: the single needle straddles as above, and the
    multikey sequences and the random stream are those of straddle 0;
  - first_person_lines keeps the lines in the first person ("I", "my", "me" as words) and not
    "I/O", "AXI" or "I:5"; first_person 1 packs them into 4-12 filler chunks of every facts and
    facts2 training sequence (a needle may overwrite some), the asked needle whole with every label on it; first_person 0 (lines
    given) leaves the sequences and the random stream as without them.
Used by hsatrain.selftest (tests/test_train.sh).

    python3 -m hsatrain.tasktest
"""
import sys

import numpy as np

from .resumetest import WORDS
from .tasks import (NIAH_FACT, NIAH_Q, NIAH_WORD_Q, SAME_VALUE_TAIL, WORD_CAN, TaskMaker,
                    build_training_sample, find, first_person_lines)
from .tokenizer import train

N = 300


def reference_multikey(maker, rng):
    """TaskMaker.make(rng, "multikey") of a training instance as it was before --same-value."""
    pick = lambda lst: lst[int(rng.integers(0, len(lst)))]
    k, v = maker.key(rng), maker.number(rng)
    needles = [pick(NIAH_FACT).format(k=k, v=v)]
    hard = rng.random() < maker.hard_keys
    for _ in range(int(rng.integers(2, 5))):
        dk = maker.near_key(rng, k) if hard else maker.key(rng)
        needles.append(pick(NIAH_FACT).format(k=dk, v=maker.number(rng)))
    return dict(needles=needles, question=NIAH_Q.format(k=k), parts=[(v, 0)], sep=", ")


def value_of(needle):
    return needle.rstrip(".").split()[-1]


def same_form(inst):
    """True if every distractor's value is the asked one's but for a tail whose first digit is
    the asked value's at that place for none of the needles."""
    v, ni = inst["parts"][0]
    vals = [value_of(n) for n in inst["needles"]]
    head = len(v) - SAME_VALUE_TAIL
    firsts = [x[head] for x in vals]
    return (ni == 0 and vals[0] == v and len(vals) >= 3 and len(set(firsts)) == len(vals)
            and all(len(x) == len(v) and x.isdigit() and x[:head] == v[:head] for x in vals))


def same_instances(ma, mb, tasks, seed, evaluate=True):
    """True if makers ma and mb give the same N instances of each task from the same seed."""
    ok = True
    for task in tasks:
        a, b = np.random.default_rng(seed), np.random.default_rng(seed)
        ok &= [ma.make(a, task, evaluate=evaluate) for _ in range(N)] == \
              [mb.make(b, task, evaluate=evaluate) for _ in range(N)]
    return ok


def needle_at(maker, toks, needle):
    """(position, tokens) of a needle in a training sequence, either form, or (-1, None)."""
    for nl in (0, 1):
        nt = maker.needle_tokens(needle, newline=nl)
        i = find(toks, list(nt))
        if i >= 0:
            return i, nt
    return -1, None


def straddle_check(maker, rng, filler, task, n):
    """(sequences whose asked needle lies across a boundary, those whose labels are each the chunk
    of the token the position predicts, sequences whose asked needle lies inside one chunk with
    every label on it) over n training sequences of task, 4,096 tokens as in the fine-tune."""
    S, crossed, right, inside = maker.S, 0, 0, 0
    for _ in range(n):
        toks, tgt, _ = build_training_sample(maker, rng, filler, 4096, task)
        value, ni = maker.last["parts"][0]
        pos, nt = needle_at(maker, toks, maker.last["needles"][ni])
        if pos < 0:
            continue
        lab = tgt[tgt >= 0].tolist()
        if pos // S == (pos + len(nt) - 1) // S:
            inside += lab == [pos // S] * len(lab)
            continue
        crossed += 1
        part = maker.tok.encode(" " + value)
        at = pos + find(nt, part)
        right += lab == [(at + min(r, len(part) - 1)) // S for r in range(len(part) + 1)]
    return crossed, right, inside


def main():
    """Returns the number of failed checks (0 or more)."""
    rng = np.random.default_rng(0)
    text = " ".join(" ".join(WORDS[i] for i in rng.integers(0, len(WORDS), 9)).capitalize() + "."
                    for _ in range(400)) + " The special magic number for 1234567 is: 89."
    tok = train(text.encode(), 400)
    fails = 0

    m0 = TaskMaker(tok, hard_keys=0.5, same_value=0.0)
    r1, r2 = np.random.default_rng(7), np.random.default_rng(7)
    got = [m0.make(r1, "multikey") for _ in range(N)]
    ref = [reference_multikey(m0, r2) for _ in range(N)]
    ok = got == ref and r1.random() == r2.random()
    print(f"--same-value 0: {N} multikey training instances as before the option: {ok}")
    fails += not ok

    m1 = TaskMaker(tok, hard_keys=0.5, same_value=1.0)
    rng = np.random.default_rng(8)
    insts = [m1.make(rng, "multikey") for _ in range(N)]
    n_same = sum(same_form(x) for x in insts)
    nd = sum(len(x["needles"]) - 1 for x in insts)
    ok = n_same == N
    print(f"--same-value 1: {n_same}/{N} multikey training instances ({nd} distractors) share the asked "
          f"value but for its last {SAME_VALUE_TAIL} digits, whose first differs per needle: {ok}")
    print("  e.g. " + " | ".join(insts[0]["needles"]))
    fails += not ok

    class Recording(TaskMaker):
        def make(self, rng, task, evaluate=False):
            self.last = super().make(rng, task, evaluate)
            return self.last

    mr = Recording(tok, hard_keys=0.5, same_value=1.0)
    filler = np.array(tok.encode(text * 3), np.int64)
    rng, good, S = np.random.default_rng(9), 0, mr.S
    for _ in range(40):
        toks, tgt, _ = build_training_sample(mr, rng, filler, 1024, "multikey")
        where = [[c for c in range(len(toks) // S)
                  if any(find(toks[c * S:(c + 1) * S], list(mr.needle_tokens(nd, newline=nl))) >= 0
                         for nl in (0, 1))]
                 for nd in mr.last["needles"]]
        good += (same_form(mr.last) and all(len(w) == 1 for w in where)
                 and set(tgt[tgt >= 0].tolist()) == set(where[0]))
    ok = good == 40
    print(f"--same-value 1: retrieval labels on the asked needle's chunk alone in {good}/40 training "
          f"sequences: {ok}")
    fails += not ok

    ok = same_instances(m0, m1, ("multikey", "multikey-near"), 10)
    print(f"evaluation instances (multikey, multikey-near) the same at --same-value 0 and 1: {ok}")
    fails += not ok

    mh = TaskMaker(tok, hard_keys=0.5, same_value=0.5)
    rng = np.random.default_rng(11)
    share = sum(same_form(mh.make(rng, "multikey")) for _ in range(N)) / N
    ok = 0.4 <= share <= 0.6
    print(f"--same-value 0.5: share of same-value instances {share:.2f} (0.4-0.6): {ok}")
    fails += not ok

    def word_form(inst, maker, task):
        v, ni = inst["parts"][0]
        vals = [value_of(n) for n in inst["needles"]]
        k = inst["question"].split(" for ")[1].split()[0]
        n_ok = len(vals) == 1 if task == "single" else 3 <= len(vals) <= 5
        return (ni == 0 and vals[0] == v and n_ok and len(set(vals)) == len(vals)
                and all(x in maker.words for x in vals) and not set(vals) & set(k.split("-"))
                and f" {k} is" in inst["needles"][0] and inst["question"] == NIAH_WORD_Q.format(k=k))

    mw = TaskMaker(tok, hard_keys=0.5, same_value=0.5, word_values=1.0)
    rng, good = np.random.default_rng(12), 0
    for task in ("single", "multikey"):
        good += sum(word_form(mw.make(rng, task), mw, task) for _ in range(N))
    ok = good == 2 * N
    print(f"--word-values 1: {good}/{2 * N} single and multikey training instances ask for a word, "
          f"each needle its own: {ok}")
    print("  e.g. " + " | ".join(mw.make(rng, "multikey")["needles"]))
    fails += not ok

    ok = same_instances(m0, mw, ("single", "multikey", "multikey-near"), 13)
    print(f"evaluation instances the same at --word-values 0 and 1: {ok}")
    fails += not ok

    mh = TaskMaker(tok, hard_keys=0.5, word_values=0.5)
    rng = np.random.default_rng(14)
    share = sum(mh.make(rng, "multikey")["question"].startswith("What is the special magic word")
                for _ in range(N)) / N
    ok = 0.4 <= share <= 0.6
    print(f"--word-values 0.5: share of word instances {share:.2f} (0.4-0.6): {ok}")
    fails += not ok

    def multi_word_form(inst, maker):
        vals = [value_of(n) for n in inst["needles"]]
        parts = [p for p, _ in inst["parts"]]
        return (2 <= len(vals) <= 4 and len(set(vals)) == len(vals) and parts == vals
                and [i for _, i in inst["parts"]] == list(range(len(vals)))
                and all(x in maker.words for x in vals) and "magic words for" in inst["question"]
                and all(k in inst["question"] for k in (n.split(" is")[0].split()[-1] for n in inst["needles"])))

    ma = TaskMaker(tok, hard_keys=0.5, word_values=1.0, word_tasks=WORD_CAN)
    rng, good = np.random.default_rng(15), 0
    for task in ("multivalue", "multiquery"):
        good += sum(multi_word_form(ma.make(rng, task), ma) for _ in range(N))
    same = same_instances(m0, mw, ("multivalue", "multiquery"), 16, evaluate=False)
    ok = good == 2 * N and same
    print(f"--word-tasks with multivalue and multiquery: {good}/{2 * N} of their training instances ask "
          f"for words, each needle its own; by default they are as at --word-values 0: {same}: {ok}")
    fails += not ok

    m0 = Recording(tok, hard_keys=0.5)
    rng, inside = np.random.default_rng(17), 0
    for task in ("single", "multikey"):
        inside += straddle_check(m0, rng, filler, task, 40)[2]
    ok = inside == 80
    print(f"--straddle 0: the asked needle inside one chunk, every label on it, in {inside}/80 "
          f"training sequences: {ok}")
    fails += not ok

    m1 = Recording(tok, hard_keys=0.5, straddle=1.0)
    rng, crossed, right = np.random.default_rng(18), 0, 0
    for task in ("single", "multikey"):
        c, r, _ = straddle_check(m1, rng, filler, task, 40)
        crossed, right = crossed + c, right + r
    ok = crossed >= 68 and right == crossed
    print(f"--straddle 1: the asked needle across a chunk boundary in {crossed}/80 training "
          f"sequences (at least 68: its next chunk may be taken), each answer position labelled with "
          f"the chunk of the token it predicts in {right} of them: {ok}")
    fails += not ok

    m2 = Recording(tok, hard_keys=0.5, straddle=1.0, straddle_tasks=("single",))
    c, r, _ = straddle_check(m2, np.random.default_rng(19), filler, "single", 40)
    r0, r2 = np.random.default_rng(20), np.random.default_rng(20)
    same = all(all(np.array_equal(x, y) for x, y in
                   zip(build_training_sample(m0, r0, filler, 4096, "multikey"),
                       build_training_sample(m2, r2, filler, 4096, "multikey")))
               for _ in range(20)) and r0.random() == r2.random()
    ok = c >= 34 and r == c and same
    print(f"--straddle 1 over --straddle-tasks single: the single needle across a boundary in {c}/40 "
          f"(labels right in {r}); 20 multikey sequences and the random stream as at --straddle 0: "
          f"{same}: {ok}")
    fails += not ok
    fails += not first_person_check(tok, filler)
    return fails


def first_person_check(tok, filler):
    fp_text = ("I went home after the game with my brother.\nShe and I read a book about trees today.\n"
               "Where did I leave the keys of the old car?\n")
    not_fp = "The I/O error of the AXI bus was fixed.\nThe vector V:4, I:5 is the one above here.\n"
    mixed = np.array(tok.encode((fp_text + not_fp) * 20), np.int64)
    lines = first_person_lines(tok, mixed)
    got = {tok.decode(x.tolist()) for x in lines}
    ok_lines = got == set(fp_text.splitlines(keepends=True))
    class Last(TaskMaker):
        def make(self, rng, task, evaluate=False):
            self.last = super().make(rng, task, evaluate)
            return self.last

    m1 = Last(tok, first_person=1.0, fp_lines=lines)
    m0 = TaskMaker(tok)
    m0l = TaskMaker(tok, fp_lines=lines)
    rng, packed, whole, few = np.random.default_rng(19), 0, 0, 0
    n = 0
    for task in ("facts", "facts2"):
        for _ in range(20):
            toks, tgt, _ = build_training_sample(m1, rng, filler, 4096, task)
            hit = {p // 64 for x in lines for p in range(len(toks) - len(x) + 1)
                   if toks[p] == x[0] and (toks[p:p + len(x)] == x).all()}
            packed += len(hit) >= 4
            few += len(hit) < 2
            pos, nt = needle_at(m1, toks, m1.last["needles"][m1.last["parts"][0][1]])
            lab = tgt[tgt >= 0].tolist()
            whole += pos >= 0 and lab == [pos // 64] * len(lab)
            n += 1
    r0, r1 = np.random.default_rng(20), np.random.default_rng(20)
    same = all((a == b).all() for _ in range(10) for a, b in
               zip(build_training_sample(m0, r0, filler, 4096, "facts"),
                   build_training_sample(m0l, r1, filler, 4096, "facts"))) and r0.random() == r1.random()
    # a needle may overwrite a packed chunk's lines
    ok = ok_lines and packed >= 0.9 * n and few == 0 and whole == n and same
    print(f"--first-person: {len(lines)} lines kept, those in the first person: {ok_lines}; at 1, {packed}/{n} "
          f"fact sequences with first-person lines in at least 4 chunks "
          f"(at least 90%; a needle may overwrite some), {n - few}/{n} in at least 2, {whole}/{n} with the asked needle "
          f"whole and every label on its chunk; at 0 as without the lines: {same}: {ok}")
    return ok


if __name__ == "__main__":
    sys.exit(1 if main() else 0)
