"""test_python.py: the Python client (the package client/python/hsamem/) against a real hsamemd,
started by tests/test_python.sh on a temporary socket ($HSAMEM_SOCKET) with libhsamem at
$HSAMEM_LIBRARY.

Every method of Client: append and query finding a fact among filler paragraphs, entries, chunks
with tensors, flush, users, stats, a client memory with attend, export and import round trips
(through a file, a descriptor and io.BytesIO), delete, the error classes of the usual failures,
one client shared by several threads, and scopes, metadata and filters with recall's entry view
(an agent's filter never returning another's entry, a filter that keeps nothing, min_score),
forget by range and by filter.
"""

import array
import io
import os
import random
import sys
import tempfile
import threading

import hsamem

failures = 0


def check(cond, what):
    global failures
    if not cond:
        failures += 1
        print("FAIL:", what)


def raises(exc, fn, *args, **kw):
    """Checks that fn raises exc with a code and a message; returns the exception."""
    try:
        fn(*args, **kw)
    except exc as e:
        if isinstance(e, hsamem.HsamemError):
            check(e.code < 0 and e.message, "%s has a code and a message" % exc.__name__)
        return e
    except Exception as e:
        check(False, "%s: raised %r, expected %s" % (fn.__name__, e, exc.__name__))
        return None
    check(False, "%s: returned, expected %s" % (fn.__name__, exc.__name__))
    return None


def filler():
    """Ordinary paragraphs: the license texts every Debian system ships, else made-up ones."""
    paras = []
    for name in ("GPL-3", "GPL-2", "LGPL-2.1", "Apache-2.0"):
        try:
            with open("/usr/share/common-licenses/" + name, encoding="utf-8") as f:
                paras += [" ".join(p.split()) for p in f.read().split("\n\n")]
        except OSError:
            pass
    paras = [p for p in paras if len(p) > 20]
    if len(paras) < 200:
        rnd = random.Random(7)
        words = ("the a system report module driver table value paper river window garden "
                 "engine letter market story signal number office train winter").split()
        paras = [" ".join(rnd.choice(words) for _ in range(30)) for _ in range(300)]
    return paras[:300]


FACT = "Alice's cat is named Whiskers and sleeps on the red sofa."
QUESTION = "What is the name of Alice's cat?"


