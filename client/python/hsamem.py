"""hsamem: the Python client of hsamemd, the persistent memory daemon for Hierarchical Sparse
Attention (HSA).

This module wraps libhsamem, the C client library, with ctypes; it needs nothing beyond the
Python 3 standard library. Every method is one synchronous request to the daemon, exactly as the
function of the same name in hsamem.h, which documents what each request does.

    import hsamem

    with hsamem.Client() as mem:                   # $HSAMEM_SOCKET, else the default socket
        mem.append("alice", "Alice's cat is named Whiskers.")
        for hit in mem.query("alice", "what is the cat called?", k=3):
            print(hit.score, hit.text)

Finding libhsamem: the first of $HSAMEM_LIBRARY (a path), the library of a build next to this
file (../../.libs in the source tree) or of an installation next to it ($prefix/lib when this file
is $prefix/share/hsamem/python/hsamem.py), then ctypes.util.find_library("hsamem"). Call
load_library(path) before the first Client to name one explicitly.

Results are plain Python objects (dataclasses, lists, str, bytes, array.array): the C results are
copied out and freed at once, so nothing returned refers to the library's memory.

Errors raise HsamemError, or one of its subclasses for hsamem's own codes (NoSuchUser, BadName,
AlreadyExists, ...; see ERRORS). e.code is the library's negative code, e.message the daemon's
explanation (or the library's), e.errno the errno value for system errors (ETIMEDOUT, ...).

Threads: a Client is one connection; its methods may be called from several threads, a lock
serializes them. For parallel requests, open a Client per thread.
"""

import array
import ctypes
import ctypes.util
import dataclasses
import errno as _errno
import io
import math
import os
import sys
import threading
from dataclasses import dataclass, field
from typing import List, Optional, Tuple

__all__ = [
    "Client", "load_library", "library_version", "default_url",
    "Server", "Spec", "Memory", "AppendInfo", "FlushInfo", "Entry", "Hit", "Hits",
    "AttendResult", "Chunk", "ChunkList", "EntryList", "Histogram", "Stats", "DeleteInfo",
    "Transfer", "ROLES", "DTYPES", "WEIGHTINGS", "ERRORS",
    "HsamemError", "ProtocolError", "VersionError", "InvalidArgument", "NoSuchUser",
    "AlreadyExists", "SpecMismatch", "TooBig", "BadName", "StoreError", "FormatError", "Busy",
    "ConnectError", "BackendError", "EncoderUnavailable", "NotSupported", "ImportStreamError",
    "StoreFull", "InternalError", "Timeout",
]

# ---- errors ----


class HsamemError(Exception):
    """An error of libhsamem or of the daemon.

    code: the negative error code (hsamem.h); message: the sentence that explains it; errno: for
    a code between -1 and -999 (a negated errno value), that errno value, else None.
    """

    def __init__(self, code, message=None):
        self.code = code
        self.message = message or _strerror(code)
        self.errno = -code if -1000 < code < 0 else None
        super().__init__(code, self.message)

    def __str__(self):
        return self.message


class ProtocolError(HsamemError):
    """HSAMEM_EPROTO: a message could not be decoded or is inconsistent."""


class VersionError(HsamemError):
    """HSAMEM_EVERSION: the daemon speaks another protocol version."""


class InvalidArgument(HsamemError):
    """HSAMEM_EINVAL: an argument is out of range or malformed; the message names it."""


class NoSuchUser(HsamemError):
    """HSAMEM_ENOUSER: the user has no memory."""


class AlreadyExists(HsamemError):
    """HSAMEM_EEXIST: the user already has a memory (create, import)."""


class SpecMismatch(HsamemError):
    """HSAMEM_ESPEC: the request does not fit the memory's spec (a size, type or count)."""


class TooBig(HsamemError):
    """HSAMEM_ETOOBIG: a message, field or count is larger than the daemon accepts."""


class BadName(HsamemError):
    """HSAMEM_EBADNAME: the user name is not valid (1 to 64 bytes of [A-Za-z0-9_.@:-])."""


class StoreError(HsamemError):
    """HSAMEM_ESTORE: the daemon's store failed; nothing was written."""


class FormatError(HsamemError):
    """HSAMEM_EFORMAT: the store is of another format version, or a record is corrupt."""


class Busy(HsamemError):
    """HSAMEM_EBUSY: the daemon is shutting down or overloaded; retry later."""


class ConnectError(HsamemError):
    """HSAMEM_ECONNECT: the daemon could not be reached; the next request tries again."""


class BackendError(HsamemError):
    """HSAMEM_EBACKEND: the daemon's compute backend failed."""


class EncoderUnavailable(HsamemError):
    """HSAMEM_EENCODER: the memory's encoder is not available in this daemon."""


class NotSupported(HsamemError):
    """HSAMEM_ENOTSUP: the operation does not apply to this memory (a text query on a client
    memory: use attend)."""


class ImportStreamError(HsamemError):
    """HSAMEM_EIMPORT: an export stream is malformed, truncated or of an unknown version."""


class StoreFull(HsamemError):
    """HSAMEM_EFULL: the store's map reached its configured maximum size."""


class InternalError(HsamemError):
    """HSAMEM_EINTERNAL: an internal invariant failed (a bug); the daemon log has details."""


class Timeout(HsamemError):
    """-ETIMEDOUT: no reply within the client's timeout. The request may or may not have been
    carried out."""


