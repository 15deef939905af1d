"""Evaluate the learned HSA encoder on long haystacks, against lexical and BM25 ranking.

    python3 -m hsatrain.evaluate --model models/hsa-small/model.safetensors
        --tok models/hsa-small/hsamem-bpe.tok --data DATA/tokens.npz --out OUTDIR
        [--lengths 4096,65536,1048576,4194304] [--trials 10 | --cell-trials 100]
        [--depths 0,0.25,0.5,0.75,1] [--seed 7] [--tasks all|v1|T1,T2,...]
        [--modes overwrite,append] [--synonyms FILE] [--time-limit SECONDS]
        [--only-lengths L1,... --only-tasks T1,...]

For each length, the haystack is the first LENGTH tokens of the held-out split followed by
the extra held-out text when tokens.npz has it (text the model never trained on; repeated
only beyond that, eval.json's text_repeats says how often: hsatrain.haystack). Its chunks are
encoded once. Each trial hides one task instance's needles in it (the first needle at the
trial's depth, the others at random places; --modes: overwrite = inside chunks, append = as
whole entries between entries of the haystack), re-encodes only the chunks whose window
changed, and asks the question right after the haystack (a new chunk; its window's first
half is the haystack's last chunk). Tasks (--tasks all): the seven of v1 (hsatrain.tasks:
single, multikey, multivalue, multiquery, vartrack, facts, facts-hard), multikey-near
(distractor keys share the asked key's surface), facts2-seen / facts2-heldout-wording /
facts2-heldout-rel (hsatrain.wording: training wordings, held-out wordings, held-out
relations) and unseen-rare / unseen-norare (hsatrain.evalsets: kinds of fact no training file
has; the question shares a rare word with the fact, or none). Reported per mode, task and
length:
  model r@1, r@8   the needle's chunk among the top 1 / 8 chunks of the model's retrieval
                   score, at the query position before each answer part (teacher forced;
                   averaged over parts)
  model EM         greedy answer with HSA top-k 8 over the whole memory equals the truth
  model all        every answer part occurs in the greedy answer, in any order (RULER's
                   string_match_all, counted per trial); HSA has no positions, so the text
                   order of multi-value needles cannot be known
  lexical r@1, r@8 the same haystack and question ranked by a hashed bag of content words
                   (encoder/lexical.c's landmark method: stopwords dropped, a rarity prior by
                   word length, sublinear tf, 8 signed buckets per word, d=1024, cosine)
  BM25 r@1, r@8    Okapi BM25 (k1 1.2, b 0.75) over the chunks' words, idf of the haystack
Baselines rank once per question; each answer part is scored against that ranking.
Every instance comes from one random stream (--seed) drawn through the lengths and tasks in
order, so a run over fewer lengths or tasks makes other instances; --only-lengths and
--only-tasks evaluate a part of the run that --lengths and --tasks describe, with the whole
run's instances: the rest is drawn and placed, not evaluated (a cell measured on the CPU is then
the GPU run's cell, haystack and instances alike).
Writes OUTDIR/eval.json and OUTDIR/eval.md.
"""
import argparse
import collections
import hashlib
import json
import math
import os
import re
import time

import numpy as np
import torch

from .model import load_model
from . import haystack
from .evalsets import make_unseen
from .lexdb import Thesaurus
from .tasks import EVAL_TASKS, FACTS2_EVAL, TaskMaker
from .tokenizer import EOS, Tokenizer

STOP = set("""a about above after again against all am an and any are as at be because been before
being below between both but by can could did do does doing down during each few for from further had
has have having he her here hers herself him himself his how i if in into is it its itself just me
more most my myself no nor not now of off on once only or other our ours ourselves out over own same
she should so some such than that the their theirs them themselves then there these they this those
through to too under until up very was we were what when where which while who whom why will with
would you your yours yourself yourselves mentioned provided text""".split())
WORD_RE = re.compile(r"[a-z0-9]+")


def words(text):
    return WORD_RE.findall(text.lower())


# ---------------------------------------------------------------- baselines

class Vocab:
    def __init__(self):
        self.ids = {}

    def get(self, w):
        i = self.ids.get(w)
        if i is None:
            i = self.ids[w] = len(self.ids)
        return i