def test_text(c):
    info = c.ping()
    check(info.protocol_version == 1 and info.server_version, "ping: %r" % (info,))
    check(c.url == os.environ["HSAMEM_SOCKET"], "url: %s" % c.url)

    paras = filler()
    a = c.append_many("alice", paras[:150])
    check(a.created and a.first_seq == 0 and a.count == 150, "append_many: %r" % (a,))
    f = c.append("alice", FACT, role="assistant", tags=["pet", "home"], timestamp_ms=1234)
    check(f.first_seq == 150 and f.count == 1 and not f.created, "append: %r" % (f,))
    c.append_many("alice", [{"text": p, "role": "user"} for p in paras[150:]])

    hits = c.query("alice", QUESTION, k=3)
    check(isinstance(hits, list) and 1 <= len(hits) <= 3 and hits.k == 3, "query: %r" % hits)
    found = [e for h in hits for e in h.entries if e.text == FACT]
    check(found, "the fact is not in the top 3")
    if found:
        e = found[0]
        check(e.seq == 150 and e.role == "assistant" and e.tags == ["pet", "home"] and
              e.timestamp_ms == 1234, "the fact's entry: %r" % (e,))
    h = hits[0]
    check(isinstance(h, hsamem.Hit) and h.text and h.top_tokens and
          isinstance(h.top_tokens[0], tuple) and isinstance(h.top_tokens[0][0], str),
          "hit: %r" % (h,))
    check(all(hits[i].score >= hits[i + 1].score for i in range(len(hits) - 1)),
          "hits are best first")
    check(len(c.query("alice", QUESTION, k=2, max_entries=1)) <= 2, "query k=2")
    tail = c.query("alice", "anything at all", include_tail=False)
    check(all(not x.tail for x in tail), "include_tail=False returned the tail")

    ents = c.entries("alice", first=149, count=3)
    check(ents.total == len(paras) + 1 and [e.seq for e in ents] == [149, 150, 151] and
          ents[1].text == FACT, "entries: %r" % (ents,))
    check(c.entries("alice", first=ents.total) == [], "entries past the end")

    m = c.stats("alice").memories[0]
    spec = m.spec
    check(m.user == "alice" and m.entries == len(paras) + 1 and spec.encoder == "lexical",
          "stats memory: %r" % (m,))
    esize = {"f16": 2, "bf16": 2, "f32": 4}[spec.dtype]
    ch = c.chunks("alice", first=0, count=2, tensors=True)
    check(len(ch) == 2 and ch.total == m.chunks, "chunks: %d of %d" % (len(ch), ch.total))
    for x in ch:
        check(len(x.tokens) == spec.chunk_size and x.n_real == spec.chunk_size and
              len(x.k) == spec.chunk_size * spec.h_kv * spec.d_h * esize and
              len(x.v) == len(x.k) and len(x.landmark) == spec.d_r * esize and x.text,
              "chunk %d with tensors" % x.index)
    plain = c.chunks("alice", count=1)
    check(plain[0].k is None and plain[0].tokens == ch[0].tokens, "chunks without tensors")

    # flush: seals the tail, then has nothing to do
    if m.tail_tokens == 0:
        c.append("alice", "A few more words for the tail.")
    fl = c.flush("alice")
    check(fl.sealed and fl.chunks == c.chunks("alice", count=1).total, "flush: %r" % (fl,))
    check(not c.flush("alice").sealed, "a second flush sealed something")
    last = c.chunks("alice", first=fl.chunks - 1, count=1)[0]
    check(last.n_real < spec.chunk_size, "the flushed chunk is padded")

    users = c.users()
    check([u.user for u in users] == ["alice"] and users[0].chunks == fl.chunks,
          "users: %r" % users)
    st = c.stats()
    d = st.as_dict()
    check(st.users == 1 and st.requests > 0 and st.backend and d["users"] == 1 and
          isinstance(d["memories"], list) and st.latency, "stats: %r" % (st,))
    prom = c.stats_prometheus("alice")
    check("# TYPE hsamem_requests_total counter" in prom and
          'hsamem_memory_chunks{memory="alice"} %d' % fl.chunks in prom,
          "stats_prometheus: %s" % prom[:400])
    raises(hsamem.NoSuchUser, c.stats_prometheus, "nobody")

    c.create("bob", top_k=5)
    check(c.users()[1].spec.top_k == 5, "create with a spec")
    raises(hsamem.AlreadyExists, c.create, "bob")


def floats(rnd, n):
    return array.array("f", (rnd.uniform(-1, 1) for _ in range(n)))


