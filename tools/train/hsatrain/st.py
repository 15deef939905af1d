"""Minimal safetensors writer and reader (no dependency on the safetensors package).

File layout: 8-byte little-endian header length N, N bytes of JSON header, then the
raw tensor bytes. The header maps each tensor name to {"dtype", "shape",
"data_offsets": [begin, end]} (offsets relative to the end of the header) and may
hold "__metadata__" (string to string). Tensors are little-endian, row-major.
"""
import json
import struct

import numpy as np
import torch

_DT = {torch.float32: "F32", torch.bfloat16: "BF16", torch.float16: "F16",
       torch.int32: "I32", torch.int64: "I64", torch.uint8: "U8", torch.int16: "I16"}
_RDT = {v: k for k, v in _DT.items()}
_SIZE = {"F32": 4, "BF16": 2, "F16": 2, "I32": 4, "I64": 8, "U8": 1, "I16": 2}


def save(tensors, path, metadata=None):
    header, blobs, off = {}, [], 0
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        if t.dtype == torch.bfloat16:
            raw = t.view(torch.int16).numpy().tobytes()
        else:
            raw = t.numpy().tobytes()
        header[name] = {"dtype": _DT[t.dtype], "shape": list(t.shape),
                        "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    hb = json.dumps(header, separators=(",", ":")).encode()
    hb += b" " * (-len(hb) % 8)            # keep the tensor data 8-byte aligned
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        for b in blobs:
            f.write(b)


def load(path):
    """Returns (dict name -> torch tensor, metadata dict)."""
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__", {})
    base = 8 + n
    out = {}
    for name, h in header.items():
        b, e = h["data_offsets"]
        raw = data[base + b:base + e]
        dt = h["dtype"]
        if dt == "BF16":
            t = torch.from_numpy(np.frombuffer(raw, dtype=np.int16).copy()).view(torch.bfloat16)
        else:
            npdt = {"F32": np.float32, "F16": np.float16, "I32": np.int32, "I64": np.int64,
                    "U8": np.uint8, "I16": np.int16}[dt]
            t = torch.from_numpy(np.frombuffer(raw, dtype=npdt).copy())
        out[name] = t.reshape(h["shape"])
    return out, meta