def lex_weight(w):
    if w.isdigit():
        return 1.0 if len(w) <= 2 else 1.6
    if not w.isalpha():
        return 1.7
    return [1.0, 0.3, 0.5, 0.8, 1.0, 1.15, 1.3, 1.4, 1.5, 1.6, 1.7][min(len(w), 10)]


_FEAT = {}


def lex_features(w, d=1024, buckets=8):
    f = _FEAT.get(w)
    if f is not None:
        return f
    h = hashlib.blake2b(w.encode(), digest_size=8 * buckets).digest()
    out = []
    for b in range(buckets):
        x = int.from_bytes(h[8 * b:8 * b + 8], "little")
        out.append(((x & 0xffffffff) * d >> 32, -1.0 if x >> 63 else 1.0))
    _FEAT[w] = out
    return out


def lex_vector(ws, d=1024, floor=2.0):
    v = np.zeros(d, np.float32)
    for w, c in collections.Counter(x for x in ws if x not in STOP).items():
        a = lex_weight(w) * (1 + math.log(c)) / math.sqrt(8)
        for idx, sg in lex_features(w, d):
            v[idx] += sg * a
    n = float(np.linalg.norm(v))
    return v / max(n, floor) if n > 0 else v


class BM25:
    def __init__(self, chunk_words, k1=1.2, b=0.75):
        self.k1, self.b = k1, b
        self.vocab = Vocab()
        n = len(chunk_words)
        rows, cols, tfs = [], [], []
        self.dl = np.zeros(n, np.float32)
        for i, ws in enumerate(chunk_words):
            self.dl[i] = len(ws)
            for w, c in collections.Counter(ws).items():
                rows.append(i)
                cols.append(self.vocab.get(w))
                tfs.append(c)
        rows, cols, tfs = np.array(rows), np.array(cols), np.array(tfs, np.float32)
        self.avgdl = float(self.dl.mean()) if n else 1.0
        self.n = n
        df = np.bincount(cols, minlength=len(self.vocab.ids))
        self.idf = np.log(1 + (n - df + 0.5) / (df + 0.5)).astype(np.float32)
        order = np.argsort(cols, kind="stable")
        self.post_rows = rows[order]
        self.post_w = self.weight(tfs[order], self.dl[rows[order]]) * self.idf[cols[order]]
        self.post_ptr = np.concatenate([[0], np.cumsum(df)])

    def weight(self, tf, dl):
        return tf * (self.k1 + 1) / (tf + self.k1 * (1 - self.b + self.b * dl / self.avgdl))

    def idf_of(self, w):
        i = self.vocab.ids.get(w)
        if i is None:
            return float(math.log(1 + (self.n + 0.5) / 0.5))
        return float(self.idf[i])

    def scores(self, qwords):
        s = np.zeros(self.n, np.float32)
        for w in set(qwords):
            i = self.vocab.ids.get(w)
            if i is None:
                continue
            a, b = self.post_ptr[i], self.post_ptr[i + 1]
            np.add.at(s, self.post_rows[a:b], self.post_w[a:b])
        return s

    def score_doc(self, qwords, dwords):
        c = collections.Counter(dwords)
        dl = len(dwords)
        return sum(self.idf_of(w) * float(self.weight(np.float32(c[w]), dl))
                   for w in set(qwords) if c[w])


def rank_of_t(scores, target):
    """rank_of for a torch score vector (on any device)."""
    t = scores[target]
    return int((scores > t).sum().item() + (scores[:target] == t).sum().item()) + 1


def rank_of(scores, target):
    """1-based rank of target under descending scores, ties to the lower index."""
    t = scores[target]
    return int((scores > t).sum() + (scores[:target] == t).sum()) + 1


# ---------------------------------------------------------------- model side

class Memory:
    """Encoded chunks of a base haystack (on the device)."""

    def __init__(self, model, hay, dev, batch=2048):
        self.model, self.dev = model, dev
        S = model.cfg.chunk
        self.S = S
        self.nC = len(hay) // S
        self.hay = torch.from_numpy(hay[:self.nC * S].astype(np.int64))
        Ks, Vs, Ls = [], [], []
        for c0 in range(0, self.nC, batch):
            c1 = min(self.nC, c0 + batch)
            K, V, L = self.encode_windows(self.windows_of(range(c0, c1), self.hay))
            Ks.append(K.to(torch.bfloat16))
            Vs.append(V.to(torch.bfloat16))
            Ls.append(L.float())
        self.K, self.V, self.L = torch.cat(Ks), torch.cat(Vs), torch.cat(Ls)

    def windows_of(self, chunk_ids, tokens):
        S = self.S
        out = []
        for c in chunk_ids:
            prev = tokens[(c - 1) * S:c * S] if c > 0 else torch.full((S,), self.model.cfg.pad_id)
            out.append(torch.cat([prev, tokens[c * S:(c + 1) * S]]))
        return torch.stack(out)

    @torch.no_grad()
    def encode_windows(self, win):
        m = self.model
        with autocast(self.dev):
            h = m.lower_stack(win.to(self.dev))
            K, V, L = m.encode_chunks(h[:, self.S:])
        return K.float(), V.float(), L.float()


