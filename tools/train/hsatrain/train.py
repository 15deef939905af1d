"""Train the learned HSA encoder.

    python3 -m hsatrain.train --data DATA/tokens.npz --tok DATA/hsamem-bpe.tok --out OUTDIR
        [--resume FILE] [--time-limit SECONDS] [--seed N] [--schedule SPEC]

The schedule is a list of phases "name:steps:seq_len:batch:topk:task_share:lr:decay:mix",
separated by commas (lr: peak learning rate; decay 1: cosine decay to 10% of lr over
the phase, 0: constant; mix: a key of TASK_MIXES). The default follows the paper's
recipe at small scale:
  warm    short window (always), HSA top-k covering every chunk of 2K-token
          sequences, synthetic tasks mixed in
  sparse  top-k 8 on the same lengths
  long    top-k 8 on 8K-token sequences (128 chunks)
  tune    top-k 8 on 4K-token sequences, more synthetic data, more distractors and
          paraphrased facts, lower learning rate
Training stops at the end of the schedule or when --time-limit is reached,
writing OUTDIR/ckpt/ (weights, optimizer, step, landmark queue in parts below
16 MiB: hsatrain.ckpt; --ckpt-format full or bf16), OUTDIR/model.safetensors
(bf16 weights, config and step in the metadata) and appending to
OUTDIR/train.log. --resume takes the checkpoint directory (the run continues
exactly: optimizer, data position and queue restored), an older ckpt.pt, or a
model.safetensors (weights only, fresh optimizer, at the saved step); --init
takes a model.safetensors and starts the schedule at step 0 from its weights.

Changes of hsa-small v2, each behind a flag (off by default) for ablations:
  --extra-tasks SPEC  corpus retrieval tasks (icl, rarespan, selfcopy:
                      hsatrain.corpus_tasks) and varied facts (facts2:
                      hsatrain.wording) as shares of the task sequences,
                      e.g. "icl:0.2,rarespan:0.1,selfcopy:0.05,facts2:0.2"
  --synonyms FILE     WordNet synonyms (hsatrain.lexdb; default: synonyms.txt
                      beside --tok) for icl and facts2
  --hard-keys P       share of multikey instances whose distractor keys share
                      the asked key's surface
  --same-value P      share of multikey instances whose distractors carry the
                      asked value but for its last 2 digits (the first of them
                      differs from the asked one's and each other's): the
                      answer's first 5 digits cannot tell the needles apart,
                      so the retrieval positions up to there must find the
                      chunk by the key, and the 6th digit's LM loss needs that
                      chunk; independent of --hard-keys (both can apply)
  --word-values P     share of single and multikey instances whose values are
                      words of the vocabulary, not 7-digit numbers ("the
                      special magic word for KEY is WORD"), so that a run of
                      digits stops marking every needle training asks about
  --word-tasks LIST   the tasks --word-values applies to (default single,multikey;
                      multivalue and multiquery may be added)
  --straddle P        probability that a needle lies across the boundary of
                      two chunks (as appended text falls) instead of inside
                      one; its answer positions are labelled with the chunk
                      that holds the token each predicts
  --straddle-tasks LIST
                      the tasks --straddle applies to (default: all of single,
                      multikey, multivalue, multiquery, vartrack, facts, facts2)
  --first-person P    share of the fact tasks' (facts, facts2) training sequences
                      whose filler gets first-person lines of the training
                      text packed into 4-12 chunks, so that "I" and "my" stop
                      marking a fact's chunk
  --free-order        a multivalue instance's values may come in any order (HSA
                      has no positions to tell which is first): the chunks of
                      its values not yet answered are not negatives of its
                      answer positions in the retrieval and margin losses
                      (those already answered stay negatives)
  --ret-skip-tasks LIST
                      tasks whose answer positions stay out of the retrieval
                      and margin losses (their chunks stay negatives of the
                      other positions, their answers in the answer loss)
  --margin M          hinge loss (weight --margin-weight) on the gap between
                      the target chunk's score and the best other chunk's
  --queue N           N detached landmarks of earlier batches as extra
                      negatives of the retrieval loss (MoCo-style FIFO)
  --ret-balance       the retrieval loss averages per sequence first, so that
                      a sequence with many labelled positions (selfcopy) does
                      not outweigh the others
  --cont-weight W     weight, in the retrieval and margin losses, of a position
                      whose part's answer has begun (a teacher-forced answer
                      token: it sees the value and can find the chunk by it);
                      the part's first position, which must find it by the
                      key, weighs 1
  --first-weight W    weight, in the answer loss, of a part's first answer token
                      (the token predicted at that first position: the one that
                      needs the key); the other answer tokens weigh 1 and the
                      loss is their weighted mean
  --widen-dr N        with --init: the landmark and the retrieval query widened
                      to N dimensions (widen_dr), every retrieval score
                      unchanged at step 0
  --lmk-pool          with --init: the landmark also reads the mean of the
                      chunk's encoder outputs (enc_lmk_pool, zeroed at step 0;
                      add_lmk_pool); outside the hsamem-hsa 1 format
  --lmk-pool-lr X     that projection's learning rate, X times the schedule's
  --bow W             bag-of-words loss: a training-only decoder (BowHead) gives
                      each chunk's tokens from its landmark and the question's
                      from a part's first retrieval query, weighed by idf
  --key-bow W         key-decoding loss through the same decoder: only the
                      question's distinguishing tokens (key_tokens: in the
                      question, in the target chunk, in no other visible
                      chunk), from the target's landmark and from the query
  --key-look W        the summary position of a part's target chunk must look
                      at the question's distinguishing tokens there: minus the
                      log of their attention mass (model.summary_look)
  --bow-lr X          the decoder's learning rate, X times the schedule's
  --hold-cont         at a part's continued positions (they see the answer so
                      far), the HSA chunk weights pass no gradient into the
                      retrieval query and the landmarks: the next-token and
                      answer losses no longer pay the landmark for the value
  --add-enc N         with --init: N chunk-encoder blocks appended after the
                      existing ones (n_enc += N; add_enc), each a copy of the
                      last encoder block with its residual output projections
                      (attn.wo, mlp.w2) zeroed, so the model's function (logits,
                      K, V, landmarks, scores) is unchanged at step 0
"""
import argparse
import contextlib
import dataclasses
import json
import math
import os
import time