#: hsamem's own codes (and -ETIMEDOUT) and the exception class raised for each.
ERRORS = {
    -1001: ProtocolError, -1002: VersionError, -1003: InvalidArgument, -1004: NoSuchUser,
    -1005: AlreadyExists, -1006: SpecMismatch, -1007: TooBig, -1008: BadName, -1009: StoreError,
    -1010: FormatError, -1011: Busy, -1012: ConnectError, -1013: BackendError,
    -1014: EncoderUnavailable, -1015: NotSupported, -1016: ImportStreamError, -1017: StoreFull,
    -1018: InternalError, -_errno.ETIMEDOUT: Timeout,
}

#: Names of the enumerations of hsamem.h, by value.
ROLES = {"other": 0, "user": 1, "assistant": 2, "system": 3, "tool": 4}
DTYPES = {"f16": 1, "bf16": 2, "f32": 3}
WEIGHTINGS = {"softmax": 1, "stickbreak": 2}
_ROLE_NAMES = {v: k for k, v in ROLES.items()}
_DTYPE_NAMES = {v: k for k, v in DTYPES.items()}
_WEIGHTING_NAMES = {v: k for k, v in WEIGHTINGS.items()}

# ---- the C structs of hsamem.h ----

_u32, _u64, _i64, _sz = ctypes.c_uint32, ctypes.c_uint64, ctypes.c_int64, ctypes.c_size_t
_cstr, _bool, _f32, _f64 = ctypes.c_char_p, ctypes.c_bool, ctypes.c_float, ctypes.c_double
_P = ctypes.POINTER
_enum = ctypes.c_int


class _CSpec(ctypes.Structure):
    _fields_ = [("encoder", _cstr), ("revision", _u32), ("tokenizer", _cstr),
                ("chunk_size", _u32), ("h_kv", _u32), ("d_h", _u32), ("h_q", _u32),
                ("d_r", _u32), ("dtype", _enum), ("weighting", _enum), ("off_by_one", _bool),
                ("top_k", _u32)]


_SPEC_FIELDS = frozenset(f[0] for f in _CSpec._fields_)


class _CMemory(ctypes.Structure):
    _fields_ = [("user", _cstr), ("spec", _CSpec), ("entries", _u64), ("tokens", _u64),
                ("chunks", _u64), ("tail_tokens", _u32), ("bytes", _u64), ("created_ms", _i64),
                ("updated_ms", _i64)]


class _CServer(ctypes.Structure):
    _fields_ = [("server_version", _cstr), ("protocol_version", _u32), ("backend", _cstr),
                ("uptime_ms", _u64)]


class _CEntryIn(ctypes.Structure):
    _fields_ = [("text", _cstr), ("tokens", _P(_u32)), ("n_tokens", _sz), ("role", _enum),
                ("timestamp_ms", _i64), ("tags", _P(_cstr)), ("n_tags", _sz)]


class _CChunkIn(ctypes.Structure):
    _fields_ = [("k", ctypes.c_void_p), ("k_size", _sz), ("v", ctypes.c_void_p), ("v_size", _sz),
                ("landmark", ctypes.c_void_p), ("landmark_size", _sz)]


class _CAppendInfo(ctypes.Structure):
    _fields_ = [("first_seq", _u64), ("count", _u32), ("tokens", _u64), ("chunks", _u64),
                ("sealed", _u32), ("created", _bool)]


class _CFlushInfo(ctypes.Structure):
    _fields_ = [("chunks", _u64), ("sealed", _bool)]


class _CQuery(ctypes.Structure):
    _fields_ = [("text", _cstr), ("tokens", _P(_u32)), ("n_tokens", _sz), ("top_k", _u32),
                ("max_entries", _u32), ("no_tail", _bool)]


class _CEntry(ctypes.Structure):
    _fields_ = [("seq", _u64), ("role", _enum), ("timestamp_ms", _i64), ("first_token", _u64),
                ("n_tokens", _u32), ("text", _cstr), ("tags", _P(_cstr)), ("n_tags", _sz)]


class _CTokenWeight(ctypes.Structure):
    _fields_ = [("index", _u32), ("id", _u32), ("text", _cstr), ("weight", _f32)]


class _CHit(ctypes.Structure):
    _fields_ = [("chunk", _u64), ("tail", _bool), ("score", _f32), ("weight", _f32),
                ("n_tokens", _u32), ("text", _cstr), ("entries", _P(_CEntry)),
                ("n_entries", _sz), ("top_tokens", _P(_CTokenWeight)), ("n_top_tokens", _sz)]


class _CQueryResult(ctypes.Structure):
    _fields_ = [("hits", _P(_CHit)), ("n_hits", _sz), ("chunks", _u64), ("k", _u32)]


class _CAttend(ctypes.Structure):
    _fields_ = [("n", _u32), ("qr", _P(_f32)), ("qr_len", _sz), ("qa", _P(_f32)),
                ("qa_len", _sz), ("positions", _P(_u64)), ("top_k", _u32),
                ("want_attention", _bool)]


class _CAttendResult(ctypes.Structure):
    _fields_ = [("n", _u32), ("k", _u32), ("h_kv", _u32), ("output", _P(_f32)),
                ("output_len", _sz), ("selected", _P(_i64)), ("weights", _P(_f32)),
                ("scores", _P(_f32)), ("selected_len", _sz), ("attention", _P(_f32)),
                ("attention_len", _sz)]


class _CEntryList(ctypes.Structure):
    _fields_ = [("entries", _P(_CEntry)), ("n_entries", _sz), ("total", _u64)]


class _CChunk(ctypes.Structure):
    _fields_ = [("index", _u64), ("tokens", _P(_u32)), ("n_tokens", _sz), ("n_real", _u32),
                ("text", _cstr), ("first_entry", _u64), ("last_entry", _u64),
                ("k", ctypes.c_void_p), ("k_size", _sz), ("v", ctypes.c_void_p), ("v_size", _sz),
                ("landmark", ctypes.c_void_p), ("landmark_size", _sz)]