def autocast(dev):
    if dev.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return torch.autocast(device_type="cpu", enabled=False)


@torch.no_grad()
def query_step(model, mem, prev_chunks, qtoks, mod_ids, modK, modV, modL, topk, dev):
    """Run question windows and HSA over (base memory with per-trial replaced chunks).
    prev_chunks [B, S] (the haystack's last chunk per trial), qtoks [B, n] question block so far.
    mod_ids [B, M] chunk ids replaced in each trial (-1 padding), modK/modV [B, M, S, hkv, dh],
    modL [B, M, hkv, dr']. Returns logits [B, n, V], scores [B, n, hkv, nC] (fp32)."""
    cfg = model.cfg
    S = cfg.chunk
    B, n = qtoks.shape
    win = torch.cat([prev_chunks, qtoks], 1).to(dev)
    with autocast(dev):
        h = model.lower_stack(win)
        x = model.upper_pre(h)[:, S:]
        qr, qa = model.queries(x)
    qr, qa, x = qr.float(), qa.float(), x.float()
    s = torch.einsum("bthr,jhr->bthj", qr, mem.L) / math.sqrt(qr.shape[-1])
    # replaced chunks: their new landmarks
    ms = torch.einsum("bthr,bmhr->bthm", qr, modL) / math.sqrt(qr.shape[-1])
    valid = mod_ids >= 0
    # padding slots write into a spare column past the last chunk, dropped after: a scatter
    # with repeated indices keeps an unspecified one of their values (padding aimed at chunk 0
    # could undo a trial's new score of chunk 0)
    nC = s.shape[-1]
    idx = torch.where(valid, mod_ids, nC)[:, None, None, :].expand(B, n, s.shape[2], -1)
    s = torch.cat([s, s.new_zeros(s.shape[:-1] + (1,))], -1).scatter(-1, idx, ms)[..., :nC]
    k = min(topk, mem.nC)
    top_v, top_i = torch.topk(s, k, dim=-1)                     # B n hkv k (fp32 ties: none seen)
    w = torch.softmax(top_v, -1)
    hkv, dh, G = cfg.h_kv, cfg.d_h, cfg.h_q // cfg.h_kv
    r_idx = torch.arange(hkv, device=dev)[None, None, :, None]
    Kb = mem.K.permute(2, 0, 1, 3)[r_idx, top_i].float()        # B n hkv k S dh
    Vb = mem.V.permute(2, 0, 1, 3)[r_idx, top_i].float()
    eq = (top_i[..., None] == mod_ids[:, None, None, None, :]) & valid[:, None, None, None, :]
    has = eq.any(-1)
    slot = eq.float().argmax(-1)                                 # B n hkv k
    b_idx = torch.arange(B, device=dev)[:, None, None, None]
    mK = modK.permute(0, 3, 1, 2, 4)[b_idx, r_idx, slot]         # B n hkv k S dh
    mV = modV.permute(0, 3, 1, 2, 4)[b_idx, r_idx, slot]
    Kg = torch.where(has[..., None, None], mK, Kb)
    Vg = torch.where(has[..., None, None], mV, Vb)
    q = qa.view(B, n, hkv, G, dh)
    a = torch.einsum("bnhgd,bnhksd->bnhgks", q, Kg) / math.sqrt(dh)
    p = torch.softmax(a, -1)
    o = torch.einsum("bnhgks,bnhksd->bnhgkd", p, Vg)
    o = (o * w[:, :, :, None, :, None]).sum(4).reshape(B, n, -1)
    with autocast(dev):
        logits = model.head(x, o)
    return logits.float(), s


