"""hsamem._args: the arguments of a Client's requests as libhsamem takes them: str as UTF-8
bytes without NUL (C strings cannot hold one: a NUL raises InvalidArgument, or BadName in a user
name, before anything is sent), names of enumerations as their values, float sequences and
buffers as float32 arrays, entries and chunks as the C structs of hsamem.h.

Each C struct points into Python objects; the functions that build one append those objects to
keep, a list the caller holds until the request returns.
"""

import array
import ctypes
import sys

from ._capi import _CAttrs, _CChunkIn, _CEntryIn, _CFilter, _cstr, _enum, _u32, ROLES
from .errors import BadName, InvalidArgument


def _b(s, what="text"):
    if s is None:
        return None
    b = s.encode("utf-8") if isinstance(s, str) else bytes(s)
    if b"\0" in b:
        raise InvalidArgument(-1003, "hsamem: %s holds a NUL character (at %d); strings cannot "
                              "hold one" % (what, b.index(b"\0")))
    return b


def _user(user):
    if not isinstance(user, str):
        raise TypeError("hsamem: a user name is a str")
    b = user.encode("utf-8")
    if b"\0" in b:
        raise BadName(-1008, "user name holds a NUL character")
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
    unknown = set(e) - {"text", "tokens", "role", "tags", "timestamp_ms", "scope", "meta"}
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


def _pairs(pairs, what, keep):
    """Scope or metadata as a C array of "key=value" strings: a dict, a "k=v,k=v" str (scope) or
    a sequence of "k=v" strings. Returns (array or None, count)."""
    if not pairs:
        return None, 0
    if isinstance(pairs, dict):
        items = ["%s=%s" % (k, v) for k, v in pairs.items()]
    elif isinstance(pairs, str):
        items = [p for p in pairs.split(",") if p]
    else:
        items = list(pairs)
    arr = (_cstr * len(items))(*[_b(i, what) for i in items])
    keep.append(arr)
    return arr, len(items)


def _attrs_in(e, keep):
    """The scope and metadata of an entry argument (a str or a dict) as a _CAttrs, or None."""
    if isinstance(e, str) or not (e.get("scope") or e.get("meta")):
        return None
    a = _CAttrs()
    a.scope, a.n_scope = _pairs(e.get("scope"), "a scope pair", keep)
    a.meta, a.n_meta = _pairs(e.get("meta"), "a metadata pair", keep)
    return a


def _ms(t, what):
    """A time as Unix ms: an int (ms), or a datetime (naive ones are UTC)."""
    if isinstance(t, int):
        return t
    if hasattr(t, "timestamp"):
        if getattr(t, "tzinfo", None) is None:
            import datetime
            t = t.replace(tzinfo=datetime.timezone.utc)
        return int(round(t.timestamp() * 1000))
    raise TypeError("hsamem: %s is Unix ms (int) or a datetime" % what)


def _filter_in(where, keep):
    """A filter (hsamem(7), SCOPES AND FILTERS) from a dict: scope (dict or "k=v,k=v"), role
    (a name or a sequence of names: any of them), since and until (Unix ms or datetime), tags (a
    str or a sequence: all of them), meta (dict). None gives None (no filter)."""
    if where is None:
        return None
    if not isinstance(where, dict):
        raise TypeError("hsamem: where is a dict (scope, role, since, until, tags, meta)")
    unknown = set(where) - {"scope", "role", "since", "until", "tags", "meta"}
    if unknown:
        raise TypeError("hsamem: unknown filter field(s): %s" % ", ".join(sorted(unknown)))
    f = _CFilter()
    f.scope, f.n_scope = _pairs(where.get("scope"), "a scope pair", keep)
    f.meta, f.n_meta = _pairs(where.get("meta"), "a metadata pair", keep)
    roles = where.get("role") or ()
    if isinstance(roles, str):
        roles = (roles,)
    if roles:
        rarr = (_enum * len(roles))(*[_enum_value(ROLES, r, "role") for r in roles])
        keep.append(rarr)
        f.roles, f.n_roles = rarr, len(roles)
    tags = where.get("tags") or ()
    if isinstance(tags, str):
        tags = (tags,)
    if tags:
        tarr = (_cstr * len(tags))(*[_b(t, "a tag") for t in tags])
        keep.append(tarr)
        f.tags, f.n_tags = tarr, len(tags)
    if where.get("since") is not None:
        f.has_since, f.since_ms = True, _ms(where["since"], "since")
    if where.get("until") is not None:
        f.has_until, f.until_ms = True, _ms(where["until"], "until")
    keep.append(f)
    return f