class _CChunkList(ctypes.Structure):
    _fields_ = [("chunks", _P(_CChunk)), ("n_chunks", _sz), ("total", _u64)]


class _CUserList(ctypes.Structure):
    _fields_ = [("users", _P(_CMemory)), ("n_users", _sz)]


class _CHistogram(ctypes.Structure):
    _fields_ = [("name", _cstr), ("bounds_ms", _P(_f64)), ("n_bounds", _sz),
                ("counts", _P(_u64)), ("total", _u64), ("p50_ms", _f64), ("p99_ms", _f64)]


_STATS_COUNTERS = ["users", "tokens", "chunks", "store_map_size", "store_map_used", "backend",
                   "gpu_mem_used", "gpu_mem_budget", "gpu_resident_users", "landmark_hits",
                   "landmark_misses", "chunk_hits", "chunk_misses", "requests", "errors",
                   "commits", "committed_appends", "uptime_ms"]


class _CStats(ctypes.Structure):
    _fields_ = ([(n, _cstr if n == "backend" else _u64) for n in _STATS_COUNTERS] +
                [("latency", _P(_CHistogram)), ("n_latency", _sz),
                 ("memories", _P(_CMemory)), ("n_memories", _sz)])


class _CDeleteInfo(ctypes.Structure):
    _fields_ = [("entries", _u64), ("chunks", _u64)]


class _CTransfer(ctypes.Structure):
    _fields_ = [("records", _u64), ("bytes", _u64), ("entries", _u64), ("chunks", _u64),
                ("requests", _u32)]


_WRITE_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, _sz)
_READ_FN = ctypes.CFUNCTYPE(ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p, _sz)

# ---- the library ----

_lib = None
_lib_lock = threading.Lock()
_URL_MAX = 4200

_PROTOTYPES = {
    "hsamem_strerror": (_cstr, [ctypes.c_int]),
    "hsamem_version": (_cstr, []),
    "hsamem_default_url": (ctypes.c_int, [ctypes.c_char_p, _sz]),
    "hsamem_open": (ctypes.c_int, [_cstr, _P(ctypes.c_void_p)]),
    "hsamem_close": (None, [ctypes.c_void_p]),
    "hsamem_set_timeout": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_int]),
    "hsamem_url": (_cstr, [ctypes.c_void_p]),
    "hsamem_last_message": (_cstr, [ctypes.c_void_p]),
    "hsamem_result_free": (None, [ctypes.c_void_p]),
    "hsamem_ping": (ctypes.c_int, [ctypes.c_void_p, _P(_P(_CServer))]),
    "hsamem_create": (ctypes.c_int, [ctypes.c_void_p, _cstr, _P(_CSpec), _P(_P(_CMemory))]),
    "hsamem_append": (ctypes.c_int, [ctypes.c_void_p, _cstr, _P(_CEntryIn), _sz, _P(_CChunkIn),
                                     _sz, ctypes.c_uint, _P(_CAppendInfo)]),
    "hsamem_flush": (ctypes.c_int, [ctypes.c_void_p, _cstr, _P(_CChunkIn), _P(_CFlushInfo)]),
    "hsamem_query": (ctypes.c_int, [ctypes.c_void_p, _cstr, _P(_CQuery),
                                    _P(_P(_CQueryResult))]),
    "hsamem_attend": (ctypes.c_int, [ctypes.c_void_p, _cstr, _P(_CAttend),
                                     _P(_P(_CAttendResult))]),
    "hsamem_entries": (ctypes.c_int, [ctypes.c_void_p, _cstr, _u64, _u32,
                                      _P(_P(_CEntryList))]),
    "hsamem_chunks": (ctypes.c_int, [ctypes.c_void_p, _cstr, _u64, _u32, ctypes.c_uint,
                                     _P(_P(_CChunkList))]),
    "hsamem_users": (ctypes.c_int, [ctypes.c_void_p, _P(_P(_CUserList))]),
    "hsamem_stats": (ctypes.c_int, [ctypes.c_void_p, _cstr, _P(_P(_CStats))]),
    "hsamem_delete": (ctypes.c_int, [ctypes.c_void_p, _cstr, _P(_CDeleteInfo)]),
    "hsamem_export": (ctypes.c_int, [ctypes.c_void_p, _cstr, ctypes.c_int, _P(_CTransfer)]),
    "hsamem_import": (ctypes.c_int, [ctypes.c_void_p, _cstr, ctypes.c_int, _P(_CTransfer)]),
    "hsamem_export_cb": (ctypes.c_int, [ctypes.c_void_p, _cstr, _WRITE_FN, ctypes.c_void_p,
                                        _P(_CTransfer)]),
    "hsamem_import_cb": (ctypes.c_int, [ctypes.c_void_p, _cstr, _READ_FN, ctypes.c_void_p,
                                        _P(_CTransfer)]),
}


def _candidates():
    env = os.environ.get("HSAMEM_LIBRARY")
    if env:
        yield env
        return
    here = os.path.dirname(os.path.abspath(__file__))
    dirs = []
    top = os.environ.get("HSAMEM_TOP_BUILDDIR")
    if top:
        dirs.append(os.path.join(top, ".libs"))
    dirs.append(os.path.join(here, "..", "..", ".libs"))   # the source tree, built in place
    dirs.append(os.path.join(here, "..", "..", "..", "lib"))  # $prefix/share/hsamem/python
    for d in dirs:
        for name in ("libhsamem.so", "libhsamem.so.1"):
            p = os.path.normpath(os.path.join(d, name))
            if os.path.exists(p):
                yield p
    found = ctypes.util.find_library("hsamem")
    if found:
        yield found
    yield "libhsamem.so.1"