def needle_weights(s, gen, metas, topk):
    """Per trial, at each position of its generated answer (the first predicting the answer's
    first token), the HSA chunk weight of each needle: its best chunk's softmax weight among the
    top-k (0 outside them), from s, the scores of the last generation step (which held every
    position but the last token's). For hsatrain.mvprobe."""
    top_v, top_i = torch.topk(s[:, :, 0], min(topk, s.shape[-1]), dim=-1)
    w = torch.softmax(top_v, -1).cpu().numpy()
    top_i = top_i.cpu().numpy()
    out = []
    for i, g in enumerate(gen):
        qlen = metas[i]["qlen"]
        per = []
        for t in range(qlen - 1, len(g) - 1):
            at = dict(zip(top_i[i, t].tolist(), w[i, t].tolist()))
            per.append([max(at.get(c, 0.0) for c in cs) for cs in metas[i]["chunks"]])
        out.append(per)
    return out


def thesaurus_for(data, synonyms=None):
    """(path, Thesaurus or None) of synonyms, by default synonyms.txt beside the data file."""
    syn = synonyms or os.path.join(os.path.dirname(os.path.abspath(data)), "synonyms.txt")
    return syn, Thesaurus(syn) if os.path.exists(syn) else None


ALL_TASKS = EVAL_TASKS + ["multikey-near"] + FACTS2_EVAL + ["unseen-rare", "unseen-norare"]


def make_instance(maker, rng, task):
    if task.startswith("unseen-"):
        return make_unseen(rng, task[len("unseen-"):])
    return maker.make(rng, task, evaluate=True)


def place(rng, maker, task, inst, d, nC, hay_t, mode, starts):
    """Chunks wanted for the needles (the first at depth d), then the placement of the mode:
    (chunk -> new tokens, list of the chunks holding each needle)."""
    S = maker.S
    n = len(inst["needles"])
    for _ in range(20):
        first = int(round(d * (nC - 1)))
        others = [c for c in dict.fromkeys(rng.integers(0, nC, n + 8).tolist()) if c != first][:n - 1]
        chunks = [first] + others
        ordered = [ni for _, ni in inst["parts"]] if task in ("multivalue", "vartrack") else []
        if ordered:
            srt = sorted(chunks[i] for i in ordered)
            for i, c in zip(ordered, srt):
                chunks[i] = c
        if mode == "overwrite":
            nts = [maker.needle_tokens(t, newline=True) for t in inst["needles"]]
            return haystack.overwrite(rng, hay_t, chunks, nts, S)
        nts = [np.array(maker.tok.encode(t + "\n")[:S], np.int64) for t in inst["needles"]]
        got = haystack.append(rng, hay_t, chunks, nts, S, starts, nC)
        if got is not None:
            return got
    raise RuntimeError(f"{task}: no entry boundaries to append the needles at")


def mean_or_none(xs):
    return float(np.mean(xs)) if xs else None