def test_client_memory(c):
    S, h_kv, d_h, h_q, d_r, k = 4, 2, 4, 4, 8, 2
    m = c.create("model", encoder="client", chunk_size=S, h_kv=h_kv, d_h=d_h, h_q=h_q, d_r=d_r,
                 dtype="f32", weighting="softmax", top_k=k)
    check(m.spec.encoder == "client" and m.spec.dtype == "f32" and m.spec.h_q == h_q and
          m.spec.weighting == "softmax", "create client: %r" % (m,))
    rnd = random.Random(1)
    kv = S * h_kv * d_h
    tensors = [(floats(rnd, kv).tobytes(), floats(rnd, kv).tobytes(), floats(rnd, d_r).tobytes())
               for _ in range(3)]
    a = c.append("model", tokens=list(range(1, 3 * S + 1)), chunks=tensors, create=False)
    check(a.sealed == 3 and a.chunks == 3, "append with chunks: %r" % (a,))
    # a Chunk read back can be fed again (a memoryview too), and sealing without tensors fails
    back = c.chunks("model", tensors=True)
    check([(x.k, x.v, x.landmark) for x in back] == tensors, "chunk tensors read back")
    raises(hsamem.SpecMismatch, c.append, "model", tokens=[1] * S)
    a = c.append("model", tokens=[9] * S, chunks=[back[0]])
    check(a.chunks == 4, "append with a Chunk")
    c.append("model", tokens=[7, 7])
    pad = tuple(memoryview(floats(rnd, n)) for n in (kv, kv, d_r))
    check(c.flush("model", chunk=pad).sealed, "flush of a client memory")

    n = 3
    qr = [[rnd.uniform(-2, 2) for _ in range(d_r)] for _ in range(n)]     # nested lists
    qa = floats(rnd, n * h_q * d_h)                                       # array('f')
    r = c.attend("model", qr, qa, n, positions=[0, 2 * S, 0], want_attention=True)
    check(r.n == n and r.k == k and r.h_kv == h_kv, "attend: %r" % (r,))
    check(len(r.output) == n * h_q * d_h and isinstance(r.output, array.array),
          "attend output shape")
    check(len(r.selected) == len(r.weights) == len(r.scores) == n * h_kv * k,
          "attend selection shape")
    for t in range(n * h_kv):
        w = sum(r.weights[t * k:(t + 1) * k])
        check(abs(w - 1) < 1e-4, "weights of row %d sum to %f" % (t, w))
    check(all(0 <= j < 2 for j in r.selected[h_kv * k:2 * h_kv * k]),
          "position 2S sees chunks 0 and 1 only: %r" % list(r.selected))
    check(r.attention is not None and len(r.attention) == n * h_q * k * S, "attention shape")
    flat = array.array("f", [x for row in qr for x in row])
    r2 = c.attend("model", flat.tobytes(), memoryview(qa), n, positions=[0, 2 * S, 0])
    check(r2.output == r.output and r2.selected == r.selected and r2.attention is None,
          "attend with buffers gives the same result")
    r3 = c.attend("model", flat, qa, n, k=1)
    check(r3.k == 1 and len(r3.weights) == n * h_kv, "attend k=1")

    raises(hsamem.SpecMismatch, c.attend, "model", flat + array.array("f", [0] * n), qa, n)
    raises(hsamem.InvalidArgument, c.attend, "model", flat[:-1], qa, n)
    raises(ValueError, c.attend, "model", flat, qa, n, positions=[0])
    raises(hsamem.NotSupported, c.query, "model", "text")
    raises(hsamem.NoSuchUser, c.attend, "nobody", flat, qa, n)


def test_transfer(c):
    tmp = tempfile.TemporaryDirectory()
    path = os.path.join(tmp.name, "alice.hsamem")
    with open(path, "wb") as f:
        t = c.export("alice", f)
    check(t.entries == c.entries("alice", count=1).total and t.records > 0 and t.bytes == os.path.getsize(path),
          "export to a file: %r" % (t,))
    with open(path, "rb") as f:
        t2 = c.import_("alice-copy", f)
        check(f.read() == b"", "the file is read to its end")
    check(t2.entries == t.entries and t2.chunks == t.chunks, "import: %r" % (t2,))

    total = c.entries("alice", count=1).total
    same = True
    for first in range(0, total, 100):
        a, b = c.entries("alice", first, 100), c.entries("alice-copy", first, 100)
        same &= a == b
    check(same, "entries of the copy differ")
    nch = c.chunks("alice", count=1).total
    for first in range(0, nch, 16):
        a = c.chunks("alice", first, 16, tensors=True)
        b = c.chunks("alice-copy", first, 16, tensors=True)
        check(a == b, "chunks %d.. of the copy differ" % first)
    ma, mb = c.stats("alice").memories[0], c.stats("alice-copy").memories[0]
    check((ma.spec, ma.entries, ma.tokens, ma.chunks, ma.tail_tokens) ==
          (mb.spec, mb.entries, mb.tokens, mb.chunks, mb.tail_tokens), "stats of the copy")
    check([h.text for h in c.query("alice", QUESTION, k=3)] ==
          [h.text for h in c.query("alice-copy", QUESTION, k=3)], "query of the copy")

    # in memory (the callbacks) and through a bare descriptor
    buf = io.BytesIO()
    c.export("model", buf)
    check(buf.tell() > 0, "export to BytesIO")
    fd = os.open(os.path.join(tmp.name, "model.hsamem"), os.O_RDWR | os.O_CREAT, 0o600)
    c.export("model", fd)
    os.lseek(fd, 0, os.SEEK_SET)
    c.import_("model-copy", fd)
    os.close(fd)
    buf.seek(0)
    c.import_("model-copy2", buf)
    qa = array.array("f", [0.5] * (3 * 4 * 4))
    qr = array.array("f", [0.25] * (3 * 8))
    outs = [c.attend(u, qr, qa, 3).output for u in ("model", "model-copy", "model-copy2")]
    check(outs[0] == outs[1] == outs[2], "attend on the imported client memories")

    buf.seek(0)
    raises(hsamem.AlreadyExists, c.import_, "model", buf)
    raises(hsamem.ImportStreamError, c.import_, "junk", io.BytesIO(b"\x05\x00\x00\x00hello"))
    raises(hsamem.ImportStreamError, c.import_, "junk", io.BytesIO(buf.getvalue()[:-3]))
    check("junk" not in [u.user for u in c.users()], "a failed import left a memory")

    class Broken(io.RawIOBase):
        def writable(self):
            return True

        def write(self, b):
            raise OSError(28, "disk full")

    e = raises(OSError, c.export, "model", Broken())
    check(e is not None and e.errno == 28, "an export's write error is raised as it is")
    tmp.cleanup()


