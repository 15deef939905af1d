#!/usr/bin/env python3
"""check-deps.py: the layering of hsamem's C sources, from their #include lines and from the
symbols their objects define and use.

    check-deps.py SRCDIR [BUILDDIR]      (make deps-check runs it after a build)

The folders are layers. A file may include headers of its own folder and of the folders below it:

    common                      error codes, spec, logging, arena, half floats, HSA math
    store, encoder, gpu         each on common only (gpu's CUDA backend reads chunks through a source)
    proto                       generated protocol code, and wire.c that walks it
    daemon                      on all of the above
    client                      on common and proto: the client never includes the daemon
    tests, bench                on anything

Besides that, no cycle: no header includes itself through others, no two modules (a .c/.h pair)
include each other's headers, and, read from the built objects with nm, no module calls into
another that calls back into it, directly or around a longer loop. Prints each violation and
exits 1, or prints a summary.
"""
import os
import re
import subprocess
import sys

ALLOWED = {
    "common": {"common"},
    "store": {"common", "store"},
    "encoder": {"common", "encoder"},
    "gpu": {"common", "gpu"},
    "proto": {"proto"},
    "daemon": {"common", "store", "encoder", "gpu", "proto", "daemon"},
    "client": {"common", "proto", "client"},
}
FOLDERS = list(ALLOWED) + ["tests", "bench"]
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def sources(top):
    for folder in FOLDERS:
        base = os.path.join(top, folder)
        for dirpath, _, names in os.walk(base):
            for name in sorted(names):
                if name.endswith((".c", ".h", ".cu")) and ".pb-c." not in name:
                    yield os.path.relpath(os.path.join(dirpath, name), top)


def object_cycles(build):
    """Loops among the built objects outside tests and bench: who defines what, who uses it."""
    defined, used = {}, {}
    for folder in ALLOWED:
        base = os.path.join(build, folder)
        if not os.path.isdir(base):
            continue
        for name in sorted(os.listdir(base)):
            if not name.endswith(".o"):
                continue
            # automake names an object TARGET-STEM.o when the target has flags of its own
            mod = folder + "/" + name[:-2].split("-")[-1]
            out = subprocess.run(["nm", "-g", os.path.join(base, name)], capture_output=True,
                                 text=True, check=True).stdout
            d, u = defined.setdefault(mod, set()), used.setdefault(mod, set())
            for line in out.splitlines():
                f = line.split()
                if len(f) == 3 and f[1] in "TDBRC":
                    d.add(f[2])
                elif len(f) == 2 and f[0] == "U":
                    u.add(f[1])
    owner = {}
    for mod, syms in defined.items():
        for sym in syms:
            owner.setdefault(sym, mod)
    graph = {m: {owner[s] for s in used[m] if s in owner and owner[s] != m} for m in defined}
    # strongly connected components (Tarjan): each of more than one module is a loop
    index, low, stack, on, loops = {}, {}, [], set(), []

    def strong(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                loops.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return len(defined), ["modules call each other in a loop: " + ", ".join(c) for c in loops]


def main():
    if len(sys.argv) < 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    top = sys.argv[1]
    files = list(sources(top))
    where = {}  # header name -> its path
    for f in files:
        if f.endswith(".h"):
            where.setdefault(os.path.basename(f), f)
    where.setdefault("hsamem.pb-c.h", "proto/hsamem.pb-c.h")
    edges = {}
    problems = []
    for f in files:
        with open(os.path.join(top, f), encoding="utf-8") as fh:
            names = INCLUDE.findall(fh.read())
        folder = f.split("/")[0]
        edges[f] = []
        for name in names:
            target = where.get(name)
            if target is None:
                continue  # config.h and other generated headers
            edges[f].append(target)
            if folder in ALLOWED and target.split("/")[0] not in ALLOWED[folder]:
                problems.append(f"{f} includes {target}: {folder}/ may not include from "
                                f"{target.split('/')[0]}/")

    # header cycles
    state = {}

    def visit(node, path):
        state[node] = 1
        for nxt in edges.get(node, []):
            if state.get(nxt) == 1:
                cycle = path[path.index(nxt):] + [nxt]
                problems.append("include cycle: " + " -> ".join(cycle))
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for f in files:
        if f.endswith(".h") and f not in state:
            visit(f, [f])

    # module cycles: a module is a .c/.h pair of one stem
    def module(path):
        return os.path.splitext(path)[0]

    deps = {}
    for f, targets in edges.items():
        for t in targets:
            if module(t) != module(f):
                deps.setdefault(module(f), set()).add(module(t))
    for a, bs in sorted(deps.items()):
        for b in sorted(bs):
            if a < b and a in deps.get(b, set()):
                problems.append(f"modules include each other: {a} <-> {b}")

    n_objects = 0
    if len(sys.argv) > 2:
        n_objects, loops = object_cycles(sys.argv[2])
        problems += loops
    for p in problems:
        print(p)
    if problems:
        return 1
    print(f"deps-check: {len(files)} files and {n_objects} objects: layers clean, no cycle")
    return 0


if __name__ == "__main__":
    sys.exit(main())
