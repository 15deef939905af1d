"""Resumable training checkpoints in parts small enough to carry between machines.

A checkpoint is a directory (OUT/ckpt/) holding meta.json and state-NNN.safetensors parts of
at most --part-mib MiB each (15 by default: the GPU machine returns files below 16 MiB). It
holds everything a resumed run needs to continue exactly where the stopped one was: the weights,
AdamW's moments and step counts, the global step (the data position: every batch is a function
of the seed and its step, hsatrain.train.Batches) and the landmark queue (train.py --queue).
Formats:
  full   fp32 weights and moments: a resumed run equals an uninterrupted one bit for bit on
         the CPU (the self-test checks it); 12 bytes a parameter
  bf16   bf16 weights and moments (6 bytes a parameter, 85 MB for the shipped 14M-parameter
         model, 6 parts): the reduced state; a resumed run differs by the rounding of the
         weights and moments to bf16, not by its data or schedule
The directory is written beside the old one and renamed over it, so a run killed while
saving leaves the previous checkpoint intact.
"""
import json
import os
import shutil

import torch

from . import st


def save(path, model, opt, step, cfg, extra, fmt="bf16", part_mib=15.0):
    dt = torch.float32 if fmt == "full" else torch.bfloat16
    tensors = {"model." + k: v.detach().to(dt) for k, v in model.state_dict().items()}
    sd = opt.state_dict()
    for i, s in sd["state"].items():
        for k, v in s.items():
            v = v if torch.is_tensor(v) else torch.tensor(float(v))
            tensors[f"opt.{i}.{k}"] = v.detach().float() if k == "step" else v.detach().to(dt)
    for k, v in extra.items():
        tensors["extra." + k] = v.detach().cpu().to(dt) if v.is_floating_point() else v.detach().cpu()
    limit = int(part_mib * 2**20) - 65536           # room for the header
    for name in list(tensors):                       # a tensor larger than a part: split its rows
        t = tensors[name]
        n = t.numel() * t.element_size()
        if n > limit and t.dim() >= 1:
            rows = max(1, limit // (n // t.shape[0]))
            del tensors[name]
            for j, r0 in enumerate(range(0, t.shape[0], rows)):
                tensors[f"{name}#{j:04d}"] = t[r0:r0 + rows].clone()
    parts, cur, size = [], {}, 0
    for name in sorted(tensors):
        n = tensors[name].numel() * tensors[name].element_size()
        if cur and size + n > limit:
            parts.append(cur)
            cur, size = {}, 0
        if n > limit:
            raise ValueError(f"{name}: {n} bytes does not fit a part of {part_mib} MiB")
        cur[name] = tensors[name]
        size += n
    parts.append(cur)
    tmp = path + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    names = []
    for j, part in enumerate(parts):
        names.append(f"state-{j:03d}.safetensors")
        st.save(part, os.path.join(tmp, names[-1]), {"format": "hsatrain-ckpt 1"})
    meta = dict(format="hsatrain-ckpt 1", dtype=fmt, step=step, config=cfg.to_dict(), parts=names,
                param_groups=[{k: v for k, v in g.items() if k != "params"} for g in sd["param_groups"]])
    with open(os.path.join(tmp, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
    old = path + ".old"
    shutil.rmtree(old, ignore_errors=True)
    if os.path.exists(path):
        os.rename(path, old)
    os.rename(tmp, path)
    shutil.rmtree(old, ignore_errors=True)


def load(path):
    """Returns (meta, model state dict fp32, optimizer state (dict index -> dict), extra dict)."""
    with open(os.path.join(path, "meta.json")) as f:
        meta = json.load(f)
    tensors = {}
    pieces = {}
    for name in meta["parts"]:
        t, _ = st.load(os.path.join(path, name))
        for k, v in t.items():
            if "#" in k:
                base, _, j = k.partition("#")
                pieces.setdefault(base, {})[int(j)] = v
            else:
                tensors[k] = v
    for base, rows in pieces.items():
        tensors[base] = torch.cat([rows[j] for j in sorted(rows)])
    model, opt, extra = {}, {}, {}
    for k, v in tensors.items():
        kind, _, rest = k.partition(".")
        if kind == "model":
            model[rest] = v.float()
        elif kind == "opt":
            i, _, key = rest.partition(".")
            opt.setdefault(int(i), {})[key] = v.float()
        else:
            extra[rest] = v
    return meta, model, opt, extra


def opt_state_dict(opt, saved, groups):
    """An AdamW state dict for opt from the saved per-parameter state and group settings."""
    sd = opt.state_dict()
    sd["state"] = saved
    for g, s in zip(sd["param_groups"], groups):
        g.update({k: (tuple(v) if isinstance(v, list) else v) for k, v in s.items()})
    return sd


def split_model(path, outdir, part_mib=15.0):
    """Write a model.safetensors as outdir/model-NNN.safetensors parts (same metadata each)."""
    tensors, meta = st.load(path)
    limit = int(part_mib * 2**20) - 65536
    os.makedirs(outdir, exist_ok=True)
    parts, cur, size = [], {}, 0
    for name in sorted(tensors):
        n = tensors[name].numel() * tensors[name].element_size()
        if cur and size + n > limit:
            parts.append(cur)
            cur, size = {}, 0
        cur[name] = tensors[name]
        size += n
    parts.append(cur)
    for j, part in enumerate(parts):
        st.save(part, os.path.join(outdir, f"model-{j:03d}.safetensors"), meta)
    return len(parts)


def join_model(indir, path):
    """The inverse of split_model."""
    names = sorted(n for n in os.listdir(indir) if n.startswith("model-") and n.endswith(".safetensors"))
    if not names:
        raise SystemExit(f"ckpt join: no model-NNN.safetensors parts in {indir}")
    tensors, meta = {}, {}
    for name in names:
        t, meta = st.load(os.path.join(indir, name))
        tensors.update(t)
    st.save(tensors, path, meta)


if __name__ == "__main__":
    import sys
    if len(sys.argv) != 4 or sys.argv[1] not in ("split", "join"):
        sys.exit("usage: python3 -m hsatrain.ckpt split MODEL.safetensors DIR | join DIR MODEL.safetensors")
    (split_model if sys.argv[1] == "split" else join_model)(sys.argv[2], sys.argv[3])