def test_forget(c):
    c.append_many("forgetful", ["the lake froze early", "my pin is 4711 zanzibar", "snow fell"])
    check(any("zanzibar" in h.text for h in c.query("forgetful", "zanzibar pin")),
          "forget: found before")
    f = c.forget("forgetful", 1)
    check(f.entries == 1, "forget: %r" % (f,))
    check(not any("zanzibar" in h.text for h in c.query("forgetful", "zanzibar pin")),
          "forget: found after")
    e = c.entries("forgetful", 0, 3)
    check([x.text for x in e] == ["the lake froze early", "", "snow fell"], "forget: %r" % (e,))
    u = c.update("forgetful", 2, "rain fell", keep_history=True)
    check(u.replaces == 2 and not u.forgotten, "update: %r" % (u,))
    h = c.history("forgetful", u.seq)
    check([(x.entry.seq, x.forgotten, x.replaces, x.replaced_by) for x in h] ==
          [(2, False, None, u.seq), (u.seq, False, 2, None)], "history: %r" % (h,))
    check(c.history("forgetful", 1)[0].forgotten, "history of a forgotten entry")
    raises(hsamem.NotFound, c.forget, "forgetful", 99)
    raises(hsamem.InvalidArgument, c.update, "forgetful", 1, "x")
    c.delete("forgetful")


def test_forget_where(c):
    """forget(where=): every entry that passes the filter goes, the others stay; a filter
    without a condition and a range together with a filter are refused, nothing forgotten."""
    u = "forget-where"
    c.append_many(u, [
        {"text": "the planner booked a flight to oslo", "scope": {"agent": "planner"}},
        {"text": "the critic disliked the oslo plan", "scope": {"agent": "critic"}},
        {"text": "the planner chose the window seat", "scope": {"agent": "planner"},
         "tags": ["travel"]},
        {"text": "the critic wants an aisle seat", "scope": {"agent": "critic"},
         "tags": ["travel"]}])
    raises(hsamem.InvalidArgument, c.forget, u, where={})
    raises(TypeError, c.forget, u, 0, where={"scope": {"agent": "planner"}})
    raises(TypeError, c.forget, u)
    raises(TypeError, c.forget, u, where={"agent": "planner"})
    raises(hsamem.NoSuchUser, c.forget, "nobody", where={"tags": "travel"})
    check(all(x.text for x in c.entries(u)), "forget(where=): nothing forgotten by a refusal")
    f = c.forget(u, where={"scope": "agent=planner"})
    check(f.entries == 2, "forget(where=scope): %r" % (f,))
    e = c.entries(u)
    check([x.text for x in e] == ["", "the critic disliked the oslo plan", "",
                                  "the critic wants an aisle seat"],
          "forget(where=scope): %r" % ([x.text for x in e],))
    check(not any("oslo" in h.text and "flight" in h.text
                  for h in c.query(u, "flight to oslo", include_tail=True)),
          "forget(where=scope): found after")
    f = c.forget(u, where={"tags": ["travel"], "role": "user"})
    check(f.entries == 1, "forget(where=tags): only the entry not forgotten yet counts: %r" % (f,))
    check([x.text for x in c.entries(u)] == ["", "the critic disliked the oslo plan", "", ""],
          "forget(where=tags)")
    f = c.forget(u, where={"scope": {"agent": "nobody"}})
    check(f.entries == 0, "forget(where=) that matches nothing: %r" % (f,))
    c.delete(u)


