"""hsamem._capi: the binding of libhsamem: the C structs and enumerations of hsamem.h as ctypes
declares them, the prototypes of its functions, and the loading of the library.

Nothing here talks to a daemon or raises hsamem's own errors: this is the layer the other
modules of the package stand on. The structs must match hsamem.h field for field; a change there
is a change here.
"""

import ctypes
import ctypes.util
import os
import threading

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


class _CAttrs(ctypes.Structure):
    _fields_ = [("scope", _P(_cstr)), ("n_scope", _sz), ("meta", _P(_cstr)), ("n_meta", _sz)]


class _CFilter(ctypes.Structure):
    _fields_ = [("scope", _P(_cstr)), ("n_scope", _sz), ("roles", _P(_enum)), ("n_roles", _sz),
                ("has_since", _bool), ("since_ms", _i64), ("has_until", _bool),
                ("until_ms", _i64), ("tags", _P(_cstr)), ("n_tags", _sz), ("meta", _P(_cstr)),
                ("n_meta", _sz)]


class _CRecall(ctypes.Structure):
    _fields_ = [("filter", _P(_CFilter)), ("chunks_only", _bool), ("context", _u32),
                ("has_min_score", _bool), ("min_score", _f32), ("max_hits", _u32),
                ("mode", _cstr)]


class _CEntryHit(ctypes.Structure):
    _fields_ = [("entry", _CEntry), ("attrs", _CAttrs), ("score", _f32), ("context", _bool),
                ("chunks", _P(_u64)), ("n_chunks", _sz)]


class _CHitRank(ctypes.Structure):
    _fields_ = [("rank_score", ctypes.c_float), ("lexical_score", ctypes.c_float),
                ("has_lexical", _bool)]


class _CQueryResult(ctypes.Structure):
    _fields_ = [("hits", _P(_CHit)), ("n_hits", _sz), ("chunks", _u64), ("k", _u32),
                ("entry_hits", _P(_CEntryHit)), ("n_entry_hits", _sz), ("filtered", _bool),
                ("allowed", _u64), ("below_min_score", _u32), ("mode", _cstr),
                ("ranks", _P(_CHitRank))]


class _CAsk(ctypes.Structure):
    _fields_ = [("max_tokens", _u32), ("max_entries", _u32)]


class _CAskResult(ctypes.Structure):
    _fields_ = [("answer", _cstr), ("tokens", _P(_u32)), ("n_tokens", _sz),
                ("chunks", _P(_CHit)), ("n_chunks", _sz), ("experimental", _bool),
                ("complete", _bool), ("positions", _u32), ("searched", _u64),
                ("encoder", _cstr)]


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
    _fields_ = [("entries", _P(_CEntry)), ("n_entries", _sz), ("total", _u64),
                ("attrs", _P(_CAttrs))]


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
                 ("memories", _P(_CMemory)), ("n_memories", _sz), ("text_bytes", _u64)])


class _CDeleteInfo(ctypes.Structure):
    _fields_ = [("entries", _u64), ("chunks", _u64)]


class _CForgetInfo(ctypes.Structure):
    _fields_ = [("entries", _u64), ("chunks", _u64)]


class _CUpdateInfo(ctypes.Structure):
    _fields_ = [("seq", _u64), ("replaces", _u64), ("forgotten", _bool)]


class _CHistoryItem(ctypes.Structure):
    _fields_ = [("entry", _CEntry), ("forgotten", _bool), ("has_replaces", _bool),
                ("has_replaced_by", _bool), ("replaces", _u64), ("replaced_by", _u64)]


class _CHistory(ctypes.Structure):
    _fields_ = [("items", _P(_CHistoryItem)), ("n_items", _sz)]


class _CBackupInfo(ctypes.Structure):
    _fields_ = [("bytes", _u64), ("ms", _u64)]


class _CCompactInfo(ctypes.Structure):
    _fields_ = [("bytes_before", _u64), ("bytes_after", _u64), ("ms", _u64), ("pause_ms", _u64)]