import numpy as np
import torch
import torch.nn.functional as F

from . import ckpt, st
from .corpus_tasks import CORPUS_TASKS, CorpusTasks
from .lexdb import Thesaurus
from .model import Config, HSAModel, count_params
from .tasks import (FREE_ORDER, STRADDLE_CAN, TASKS, WORD_CAN, WORD_TASKS, TaskMaker,
                    build_training_sample, first_person_lines)
from .tokenizer import PAD, Tokenizer

DEFAULT_SCHEDULE = ("warm:1500:2048:24:64:0.6:2e-3:0:base,sparse:1500:2048:24:8:0.6:2e-3:0:base,"
                    "long:2000:8192:6:8:0.6:2e-3:1:base,tune:2000:4096:12:8:0.8:6e-4:1:tune")
TASK_MIXES = {
    "base": {"single": 0.15, "multikey": 0.2, "multivalue": 0.1, "multiquery": 0.15,
             "vartrack": 0.1, "facts": 0.3},
    # more distractors and paraphrased facts
    "tune": {"single": 0.1, "multikey": 0.3, "multivalue": 0.1, "multiquery": 0.1,
             "vartrack": 0.05, "facts": 0.35},
}
# the tasks --ret-skip-tasks may name: every task with labelled answer positions
SKIP_CAN = tuple(TASKS) + ("facts2",) + CORPUS_TASKS


def parse_extra(spec):
    out = {}
    for item in filter(None, spec.split(",")):
        name, share = item.split(":")
        if name not in CORPUS_TASKS + ("facts2",):
            raise ValueError(f"--extra-tasks: unknown task {name}")
        out[name] = float(share)
    if sum(out.values()) >= 1:
        raise ValueError("--extra-tasks: the shares must sum to less than 1")
    return out


def task_probs(mix, extra):
    """Task names and probabilities: the extra tasks take their shares, the mix the rest."""
    names = list(mix) + list(extra)
    base = np.array([mix[n] for n in mix], np.float64)
    base *= (1 - sum(extra.values())) / base.sum()
    return names, np.concatenate([base, np.array(list(extra.values()), np.float64)])


def parse_schedule(spec):
    phases = []
    for item in spec.split(","):
        name, steps, T, bs, topk, share, lr, decay, mix = item.split(":")
        phases.append(dict(name=name, steps=int(steps), T=int(T), batch=int(bs),
                           topk=int(topk), task_share=float(share), lr=float(lr),
                           decay=bool(int(decay)), mix=mix))
    return phases


class Batches(torch.utils.data.IterableDataset):
    """Endless batches for one phase; deterministic for (seed, phase, start step)."""

    def __init__(self, data_path, tok_path, phase, seed, start, opts):
        self.data_path, self.tok_path = data_path, tok_path
        self.phase, self.seed, self.start, self.opts = phase, seed, start, opts

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        wid, nw = (info.id, info.num_workers) if info else (0, 1)
        filler = np.load(self.data_path)["train"]
        o = self.opts
        tok = Tokenizer.load(self.tok_path)
        th = Thesaurus(o["synonyms"]) if o["synonyms"] else None
        fp = o.get("first_person", 0.0)
        maker = TaskMaker(tok, thesaurus=th, hard_keys=o["hard_keys"],
                          same_value=o.get("same_value", 0.0), word_values=o.get("word_values", 0.0),
                          word_tasks=o.get("word_tasks", WORD_TASKS), straddle=o.get("straddle", 0.0),
                          straddle_tasks=o.get("straddle_tasks", STRADDLE_CAN),
                          first_person=fp, fp_lines=first_person_lines(tok, filler) if fp > 0 else ())
        ph = self.phase
        names, probs = task_probs(TASK_MIXES[ph["mix"]], o["extra"])
        corpus = CorpusTasks(tok, filler, th) if set(names) & set(CORPUS_TASKS) else None
        step = self.start + wid
        while True:
            rng = np.random.default_rng([self.seed, step, len(ph["name"]), ph["T"]])
            toks = np.empty((ph["batch"], ph["T"]), np.int64)
            tgt = np.full((ph["batch"], ph["T"]), -1, np.int64)
            am = np.zeros((ph["batch"], ph["T"]), np.int64)
            free = np.zeros(ph["batch"], bool)
            skip = np.zeros(ph["batch"], bool)
            for b in range(ph["batch"]):
                if rng.random() < ph["task_share"]:
                    task = names[int(rng.choice(len(names), p=probs))]
                    if task in CORPUS_TASKS:
                        toks[b], tgt[b], am[b] = corpus.sample(rng, filler, ph["T"], task)
                    else:
                        toks[b], tgt[b], am[b] = build_training_sample(maker, rng, filler, ph["T"], task)
                        free[b] = o.get("free_order", False) and task in FREE_ORDER
                    skip[b] = task in o.get("ret_skip_tasks", ())
                else:
                    s = int(rng.integers(0, len(filler) - ph["T"]))
                    toks[b] = filler[s:s + ph["T"]]
            yield tuple(torch.from_numpy(x) for x in (toks, tgt, am, free, skip))
            step += nw


