"""hsamem.client: Client, one connection to hsamemd through libhsamem, with a method for each
request of hsamem.h; and the library-wide functions library_version() and default_url().

Each method checks and converts its arguments (_args), makes the call with the Client's lock
held, raises the exception of a failure (errors) and copies the result out (results).
"""

import ctypes
import errno as _errno
import io
import math
import os
import threading

from ._args import (_attrs_in, _b, _chunk_in, _chunks_in, _entry_in, _enum_value, _filter_in,
                    _floats, _u32_array, _user)
from ._capi import (_P, _READ_FN, _URL_MAX, _WRITE_FN, _CAppendInfo, _CAsk, _CAskResult,
                    _CAttrs, _CRecall,
                    _CAttend, _CAttendResult, _CBackupInfo, _CChunkList, _CCompactInfo,
                    _CDeleteInfo, _CEntryIn, _CForgetInfo, _CHistory, _CUpdateInfo, _CEntryList, _CFlushInfo, _CMemory, _CQuery,
                    _CQueryResult, _CReencodeInfo, _CServer, _CSpec, _CStats, _CTransfer,
                    _CUserList, _SPEC_FIELDS, _f32, _s, _strerror, _u64, DTYPES, ROLES, WEIGHTINGS,
                    load_library)
from .errors import ERRORS, HsamemError
from .results import (Answer, AppendInfo, AttendResult, BackupInfo, ChunkList, CompactInfo,
                      DeleteInfo, EntryList, FlushInfo, ForgetInfo, HistoryItem, UpdateInfo, Hits,
                      Recall, Reencode, Server, Transfer, _array, _chunk, _entry, _entry_hit, _hit,
                      _memory, _ranked, _stats)


def library_version():
    """The version of libhsamem, e.g. "0.1.0"."""
    return load_library().hsamem_version().decode()


def default_url():
    """The daemon's per-user default address by the library's rule (RUNTIME_DIRECTORY,
    XDG_RUNTIME_DIR, else a private directory of this user, ipc:///tmp/hsamem-UID/hsamemd.sock).
    Client() uses $HSAMEM_SOCKET first; without it, its first request tries this address when a
    socket exists there, then the system service's ipc:///run/hsamem/hsamemd.sock."""
    buf = ctypes.create_string_buffer(_URL_MAX)
    err = load_library().hsamem_default_url(buf, _URL_MAX)
    if err:
        raise HsamemError(err)
    return buf.value.decode()


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