def load_library(path=None):
    """Loads libhsamem (once) and returns the ctypes.CDLL.

    path: the library to load; None searches as the module's documentation says. A later call
    returns the library already loaded, whatever its path. Raises OSError when none loads.
    """
    global _lib
    with _lib_lock:
        if _lib is not None:
            return _lib
        errors = []
        for p in ([path] if path else _candidates()):
            try:
                lib = ctypes.CDLL(p)
                break
            except OSError as e:
                errors.append(str(e))
        else:
            raise OSError("hsamem: libhsamem not found (set HSAMEM_LIBRARY to its path): " +
                          "; ".join(errors))
        for name, (res, args) in _PROTOTYPES.items():
            fn = getattr(lib, name)
            fn.restype = res
            fn.argtypes = args
        _lib = lib
        return lib


def _strerror(code):
    try:
        return load_library().hsamem_strerror(code).decode("utf-8", "replace")
    except OSError:
        return "error %d" % code


def library_version():
    """The version of libhsamem, e.g. "0.1.0"."""
    return load_library().hsamem_version().decode()


def default_url():
    """The daemon's default address by the library's rule (RUNTIME_DIRECTORY, XDG_RUNTIME_DIR,
    else ipc:///tmp/hsamemd.sock). Client() uses $HSAMEM_SOCKET first, then this."""
    buf = ctypes.create_string_buffer(_URL_MAX)
    err = load_library().hsamem_default_url(buf, _URL_MAX)
    if err:
        raise HsamemError(err)
    return buf.value.decode()


# ---- results ----


def _s(b):
    return b.decode("utf-8", "replace") if b is not None else ""


def _array(typecode, ptr, n, itemsize):
    a = array.array(typecode)
    if n and ptr:
        a.frombytes(ctypes.string_at(ptr, n * itemsize))
    return a


def _blob(ptr, size):
    return ctypes.string_at(ptr, size) if ptr and size else None


@dataclass
class Server:
    """What ping() learns about the daemon."""
    server_version: str
    protocol_version: int
    backend: str
    uptime_ms: int


@dataclass
class Spec:
    """A memory's spec (hsamem.h, struct hsamem_spec). dtype and weighting are names ("f16",
    "softmax"; None for a value this module does not know)."""
    encoder: str
    revision: int
    tokenizer: str
    chunk_size: int
    h_kv: int
    d_h: int
    h_q: int
    d_r: int
    dtype: Optional[str]
    weighting: Optional[str]
    off_by_one: bool
    top_k: int


@dataclass
class Memory:
    """A memory as the daemon describes it (create, users, stats). Times are Unix ms."""
    user: str
    spec: Spec
    entries: int
    tokens: int
    chunks: int
    tail_tokens: int
    bytes: int
    created_ms: int
    updated_ms: int


@dataclass
class AppendInfo:
    """What an append did: the entries are numbered first_seq .. first_seq + count - 1."""
    first_seq: int
    count: int
    tokens: int
    chunks: int
    sealed: int
    created: bool


@dataclass
class FlushInfo:
    """What a flush did: sealed chunks after it, and whether it sealed the tail."""
    chunks: int
    sealed: bool


@dataclass
class Entry:
    """One entry of a memory. role is "user", "assistant", "system", "tool" or "other"."""
    seq: int
    role: str
    timestamp_ms: int
    first_token: int
    n_tokens: int
    text: str
    tags: List[str] = field(default_factory=list)


@dataclass
class Hit:
    """One chunk a query selected: its landmark score, fusion weight, text, the entries it covers
    and the tokens its in-chunk attention weighs most, as (text, weight), heaviest first. tail:
    the hit is the unsealed tail (then chunk is the number of sealed chunks)."""
    chunk: int
    tail: bool
    score: float
    weight: float
    n_tokens: int
    text: str
    entries: List[Entry] = field(default_factory=list)
    top_tokens: List[Tuple[str, float]] = field(default_factory=list)


class Hits(list):
    """The hits of a query, best first (a list of Hit), with chunks (chunks searched) and k (the
    k used)."""

    def __init__(self, hits=(), chunks=0, k=0):
        super().__init__(hits)
        self.chunks = chunks
        self.k = k


class EntryList(list):
    """A range of entries (a list of Entry), with total: the entries in the memory."""

    def __init__(self, entries=(), total=0):
        super().__init__(entries)
        self.total = total


@dataclass
class Chunk:
    """One sealed chunk: its S token ids (padding included), n_real tokens before the padding,
    its text, the entries it covers, and with tensors=True its K, V and landmark as little-endian
    bytes in the memory's dtype (k and v [S][h_kv][d_h], landmark [d_r]), else None."""
    index: int
    tokens: List[int]
    n_real: int
    text: str
    first_entry: int
    last_entry: int
    k: Optional[bytes] = None
    v: Optional[bytes] = None
    landmark: Optional[bytes] = None


class ChunkList(list):
    """A range of chunks (a list of Chunk), with total: the sealed chunks in the memory."""

    def __init__(self, chunks=(), total=0):
        super().__init__(chunks)
        self.total = total


@dataclass
class AttendResult:
    """What attend() returns; flat, row-major arrays in the shapes given.

    output: array('f') [n][h_q][d_h], the fused output; selected: array('q') [n][h_kv][k],
    chunk indices (-1 where fewer were visible); weights and scores: array('f') [n][h_kv][k];
    attention: array('f') [n][h_q][k][S] with want_attention, else None.
    """
    n: int
    k: int
    h_kv: int
    output: array.array
    selected: array.array
    weights: array.array
    scores: array.array
    attention: Optional[array.array] = None


