"""hsamem.errors: the exceptions of the hsamem package, one class per error code of hsamem.h.

Every failure of libhsamem or of the daemon raises HsamemError, or the subclass that ERRORS maps
its code to; the message is the daemon's sentence, else the library's hsamem_strerror().
"""

import errno as _errno

from ._capi import _strerror


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
    """HSAMEM_EBADNAME: the user name is not valid (1 to 64 bytes, each of A-Z a-z 0-9 _ . @ : -,
    the first not '.' or '-': no NUL, no control character)."""


class StoreError(HsamemError):
    """HSAMEM_ESTORE: the daemon's store failed; nothing was written."""


class FormatError(HsamemError):
    """HSAMEM_EFORMAT: the store is of another format version, or a record is corrupt."""


class Busy(HsamemError):
    """HSAMEM_EBUSY: the memory is being imported, or the daemon's store has no free reader
    slot; retry later."""


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
    """HSAMEM_EFULL: the daemon's store has no room: its map is at map-max, or the disk of its
    state directory is full (or over quota, or at the file size limit). The message says which
    and what to do; deleting memories makes room."""


class InternalError(HsamemError):
    """HSAMEM_EINTERNAL: an internal invariant failed (a bug); the daemon log has details."""


class NotFound(HsamemError):
    """HSAMEM_ENOTFOUND: the memory exists, but the entry, chunk or record asked for does not."""


class PermissionDenied(HsamemError):
    """HSAMEM_EPERM: the daemon's access policy refuses this client the memory or the operation
    (or, over tcp://, the client sent no valid secret: HSAMEM_SECRET_FILE or HSAMEM_SECRET). The
    same whether or not the memory exists."""


class Timeout(HsamemError):
    """-ETIMEDOUT: no reply within the client's timeout. The request may or may not have been
    carried out."""


#: hsamem's own codes (and -ETIMEDOUT) and the exception class raised for each.
ERRORS = {
    -1001: ProtocolError, -1002: VersionError, -1003: InvalidArgument, -1004: NoSuchUser,
    -1005: AlreadyExists, -1006: SpecMismatch, -1007: TooBig, -1008: BadName, -1009: StoreError,
    -1010: FormatError, -1011: Busy, -1012: ConnectError, -1013: BackendError,
    -1014: EncoderUnavailable, -1015: NotSupported, -1016: ImportStreamError, -1017: StoreFull,
    -1018: InternalError, -1019: NotFound, -1020: PermissionDenied,
    -_errno.ETIMEDOUT: Timeout,
}