def test_errors_and_delete(c):
    d = c.delete("alice-copy")
    check(d.entries == c.entries("alice", count=1).total and d.chunks > 0, "delete: %r" % (d,))
    raises(hsamem.NoSuchUser, c.query, "alice-copy", QUESTION)
    raises(hsamem.NoSuchUser, c.delete, "alice-copy")
    raises(hsamem.NoSuchUser, c.entries, "nobody")
    raises(hsamem.NoSuchUser, c.chunks, "nobody")
    raises(hsamem.NoSuchUser, c.stats, "nobody")
    raises(hsamem.NoSuchUser, c.flush, "nobody")
    raises(hsamem.NoSuchUser, c.export, "nobody", io.BytesIO())
    raises(hsamem.NoSuchUser, c.append, "nobody", "x", create=False)
    e = raises(hsamem.BadName, c.append, "bad name", "x")
    check(e is not None and e.code == -1008 and isinstance(e, hsamem.HsamemError),
          "BadName's code")
    raises(hsamem.BadName, c.query, "x" * 65, "x")
    raises(hsamem.BadName, c.entries, "-dash")
    raises(hsamem.BadName, c.append, "nul\0name", "x")
    raises(hsamem.BadName, c.append, "tab\tname", "x")
    # a NUL character cannot travel in a C string: refused before anything is sent
    e = raises(hsamem.InvalidArgument, c.append, "nul-text", "before\0after")
    check(e is not None and e.code == -1003 and "NUL" in str(e), "NUL text: %r" % (e,))
    raises(hsamem.InvalidArgument, c.append, "nul-text", "x", tags=["a\0b"])
    raises(hsamem.InvalidArgument, c.append_many, "nul-text", ["fine", "not\0fine"])
    raises(hsamem.InvalidArgument, c.query, "alice", "what\0")
    check("nul-text" not in [u.user for u in c.users()], "a text with a NUL left a memory")
    raises(hsamem.EncoderUnavailable, c.create, "enc", encoder="no-such-encoder")
    raises(hsamem.InvalidArgument, c.create, "enc", encoder="client", h_kv=3, d_h=4, h_q=4,
           d_r=8)
    raises(TypeError, c.create, "enc", chunksize=64)
    raises(ValueError, c.append, "alice", "x", role="robot")
    raises(hsamem.InvalidArgument, c.append, "alice")
    check("enc" not in [u.user for u in c.users()], "a refused create left a memory")

    with hsamem.Client("ipc://" + os.path.join(tempfile.gettempdir(), "no-such-dir",
                                               "hsamemd.sock"), timeout=2) as other:
        raises(hsamem.ConnectError, other.ping)
    raises(hsamem.InvalidArgument, hsamem.Client, "bogus://x")
    closed = hsamem.Client()
    closed.close()
    closed.close()
    raises(ValueError, closed.ping)


def test_threads(c):
    errors = []

    def worker(i):
        try:
            for j in range(20):
                c.append("threads", "thread %d says %d" % (i, j))
                c.query("alice", QUESTION, k=2)
        except Exception as e:   # reported below
            errors.append(e)

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    check(not errors, "threads: %r" % errors)
    check(c.entries("threads", count=1).total == 80, "threads appended 80 entries")


def test_reencode(c):
    c.create("renc", encoder="lexical", revision=1)
    c.append_many("renc", [{"text": "a turbine inspection note %d" % i, "tags": ["t"],
                            "role": "assistant"} for i in range(50)])
    before = c.entries("renc", 0, 100)
    seen = []
    r = c.reencode("renc", "lexical", progress=seen.append)
    check(r.done and r.switched and r.revision == 2 and r.encoder == "lexical",
          "reencode: done with lexical revision 2: %r" % (r,))
    check(seen and seen[-1] == r, "reencode: progress saw the last step")
    check(c.stats("renc").memories[0].spec.revision == 2, "reencode: the spec says revision 2")
    after = c.entries("renc", 0, 100)
    check([(e.seq, e.text, e.role, e.tags) for e in before] ==
          [(e.seq, e.text, e.role, e.tags) for e in after], "reencode: the entries are kept")
    check(not c.reencode_step("renc", "lexical").switched, "reencode: again is a no-op")
    raises(hsamem.EncoderUnavailable, c.reencode_step, "renc", "nope")
    raises(hsamem.InvalidArgument, c.reencode_step, "renc", "client")
    c.delete("renc")