@dataclass
class Histogram:
    """A latency histogram: counts has len(bounds_ms) + 1 buckets, the last past the last
    bound."""
    name: str
    bounds_ms: List[float] = field(repr=False)
    counts: List[int] = field(repr=False)
    total: int
    p50_ms: float
    p99_ms: float


@dataclass
class Stats:
    """The daemon's counters (0 where the daemon fills none), its latency histograms, and the
    memory asked for, or every memory. as_dict() gives it all as plain dicts and lists."""
    users: int
    tokens: int
    chunks: int
    store_map_size: int
    store_map_used: int
    backend: str
    gpu_mem_used: int
    gpu_mem_budget: int
    gpu_resident_users: int
    landmark_hits: int
    landmark_misses: int
    chunk_hits: int
    chunk_misses: int
    requests: int
    errors: int
    commits: int
    committed_appends: int
    uptime_ms: int
    latency: List[Histogram] = field(default_factory=list, repr=False)
    memories: List[Memory] = field(default_factory=list)

    def as_dict(self):
        return dataclasses.asdict(self)


@dataclass
class DeleteInfo:
    """What a delete removed."""
    entries: int
    chunks: int


@dataclass
class Transfer:
    """Totals of an export or import."""
    records: int
    bytes: int
    entries: int
    chunks: int
    requests: int


def _spec(c):
    return Spec(_s(c.encoder), c.revision, _s(c.tokenizer), c.chunk_size, c.h_kv, c.d_h, c.h_q,
                c.d_r, _DTYPE_NAMES.get(c.dtype), _WEIGHTING_NAMES.get(c.weighting),
                bool(c.off_by_one), c.top_k)


def _memory(c):
    return Memory(_s(c.user), _spec(c.spec), c.entries, c.tokens, c.chunks, c.tail_tokens,
                  c.bytes, c.created_ms, c.updated_ms)


def _entry(c):
    return Entry(c.seq, _ROLE_NAMES.get(c.role, "other"), c.timestamp_ms, c.first_token,
                 c.n_tokens, _s(c.text), [_s(c.tags[i]) for i in range(c.n_tags)])


def _hit(c):
    return Hit(c.chunk, bool(c.tail), c.score, c.weight, c.n_tokens, _s(c.text),
               [_entry(c.entries[i]) for i in range(c.n_entries)],
               [(_s(c.top_tokens[i].text), c.top_tokens[i].weight)
                for i in range(c.n_top_tokens)])


def _chunk(c):
    return Chunk(c.index, list(c.tokens[:c.n_tokens]) if c.n_tokens else [], c.n_real,
                 _s(c.text), c.first_entry, c.last_entry, _blob(c.k, c.k_size),
                 _blob(c.v, c.v_size), _blob(c.landmark, c.landmark_size))


def _histogram(c):
    return Histogram(_s(c.name), list(c.bounds_ms[:c.n_bounds]) if c.n_bounds else [],
                     list(c.counts[:c.n_bounds + 1]) if c.counts else [], c.total, c.p50_ms,
                     c.p99_ms)


def _stats(c):
    vals = [(_s(getattr(c, n)) if n == "backend" else getattr(c, n)) for n in _STATS_COUNTERS]
    return Stats(*vals, latency=[_histogram(c.latency[i]) for i in range(c.n_latency)],
                 memories=[_memory(c.memories[i]) for i in range(c.n_memories)])


# ---- arguments ----


def _b(s, what="text"):
    if s is None:
        return None
    b = s.encode("utf-8") if isinstance(s, str) else bytes(s)
    if b"\0" in b:
        raise ValueError("hsamem: %s contains a NUL character" % what)
    return b


def _user(user):
    if not isinstance(user, str):
        raise TypeError("hsamem: a user name is a str")
    b = user.encode("utf-8")
    if b"\0" in b:
        raise BadName(-1008, "user name contains a NUL character")
    return b


def _enum_value(names, value, what):
    if value is None:
        return 0
    if isinstance(value, str):
        try:
            return names[value]
        except KeyError:
            raise ValueError("hsamem: %s is one of %s, not %r" %
                             (what, ", ".join(names), value)) from None
    return int(value)


def _u32_array(seq):
    if seq is None:
        return None, 0
    seq = list(seq)
    return (_u32 * len(seq))(*seq), len(seq)


def _floats(obj, what):
    """Any float sequence or buffer as an array('f'): a float32 buffer is copied as it is, a
    buffer of bytes is taken as host-order float32, other buffers and sequences (also nested)
    are converted element by element."""
    if isinstance(obj, array.array) and obj.typecode == "f":
        return obj
    try:
        m = memoryview(obj)
    except TypeError:
        return array.array("f", _flatten(obj))
    a = array.array("f")
    fmt = m.format
    if fmt.lstrip("@=<") == "f" or fmt in ("B", "b", "c"):
        if fmt.startswith("<") and sys.byteorder != "little":
            raise ValueError("hsamem: %s is little-endian float32 on a big-endian host" % what)
        if m.nbytes % 4:
            raise ValueError("hsamem: %s: %d bytes are not whole float32 values" %
                             (what, m.nbytes))
        a.frombytes(m.tobytes())
        return a
    a.extend(_flatten(m.tolist()))
    return a


def _flatten(obj):
    for x in obj:
        if isinstance(x, (int, float)):
            yield float(x)
        elif hasattr(x, "__iter__") and not isinstance(x, (str, bytes)):
            yield from _flatten(x)
        else:
            yield float(x)


def _tensor(x, what):
    if x is None:
        raise ValueError("hsamem: a chunk needs k, v and landmark (%s missing)" % what)
    b = x if isinstance(x, bytes) else memoryview(x).tobytes()
    return b