class Queue:
    """FIFO of detached landmarks [N, h_kv, d_r/h_kv] from earlier batches (--queue)."""

    def __init__(self, n, cfg, dev):
        self.L = torch.zeros(n, cfg.h_kv, cfg.d_r // cfg.h_kv, device=dev)
        self.ptr, self.full = 0, 0

    def view(self):
        return self.L[:self.full]

    def push(self, L):
        L = L.detach().float().reshape(-1, *self.L.shape[1:])[-len(self.L):]
        n = len(L)
        idx = (self.ptr + torch.arange(n, device=L.device)) % len(self.L)
        self.L[idx] = L
        self.ptr = (self.ptr + n) % len(self.L)
        self.full = min(len(self.L), self.full + n)

    def state(self):
        return {"queue": self.L.cpu(), "queue_pos": torch.tensor([self.ptr, self.full])}

    def load(self, extra):
        if "queue" in extra and extra["queue"].shape == self.L.shape:
            self.L.copy_(extra["queue"].float())
            self.ptr, self.full = (int(x) for x in extra["queue_pos"])


class BowHead(torch.nn.Module):
    """--bow: a linear decoder from a retrieval vector (d_r) to the vocabulary, trained beside the
    model and not part of it (its weights are kept in the checkpoint's extra tensors), with the
    tokens' inverse chunk frequencies over the training data (no weight for the specials)."""

    def __init__(self, cfg, data, dev):
        super().__init__()
        self.proj = torch.nn.Linear(cfg.d_r, cfg.vocab).to(dev)
        torch.nn.init.normal_(self.proj.weight, std=0.02)
        torch.nn.init.zeros_(self.proj.bias)
        S = cfg.chunk
        ch = np.sort(data[:len(data) // S * S].reshape(-1, S).astype(np.int64), axis=1)
        new = np.ones(ch.shape, bool)
        new[:, 1:] = ch[:, 1:] != ch[:, :-1]
        df = np.bincount(ch[new], minlength=cfg.vocab)[:cfg.vocab]
        idf = np.log((len(ch) + 1) / (df + 1.0))
        idf[PAD:PAD + 8] = 0.0
        self.register_buffer("idf", torch.tensor(idf, dtype=torch.float32, device=dev))

    def loss(self, vec, ids, keep):
        """Cross-entropy of softmax(proj(vec)) against each row's tokens (ids [n, m], those with
        keep [n, m] counted once each) weighed by their idf; rows without weight are left out."""
        bag = torch.zeros(len(ids), self.idf.shape[0], device=ids.device)
        return self.loss_bag(vec, bag.scatter_add_(1, ids, keep.float()).clamp_(max=1.0))

    def loss_bag(self, vec, bag):
        """The same for rows given as token sets (bag [n, vocab], 1 where a token is in)."""
        bag = bag * self.idf
        tot = bag.sum(-1)
        ok = tot > 0
        if not ok.any():
            return torch.zeros((), device=vec.device)
        with torch.autocast(device_type=vec.device.type, enabled=False):
            lp = F.log_softmax(self.proj(vec[ok].float()), -1)
        return (-(bag[ok] * lp).sum(-1) / tot[ok]).mean()

    def state(self):
        return {"bow.weight": self.proj.weight.detach(), "bow.bias": self.proj.bias.detach()}

    def load(self, extra):
        if "bow.weight" in extra:
            self.proj.weight.data.copy_(extra["bow.weight"].float())
            self.proj.bias.data.copy_(extra["bow.bias"].float())


def question_so_far(toks, S, bf, tf):
    """The tokens of each first position's chunk (bf, tf: sequence and position) up to it: ids
    [P, S] and keep [P, S] (False past the position)."""
    c0 = tf // S * S
    off = torch.arange(S, device=toks.device)
    ids = toks[bf[:, None], (c0[:, None] + off).clamp(max=toks.shape[1] - 1)]
    return ids, (c0[:, None] + off) <= tf[:, None]


def key_tokens(toks, S, nC, vocab, bf, tf, tgt_c):
    """The question's distinguishing tokens at each of a batch's first positions (bf, tf: sequence
    and position; tgt_c: the target chunk): the tokens of the position's chunk up to it that also
    occur in the target chunk and in no other chunk visible from there. For a multi-key needle
    these are the asked key's tokens (the template's words are in every needle's chunk, the other
    needles' keys not in the question); for a fact, its subject; for a corpus question, the rare
    words it shares with its source. Returns a [P, vocab] 0/1 float set per position."""
    B = toks.shape[0]
    ch = toks[:, :nC * S].reshape(B, nC, S)
    pres = torch.zeros(B, nC, vocab, dtype=torch.bool, device=toks.device)
    pres.scatter_(2, ch, True)
    # seen[b, c, v]: how many of sequence b's chunks before c hold token v
    seen = torch.cat([torch.zeros(B, 1, vocab, dtype=torch.int16, device=toks.device),
                      pres.to(torch.int16).cumsum(1, dtype=torch.int16)], 1)
    ids, keep = question_so_far(toks, S, bf, tf)
    q = torch.zeros(len(bf), vocab, dtype=torch.bool, device=toks.device)
    q.scatter_(1, ids.masked_fill(~keep, PAD), True)
    q[:, PAD] = False
    in_t = pres[bf, tgt_c]
    elsewhere = seen[bf, tf // S] - in_t.to(torch.int16)
    return (q & in_t & (elsewhere == 0)).float()


def first_positions(tgt):
    """A part's first positions ([B, T] bool): labelled, with a target chunk other than the
    previous position's. They have not seen the answer, so only there must the question's key
    find the chunk."""
    prev = torch.cat([torch.full_like(tgt[:, :1], -1), tgt[:, :-1]], 1)
    return (tgt >= 0) & (tgt != prev)


def sibling_mask(tgt, bi, ti, free, nC):
    """For the labelled positions (bi, ti) of a batch, the chunks of each position's own
    sequence that are not negatives there: in a row whose parts come in any order (free[b],
    --free-order), the target chunks of the parts not yet answered, those first labelled after
    the position. The chunks of the parts already answered stay negatives, so a value is not
    asked for twice, and so does the position's own target, first labelled at or before it.
    [P, nC] bool."""
    T = tgt.shape[1]
    dev = tgt.device
    # the first labelled position of each (row, chunk); T where the chunk is no target
    hit = tgt[:, :, None] == torch.arange(nC, device=dev)
    first = torch.where(hit, torch.arange(T, device=dev)[None, :, None], T).amin(1)
    return (first[bi] > ti[:, None]) & (first[bi] < T) & free[bi][:, None]


def losses(model, toks, tgt, am, topk, opts=None, queue=None, bow=None, free=None, skip=None):
    """Next-token, answer and retrieval losses; with opts (train.py's flags) also the margin
    loss, the landmark queue's negatives, the per-sequence balance of the retrieval loss and the
    weight of continued positions and of a part's first answer token, and the hold of those
    positions' chunk weights (opts["hold_cont"]: no gradient from them into the retrieval
    query and the landmarks); with bow (a BowHead) the bag-of-words loss of the landmarks and
    of the first positions' retrieval queries (when opts["bow"] > 0 or no opts) and the
    key-decoding loss (when opts["key_bow"] > 0): the distinguishing tokens of a part's
    question (key_tokens) decoded from the target chunk's landmark and from the first
    position's retrieval query. Returns lm, ans, ret, margin,
    ans_acc, r1 (in-sequence recall@1 at every labelled position), r1_first (at a part's first
    position only, the one that evaluate.py scores), the bag-of-words loss (bow), the
    key-decoding loss (key_bow), the key-look loss (key_look, when opts["key_look"] > 0: minus
    the log of the attention mass that the summary position of a first position's target
    chunk gives to that chunk's distinguishing tokens, the mean over the heads) and the batch's
    landmarks (L, for the queue), as a dict. free ([B] bool, --free-order): rows whose parts
    may come in any order, whose other parts' chunks are no negatives (sibling_mask). skip ([B]
    bool, --ret-skip-tasks): rows whose positions weigh 0 in the retrieval and margin losses
    (their in-sequence recall is still counted)."""
    opts = opts or {}
    B, T = toks.shape
    S = model.cfg.chunk
    nC = T // S
    first_m = first_positions(tgt)
    hold = None
    if opts.get("hold_cont"):
        # a part's continued positions (their target is the previous position's): they see
        # the answer so far, so their chunk weights would teach the landmark the value
        hold = (tgt >= 0) & ~first_m
    fb, ft = first_m.nonzero(as_tuple=True)
    fc = tgt[fb, ft]
    use_look = float(opts.get("key_look", 0)) > 0 and len(fb) > 0
    use_kbow = bow is not None and float(opts.get("key_bow", 0)) > 0 and len(fb) > 0
    keys = key_tokens(toks, S, nC, model.cfg.vocab, fb, ft, fc) if use_look or use_kbow else None
    out = model(toks, topk, need_scores=True, hold=hold, look=fb * nC + fc if use_look else None)
    logits, scores, qr, L = out[:4]
    lp = logits[:, :-1].float()
    y = toks[:, 1:]
    valid = (y != PAD)
    ce = F.cross_entropy(lp.reshape(-1, lp.shape[-1]), y.reshape(-1), reduction="none").view(B, T - 1)
    lm = (ce * valid).sum() / valid.sum().clamp(min=1)
    a = am[:, :-1].bool()
    fwt = float(opts.get("first_weight", 1.0))
    if fwt == 1.0:
        ans = (ce * a).sum() / a.sum().clamp(min=1)
    else:
        # a part's first answer token is predicted at the part's first retrieval position (its
        # target chunk differs from the previous position's, as for --cont-weight below): it
        # weighs fwt, every other answer token 1, and the loss is the weighted mean (divided by
        # the sum of the weights, so the mean weight of the answer tokens stays 1)
        w = a.float() * (1.0 + (fwt - 1.0) * first_m[:, :-1].float())
        ans = (ce * w).sum() / w.sum().clamp(min=1e-6)
    ans_acc = ((lp.argmax(-1) == y) & a).sum().float() / a.sum().clamp(min=1)
    zero = torch.zeros((), device=toks.device)
    ret, margin, r1, r1_first, bl, kb, kl = zero, zero, zero, zero, zero, zero, zero
    if use_look:
        # the summary's attention mass on the target chunk's distinguishing tokens, per head
        ct = toks[fb[:, None], fc[:, None] * S + torch.arange(S, device=toks.device)]
        on = keys.gather(1, ct) > 0                              # P S
        ok = on.any(1)
        if ok.any():
            mass = (out[4][ok] * on[ok][:, None, :].float()).sum(-1)   # P' heads
            kl = -torch.log(mass + 1e-6).mean()
    use_bow = bow is not None and float(opts.get("bow", 1.0)) > 0
    if use_bow:
        ids = toks[:, :nC * S].reshape(B * nC, S)
        bl = bow.loss(L.reshape(B * nC, -1), ids, torch.ones_like(ids, dtype=torch.bool))
    # auxiliary retrieval loss: at positions with a target chunk, classify the target among
    # the visible chunks of the own sequence, every chunk of the other sequences and the queue
    pos = (tgt >= 0).nonzero(as_tuple=False)
    if len(pos):
        bi, ti = pos[:, 0], pos[:, 1]
        first = first_m[bi, ti]
        fw = first.float() + (~first).float() * float(opts.get("cont_weight", 1.0))
        if skip is not None:
            fw = fw * (~skip[bi]).float()
        q = qr[bi, ti].float()                                  # P hkv dr
        Lall = L.float().reshape(B * nC, L.shape[2], L.shape[3])  # B*nC hkv dr
        nq = 0
        if queue is not None and queue.full:
            Lall = torch.cat([Lall, queue.view()])
            nq = queue.full
        with torch.autocast(device_type=toks.device.type, enabled=False):
            sc = torch.einsum("phr,jhr->phj", q, Lall) / math.sqrt(q.shape[-1])
        ar = torch.arange(B * nC + nq, device=toks.device)[None, :]
        own = (ar // nC == bi[:, None]) & (ar < B * nC)
        invisible = own & (ar % nC >= (ti // S)[:, None])
        if free is not None and bool(free.any()):
            invisible |= own & sibling_mask(tgt, bi, ti, free, nC)[:, ar[0] % nC]
        sc = sc.masked_fill(invisible[:, None, :], float("-inf"))
        lab = bi * nC + tgt[bi, ti]
        label = lab[:, None].expand(-1, sc.shape[1])
        per = F.cross_entropy(sc.reshape(-1, sc.shape[-1]), label.reshape(-1),
                              reduction="none").view(len(pos), -1).mean(1)
        if opts.get("ret_balance"):
            # a row's weights sum to 1, over the rows that weigh anything (a --ret-skip-tasks
            # row weighs nothing)
            tot = torch.zeros(B, device=toks.device).index_add_(0, bi, fw)
            w = fw / tot.clamp(min=1e-6)[bi]
            ret = (per * w).sum() / (tot > 0).sum().clamp(min=1)
        else:
            ret = (per * fw).sum() / fw.sum().clamp(min=1e-6)
        if opts.get("margin", 0) > 0:
            s_pos = sc.gather(-1, label[..., None])[..., 0]
            s_neg = sc.scatter(-1, label[..., None], float("-inf")).max(-1).values
            gap = F.relu(opts["margin"] - (s_pos - s_neg)).mean(-1)
            margin = (gap * fw).sum() / fw.sum().clamp(min=1e-6)
        # in-sequence recall@1 of the model's own HSA scores
        own_s = scores[bi, ti]                                  # P hkv nC
        hit = (own_s.argmax(-1) == tgt[bi, ti][:, None]).float().mean(-1)
        r1 = hit.mean()
        r1_first = hit[first].mean()
    if use_kbow:
        kb = 0.5 * (bow.loss_bag(L[fb, fc].reshape(len(fb), -1), keys)
                    + bow.loss_bag(qr[fb, ft].reshape(len(fb), -1), keys))
    if use_bow and len(fb):
        ids, keep = question_so_far(toks, S, fb, ft)
        bl = 0.5 * bl + 0.5 * bow.loss(qr[fb, ft].reshape(len(fb), -1), ids, keep)
    return dict(lm=lm, ans=ans, ret=ret, margin=margin, ans_acc=ans_acc, r1=r1, r1_first=r1_first,
                bow=bl, key_bow=kb, key_look=kl, L=L)


# the terms of losses() in the training log, by their names there
LOGGED = {"lm": "lm", "ans": "ans", "ret": "ret", "margin": "margin", "ans_acc": "ans_acc",
          "r1": "r@1", "r1_first": "r@1-first", "bow": "bow", "key_bow": "key-bow",
          "key_look": "key-look"}


def save_ckpt(model, opt, step, cfg, out, log, a=None, queue=None, bow=None):
    extra = {**(queue.state() if queue else {}), **(bow.state() if bow else {})}
    ckpt.save(os.path.join(out, "ckpt"), model, opt, step, cfg, extra,
              a.ckpt_format if a else "bf16", a.part_mib if a else 15.0)
    st.save({k: v.to(torch.bfloat16) for k, v in model.state_dict().items()},
            os.path.join(out, "model.safetensors"),
            {"config": json.dumps(cfg.to_dict()), "step": step, "format": "hsamem-hsa 1"})
    log(f"saved step {step}")


def widen_dr(state, cfg, dr):
    """The weights of cfg with the landmark and the retrieval query widened from cfg.d_r to dr
    dimensions (one kv head): the landmark's new rows 0, the query's new rows small and random,
    its old rows scaled by sqrt(dr / d_r) against the score's 1 / sqrt(dr), so that every score
    is what it was; the new dimensions then learn from the retrieval loss (the query's rows give
    the landmark's their gradient)."""
    if cfg.h_kv != 1 or dr <= cfg.d_r:
        raise SystemExit("--widen-dr: a model of one kv head, to more than its d_r (%d)" % cfg.d_r)
    g = torch.Generator().manual_seed(0)
    out, n = dict(state), 0
    for k, w in state.items():
        if k.endswith("enc_lmk.weight"):
            out[k] = torch.cat([w, torch.zeros(dr - cfg.d_r, w.shape[1])])
            n += 1
        elif k.endswith("ret_q.weight"):
            new = torch.randn(dr - cfg.d_r, w.shape[1], generator=g) * (0.1 * float(w.std()))
            out[k] = torch.cat([w * math.sqrt(dr / cfg.d_r), new])
            n += 1
    if n == 0:
        raise SystemExit("--widen-dr: no enc_lmk or ret_q weights in the model")
    return out, dataclasses.replace(cfg, d_r=dr)


def add_enc(state, cfg, n):
    """The weights of cfg with n chunk-encoder blocks appended after the existing ones
    (enc.{n_enc}.* .. enc.{n_enc+n-1}.*, named as the existing blocks): each new block is a copy
    of the last existing encoder block (attn_norm, attn.wq/wk/wv, attn.q_norm/k_norm, mlp_norm,
    mlp.w1/w3) with the two projections that add into the residual stream, attn.wo and mlp.w2,
    set to 0. A Block computes x + attn.wo(...) then x + mlp.w2(...), so the new block is the
    identity on the residual stream and every output (K, V, landmark, logits) is what it was;
    the copied inputs give wo and w2 a nonzero gradient at once (the rest of the block gets its
    gradient once they move)."""
    if n <= 0 or cfg.n_enc < 1:
        raise SystemExit("--add-enc: a positive number of blocks, to a model with an encoder block")
    last = f"enc.{cfg.n_enc - 1}."
    src = {k[len(last):]: w for k, w in state.items() if k.startswith(last)}
    if not src or "attn.wo.weight" not in src or "mlp.w2.weight" not in src:
        raise SystemExit(f"--add-enc: no {last}attn.wo / {last}mlp.w2 weights in the model")
    out = dict(state)
    for i in range(cfg.n_enc, cfg.n_enc + n):
        for k, w in src.items():
            out[f"enc.{i}.{k}"] = torch.zeros_like(w) if k in ("attn.wo.weight", "mlp.w2.weight") \
                else w.clone()
    return out, dataclasses.replace(cfg, n_enc=cfg.n_enc + n)


def add_lmk_pool(state, cfg):
    """The weights of cfg with the pooled landmark (Config.lmk_pool): enc_lmk_pool, which adds a
    projection of the mean of the chunk's encoder outputs to the landmark, set to 0, so that
    every landmark is what it was at step 0; the retrieval loss gives it its gradient at once."""
    if cfg.lmk_pool:
        raise SystemExit("--lmk-pool: the model already has a pooled landmark")
    out = dict(state, **{"enc_lmk_pool.weight": torch.zeros(cfg.d_r, cfg.d_model)})
    return out, dataclasses.replace(cfg, lmk_pool=1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--tok", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--resume")
    ap.add_argument("--schedule", default=DEFAULT_SCHEDULE)
    ap.add_argument("--time-limit", type=float, default=510)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--until-step", type=int, default=0,
                    help="stop (and save) once this global step is reached; 0: run the whole schedule")
    ap.add_argument("--ret-weight", type=float, default=0.5)
    ap.add_argument("--ans-weight", type=float, default=1.0)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--log-every", type=int, default=50)
    ap.add_argument("--config", default="{}", help="JSON overrides of the model config")
    ap.add_argument("--init", help="model.safetensors to start the schedule from (step 0)")
    ap.add_argument("--warmup", type=int, default=200, help="linear warm-up steps from step 0")
    ap.add_argument("--ckpt-format", choices=["full", "bf16"], default="bf16")
    ap.add_argument("--part-mib", type=float, default=15.0)
    ap.add_argument("--extra-tasks", default="")
    ap.add_argument("--synonyms")
    ap.add_argument("--hard-keys", type=float, default=0.0)
    ap.add_argument("--same-value", type=float, default=0.0,
                    help="share of multikey training instances whose distractor needles carry the "
                         "asked needle's value but for its last 2 digits (the first of them differs "
                         "from the asked value's and from every other distractor's, the last is "
                         "random): the answer's first 5 digits then cannot tell the needles apart, "
                         "so its first retrieval positions must find the chunk by the key, and the "
                         "6th digit's LM loss still needs the asked needle's chunk; retrieval labels "
                         "point at the asked needle's chunk; evaluation data unchanged; 0: off")
    ap.add_argument("--word-values", type=float, default=0.0,
                    help="share of single and multikey training instances whose values are words "
                         "of the vocabulary instead of 7-digit numbers (\"the special magic word "
                         "for KEY is WORD\", each needle its own word), so that digits stop marking "
                         "the needles; evaluation data unchanged; 0: off")
    ap.add_argument("--word-tasks", default=",".join(WORD_TASKS),
                    help="the tasks whose training instances --word-values may give words, a list "
                         "of " + ", ".join(WORD_CAN) + " (multivalue and multiquery: each needle its "
                         "own word, all of them asked for)")
    ap.add_argument("--straddle", type=float, default=0.0,
                    help="probability that a training needle lies across the boundary of two "
                         "chunks (cut after a random token) instead of inside one, as appended "
                         "text falls; the answer positions of such a needle are labelled with the "
                         "chunk holding the token each of them predicts; evaluation data "
                         "unchanged; 0: off")
    ap.add_argument("--straddle-tasks", default=",".join(STRADDLE_CAN),
                    help="the tasks --straddle applies to, a list of " + ", ".join(STRADDLE_CAN)
                         + " (default: all of them)")
    ap.add_argument("--first-person", type=float, default=0.0,
                    help="share of the fact tasks' (facts, facts2) training sequences whose filler "
                         "gets first-person lines of the training text packed into 4-12 of its "
                         "chunks (the facts are in the first person, the rest of the training text "
                         "mostly not); evaluation data unchanged; 0: off")
    ap.add_argument("--free-order", action="store_true",
                    help="a multivalue instance's values may come in any order (HSA has no "
                         "positions to tell which is first): the chunks of its values not yet "
                         "answered are not negatives of its answer positions in the retrieval "
                         "and margin losses (those already answered stay negatives); off: every "
                         "chunk but the target is a negative")
    ap.add_argument("--ret-skip-tasks", default="",
                    help="tasks whose answer positions stay out of the retrieval and margin "
                         "losses, a list of " + ", ".join(SKIP_CAN) + " (their chunks stay "
                         "negatives of the other positions; default: none)")
    ap.add_argument("--margin", type=float, default=0.0)
    ap.add_argument("--margin-weight", type=float, default=0.5)
    ap.add_argument("--queue", type=int, default=0)
    ap.add_argument("--ret-balance", action="store_true")
    ap.add_argument("--widen-dr", type=int, default=0)
    ap.add_argument("--add-enc", type=int, default=0,
                    help="with --init: append N chunk-encoder blocks after the existing ones "
                         "(config n_enc += N, tensors enc.{n_enc}.* ...), each initialised from a "
                         "copy of the last existing encoder block (attn_norm, attn.wq, attn.wk, "
                         "attn.wv, attn.q_norm, attn.k_norm, mlp_norm, mlp.w1, mlp.w3) with the "
                         "projections that add into the residual stream, attn.wo and mlp.w2, "
                         "zeroed: the new block is an exact identity and the model computes the "
                         "same function at step 0; 0: off")
    ap.add_argument("--lmk-pool", action="store_true",
                    help="with --init: the landmark also reads the mean of the chunk's encoder "
                         "outputs through a new projection (enc_lmk_pool, zeroed: the model is "
                         "unchanged at step 0); outside the hsamem-hsa 1 format, so such a model "
                         "is for evaluation in Python until the format has it")
    ap.add_argument("--lmk-pool-lr", type=float, default=1.0,
                    help="the learning rate of the pooled landmark's projection (enc_lmk_pool) as a "
                         "multiple of the schedule's; 1: the same")
    ap.add_argument("--bow", type=float, default=0.0,
                    help="weight of the bag-of-words loss on the landmarks and the first "
                         "positions' retrieval queries (a training-only decoder); 0: off")
    ap.add_argument("--key-bow", type=float, default=0.0,
                    help="weight of the key-decoding loss: at a part's first position, the "
                         "question's tokens that occur in the target chunk and in no other visible "
                         "chunk, decoded from the target's landmark and from the retrieval query "
                         "(the --bow decoder); 0: off")
    ap.add_argument("--key-look", type=float, default=0.0,
                    help="weight of the key-look loss: the summary position of a part's target "
                         "chunk must attend to the question's distinguishing tokens in that chunk "
                         "(minus the log of their attention mass in the first encoder block, the "
                         "mean over the heads); 0: off")
    ap.add_argument("--bow-lr", type=float, default=1.0,
                    help="the learning rate of the decoder of --bow and --key-bow as a multiple of "
                         "the schedule's (it starts from random weights where the model is "
                         "fine-tuned); 1: the same")
    ap.add_argument("--hold-cont", action="store_true",
                    help="the HSA chunk weights of a part's continued positions (the answer so "
                         "far in view) pass no gradient to the retrieval query and the landmarks; "
                         "the retrieval and margin losses there keep --cont-weight")
    ap.add_argument("--cont-weight", type=float, default=1.0)
    ap.add_argument("--first-weight", type=float, default=1.0)
    a = ap.parse_args()
    if a.synonyms is None:
        cand = os.path.join(os.path.dirname(os.path.abspath(a.tok)), "synonyms.txt")
        a.synonyms = cand if os.path.exists(cand) else ""
    if not 0 <= a.same_value <= 1:
        raise SystemExit("--same-value: a share between 0 and 1")
    if not 0 <= a.word_values <= 1:
        raise SystemExit("--word-values: a share between 0 and 1")
    if not 0 <= a.first_person <= 1:
        raise SystemExit("--first-person: a share between 0 and 1")
    if not 0 <= a.straddle <= 1:
        raise SystemExit("--straddle: a probability between 0 and 1")
    straddle_tasks = tuple(t for t in a.straddle_tasks.split(",") if t)
    if not straddle_tasks or set(straddle_tasks) - set(STRADDLE_CAN):
        raise SystemExit("--straddle-tasks: a list of " + ", ".join(STRADDLE_CAN))
    ret_skip = tuple(t for t in a.ret_skip_tasks.split(",") if t)
    if set(ret_skip) - set(SKIP_CAN):
        raise SystemExit("--ret-skip-tasks: a list of " + ", ".join(SKIP_CAN))
    word_tasks = tuple(t for t in a.word_tasks.split(",") if t)
    if not word_tasks or set(word_tasks) - set(WORD_CAN):
        raise SystemExit("--word-tasks: a list of " + ", ".join(WORD_CAN))
    a.opts = dict(extra=parse_extra(a.extra_tasks), synonyms=a.synonyms, hard_keys=a.hard_keys,
                  same_value=a.same_value, margin=a.margin, ret_balance=a.ret_balance, cont_weight=a.cont_weight,
                  first_weight=a.first_weight, bow=a.bow, key_bow=a.key_bow, hold_cont=a.hold_cont,
                  key_look=a.key_look, word_values=a.word_values, word_tasks=word_tasks,
                  straddle=a.straddle, straddle_tasks=straddle_tasks, free_order=a.free_order,
                  first_person=a.first_person, ret_skip_tasks=ret_skip)
    t_start = time.time()
    os.makedirs(a.out, exist_ok=True)
    logf = open(os.path.join(a.out, "train.log"), "a")

    def log(msg):
        line = f"[{time.time() - t_start:7.1f}s] {msg}"
        print(line, flush=True)
        logf.write(line + "\n")
        logf.flush()

    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(a.seed)
    cfg = Config(**json.loads(a.config))
    step, opt_state = 0, None
    state, extra = None, {}
    if a.init:
        tensors, meta = st.load(a.init)
        cfg = Config(**json.loads(meta["config"]))
        state = {k: v.float() for k, v in tensors.items()}
        if a.widen_dr:
            state, cfg = widen_dr(state, cfg, a.widen_dr)
        if a.add_enc:
            state, cfg = add_enc(state, cfg, a.add_enc)
        if a.lmk_pool:
            state, cfg = add_lmk_pool(state, cfg)
    elif a.add_enc or a.lmk_pool:
        raise SystemExit("--add-enc and --lmk-pool need --init")
    if a.resume and os.path.isdir(a.resume):
        meta, state, saved, extra = ckpt.load(a.resume)
        cfg = Config(**meta["config"])
        step = int(meta["step"])
        opt_state = (saved, meta["param_groups"])
    elif a.resume:
        if a.resume.endswith(".pt"):
            ck = torch.load(a.resume, map_location="cpu", weights_only=False)
            cfg = Config(**ck["config"])
            state, opt_state, step = ck["model"], ck["opt"], ck["step"]
        else:
            tensors, meta = st.load(a.resume)
            cfg = Config(**json.loads(meta["config"]))
            state = {k: v.float() for k, v in tensors.items()}
            step = int(meta["step"])
    model = HSAModel(cfg).to(dev)
    if state is not None:
        model.load_state_dict(state)
    phases = parse_schedule(a.schedule)
    total = sum(p["steps"] for p in phases)
    decay, no_decay, pool = [], [], []
    for n, p in model.named_parameters():
        if n == "enc_lmk_pool.weight" and a.lmk_pool_lr != 1.0:
            pool.append(p)
        else:
            (decay if p.dim() >= 2 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}]
    if pool:  # the pooled landmark's projection at its own multiple of the rate (lr_at)
        groups.append({"params": pool, "weight_decay": 0.1, "lr_mult": a.lmk_pool_lr})
    bow = None
    if a.bow > 0 or a.key_bow > 0:
        bow = BowHead(cfg, np.load(a.data)["train"], dev)
        bow.load(extra)
        groups.append({"params": list(bow.parameters()), "weight_decay": 0.0, "lr_mult": a.bow_lr})
    opt = torch.optim.AdamW(groups, lr=phases[0]["lr"], betas=(0.9, 0.95), eps=1e-8)
    if isinstance(opt_state, tuple):
        opt.load_state_dict(ckpt.opt_state_dict(opt, *opt_state))
    elif opt_state is not None:
        opt.load_state_dict(opt_state)
    queue = Queue(a.queue, cfg, dev) if a.queue else None
    if queue is not None:
        queue.load(extra)
    rewarm = 0 if (opt_state is not None or step == 0) else 50
    log(f"start: step {step}/{total} device {dev} torch {torch.__version__} params "
        f"{count_params(model) / 1e6:.2f}M config {json.dumps(cfg.to_dict())} schedule {a.schedule} "
        f"seed {a.seed} resume {a.resume} init {a.init} add_enc {a.add_enc} lmk_pool {int(a.lmk_pool)} lmk_pool_lr {a.lmk_pool_lr} bow {a.bow} key_bow {a.key_bow} key_look {a.key_look} bow_lr {a.bow_lr} hold_cont {int(a.hold_cont)} options {json.dumps(a.opts)} queue {a.queue} "
        f"ckpt {a.ckpt_format}")
    warm = max(1, a.warmup)
    start_step = step

    starts = np.cumsum([0] + [p["steps"] for p in phases])

    def lr_at(s):
        """Linear warm-up over the first steps, then per phase its peak rate, constant or with
        a cosine decay to 10% over the phase; a resumed run without optimizer state re-warms."""
        i = min(int(np.searchsorted(starts, s, side="right")) - 1, len(phases) - 1)
        ph = phases[i]
        base = ph["lr"] * min(1.0, (s + 1) / warm)
        if ph["decay"]:
            f = min(1.0, (s - starts[i]) / max(1, ph["steps"]))
            base *= 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * f))
        if rewarm:
            base *= min(1.0, (s - start_step + 1) / rewarm)
        return base

    amp = dict(device_type="cuda", dtype=torch.bfloat16) if dev.type == "cuda" else None
    model.train()
    prog = {"step": step}
    try:
        run_phases(a, model, opt, cfg, phases, prog, lr_at, amp, dev, log, t_start, queue, bow)
    except Exception as e:                      # keep what was learned, then fail loudly
        log(f"error: {type(e).__name__}: {e}")
        if prog["step"] > step:
            save_ckpt(model, opt, prog["step"], cfg, a.out, log, a, queue, bow)
        raise


def run_phases(a, model, opt, cfg, phases, prog, lr_at, amp, dev, log, t_start, queue, bow=None):
    step = prog["step"]
    total = sum(p["steps"] for p in phases)
    done_before = 0
    stopped = False
    for ph in phases:
        ph_end = done_before + ph["steps"]
        if step >= ph_end:
            done_before = ph_end
            continue
        log(f"phase {ph['name']}: steps {step}..{ph_end} T {ph['T']} batch {ph['batch']} topk {ph['topk']}")
        ds = Batches(a.data, a.tok, ph, a.seed, step - done_before, a.opts)
        more = dict(prefetch_factor=4) if a.workers else {}     # torch 1.13 refuses None
        dl = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=a.workers,
                                         pin_memory=dev.type == "cuda",
                                         persistent_workers=False, **more)
        acc = np.zeros(len(LOGGED))
        n_acc, t_last, tok_count = 0, time.time(), 0
        for batch in dl:
            toks, tgt, am, free, skip = (x.to(dev, non_blocking=True) for x in batch)
            for g in opt.param_groups:
                g["lr"] = lr_at(step) * g.get("lr_mult", 1.0)
            with (torch.autocast(**amp) if amp else contextlib.nullcontext()):
                o = losses(model, toks, tgt, am, ph["topk"], a.opts, queue, bow, free, skip)
            loss = (o["lm"] + a.ans_weight * o["ans"] + a.ret_weight * o["ret"]
                    + a.margin_weight * o["margin"] + a.bow * o["bow"] + a.key_bow * o["key_bow"]
                    + a.key_look * o["key_look"])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            if bow is not None:
                torch.nn.utils.clip_grad_norm_(bow.parameters(), 1.0)
            opt.step()
            if queue is not None:
                queue.push(o["L"])
            step += 1
            prog["step"] = step
            tok_count += toks.numel()
            acc += np.array([o[k].item() for k in LOGGED])
            n_acc += 1
            if step % a.log_every == 0 or step == ph_end:
                dt = time.time() - t_last
                m = acc / max(1, n_acc)
                mem = torch.cuda.max_memory_allocated() / 2**30 if dev.type == "cuda" else 0.0
                terms = " ".join(f"{name} {x:.3f}" for (k, name), x in zip(LOGGED.items(), m)
                                 if k not in ("bow", "key_bow", "key_look") or getattr(a, k))
                log(f"step {step} {ph['name']} {terms} lr {lr_at(step):.2e} tok/s {tok_count / dt:.0f} "
                    f"mem {mem:.1f}G")
                acc[:] = 0
                n_acc, t_last, tok_count = 0, time.time(), 0
            if step >= ph_end and not (a.until_step and step >= a.until_step):
                break
            if time.time() - t_start > a.time_limit or (a.until_step and step >= a.until_step):
                stopped = True
                break
        del dl
        done_before = ph_end
        if stopped:
            break
        if ph is not phases[-1]:
            save_ckpt(model, opt, step, cfg, a.out, log, a, queue, bow)
    save_ckpt(model, opt, step, cfg, a.out, log, a, queue, bow)
    log(f"{'stopped (time limit or --until-step)' if stopped else 'schedule complete'}: step {step}/{total}")


if __name__ == "__main__":
    main()