def test_backup_compact(c):
    tmp = tempfile.TemporaryDirectory()
    c.append("bk", "kept through a backup and a compaction")
    b = c.backup(os.path.join(tmp.name, "bk"))
    check(b.bytes > 0 and os.path.getsize(os.path.join(tmp.name, "bk", "data.mdb")) == b.bytes,
          "backup size %r" % (b,))
    raises(hsamem.AlreadyExists, c.backup, os.path.join(tmp.name, "bk"))
    raises(hsamem.InvalidArgument, c.backup, "relative/bk")
    r = c.compact()
    check(r.bytes_after > 0 and r.bytes_after <= r.bytes_before and r.pause_ms <= r.ms,
          "compact %r" % (r,))
    check(c.entries("bk")[0].text == "kept through a backup and a compaction", "after compact")
    c.delete("bk")
    tmp.cleanup()


def test_default_search():
    """No URL and no $HSAMEM_SOCKET: the per-user socket ($XDG_RUNTIME_DIR here, where the test's
    daemon listens), then the system service's; a failure names both and how to choose."""
    sock = os.environ["HSAMEM_SOCKET"]
    saved = {k: os.environ.pop(k, None) for k in ("HSAMEM_SOCKET", "RUNTIME_DIRECTORY",
                                                  "XDG_RUNTIME_DIR")}
    empty = tempfile.TemporaryDirectory()
    try:
        os.environ["XDG_RUNTIME_DIR"] = os.path.dirname(sock[len("ipc://"):])
        with hsamem.Client(timeout=5) as c:
            c.ping()
            check(c.url == sock, "default search: url %s, expected %s" % (c.url, sock))
        os.environ["XDG_RUNTIME_DIR"] = empty.name
        if not os.path.exists("/run/hsamem/hsamemd.sock"):
            with hsamem.Client(timeout=2) as c:
                e = raises(hsamem.ConnectError, c.ping)
                msg = str(e)
                check("ipc://%s/hsamemd.sock (no socket there)" % empty.name in msg and
                      "ipc:///run/hsamem/hsamemd.sock" in msg and "HSAMEM_SOCKET" in msg,
                      "default search failure: %s" % msg)
    finally:
        empty.cleanup()
        for k, v in saved.items():
            os.environ.pop(k, None)
            if v is not None:
                os.environ[k] = v


def test_ask(c):
    c.create("askpy", encoder="hsa-small")
    texts = ["A tired teacher watched the harbour lights before the rain came. The night "
             "train carried a basket of apples near the empty market." for _ in range(12)]
    texts[5] = "One of the special magic numbers for quiet-harbor is: 4829301."
    first = c.append_many("askpy", texts).first_seq
    q = "What is the special magic number for quiet-harbor mentioned in the provided text?"
    a = c.ask("askpy", q)
    check(isinstance(a, hsamem.Answer) and "4829301" in a.text and a.experimental,
          "ask: the answer holds the number: %r" % (a,))
    check(any(e.seq == first + 5 for h in a.chunks for e in h.entries),
          "ask: the needle's entry is among the chunks drawn on")
    check(a.encoder == "hsa-small" and len(a.tokens) >= 1 and str(a) == a.text,
          "ask: tokens and encoder")
    cut = c.ask("askpy", q, max_tokens=1)
    check(cut.tokens == a.tokens[:1] and not cut.complete, "ask: max_tokens=1 cuts it")
    # query modes (hsamem(7), QUERY MODES): the needle by its key in each; hybrid by default
    for mode in ("learned", "lexical", "hybrid", None):
        hits = c.query("askpy", q, k=2, mode=mode)
        check(hits.mode == (mode or "hybrid") and
              any(e.seq == first + 5 for e in hits[0].entries),
              "query mode %s: the needle first (%r)" % (mode, hits.mode))
        check((hits[0].lexical_score is None) == (mode == "learned"),
              "query mode %s: lexical_score" % mode)
    raises(hsamem.InvalidArgument, c.query, "askpy", "magic", mode="bm25")
    c.append("asklex", "the blue kettle whistles")
    raises(hsamem.InvalidArgument, c.query, "asklex", "kettle", mode="hybrid")
    check(c.query("asklex", "kettle", mode="lexical").mode == "lexical", "lexical mode")
    raises(hsamem.NotSupported, c.ask, "asklex", q)
    raises(hsamem.NoSuchUser, c.ask, "askmissing", q)
    raises(hsamem.InvalidArgument, c.ask, "askpy", q, max_tokens=65)
    c.delete("askpy")
    c.delete("asklex")