def _chunk_in(ch, keep):
    """A chunk's tensors from (k, v, landmark) or an object with .k, .v, .landmark (a Chunk read
    with tensors=True); each any bytes-like object."""
    if isinstance(ch, (tuple, list)):
        k, v, l = ch
    else:
        k, v, l = ch.k, ch.v, ch.landmark
    k, v, l = _tensor(k, "k"), _tensor(v, "v"), _tensor(l, "landmark")
    keep.extend((k, v, l))
    return _CChunkIn(_address(k), len(k), _address(v), len(v), _address(l), len(l))


def _address(b):
    """The address of a bytes object's contents (kept alive by the caller)."""
    return ctypes.cast(ctypes.c_char_p(b), ctypes.c_void_p)


def _chunks_in(chunks, keep):
    chunks = list(chunks or ())
    if not chunks:
        return None, 0
    arr = (_CChunkIn * len(chunks))()
    for i, ch in enumerate(chunks):
        arr[i] = _chunk_in(ch, keep)
    return arr, len(chunks)


def _entry_in(e, keep):
    if isinstance(e, str):
        e = {"text": e}
    elif not isinstance(e, dict):
        raise TypeError("hsamem: an entry is a str or a dict (text, tokens, role, tags, "
                        "timestamp_ms), not %s" % type(e).__name__)
    unknown = set(e) - {"text", "tokens", "role", "tags", "timestamp_ms"}
    if unknown:
        raise TypeError("hsamem: unknown entry field(s): %s" % ", ".join(sorted(unknown)))
    c = _CEntryIn()
    text = _b(e.get("text"))
    keep.append(text)
    c.text = text
    toks, n = _u32_array(e.get("tokens"))
    if toks is not None:
        keep.append(toks)
        c.tokens, c.n_tokens = toks, n
    c.role = _enum_value(ROLES, e.get("role", "user"), "role")
    c.timestamp_ms = int(e.get("timestamp_ms") or 0)
    tags = e.get("tags") or ()
    if isinstance(tags, str):
        tags = (tags,)
    if tags:
        tarr = (_cstr * len(tags))(*[_b(t, "a tag") for t in tags])
        keep.append(tarr)
        c.tags, c.n_tags = tarr, len(tags)
    return c


def _fileno(fileobj, reading):
    """The descriptor to hand to the library, or None where it must go through callbacks: an
    object without one (io.BytesIO), or a buffered, unseekable reader whose buffer may already
    hold part of the stream."""
    if isinstance(fileobj, int):
        return fileobj
    try:
        fd = fileobj.fileno()
    except (AttributeError, OSError, ValueError):
        return None
    if reading and not isinstance(fileobj, io.RawIOBase) and not fileobj.seekable():
        return None
    return fd


def _resync(fileobj, fd):
    """After the library moved fd's offset, makes a buffered file object agree with it: a seek
    to the end always drops the buffer and asks the OS, then a seek to the offset."""
    if isinstance(fileobj, int) or not fileobj.seekable():
        return
    pos = os.lseek(fd, 0, os.SEEK_CUR)
    fileobj.seek(0, os.SEEK_END)
    fileobj.seek(pos)


# ---- the client ----


