"""hsamem: the Python client of hsamemd, the persistent memory daemon for Hierarchical Sparse
Attention (HSA).

This package wraps libhsamem, the C client library, with ctypes; it needs nothing beyond the
Python 3 standard library. Every method is one synchronous request to the daemon, exactly as the
function of the same name in hsamem.h, which documents what each request does.

    import hsamem

    with hsamem.Client() as mem:                   # $HSAMEM_SOCKET, else the default socket
        mem.append("alice", "Alice's cat is named Whiskers.")
        for hit in mem.query("alice", "what is the cat called?", k=3):
            print(hit.score, hit.text)

Finding libhsamem: the first of $HSAMEM_LIBRARY (a path), the library of a build next to this
package (../../.libs from client/python in the source tree) or of an installation next to it
($prefix/lib when the package is $prefix/share/hsamem/python/hsamem), then
ctypes.util.find_library("hsamem"). Call load_library(path) before the first Client to name one
explicitly.

Results are plain Python objects (dataclasses, lists, str, bytes, array.array): the C results are
copied out and freed at once, so nothing returned refers to the library's memory.

Errors raise HsamemError, or one of its subclasses for hsamem's own codes (NoSuchUser, BadName,
AlreadyExists, ...; see ERRORS). e.code is the library's negative code, e.message the daemon's
explanation (or the library's), e.errno the errno value for system errors (ETIMEDOUT, ...).

Threads: a Client is one connection; its methods may be called from several threads, a lock
serializes them. For parallel requests, open a Client per thread.

The package's modules: _capi (the ctypes binding of hsamem.h), errors, results, _args (request
arguments as C structs) and client (Client); everything public is here, as hsamem.NAME.
"""

from ._capi import DTYPES, ROLES, WEIGHTINGS, load_library
from .client import Client, default_url, library_version
from .errors import (ERRORS, AlreadyExists, BackendError, BadName, Busy, ConnectError,
                     EncoderUnavailable, FormatError, HsamemError, ImportStreamError,
                     InternalError, InvalidArgument, NoSuchUser, NotFound, NotSupported,
                     PermissionDenied, ProtocolError, SpecMismatch, StoreError, StoreFull, Timeout,
                     TooBig, VersionError)
from .results import (Answer, EntryHit, Recall, AppendInfo, AttendResult, BackupInfo, Chunk,
                      ChunkList, CompactInfo, DeleteInfo, Entry, EntryList, FlushInfo, ForgetInfo,
                      HistoryItem, UpdateInfo, Histogram, Hit, Hits, Memory,
                      Reencode, Server, Spec, Stats,
                      Transfer)

__all__ = [
    "Client", "load_library", "library_version", "default_url",
    "Server", "Spec", "Memory", "AppendInfo", "FlushInfo", "Entry", "Hit", "Hits",
    "EntryHit", "Recall",
    "AttendResult", "Answer", "Chunk", "ChunkList", "EntryList", "Histogram", "Stats",
    "DeleteInfo", "BackupInfo", "CompactInfo", "ForgetInfo", "UpdateInfo", "HistoryItem",
    "Transfer", "Reencode", "ROLES", "DTYPES", "WEIGHTINGS", "ERRORS",
    "HsamemError", "ProtocolError", "VersionError", "InvalidArgument", "NoSuchUser",
    "AlreadyExists", "SpecMismatch", "TooBig", "BadName", "StoreError", "FormatError", "Busy",
    "ConnectError", "BackendError", "EncoderUnavailable", "NotSupported", "ImportStreamError",
    "StoreFull", "InternalError", "NotFound", "PermissionDenied", "Timeout",
]

# The classes are hsamem.NAME for users (in reprs, tracebacks and pickles), wherever they are
# defined.
for _name in __all__:
    if isinstance(globals()[_name], type):
        globals()[_name].__module__ = __name__
del _name