def draw_trials(maker, rng, task, args, nC, hay_t, mode, starts):
    """One task's trials at one length: (depth, instance, needle tokens by chunk, needle chunks)
    each. The evaluation's only draws from rng."""
    depths = [float(x) for x in args.depths.split(",")]
    per_depth = args.trials if not args.cell_trials else -(-args.cell_trials // len(depths))
    trials = [(d, make_instance(maker, rng, task)) for d in depths for _ in range(per_depth)]
    return [(d, inst) + tuple(place(rng, maker, task, inst, d, nC, hay_t, mode, starts))
            for d, inst in trials]


def skip_length(tok, maker, hay, args, rng, mode, S):
    """Draw and place a length's instances as run_length would, evaluating nothing."""
    nC = len(hay) // S
    hay_t = torch.from_numpy(hay[:nC * S].astype(np.int64))
    starts = haystack.entry_starts(tok, hay) if mode == "append" else None
    for task in args.task_list:
        draw_trials(maker, rng, task, args, nC, hay_t, mode, starts)


def run_length(model, tok, maker, hay, args, dev, rng, log, mode="overwrite"):
    S = model.cfg.chunk
    t0 = time.time()
    mem = Memory(model, hay, dev)
    nC = mem.nC
    log(f"length {nC * S}: encoded {nC} chunks in {time.time() - t0:.1f}s")
    t0 = time.time()
    chunk_text = [tok.decode(mem.hay[c * S:(c + 1) * S].tolist()) for c in range(nC)]
    chunk_words = [words(t) for t in chunk_text]
    bm25 = BM25(chunk_words)
    lexL = np.stack([lex_vector(ws) for ws in chunk_words]) if nC else None
    lexL_t = torch.from_numpy(lexL).to(dev)
    log(f"length {nC * S}: baselines indexed in {time.time() - t0:.1f}s")
    depths = [float(x) for x in args.depths.split(",")]
    results = {}
    starts = haystack.entry_starts(tok, hay) if mode == "append" else None
    hay_t = mem.hay
    for task in args.task_list:
        trials = draw_trials(maker, rng, task, args, nC, hay_t, mode, starts)
        if task not in args.only_tasks:
            continue
        B = len(trials)
        mods, blocks, metas = [], [], []
        for d, inst, toks, chunks in trials:
            changed = sorted(set(toks) | {c + 1 for c in toks if c + 1 < nC})
            mods.append((changed, toks))
            block, src, ans, qlen = maker.encode_block(inst)
            assert len(block) <= S, f"question block of {len(block)} tokens"
            blocks.append((block, src, qlen))
            metas.append(dict(depth=d, chunks=chunks, inst=inst, qlen=qlen))
        M = max(len(c) for c, _ in mods)
        cfg = model.cfg
        mod_ids = torch.full((B, M), -1, dtype=torch.long)
        modK = torch.zeros(B, M, S, cfg.h_kv, cfg.d_h)
        modV = torch.zeros(B, M, S, cfg.h_kv, cfg.d_h)
        modL = torch.zeros(B, M, cfg.h_kv, cfg.d_r // cfg.h_kv)
        prev = torch.zeros(B, S, dtype=torch.long)
        wins, where = [], []
        for i, (changed, toks) in enumerate(mods):
            def chunk_tokens(c):
                return toks[c] if c in toks else hay_t[c * S:(c + 1) * S]
            for m, c in enumerate(changed):
                p = chunk_tokens(c - 1) if c > 0 else torch.full((S,), cfg.pad_id)
                wins.append(torch.cat([p, chunk_tokens(c)]))
                where.append((i, m, c))
            prev[i] = chunk_tokens(nC - 1)
        K, V, L = mem.encode_windows(torch.stack(wins))
        for j, (i, m, c) in enumerate(where):
            mod_ids[i, m] = c
            modK[i, m], modV[i, m], modL[i, m] = K[j].cpu(), V[j].cpu(), L[j].cpu()
        mod_ids, modK, modV, modL = (x.to(dev) for x in (mod_ids, modK, modV, modL))
        prev = prev.to(dev)
        # teacher-forced pass over the full block: recall at each answer part's query position
        n_max = max(len(b) for b, _, _ in blocks)
        full = torch.full((B, n_max), EOS, dtype=torch.long)
        for i, (b, _, _) in enumerate(blocks):
            full[i, :len(b)] = torch.from_numpy(b)
        _, scores = query_step(model, mem, prev, full.to(dev), mod_ids, modK, modV, modL,
                               args.topk, dev)
        scores = scores[:, :, 0]                                # head 0 ranks (h_kv = 1)
        # greedy answers
        gen = [list(b[:q]) for (b, _, q) in blocks]
        done = [False] * B
        keep = getattr(args, "needle_weights", False)
        last = None
        for _ in range(S):
            n = max(len(g) for g in gen)
            if n >= S or all(done):
                break
            cur = torch.full((B, n), EOS, dtype=torch.long)
            for i, g in enumerate(gen):
                cur[i, :len(g)] = torch.tensor(g)
            logits, s = query_step(model, mem, prev, cur.to(dev), mod_ids, modK, modV, modL,
                                   args.topk, dev)
            last = s if keep else None
            for i, g in enumerate(gen):
                if done[i]:
                    continue
                nxt = int(logits[i, len(g) - 1].argmax())
                g.append(nxt)
                if nxt == EOS or len(g) >= S:
                    done[i] = True
        weights = needle_weights(last, gen, metas, args.topk) if last is not None else None
        rows = []
        for i in range(B):
            block, src, qlen = blocks[i]
            inst, chunks = metas[i]["inst"], metas[i]["chunks"]
            truth = tok.decode(block[qlen:-1].tolist()).strip()
            g = gen[i][qlen:]
            if g and g[-1] == EOS:
                g = g[:-1]
            answer = tok.decode(g).strip()
            part_pos, p = [], qlen - 1
            for pi, (text, ni) in enumerate(inst["parts"]):
                # position whose next token starts the part: first index t >= p with src[t] == ni
                while src[p] != ni:
                    p += 1
                part_pos.append((p, chunks[ni]))
                p += 1
                while p < len(src) and src[p] == ni:
                    p += 1
                p -= 1
            # model recall per part
            mr = [min(rank_of_t(scores[i, t], x) for x in c) for t, c in part_pos]
            qw = words(inst["question"])
            # baselines: one ranking per question, with the trial's changed chunks rescored
            changed, toks = mods[i]
            bs = bm25.scores(qw)
            qv = lex_vector(qw)
            ls = (lexL_t @ torch.from_numpy(qv).to(dev)).cpu().numpy()
            for c in changed:
                ct = toks[c] if c in toks else hay_t[c * S:(c + 1) * S]
                cw = words(tok.decode(ct.tolist()))
                bs[c] = bm25.score_doc(qw, cw)
                ls[c] = float(lex_vector(cw) @ qv)
            br = [min(rank_of(bs, x) for x in c) for _, c in part_pos]
            lr = [min(rank_of(ls, x) for x in c) for _, c in part_pos]
            parts_found = all(re.search(r"(?<![0-9A-Za-z])" + re.escape(text) + r"(?![0-9A-Za-z])", answer)
                              for text, _ in inst["parts"])
            split = any(len(chunks[ni]) > 1 for _, ni in inst["parts"])
            rows.append(dict(depth=metas[i]["depth"], em=float(answer == truth), all=float(parts_found),
                             answer=answer, truth=truth, model_ranks=mr, bm25_ranks=br, lex_ranks=lr,
                             split=split))
            if weights is not None:
                rows[-1].update(gen=gen[i][qlen:], needle_weights=weights[i], parts=inst["parts"])
        def rec(key, k):
            return float(np.mean([np.mean([r <= k for r in row[key]]) for row in rows]))
        res = dict(n=B, em=float(np.mean([r["em"] for r in rows])),
                   all=float(np.mean([r["all"] for r in rows])),
                   model_r1=rec("model_ranks", 1), model_r8=rec("model_ranks", 8),
                   lex_r1=rec("lex_ranks", 1), lex_r8=rec("lex_ranks", 8),
                   bm25_r1=rec("bm25_ranks", 1), bm25_r8=rec("bm25_ranks", 8),
                   by_depth={str(d): dict(
                       model_r8=float(np.mean([np.mean([r <= 8 for r in row["model_ranks"]])
                                               for row in rows if row["depth"] == d])),
                       em=float(np.mean([row["em"] for row in rows if row["depth"] == d])))
                       for d in depths},
                   n_split=sum(r["split"] for r in rows),
                   em_split=mean_or_none([r["em"] for r in rows if r["split"]]),
                   em_whole=mean_or_none([r["em"] for r in rows if not r["split"]]),
                   rows=rows)
        results[task] = res
        log(f"{mode} length {nC * S} {task}: n {B} model r@1 {res['model_r1']:.3f} r@8 {res['model_r8']:.3f} "
            f"EM {res['em']:.3f} all {res['all']:.3f} | lexical r@1 {res['lex_r1']:.3f} r@8 {res['lex_r8']:.3f} | "
            f"bm25 r@1 {res['bm25_r1']:.3f} r@8 {res['bm25_r8']:.3f}"
            + (f" | EM {res['em_split']:.3f} of the {res['n_split']} trials with an asked needle across "
               f"a chunk boundary" if res["n_split"] else "")
            + (f", {res['em_whole']:.3f} of the others" if res["n_split"] and res["em_whole"] is not None
               else ""))
    del mem
    if dev.type == "cuda":
        torch.cuda.empty_cache()
    return results


def write_table(allres, path):
    """allres: mode -> length -> task -> result."""
    lines = ["| mode | task | length | n | model r@1 | model r@8 | model EM | model all | lexical r@1 "
             "| lexical r@8 | BM25 r@1 | BM25 r@8 |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for mode, bylen in allres.items():
        tasks = [t for t in ALL_TASKS if any(t in r for r in bylen.values())]
        for task in tasks:
            for L, res in bylen.items():
                if task not in res:
                    continue
                r = res[task]
                lines.append(f"| {mode} | {task} | {L} | {r['n']} | {r['model_r1']:.3f} | {r['model_r8']:.3f} | "
                             f"{r['em']:.3f} | {r['all']:.3f} | {r['lex_r1']:.3f} | {r['lex_r8']:.3f} | "
                             f"{r['bm25_r1']:.3f} | {r['bm25_r8']:.3f} |")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--tok", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--lengths", default="4096,65536,1048576,4194304")
    ap.add_argument("--trials", type=int, default=10, help="trials per depth per task")
    ap.add_argument("--cell-trials", type=int, default=0,
                    help="trials per task and length (split over the depths); overrides --trials")
    ap.add_argument("--depths", default="0,0.25,0.5,0.75,1")
    ap.add_argument("--topk", type=int, default=8)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--tasks", default="all", help="comma-separated tasks, 'all' or 'v1' (the original seven)")
    ap.add_argument("--modes", default="overwrite", help="overwrite, append or overwrite,append")
    ap.add_argument("--synonyms", help="synonyms.txt for the facts2 wordings (default: beside --data)")
    ap.add_argument("--time-limit", type=float, default=0,
                    help="seconds; no new length is started after it (0: none)")
    ap.add_argument("--only-lengths", help="evaluate these of --lengths only, with the instances "
                    "of the whole run (default: all of them)")
    ap.add_argument("--only-tasks", help="evaluate these of --tasks only, with the instances of "
                    "the whole run (default: all of them)")
    a = ap.parse_args()
    a.task_list = ALL_TASKS if a.tasks == "all" else EVAL_TASKS if a.tasks == "v1" else a.tasks.split(",")
    for t in a.task_list:
        if t not in ALL_TASKS:
            raise SystemExit(f"unknown task {t}; known: {','.join(ALL_TASKS)}")
    lengths = [int(x) for x in a.lengths.split(",")]
    only_lengths = [int(x) for x in a.only_lengths.split(",")] if a.only_lengths else lengths
    a.only_tasks = a.only_tasks.split(",") if a.only_tasks else a.task_list
    if set(only_lengths) - set(lengths) or set(a.only_tasks) - set(a.task_list):
        raise SystemExit("--only-lengths and --only-tasks: parts of --lengths and --tasks")
    os.makedirs(a.out, exist_ok=True)
    t_start = time.time()
    logf = open(os.path.join(a.out, "eval.log"), "a")

    def log(msg):
        line = f"[{time.time() - t_start:7.1f}s] {msg}"
        print(line, flush=True)
        logf.write(line + "\n")
        logf.flush()

    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model, meta = load_model(a.model)
    cfg = model.cfg
    model.to(dev)
    tok = Tokenizer.load(a.tok)
    syn, th = thesaurus_for(a.data, a.synonyms)
    maker = TaskMaker(tok, cfg.chunk, thesaurus=th)
    data = np.load(a.data)
    held = data["heldout"]
    extra = len(data["heldout_extra"]) if "heldout_extra" in data.files else 0
    log(f"model {a.model} step {meta.get('step')} device "
        f"{torch.cuda.get_device_name(0) if dev.type == 'cuda' else 'cpu'} torch {torch.__version__}; "
        f"held-out tokens {len(held)} + extra {extra}; synonyms {syn if th else 'none'}")
    rng = np.random.default_rng(a.seed)
    allres, repeats = {}, {}
    for mode in a.modes.split(","):
        allres[mode] = {}
        for L in lengths:
            if a.time_limit and time.time() - t_start > a.time_limit:
                log(f"time limit: {mode} length {L} skipped")
                continue
            hay, repeats[L] = haystack.assemble(data, L)
            if L not in only_lengths:
                skip_length(tok, maker, hay, a, rng, mode, cfg.chunk)
                continue
            allres[mode][L] = run_length(model, tok, maker, hay, a, dev, rng, log, mode)
            with open(os.path.join(a.out, "eval.json"), "w") as f:
                json.dump(dict(args={k: v for k, v in vars(a).items()}, step=meta.get("step"),
                               heldout_tokens=int(len(held)), heldout_extra_tokens=int(extra),
                               text_repeats=repeats, results=allres), f, indent=1)
            write_table(allres, os.path.join(a.out, "eval.md"))
    log("done")


if __name__ == "__main__":
    main()