class Client:
    """A connection to hsamemd.

    url: "ipc:///path" or "tcp://host:port"; None takes $HSAMEM_SOCKET when set, else the
    library's default (see default_url()). timeout: seconds each request waits for its reply;
    None keeps the library's 30 s, math.inf waits forever.

    Opening does not wait for the daemon: the first request connects (ConnectError when nothing
    listens); ping() checks. A Client is a context manager; close() (or leaving the with block)
    closes the connection. Its methods may be called from several threads: a lock serializes
    them.
    """

    def __init__(self, url=None, timeout=None):
        self._lib = load_library()
        self._lock = threading.Lock()
        self._h = ctypes.c_void_p()
        if url is None:
            url = os.environ.get("HSAMEM_SOCKET") or None
        err = self._lib.hsamem_open(_b(url, "the URL"), ctypes.byref(self._h))
        if err:
            raise ERRORS.get(err, HsamemError)(err, "%s: %s" % (url, _strerror(err)))
        if timeout is not None:
            self.set_timeout(timeout)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def __repr__(self):
        return "<hsamem.Client %s>" % (self.url if self._h else "closed")

    def close(self):
        """Closes the connection; the client may not be used afterwards. Idempotent."""
        with self._lock:
            if self._h:
                self._lib.hsamem_close(self._h)
                self._h = ctypes.c_void_p()

    @property
    def url(self):
        """The URL the client was opened with."""
        with self._lock:
            self._check()
            return _s(self._lib.hsamem_url(self._h))

    def set_timeout(self, seconds):
        """Sets how long each request waits for its reply, in seconds; math.inf: forever.
        Long imports or big appends may need more than the default 30 s."""
        ms = -1 if math.isinf(seconds) else int(round(seconds * 1000))
        if ms < -1 or (ms == -1 and not math.isinf(seconds)):
            raise ValueError("hsamem: a timeout is positive")
        with self._lock:
            self._check()
            self._raise(self._lib.hsamem_set_timeout(self._h, min(ms, 2**31 - 1)))

    # -- plumbing --

    def _check(self):
        if not self._h:
            raise ValueError("hsamem: the client is closed")

    def _raise(self, err):
        """Raises the exception for err (called with the lock held, before the next request
        replaces the last message)."""
        if err == 0:
            return
        msg = _s(self._lib.hsamem_last_message(self._h)) if self._h else ""
        raise ERRORS.get(err, HsamemError)(err, msg or _strerror(err))

    def _call(self, fn, convert, *args, out_type=None):
        """Calls a function that returns a heap result through its last argument: copies the
        result out with convert and frees it."""
        out = _P(out_type)()
        with self._lock:
            self._check()
            err = getattr(self._lib, fn)(self._h, *args, ctypes.byref(out))
            self._raise(err)
        try:
            return convert(out.contents)
        finally:
            self._lib.hsamem_result_free(out)

    def _info(self, fn, info_type, *args):
        """Calls a function that writes a small result into a caller's struct."""
        info = info_type()
        with self._lock:
            self._check()
            self._raise(getattr(self._lib, fn)(self._h, *args, ctypes.byref(info)))
        return info

    # -- requests --

    def ping(self):
        """Asks the daemon whether it is there: returns a Server. Raises ConnectError when no
        daemon listens at the URL."""
        return self._call("hsamem_ping", lambda c: Server(
            _s(c.server_version), c.protocol_version, _s(c.backend), c.uptime_ms),
            out_type=_CServer)

    def create(self, user, **spec):
        """Creates the memory of user and returns it (a Memory with its effective spec).

        spec: the fields of Spec to set (encoder="client", chunk_size, h_kv, d_h, h_q, d_r,
        dtype="f16"|"bf16"|"f32", weighting="softmax"|"stickbreak", off_by_one, top_k,
        tokenizer, revision); those left out take the encoder's defaults. Creating is optional
        for built-in encoders: the first append creates the memory with the defaults.
        Raises AlreadyExists, InvalidArgument, EncoderUnavailable.
        """
        c = _CSpec()
        keep = []
        for name, value in spec.items():
            if name not in _SPEC_FIELDS:
                raise TypeError("hsamem: create() got an unknown spec field %r" % name)
            if name in ("encoder", "tokenizer"):
                value = _b(value, name)
                keep.append(value)
            elif name == "dtype":
                value = _enum_value(DTYPES, value, "dtype")
            elif name == "weighting":
                value = _enum_value(WEIGHTINGS, value, "weighting")
            elif name == "off_by_one":
                value = bool(value)
            else:
                value = int(value or 0)
            setattr(c, name, value)
        return self._call("hsamem_create", _memory, _user(user), ctypes.byref(c),
                          out_type=_CMemory)

    def append(self, user, text=None, *, tokens=None, role="user", tags=(), timestamp_ms=0,
               chunks=(), create=True):
        """Appends one entry to user's memory, durably; returns an AppendInfo.

        text: the entry's text (built-in encoders tokenize it); tokens: token ids, for client
        memories (text is then kept for display). role: "user", "assistant", "system", "tool" or
        "other". tags: strings. timestamp_ms: the caller's clock (Unix ms); 0 takes the
        daemon's. chunks: for client memories, the tensors of exactly the chunks this append
        seals, each (k, v, landmark) as bytes-like objects in the memory's dtype (or a Chunk
        read with tensors=True). create=False raises NoSuchUser instead of creating the memory.
        """
        return self.append_many(user, [{"text": text, "tokens": tokens, "role": role,
                                        "tags": tags, "timestamp_ms": timestamp_ms}],
                                chunks=chunks, create=create)

    def append_many(self, user, entries, *, chunks=(), create=True):
        """Appends several entries as one atomic, durable step; returns an AppendInfo.

        entries: each a str (a "user" entry of that text) or a dict with the keywords of
        append() (text, tokens, role, tags, timestamp_ms). chunks and create as in append().
        Keep a call to a few MiB (TooBig otherwise): split big batches.
        """
        keep = []
        entries = list(entries)
        arr = (_CEntryIn * len(entries))()
        for i, e in enumerate(entries):
            arr[i] = _entry_in(e, keep)
        carr, nc = _chunks_in(chunks, keep)
        i = self._info("hsamem_append", _CAppendInfo, _user(user), arr, len(entries), carr, nc,
                       0 if create else 1)
        return AppendInfo(i.first_seq, i.count, i.tokens, i.chunks, i.sealed, bool(i.created))

    def flush(self, user, chunk=None):
        """Seals user's unsealed tail now, padded to S tokens, so that it is retrievable as a
        chunk; returns a FlushInfo. chunk: for a client memory with a non-empty tail, the padded
        chunk's (k, v, landmark). Raises NoSuchUser, SpecMismatch."""
        keep = []
        c = ctypes.byref(_chunk_in(chunk, keep)) if chunk is not None else None
        i = self._info("hsamem_flush", _CFlushInfo, _user(user), c)
        return FlushInfo(i.chunks, bool(i.sealed))

    def query(self, user, text=None, k=None, max_entries=None, include_tail=True, *,
              tokens=None):
        """Asks user's memory which chunks matter for text (or token ids): returns Hits, a list
        of Hit, best first. k: chunks to return (None: the memory's default); max_entries:
        covered entries per hit (None: 8); include_tail=False does not score the unsealed tail.
        Raises NoSuchUser, NotSupported (a client memory: use attend()), InvalidArgument."""
        q = _CQuery()
        q.text = t = _b(text)
        toks, n = _u32_array(tokens)
        if toks is not None:
            q.tokens, q.n_tokens = toks, n
        q.top_k = k or 0
        q.max_entries = max_entries or 0
        q.no_tail = not include_tail
        conv = lambda c: Hits([_hit(c.hits[i]) for i in range(c.n_hits)], c.chunks, c.k)
        res = self._call("hsamem_query", conv, _user(user), ctypes.byref(q),
                         out_type=_CQueryResult)
        del t, toks
        return res

    def attend(self, user, qr, qa, n, positions=None, k=None, want_attention=False):
        """Computes the HSA output of n query tokens against a client memory (HSA.md "The
        operator"); returns an AttendResult.

        qr: retrieval queries [n][h_kv][d_r/h_kv], qa: attention queries [n][h_q][d_h], as
        float32: an array('f'), any buffer of float32 (or of raw bytes, host order), or a
        (nested) sequence of numbers. positions: n stream positions (chunk j is visible to a
        token iff (j+1)*S <= its position; 0: after the whole stream), None: all 0. k: chunks
        per token and kv head (None: the memory's default). want_attention: also return the
        in-chunk attention. Raises NoSuchUser, SpecMismatch, InvalidArgument.
        """
        qr, qa = _floats(qr, "qr"), _floats(qa, "qa")
        a = _CAttend()
        a.n = n
        a.qr = (_f32 * len(qr)).from_buffer(qr) if len(qr) else None
        a.qr_len = len(qr)
        a.qa = (_f32 * len(qa)).from_buffer(qa) if len(qa) else None
        a.qa_len = len(qa)
        if positions is not None:
            if len(positions) != n:
                raise ValueError("hsamem: %d positions for %d query tokens" %
                                 (len(positions), n))
            a.positions = (_u64 * n)(*positions)
        a.top_k = k or 0
        a.want_attention = bool(want_attention)

        def conv(c):
            att = (_array("f", c.attention, c.attention_len, 4) if c.attention else None)
            return AttendResult(c.n, c.k, c.h_kv, _array("f", c.output, c.output_len, 4),
                                _array("q", c.selected, c.selected_len, 8),
                                _array("f", c.weights, c.selected_len, 4),
                                _array("f", c.scores, c.selected_len, 4), att)

        return self._call("hsamem_attend", conv, _user(user), ctypes.byref(a),
                          out_type=_CAttendResult)

    def entries(self, user, first=0, count=100):
        """Reads entries first .. first+count-1 of user's memory: an EntryList (a list of
        Entry, with .total). Past the end gives an empty list. Raises NoSuchUser, TooBig."""
        return self._call("hsamem_entries", lambda c: EntryList(
            [_entry(c.entries[i]) for i in range(c.n_entries)], c.total),
            _user(user), first, count, out_type=_CEntryList)

    def chunks(self, user, first=0, count=16, tensors=False):
        """Reads sealed chunks first .. first+count-1: a ChunkList (a list of Chunk, with
        .total); tensors=True includes K, V and landmark bytes. Raises NoSuchUser, TooBig."""
        return self._call("hsamem_chunks", lambda c: ChunkList(
            [_chunk(c.chunks[i]) for i in range(c.n_chunks)], c.total),
            _user(user), first, count, 1 if tensors else 0, out_type=_CChunkList)

    def users(self):
        """Every memory of the daemon, in name order: a list of Memory."""
        return self._call("hsamem_users",
                          lambda c: [_memory(c.users[i]) for i in range(c.n_users)],
                          out_type=_CUserList)

    def stats(self, user=None):
        """The daemon's statistics (a Stats), with the memory of user, or of every user when
        user is None. Stats.as_dict() gives a dict. Raises NoSuchUser."""
        return self._call("hsamem_stats", _stats, _user(user) if user is not None else None,
                          out_type=_CStats)

    def delete(self, user):
        """Deletes user's memory, everything of it, durably; no undo. Returns a DeleteInfo.
        Raises NoSuchUser."""
        i = self._info("hsamem_delete", _CDeleteInfo, _user(user))
        return DeleteInfo(i.entries, i.chunks)

    def export(self, user, fileobj):
        """Writes user's memory as an export stream to fileobj (a binary file, a file
        descriptor, or any object with write(), such as io.BytesIO); returns a Transfer.
        Raises NoSuchUser; an OSError of the file raises HsamemError with its errno."""
        fd = _fileno(fileobj, False)
        if fd is not None:
            if not isinstance(fileobj, int):
                fileobj.flush()
            try:
                t = self._info("hsamem_export", _CTransfer, _user(user), fd)
            finally:
                _resync(fileobj, fd)
        else:
            failure = []

            def write(_arg, buf, size):
                try:
                    fileobj.write(ctypes.string_at(buf, size))
                    return 0
                except BaseException as e:
                    failure.append(e)
                    return -(getattr(e, "errno", None) or _errno.EIO)

            cb = _WRITE_FN(write)
            try:
                t = self._info("hsamem_export_cb", _CTransfer, _user(user), cb, None)
            except HsamemError:
                if failure:
                    raise failure[0]
                raise
        return Transfer(t.records, t.bytes, t.entries, t.chunks, t.requests)

    def import_(self, user, fileobj):
        """Imports an export stream from fileobj (a binary file, a file descriptor, or any
        object with read(), such as io.BytesIO) as the memory of user, which must have none
        yet; returns a Transfer. The stream is read from the current position to the end. The
        memory appears complete or not at all.
        Raises AlreadyExists, ImportStreamError, SpecMismatch, EncoderUnavailable."""
        fd = _fileno(fileobj, True)
        if fd is not None:
            if not isinstance(fileobj, int) and fileobj.seekable():
                os.lseek(fd, fileobj.tell(), os.SEEK_SET)
            try:
                t = self._info("hsamem_import", _CTransfer, _user(user), fd)
            finally:
                _resync(fileobj, fd)
        else:
            failure = []

            def read(_arg, buf, size):
                try:
                    data = fileobj.read(size)
                    if not data:
                        return 0
                    ctypes.memmove(buf, data, len(data))
                    return len(data)
                except BaseException as e:
                    failure.append(e)
                    return -(getattr(e, "errno", None) or _errno.EIO)

            cb = _READ_FN(read)
            try:
                t = self._info("hsamem_import_cb", _CTransfer, _user(user), cb, None)
            except HsamemError:
                if failure:
                    raise failure[0]
                raise
        return Transfer(t.records, t.bytes, t.entries, t.chunks, t.requests)
