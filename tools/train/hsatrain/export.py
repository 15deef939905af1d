"""Export a trained model for the daemon and write golden test vectors.

    python3 -m hsatrain.export --model OUT/model.safetensors --tok DATA/hsamem-bpe.tok
        --data DATA/tokens.npz --dest models/hsa-small

Writes into DEST:
  model.safetensors   the weights (bf16), config JSON and training step in the metadata
  config.json         the model config, plus the tokenizer and format names
  hsamem-bpe.tok      the tokenizer
  golden.safetensors  reference inputs and outputs (fp32, computed from the bf16 weights
                      widened to fp32, with fp32 arithmetic on the CPU)
  golden-tokenizer.json  strings and their token ids
models/README.md describes every tensor of the golden file.
"""
import argparse
import json
import os
import shutil

import numpy as np
import torch

from . import st
from .model import Config, HSAModel, hsa_sparse
from .tasks import TaskMaker
from .tokenizer import ATOK, QTOK, Tokenizer

TOKENIZER_CASES = [
    "", "a", "Hello, world!", "  two  spaces\tand a tab\n\nnew lines\r\n",
    "The special magic number for quiet-harbor is: 4829301.",
    "What is my dog's name?", "x=12345; y = x*2  # comment", "ÄÖÜ äöü é ß", "日本語のテキスト",
    "emoji 🙂 and more", "trailing space ", " leading space", "MiXeD CaSe WORDS", "hyphen-ated_words",
    "----- ===== ....", "1.5e-3 0x1F 3,141", "pneumonoultramicroscopicsilicovolcanoconiosis",
]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--tok", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--dest", required=True)
    a = ap.parse_args()
    os.makedirs(a.dest, exist_ok=True)
    tensors, meta = st.load(a.model)
    cfg = Config(**json.loads(meta["config"]))
    if cfg.lmk_pool:
        raise SystemExit(f"{a.model}: a pooled landmark (lmk_pool) is not in the hsamem-hsa 1 "
                         "format, which the daemon loads")
    tok = Tokenizer.load(a.tok)
    # weights
    st.save({k: v.to(torch.bfloat16) for k, v in tensors.items()},
            os.path.join(a.dest, "model.safetensors"),
            {"config": json.dumps(cfg.to_dict()), "step": meta.get("step", ""), "format": "hsamem-hsa 1",
             "tokenizer": "hsamem-bpe.tok"})
    shutil.copyfile(a.tok, os.path.join(a.dest, "hsamem-bpe.tok"))
    conf = dict(cfg.to_dict(), format="hsamem-hsa 1", weights="model.safetensors", dtype="bf16",
                tokenizer="hsamem-bpe.tok", step=int(meta.get("step", 0)), weighting="softmax",
                query_template="<|q|> {question}<|a|>", special_tokens={
                    "pad": 256, "eos": 257, "q": 258, "a": 259})
    with open(os.path.join(a.dest, "config.json"), "w") as f:
        json.dump(conf, f, indent=1)
        f.write("\n")

    # tokenizer vectors
    cases = [dict(text=t, ids=tok.encode(t)) for t in TOKENIZER_CASES]
    with open(os.path.join(a.dest, "golden-tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(cases, f, ensure_ascii=False, indent=0)
        f.write("\n")

    # model vectors, in fp32 from the bf16 weights
    model = HSAModel(cfg)
    model.load_state_dict({k: v.to(torch.bfloat16).float() for k, v in tensors.items()})
    model.eval()
    S = cfg.chunk
    held = np.load(a.data)["heldout"]
    maker = TaskMaker(tok, S)
    nC = 12
    stream = torch.from_numpy(held[1000:1000 + nC * S].astype(np.int64))
    needle = torch.from_numpy(maker.needle_tokens(
        "One of the special magic numbers for quiet-harbor is: 4829301."))
    stream[5 * S + 10:5 * S + 10 + len(needle)] = needle
    question = [QTOK] + tok.encode(" What is the special magic number for quiet-harbor mentioned in "
                                   "the provided text?") + [ATOK]
    answer = tok.encode(" 4829301")
    qblock = torch.tensor(question + answer, dtype=torch.long)
    out = {"stream": stream, "query_tokens": qblock}
    with torch.no_grad():
        # chunk memory, one window per chunk: previous chunk (pads for chunk 0) + chunk
        prev = torch.cat([torch.full((S,), cfg.pad_id, dtype=torch.long), stream[:-S]])
        win = torch.stack([torch.cat([prev[c * S:(c + 1) * S], stream[c * S:(c + 1) * S]])
                           for c in range(nC)])
        x0 = model.embed(win[:2])
        h = model.lower_stack(win)
        K, V, L = model.encode_chunks(h[:, S:])
        out.update({"windows": win, "embed_w0": x0[0], "lower_out_w1": h[1],
                    "chunk_K": K, "chunk_V": V, "chunk_L": L})
        # query path: window = last chunk of the stream + question block
        qwin = torch.cat([stream[-S:], qblock])[None]
        hq = model.lower_stack(qwin)
        xq = model.upper_pre(hq)[0, S:]
        qr, qa = model.queries(xq)
        n = len(qblock)
        O, top_i, w, s = hsa_sparse(qr, qa, K, V, L, torch.full((n,), nC), cfg.topk)
        logits = model.head(xq, O.reshape(n, -1))
        # cross-check against the dense training path on the same sequence
        seq = torch.cat([stream, qblock, torch.full((2 * S - n,), cfg.pad_id)])[None]
        dense = model(seq, cfg.topk)[0, nC * S:nC * S + n]
        err = float((dense - logits).abs().max())
        out.update({"query_window": qwin[0], "query_hidden": xq, "query_qr": qr, "query_qa": qa,
                    "query_scores": s, "query_topk_idx": top_i, "query_topk_w": w,
                    "query_hsa_out": O, "query_logits": logits})
    st.save({k: (v.float() if v.is_floating_point() else v.long()) for k, v in out.items()},
            os.path.join(a.dest, "golden.safetensors"),
            {"config": json.dumps(cfg.to_dict()), "answer_start": str(len(question) - 1),
             "dense_vs_sparse_max_abs_diff": f"{err:.3g}"})
    pred = logits[len(question) - 1:-1].argmax(-1).tolist()
    rank = int((s[len(question) - 1, 0] > s[len(question) - 1, 0, 5]).sum()) + 1
    print(f"export: {a.dest}: step {conf['step']}; golden answer tokens {pred} vs {answer}; "
          f"needle chunk 5 rank {rank}; dense/sparse max diff {err:.3g}")


if __name__ == "__main__":
    main()