def test_scopes(c):
    rnd = random.Random(5)
    words = ["orchard", "basalt", "ferry", "quarry", "violin", "lagoon", "saddle", "pepper"]
    for i in range(150):
        agent = ("red", "green")[i % 2]
        text = " ".join(rnd.choice(words) for _ in range(7))
        if i in (40, 41):
            text += " the secret of this agent is %s" % ("papaya" if agent == "red" else "kumquat")
        c.append("scoped", text, role="user" if agent == "red" else "assistant",
                 scope={"agent": agent, "session": str(i // 50)}, meta={"n": str(i)},
                 timestamp_ms=1700000000000 + i * 1000)
    for agent, own, other in (("red", "papaya", "kumquat"), ("green", "kumquat", "papaya")):
        for q in ("what is the secret papaya", "what is the secret kumquat"):
            r = c.recall("scoped", q, k=6, context=1, where={"scope": {"agent": agent}})
            check(r and r.allowed > 0, "recall %s: hits" % agent)
            check(all(h.entry.scope.get("agent") == agent for h in r),
                  "recall %s: only its own entries" % agent)
            check(all(other not in h.entry.text for h in r), "recall %s: no other secret" % agent)
            hits = c.query("scoped", q, k=6, where={"scope": "agent=" + agent})
            check(len(hits) == 6 and all(other not in h.text for h in hits),
                  "query %s: k chunks, no other secret" % agent)
        r = c.recall("scoped", "what is the secret " + own, where={"scope": {"agent": agent}})
        check(r and own in r[0].entry.text and not r[0].context, "recall %s: answer first" % agent)
        check(len({h.entry.seq for h in r}) == len(r), "recall %s: each entry once" % agent)
    r = c.recall("scoped", "secret", where={"scope": {"agent": "blue"}})
    check(len(r) == 0 and r.allowed == 0 and r.message == "no entry passes the filter",
          "a filter that keeps nothing")
    r = c.recall("scoped", "secret papaya", min_score=2.0)
    check(len(r) == 0 and r.below_min_score > 0 and "min-score" in r.message, "min_score")
    e = c.entries("scoped", 0, 1000, where={"role": "assistant", "since": 1700000000000 + 100000})
    check(len(e) == 25 and all(x.scope["agent"] == "green" and x.role == "assistant" for x in e),
          "entries: role and since")
    check(c.entries("scoped", 0, 1)[0].meta == {"n": "0"}, "entries: metadata")
    raises(hsamem.InvalidArgument, c.recall, "scoped", "x", where={"scope": {"a b": "c"}})
    raises(hsamem.InvalidArgument, c.append, "scoped", "x", scope="agent=a,agent=b")
    check(c.entries("scoped", 0, 1).total == 150, "a refused append stores nothing")
    c.delete("scoped")


def main():
    test_default_search()
    with hsamem.Client(timeout=60) as c:
        test_backup_compact(c)
        test_reencode(c)
        test_ask(c)
        test_text(c)
        test_client_memory(c)
        test_transfer(c)
        test_forget(c)
        test_forget_where(c)
        test_errors_and_delete(c)
        test_threads(c)
        test_scopes(c)
    if failures:
        print("test_python: %d failures" % failures)
        return 1
    print("test_python: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
