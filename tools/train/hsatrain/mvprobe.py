"""Why multivalue answers repeat a value: the HSA chunk weights at each value a model starts.

    python3 -m hsatrain.mvprobe --tok models/hsa-small/hsamem-bpe.tok \
        --data .train-pack/tokens.npz [--n 50] [--length 4096] MODEL.safetensors [MODEL ...]

(with tools/train on PYTHONPATH; about 4 minutes a model at 4K on 2 CPU cores)

The evaluation's multivalue trials (hsatrain.evaluate, overwrite, the same instances for every
model) are answered greedily; at the position predicting the first token of each value of the
answer, the needles' chunk weights (hsatrain.evaluate.needle_weights) are split into those of
the values already said and those not yet said. Each value started is new (a needle's value not
yet said), a repeat (one already said) or wrong (no needle's). Reported per model: "all" (every
value in the answer), the count of each kind with the mean weight per needle said and not yet
said, and, over the positions with values of both kinds, how often a value already said has the
largest weight, and how many repeats happened there and elsewhere.
"""
import argparse

import numpy as np
import torch

from . import evaluate, haystack
from .model import load_model
from .tasks import TaskMaker
from .tokenizer import Tokenizer


def value_starts(tok, gen):
    """(index into gen, value text) of each comma-separated value of a generated answer."""
    out, j = [], 0
    while j < len(gen) and gen[j] != evaluate.EOS:
        k = j
        while k < len(gen) and gen[k] != evaluate.EOS and "," not in tok.decode(gen[j:k + 1]):
            k += 1
        v = tok.decode(gen[j:k]).strip()
        if v:
            out.append((j, v))
        j = k + 1
    return out


def probe(rows, tok):
    """The values started in the rows' answers by kind, each as (mean weight per needle said,
    per needle not yet said), and over the starts with needles of both: (a needle said has the
    largest weight, kind)."""
    kinds = {"new": [], "repeat": [], "wrong": []}
    top = []
    for row in rows:
        needle_of = {text: ni for text, ni in row["parts"]}
        said = set()
        for j, v in value_starts(tok, row["gen"]):
            w = row["needle_weights"][j]            # predicting gen[j]
            done = [needle_of[t] for t in said if t in needle_of]
            open_ = [ni for t, ni in needle_of.items() if t not in said]
            kind = "repeat" if v in said else "new" if v in needle_of else "wrong"
            kinds[kind].append((np.mean([w[n] for n in done]) if done else np.nan,
                                np.mean([w[n] for n in open_]) if open_ else np.nan))
            if done and open_:
                top.append((max(w[n] for n in done) >= max(w[n] for n in open_), kind))
            said.add(v)
    return kinds, top


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("models", nargs="+")
    ap.add_argument("--tok", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--synonyms", help="default: synonyms.txt beside --data")
    ap.add_argument("--n", type=int, default=50)
    ap.add_argument("--length", type=int, default=4096)
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()
    tok = Tokenizer.load(a.tok)
    data = np.load(a.data)
    hay, _ = haystack.assemble(data, a.length)
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    args = argparse.Namespace(depths="0,0.25,0.5,0.75,1", trials=0, cell_trials=a.n, topk=8,
                              task_list=["multivalue"], only_tasks=["multivalue"],
                              needle_weights=True)
    _, th = evaluate.thesaurus_for(a.data, a.synonyms)
    print("| model | all | new: n, weight said / not yet | repeat: n, weight said / not yet | wrong | "
          "a value said on top | repeats there / elsewhere |")
    print("|---|---|---|---|---|---|---|")
    for path in a.models:
        model, _ = load_model(path)
        model.to(dev)
        maker = TaskMaker(tok, model.cfg.chunk, thesaurus=th)
        res = evaluate.run_length(model, tok, maker, hay, args, dev, np.random.default_rng(a.seed),
                                  lambda m: None)
        cell = res["multivalue"]
        kinds, top = probe(cell["rows"], tok)

        def show(k):
            v = np.array(kinds[k]) if kinds[k] else np.zeros((0, 2))
            return (f"{len(v)}, {np.nanmean(v[:, 0]):.2f} / {np.nanmean(v[:, 1]):.2f}"
                    if len(v) else "0")
        on_top = np.mean([t for t, _ in top]) if top else float("nan")
        there = sum(1 for t, k in top if t and k == "repeat")
        elsewhere = sum(1 for t, k in top if not t and k == "repeat")
        print(f"| {path} | {cell['all']:.2f} | {show('new')} | {show('repeat')} | {len(kinds['wrong'])} | "
              f"{on_top:.2f} of {len(top)} | {there} / {elsewhere} |", flush=True)


if __name__ == "__main__":
    main()