class Client:
    """A connection to hsamemd.

    url: "ipc:///path" or "tcp://host:port"; None takes $HSAMEM_SOCKET when set, else the
    library's default addresses (see default_url()): the per-user socket, then the system
    service's; a ConnectError names both when neither answers. timeout: seconds each request waits for its reply;
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
        """The URL the client was opened with; without one, the default address it connected to
        (before the first request: the first it will try)."""
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
               scope=None, meta=None, chunks=(), create=True):
        """Appends one entry to user's memory, durably; returns an AppendInfo.

        text: the entry's text (built-in encoders tokenize it); tokens: token ids, for client
        memories (text is then kept for display). role: "user", "assistant", "system", "tool" or
        "other". tags: strings. timestamp_ms: the caller's clock (Unix ms); 0 takes the
        daemon's. chunks: for client memories, the tensors of exactly the chunks this append
        seals, each (k, v, landmark) as bytes-like objects in the memory's dtype (or a Chunk
        read with tensors=True). create=False raises NoSuchUser instead of creating the memory.
        scope and meta: the entry's scope (e.g. {"agent": "planner", "session": "42"}, or
        "agent=planner,session=42") and metadata (a dict), at most 8 pairs each (hsamem(7),
        SCOPES AND FILTERS; a bad pair raises InvalidArgument or TooBig, nothing stored).
        A text or tag holding a NUL character raises InvalidArgument, and nothing is sent.
        """
        return self.append_many(user, [{"text": text, "tokens": tokens, "role": role,
                                        "tags": tags, "timestamp_ms": timestamp_ms,
                                        "scope": scope, "meta": meta}],
                                chunks=chunks, create=create)

    def append_many(self, user, entries, *, chunks=(), create=True):
        """Appends several entries as one atomic, durable step; returns an AppendInfo.

        entries: each a str (a "user" entry of that text) or a dict with the keywords of
        append() (text, tokens, role, tags, timestamp_ms, scope, meta). chunks and create as in
        append(). Keep a call to a few MiB (TooBig otherwise): split big batches.
        """
        keep = []
        entries = list(entries)
        arr = (_CEntryIn * len(entries))()
        attrs = (_CAttrs * len(entries))()
        any_attrs = False
        for i, e in enumerate(entries):
            arr[i] = _entry_in(e, keep)
            a = _attrs_in(e, keep)
            if a is not None:
                attrs[i] = a
                any_attrs = True
        carr, nc = _chunks_in(chunks, keep)
        i = self._info("hsamem_append_attrs", _CAppendInfo, _user(user), arr,
                       attrs if any_attrs else None, len(entries), carr, nc, 0 if create else 1)
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
              tokens=None, where=None, mode=None):
        """Asks user's memory which chunks matter for text (or token ids): returns Hits, a list
        of Hit, best first. k: chunks to return (None: the memory's default); max_entries:
        covered entries per hit (None: 8); include_tail=False does not score the unsealed tail.
        where: a filter (see recall()), applied before ranking; a hit then shows only the
        entries that pass it. recall() gives the entries that answer instead of chunks.
        mode: "learned", "lexical" or "hybrid" (None: the memory's default; hsamem(7), QUERY
        MODES); Hits.mode says which ranked, each Hit's rank_score what ranked it and its
        lexical_score the lexical score (None outside lexical and hybrid on hsa-small).
        Raises NoSuchUser, NotSupported (a client memory: use attend(); an hsa-small memory
        without lexical landmarks in lexical or hybrid mode), InvalidArgument (a bad filter or
        mode)."""
        if where is not None:
            r = self._recall(user, text, tokens, k, max_entries, include_tail, where,
                             chunks_only=True, mode=mode)
            return r[1]
        q = _CQuery()
        q.text = t = _b(text)
        toks, n = _u32_array(tokens)
        if toks is not None:
            q.tokens, q.n_tokens = toks, n
        q.top_k = k or 0
        q.max_entries = max_entries or 0
        q.no_tail = not include_tail
        conv = lambda c: Hits([_ranked(_hit(c.hits[i]), c.ranks[i]) for i in range(c.n_hits)],
                              c.chunks, c.k, _s(c.mode))
        m = _b(mode)
        res = self._call("hsamem_query_mode", conv, _user(user), ctypes.byref(q), m,
                         out_type=_CQueryResult)
        del t, toks, m
        return res

    def recall(self, user, text=None, k=None, *, hits=None, context=0, min_score=None,
               where=None, include_tail=True, tokens=None):
        """The entries of user's memory that answer text (or token ids), best first (hsamem(7),
        ENTRY RECALL): returns a Recall, a list of EntryHit. Of the k chunks HSA selects (None:
        the memory's default), each entry they cover is scored by the evidence on its own tokens
        and listed once; hits: most entries returned (None: k); context: entries shown around
        each hit, each side (at most 8), marked context=True; min_score: drop entries scoring
        below it (the Recall's message then says why it is empty). where: a filter, applied
        before ranking: a dict of scope ({"agent": "planner"} or "agent=planner"), role (a name
        or several: any of them), since and until (Unix ms or datetime, until exclusive), tags
        (all of them) and meta (a dict); only entries that pass are ranked or shown.
        Raises NoSuchUser, NotSupported, InvalidArgument (a bad filter), TooBig."""
        return self._recall(user, text, tokens, k, None, include_tail, where, hits=hits,
                            context=context, min_score=min_score)[0]

    def _recall(self, user, text, tokens, k, max_entries, include_tail, where, chunks_only=False,
                hits=None, context=0, min_score=None, mode=None):
        keep = []
        q = _CQuery()
        q.text = t = _b(text)
        toks, n = _u32_array(tokens)
        if toks is not None:
            q.tokens, q.n_tokens = toks, n
        q.top_k = k or 0
        q.max_entries = max_entries or 0
        q.no_tail = not include_tail
        o = _CRecall()
        f = _filter_in(where, keep)
        if f is not None:
            o.filter = ctypes.pointer(f)
        o.chunks_only = chunks_only
        o.context = context or 0
        if min_score is not None:
            o.has_min_score, o.min_score = True, float(min_score)
        o.max_hits = hits or 0
        o.mode = m = _b(mode)

        def conv(c):
            return (Recall([_entry_hit(c.entry_hits[i]) for i in range(c.n_entry_hits)],
                           c.chunks, c.k, c.allowed if c.filtered else None,
                           c.below_min_score),
                    Hits([_ranked(_hit(c.hits[i]), c.ranks[i]) for i in range(c.n_hits)],
                         c.chunks, c.k, _s(c.mode)))
        res = self._call("hsamem_query_filtered", conv, _user(user), ctypes.byref(q),
                         ctypes.byref(o), out_type=_CQueryResult)
        del t, toks, keep, m
        return res

    def ask(self, user, question, max_tokens=None, max_entries=None, *, where=None):
        """EXPERIMENTAL. Answers question from user's memory with its model (encoder hsa-small):
        returns an Answer, whose text the model wrote greedily with HSA over the memory at every
        token, and the chunks it drew on most. max_tokens: at most 64 (None: 32); max_entries:
        covered entries per chunk (None: 8). The shipped model answers reliably only questions
        like its training tasks (models/EVAL.md). where: a filter, as recall()'s: the model then
        reads only chunks holding a passing entry. Raises NoSuchUser, NotSupported (a memory of
        another encoder), InvalidArgument, TooBig, EncoderUnavailable."""
        keep = []
        f = _filter_in(where, keep)
        a = _CAsk()
        a.max_tokens = max_tokens or 0
        a.max_entries = max_entries or 0
        q = _b(question)

        def conv(c):
            return Answer(_s(c.answer), list(_array("I", c.tokens, c.n_tokens, 4)),
                          [_hit(c.chunks[i]) for i in range(c.n_chunks)], bool(c.experimental),
                          bool(c.complete), c.positions, c.searched, _s(c.encoder))
        res = self._call("hsamem_ask_filtered", conv, _user(user), q, ctypes.byref(a),
                         ctypes.byref(f) if f is not None else None, out_type=_CAskResult)
        del q, keep
        return res

    def attend(self, user, qr, qa, n, positions=None, k=None, want_attention=False):
        """Computes the HSA output of n query tokens against a client memory (hsamem(7), THE
        HSA OPERATOR); returns an AttendResult.

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

    def entries(self, user, first=0, count=100, *, where=None):
        """Reads entries first .. first+count-1 of user's memory: an EntryList (a list of
        Entry, with .total), each with its scope and metadata. Past the end gives an empty
        list. where: a filter, as recall()'s: only the entries of the range that pass it (the
        next page starts at first + count). Raises NoSuchUser, TooBig, InvalidArgument."""
        keep = []
        f = _filter_in(where, keep)
        return self._call("hsamem_entries_filtered", lambda c: EntryList(
            [_entry(c.entries[i], c.attrs[i] if c.attrs else None) for i in range(c.n_entries)],
            c.total), _user(user), first, count, ctypes.byref(f) if f is not None else None,
            out_type=_CEntryList)

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

    def stats_prometheus(self, user=None):
        """The daemon's metrics as text in the Prometheus exposition format, as its metrics
        endpoint serves them (hsamemd(8), METRICS), with the memory of user, or of every user
        when user is None. Raises NoSuchUser."""
        out = ctypes.c_void_p()
        with self._lock:
            self._check()
            self._raise(self._lib.hsamem_stats_prometheus(
                self._h, _user(user) if user is not None else None, ctypes.byref(out)))
        try:
            return ctypes.string_at(out).decode()
        finally:
            self._lib.hsamem_result_free(out)

    def delete(self, user):
        """Deletes user's memory, everything of it, durably; no undo. Returns a DeleteInfo.
        Raises NoSuchUser."""
        i = self._info("hsamem_delete", _CDeleteInfo, _user(user))
        return DeleteInfo(i.entries, i.chunks)

    def forget(self, user, first=None, last=None, *, where=None):
        """Forgets entries first .. last (inclusive; last None: first alone) of user's memory,
        or every entry that passes where, a filter as recall()'s (at least one condition:
        forgetting a scope, a session or a tag takes everything of it): their text and tokens
        leave the store, and what was derived from them is computed again without them; the
        daemon overwrites what they left in its files before it answers. Each keeps its number,
        role, time and token range, with no text. No undo. Returns a ForgetInfo (entries
        already forgotten are not counted). Give first or where, not both (TypeError).
        Raises NoSuchUser, NotFound (past the last entry), InvalidArgument (last < first, a
        filter without a condition or a bad one), NotSupported (a client memory)."""
        if where is not None:
            if first is not None or last is not None:
                raise TypeError("hsamem: forget() takes first/last or where, not both")
            keep = []
            f = _filter_in(where, keep)
            i = self._info("hsamem_forget_filtered", _CForgetInfo, _user(user),
                           ctypes.byref(f))
            del keep
        else:
            if first is None:
                raise TypeError("hsamem: forget() needs first (an entry number) or where")
            i = self._info("hsamem_forget", _CForgetInfo, _user(user), first,
                           first if last is None else last)
        return ForgetInfo(i.entries, i.chunks)

    def update(self, user, seq, text, role="user", keep_history=False):
        """Replaces entry seq by text, a new entry that records which one it replaces; the old
        one is forgotten, or kept as history with keep_history=True. Returns an UpdateInfo.
        Raises NoSuchUser, NotFound, InvalidArgument (seq forgotten or already replaced)."""
        i = self._info("hsamem_update", _CUpdateInfo, _user(user), seq,
                       _enum_value(ROLES, role, "role"), _b(text), bool(keep_history))
        return UpdateInfo(i.seq, i.replaces, i.forgotten)

    def history(self, user, seq):
        """The chain of updates that entry seq belongs to, oldest first: a list of HistoryItem.
        Raises NoSuchUser, NotFound."""
        def items(c):
            return [HistoryItem(_entry(it.entry), it.forgotten,
                                it.replaces if it.has_replaces else None,
                                it.replaced_by if it.has_replaced_by else None)
                    for it in (c.items[i] for i in range(c.n_items))]
        return self._call("hsamem_history", items, _user(user), seq, out_type=_CHistory)

    def backup(self, path):
        """Has the daemon copy its whole store into directory path on its side (absolute; it
        must not exist or be empty) while it serves; `hsamemd -d path` serves the copy.
        Returns a BackupInfo. Administrators only (PermissionDenied); InvalidArgument for a
        path the daemon cannot use, AlreadyExists for a non-empty one. Set the handle's
        timeout to match a large store."""
        i = self._info("hsamem_backup", _CBackupInfo, _b(path))
        return BackupInfo(i.bytes, i.ms)

    def compact(self):
        """Has the daemon give back the space of deleted memories; returns a CompactInfo.
        Administrators only (PermissionDenied); Busy while a backup runs."""
        i = self._info("hsamem_compact", _CCompactInfo)
        return CompactInfo(i.bytes_before, i.bytes_after, i.ms, i.pause_ms)

    def reencode_step(self, user, encoder, revision=0):
        """Runs one step of re-encoding user's memory with the built-in encoder `encoder` at
        `revision` (0: its newest), from the memory's kept text: returns a Reencode; call again
        until .done. The memory keeps serving meanwhile (hsamem(7), RE-ENCODING). Raises
        NoSuchUser, EncoderUnavailable (unknown encoder or revision), InvalidArgument (the
        "client" encoder), NotSupported (a client memory)."""
        i = self._info("hsamem_reencode", _CReencodeInfo, _user(user), _b(encoder), revision)
        return Reencode(bool(i.done), bool(i.switched), i.entries_done, i.entries_total,
                        i.chunks_done, i.chunks_total, i.tokens_done, i.tokens_total, i.chunks,
                        i.tokens, i.encoder.decode(), i.revision)

    def reencode(self, user, encoder, revision=0, progress=None):
        """Re-encodes user's memory to the end (reencode_step until done); progress, if given,
        is called with each step's Reencode. Returns the last Reencode."""
        while True:
            r = self.reencode_step(user, encoder, revision)
            if progress is not None:
                progress(r)
            if r.done:
                return r

    def export(self, user, fileobj, *, where=None):
        """Writes user's memory as an export stream to fileobj (a binary file, a file
        descriptor, or any object with write(), such as io.BytesIO); returns a Transfer.
        where: a filter, as recall()'s: the stream then lists the passing entries only, without
        chunks (a listing, which import refuses, not a backup).
        Raises NoSuchUser; an OSError of the file raises HsamemError with its errno."""
        keep = []
        flt = _filter_in(where, keep)
        fd = _fileno(fileobj, False) if flt is None else None
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
                    data = ctypes.string_at(buf, size)
                    if isinstance(fileobj, int):
                        while data:
                            data = data[os.write(fileobj, data):]
                    else:
                        fileobj.write(data)
                    return 0
                except BaseException as e:
                    failure.append(e)
                    return -(getattr(e, "errno", None) or _errno.EIO)

            cb = _WRITE_FN(write)
            try:
                if flt is None:
                    t = self._info("hsamem_export_cb", _CTransfer, _user(user), cb, None)
                else:
                    t = self._info("hsamem_export_filtered", _CTransfer, _user(user),
                                   ctypes.byref(flt), cb, None)
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
