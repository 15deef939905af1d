"""hsamem.results: what the requests of a Client return: plain Python objects (dataclasses,
lists, str, bytes, array.array), and their conversion from the C results of libhsamem.

A C result is copied out whole by the functions at the end of this module, then freed by the
caller: nothing returned refers to the library's memory.
"""

import array
import ctypes
import dataclasses
from dataclasses import dataclass, field
from typing import List, Optional, Tuple

from ._capi import _DTYPE_NAMES, _ROLE_NAMES, _STATS_COUNTERS, _WEIGHTING_NAMES, _s


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
    """One entry of a memory. role is "user", "assistant", "system", "tool" or "other". scope and
    meta: its scope and metadata, as Client.entries and Client.recall read them (the entries of
    a query's Hit leave them empty)."""
    seq: int
    role: str
    timestamp_ms: int
    first_token: int
    n_tokens: int
    text: str
    tags: List[str] = field(default_factory=list)
    scope: dict = field(default_factory=dict)  # e.g. {"agent": "planner", "session": "42"}
    meta: dict = field(default_factory=dict)


@dataclass
class Hit:
    """One chunk a query selected: its landmark score (in a lexical memory, its exact BM25 score:
    hsamem(7), ENCODERS), fusion weight, text, the entries it covers
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
    rank_score: float = 0.0
    lexical_score: Optional[float] = None


class Hits(list):
    """The hits of a query, best first (a list of Hit), with chunks (chunks searched) and k (the
    k used)."""

    def __init__(self, hits=(), chunks=0, k=0, mode=""):
        super().__init__(hits)
        self.chunks = chunks
        self.k = k
        self.mode = mode


@dataclass
class EntryHit:
    """One entry of the entry view of a recall (hsamem(7), ENTRY RECALL): the entry, its score
    (the HSA evidence on its tokens: the selected chunks' weights times their attention on them),
    the selected chunks that hold it, and context=True for an entry shown around a hit."""
    entry: Entry
    score: float
    chunks: List[int]
    context: bool = False


class Recall(list):
    """The entries that answer a recall, best first (a list of EntryHit, each hit followed by its
    context), with chunks (searched), k, allowed (chunks the filter kept; None without a filter),
    below_min_score (entries dropped by min_score) and message (why the list is empty, or "")."""

    def __init__(self, hits=(), chunks=0, k=0, allowed=None, below_min_score=0):
        super().__init__(hits)
        self.chunks = chunks
        self.k = k
        self.allowed = allowed
        self.below_min_score = below_min_score
        if hits:
            self.message = ""
        elif allowed == 0:
            self.message = "no entry passes the filter"
        elif below_min_score:
            self.message = "no entry scored above min-score"
        else:
            self.message = "no entry found"


@dataclass
class Answer:
    """EXPERIMENTAL. The answer of an ask (Client.ask): its text, its token ids, and the chunks it
    drew on most (Hit, most weight first; weight is the chunk's HSA fusion weight summed over the
    positions the answer was predicted from, score is 0). experimental: True while the model's
    answers are not reliable; complete: the model ended the answer (False: it reached
    max_tokens); searched: sealed chunks ranked at every position; encoder: the model."""
    text: str
    tokens: List[int]
    chunks: List[Hit]
    experimental: bool
    complete: bool
    positions: int
    searched: int
    encoder: str

    def __str__(self):
        return self.text


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
    text_bytes: int = 0  # the entries' text: store_map_used / text_bytes, the store against it

    def as_dict(self):
        return dataclasses.asdict(self)


@dataclass
class BackupInfo:
    """What a backup wrote: the copy's data.mdb (bytes) and how long it took (ms)."""
    bytes: int
    ms: int


@dataclass
class CompactInfo:
    """What a compaction did: data.mdb before and after (bytes), how long it took and how
    long of it every other request waited (ms)."""
    bytes_before: int
    bytes_after: int
    ms: int
    pause_ms: int


@dataclass
class DeleteInfo:
    """What a delete removed."""
    entries: int
    chunks: int


@dataclass
class ForgetInfo:
    """What a forget did: entries forgotten now, sealed chunks encoded again without them."""
    entries: int
    chunks: int


@dataclass
class UpdateInfo:
    """What an update did: the new entry, the one it replaces, whether that one was forgotten."""
    seq: int
    replaces: int
    forgotten: bool


@dataclass
class HistoryItem:
    """One entry of a chain of updates: the Entry (text "" when forgotten), whether it was
    forgotten, and the entries it replaces and was replaced by (None: none)."""
    entry: "Entry"
    forgotten: bool
    replaces: Optional[int]
    replaced_by: Optional[int]


@dataclass
class Reencode:
    """Where a re-encode stands after a step (Client.reencode_step), or how it ended."""
    done: bool
    switched: bool
    entries_done: int
    entries_total: int
    chunks_done: int
    chunks_total: int
    tokens_done: int
    tokens_total: int
    chunks: int
    tokens: int
    encoder: str
    revision: int


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


def _kv(arr, n):
    out = {}
    for i in range(n):
        k, _, v = _s(arr[i]).partition("=")
        out[k] = v
    return out


def _entry(c, attrs=None):
    e = Entry(c.seq, _ROLE_NAMES.get(c.role, "other"), c.timestamp_ms, c.first_token,
              c.n_tokens, _s(c.text), [_s(c.tags[i]) for i in range(c.n_tags)])
    if attrs is not None:
        e.scope = _kv(attrs.scope, attrs.n_scope)
        e.meta = _kv(attrs.meta, attrs.n_meta)
    return e


def _entry_hit(c):
    return EntryHit(_entry(c.entry, c.attrs), c.score, [c.chunks[i] for i in range(c.n_chunks)],
                    bool(c.context))


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
                 memories=[_memory(c.memories[i]) for i in range(c.n_memories)],
                 text_bytes=c.text_bytes)

def _ranked(hit, r):
    hit.rank_score = r.rank_score
    hit.lexical_score = r.lexical_score if r.has_lexical else None
    return hit