class _CReencodeInfo(ctypes.Structure):
    _fields_ = [("done", ctypes.c_bool), ("switched", ctypes.c_bool),
                ("entries_done", _u64), ("entries_total", _u64), ("chunks_done", _u64),
                ("chunks_total", _u64), ("tokens_done", _u64), ("tokens_total", _u64),
                ("chunks", _u64), ("tokens", _u64), ("encoder", ctypes.c_char * 32),
                ("revision", _u32)]


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
    "hsamem_query_mode": (ctypes.c_int, [ctypes.c_void_p, _cstr, _P(_CQuery), _cstr,
                                         _P(_P(_CQueryResult))]),
    "hsamem_ask": (ctypes.c_int, [ctypes.c_void_p, _cstr, _cstr, _P(_CAsk), _P(_P(_CAskResult))]),
    "hsamem_attend": (ctypes.c_int, [ctypes.c_void_p, _cstr, _P(_CAttend),
                                     _P(_P(_CAttendResult))]),
    "hsamem_entries": (ctypes.c_int, [ctypes.c_void_p, _cstr, _u64, _u32,
                                      _P(_P(_CEntryList))]),
    "hsamem_chunks": (ctypes.c_int, [ctypes.c_void_p, _cstr, _u64, _u32, ctypes.c_uint,
                                     _P(_P(_CChunkList))]),
    "hsamem_users": (ctypes.c_int, [ctypes.c_void_p, _P(_P(_CUserList))]),
    "hsamem_stats": (ctypes.c_int, [ctypes.c_void_p, _cstr, _P(_P(_CStats))]),
    "hsamem_stats_prometheus": (ctypes.c_int, [ctypes.c_void_p, _cstr, _P(ctypes.c_void_p)]),
    "hsamem_delete": (ctypes.c_int, [ctypes.c_void_p, _cstr, _P(_CDeleteInfo)]),
    "hsamem_forget": (ctypes.c_int, [ctypes.c_void_p, _cstr, _u64, _u64, _P(_CForgetInfo)]),
    "hsamem_update": (ctypes.c_int, [ctypes.c_void_p, _cstr, _u64, _enum, _cstr, _bool,
                                     _P(_CUpdateInfo)]),
    "hsamem_history": (ctypes.c_int, [ctypes.c_void_p, _cstr, _u64, _P(_P(_CHistory))]),
    "hsamem_backup": (ctypes.c_int, [ctypes.c_void_p, _cstr, _P(_CBackupInfo)]),
    "hsamem_compact": (ctypes.c_int, [ctypes.c_void_p, _P(_CCompactInfo)]),
    "hsamem_reencode": (ctypes.c_int, [ctypes.c_void_p, _cstr, _cstr, _u32,
                                       _P(_CReencodeInfo)]),
    "hsamem_export": (ctypes.c_int, [ctypes.c_void_p, _cstr, ctypes.c_int, _P(_CTransfer)]),
    "hsamem_import": (ctypes.c_int, [ctypes.c_void_p, _cstr, ctypes.c_int, _P(_CTransfer)]),
    "hsamem_export_cb": (ctypes.c_int, [ctypes.c_void_p, _cstr, _WRITE_FN, ctypes.c_void_p,
                                        _P(_CTransfer)]),
    "hsamem_import_cb": (ctypes.c_int, [ctypes.c_void_p, _cstr, _READ_FN, ctypes.c_void_p,
                                        _P(_CTransfer)]),
    "hsamem_append_attrs": (ctypes.c_int, [ctypes.c_void_p, _cstr, _P(_CEntryIn), _P(_CAttrs),
                                           _sz, _P(_CChunkIn), _sz, ctypes.c_uint,
                                           _P(_CAppendInfo)]),
    "hsamem_query_filtered": (ctypes.c_int, [ctypes.c_void_p, _cstr, _P(_CQuery),
                                             _P(_CRecall), _P(_P(_CQueryResult))]),
    "hsamem_entries_filtered": (ctypes.c_int, [ctypes.c_void_p, _cstr, _u64, _u32,
                                               _P(_CFilter), _P(_P(_CEntryList))]),
    "hsamem_ask_filtered": (ctypes.c_int, [ctypes.c_void_p, _cstr, _cstr, _P(_CAsk),
                                           _P(_CFilter), _P(_P(_CAskResult))]),
    "hsamem_export_filtered": (ctypes.c_int, [ctypes.c_void_p, _cstr, _P(_CFilter), _WRITE_FN,
                                              ctypes.c_void_p, _P(_CTransfer)]),
    "hsamem_forget_filtered": (ctypes.c_int, [ctypes.c_void_p, _cstr, _P(_CFilter),
                                              _P(_CForgetInfo)]),
}


def _candidates():
    env = os.environ.get("HSAMEM_LIBRARY")
    if env:
        yield env
        return
    # The folder that holds the package: client/python in the source tree, or
    # $prefix/share/hsamem/python once installed.
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
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


def _s(b):
    """A C string from the library as str (undecodable bytes replaced); NULL reads ""."""
    return b.decode("utf-8", "replace") if b is not None else ""
