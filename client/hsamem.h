/*
 * hsamem.h: the C client library of hsamem, the persistent memory daemon for Hierarchical Sparse
 * Attention (HSA).
 *
 * This header is the whole public interface of libhsamem. Link with `pkg-config --libs hsamem`.
 *
 * OVERVIEW
 * A handle (struct hsamem) is one connection to one daemon. Open it with hsamem_open(), make
 * requests with the functions below, close it with hsamem_close(). Every request is synchronous: it
 * sends one message and waits for the daemon's reply, at most the handle's timeout (30 s unless
 * changed with hsamem_set_timeout()).
 *
 * A memory belongs to a user (a name: see HSAMEM_NAME_MAX for the rule, which hsamem_name_check()
 * applies) and is an append-only stream of entries (pieces of text and/or token ids). The daemon
 * cuts the stream into chunks of S tokens, keeps per chunk the HSA representations (K, V,
 * landmark), and answers queries with the chunks that matter. Strings (names, texts, tags) are C
 * strings: they cannot hold a NUL byte, and the daemon refuses one sent by other clients.
 * Memories of a built-in encoder are fed text; memories of the "client" encoder are fed token ids
 * together with the K/V/landmark tensors of every chunk an append seals (an LLM runtime computes
 * them), and are read with hsamem_attend().
 *
 * ERRORS
 * Every fallible function returns an int: 0 on success, or a negative error code. Codes from -1 to
 * -999 are negated errno values (-ECONNREFUSED, -ENOMEM, -ETIMEDOUT, ...); codes from -1000 down
 * are hsamem's own, listed below. The daemon sends the same codes in its replies, so an error
 * raised on the server reaches the caller unchanged. hsamem_strerror() turns any code into a
 * message, and hsamem_last_message() gives the sentence that goes with the last error on a handle
 * (the daemon's reply message, or the library's own explanation).
 *
 * The errors that any request may return, besides those listed with each function:
 *   HSAMEM_ECONNECT  the daemon could not be reached (no socket at the address, refused). The next
 *                    request tries to connect again.
 *   -ETIMEDOUT       no reply within the handle's timeout. The request may or may not have been
 *                    carried out; the handle stays usable and a late reply is discarded.
 *   -ECONNRESET      the connection broke while a request was outstanding (the daemon stopped).
 *                    As with -ETIMEDOUT, the request may or may not have taken effect. Requests are
 *                    never sent twice by the library, so an append is never duplicated by it.
 *   HSAMEM_EPROTO    the reply could not be decoded or is inconsistent (an array's size does not
 *                    match its count, a required part is missing). Nothing of it is returned.
 *   HSAMEM_EVERSION  the daemon speaks another protocol version.
 *   HSAMEM_EBADNAME  the user name is not valid (hsamem_name_check()); checked before anything is
 *                    sent.
 *   HSAMEM_EBUSY     the memory is being imported, the daemon's store has no free reader slot,
 *                    or the daemon's requests in flight hold all the memory its max-inflight
 *                    allows; retry later.
 *   HSAMEM_EPERM     the daemon's access policy refuses this client the memory the request
 *                    names, or the operation (delete, import, stats without a user are for the
 *                    daemon's administrators), or, over tcp://, the client sent no valid secret.
 *                    The answer is the same whether the memory exists or not. hsamemd(8),
 *                    ACCESS CONTROL, has the rules.
 *   -ENOMEM          out of memory in the library (nothing was sent, or the reply was dropped).
 *
 * RESULTS AND MEMORY
 * Small, fixed results (append, flush, delete, export, import) are written into a struct that the
 * caller provides. Results that hold strings or arrays are returned through a pointer to a heap
 * object: a struct whose strings and arrays all live in the same allocation. Free any of them with
 * hsamem_result_free(); nothing inside one may be freed on its own, and nothing inside one stays
 * valid after it is freed. Results do not depend on the handle: they outlive hsamem_close().
 * Strings in results are never NULL (absent text is ""), and are NUL-terminated UTF-8 as the daemon
 * sent it. Out-parameters are written only on success.
 *
 * Tensors travel as little-endian bytes. Float arrays in results (f32) are converted to the host's
 * byte order; K/V/landmark bytes (in the memory's dtype) are handed over as the daemon sent them.
 *
 * THREADS
 * A handle must be used by one thread at a time; calls on one handle from several threads at once
 * must be serialized by the caller. Different handles are independent, so the simplest scheme is a
 * handle per thread (a handle is one socket: cheap). Results may be passed between threads freely.
 * The library keeps no global state besides what NNG keeps.
 *
 * The library never aborts or exits, and never writes to stdout or stderr.
 *
 * ENVIRONMENT
 * Read when a handle first connects:
 *   HSAMEM_SECRET_FILE, HSAMEM_SECRET  the shared secret for tcp:// and tls+tcp:// addresses: a
 *                    file holding it (a final newline is not part of it), else the value itself.
 *                    Sent with every request over tcp, never over ipc://, where the daemon knows
 *                    the client's uid. Without one, a tcp:// daemon answers HSAMEM_EPERM.
 *   HSAMEM_TLS_CA    for tls+tcp://: the PEM file of the authority that signed the daemon's
 *                    certificate (required); the certificate must also name the URL's host.
 *   HSAMEM_TLS_CERT, HSAMEM_TLS_KEY  for tls+tcp://: the client's certificate and its key (PEM),
 *                    which the daemon requires.
 * A file that cannot be read, or a TLS handshake that fails (no client certificate, one the
 * daemon's authority did not sign, a daemon certificate HSAMEM_TLS_CA did not sign), gives
 * HSAMEM_ECONNECT with the reason in hsamem_last_message().
 */
#ifndef HSAMEM_H
#define HSAMEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hsamem_defs.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- enumerations (the values are those of the protocol) ---- */

/* Who wrote an entry. */
enum hsamem_role {
	HSAMEM_ROLE_OTHER = 0,
	HSAMEM_ROLE_USER = 1,
	HSAMEM_ROLE_ASSISTANT = 2,
	HSAMEM_ROLE_SYSTEM = 3,
	HSAMEM_ROLE_TOOL = 4,
};

/* Element type of K, V and landmarks at rest. 0 asks for the encoder's default. */
enum hsamem_dtype {
	HSAMEM_DTYPE_DEFAULT = 0,
	HSAMEM_F16 = 1,
	HSAMEM_BF16 = 2,
	HSAMEM_F32 = 3,
};

/* How the outputs of the selected chunks are fused (hsamem(7), THE HSA OPERATOR, step 4). 0 asks
 * for the default. */
enum hsamem_weighting {
	HSAMEM_WEIGHTING_DEFAULT = 0,
	HSAMEM_SOFTMAX = 1,
	HSAMEM_STICKBREAK = 2,
};

/*
 * Names of the values above: "user", "assistant", "system", "tool", "other"; "f16", "bf16", "f32";
 * "softmax", "stickbreak". Static strings; NULL for a value that has no name (0 for dtype and
 * weighting, or a value from a newer daemon).
 */
const char *hsamem_role_name(enum hsamem_role role);
const char *hsamem_dtype_name(enum hsamem_dtype dtype);
const char *hsamem_weighting_name(enum hsamem_weighting weighting);

/* The version of this library, e.g. "0.1.0". A static string. */
const char *hsamem_version(void);

/* ---- connections ---- */

/* An open connection to a daemon. Opaque. */
struct hsamem;

/* The largest URL hsamem_default_url() writes, with its NUL; enough for any socket path. */
#define HSAMEM_URL_MAX 4200

/*
 * Writes the daemon's default address into buf (size bytes), by the daemon's own rule:
 * "ipc://$RUNTIME_DIRECTORY/hsamemd.sock" when RUNTIME_DIRECTORY is set and not empty (as systemd
 * sets it for the service), else "ipc://$XDG_RUNTIME_DIR/hsamemd.sock" when that is set and not
 * empty, else "ipc://$TMPDIR/hsamem-UID/hsamemd.sock" with UID the effective uid and TMPDIR /tmp
 * unless the variable holds an absolute path: a directory of this user's own, which the daemon
 * creates (mode 0700), never a name in /tmp itself that another user could take first. A
 * RUNTIME_DIRECTORY holding several directories (separated by ':') stands for its first.
 *
 * Returns 0, or -ENAMETOOLONG when the URL does not fit (buf then holds ""). HSAMEM_URL_MAX bytes
 * always suffice for the environment's usual values.
 */
int hsamem_default_url(char *buf, size_t size);

/*
 * Opens a handle for the daemon at url ("ipc:///path", "tcp://host:port" or
 * "tls+tcp://host:port"). The handle's timeout is 30 s and replies up to 256 MiB are accepted.
 * NULL means the default addresses, which the first request tries in this order: the per-user
 * hsamem_default_url() when a socket exists there, then the system service's
 * "ipc:///run/hsamem/hsamemd.sock" (RuntimeDirectory=hsamem of hsamemd.service); the first daemon
 * that accepts the connection is the handle's from then on. When none does, the request fails
 * with HSAMEM_ECONNECT and hsamem_last_message() lists the addresses tried, each with its reason;
 * the next request searches again.
 *
 * hsamem_open() does not wait for the daemon: it checks the URL and prepares the socket. The first
 * request connects (and fails with HSAMEM_ECONNECT, quickly, when nothing listens there); once
 * connected, NNG reconnects by itself if the daemon restarts. So a program may open its handle
 * before the daemon runs; call hsamem_ping() to find out whether it does. Before connecting to a
 * socket in the private directory of hsamem_default_url(), the first request checks that the
 * directory belongs to this user and is closed to others, and fails with HSAMEM_ECONNECT if not.
 * For tcp:// and tls+tcp:// the first request also reads the secret and the certificates named
 * by the environment (see ENVIRONMENT above).
 *
 * hp: out, the new handle, to be closed with hsamem_close().
 * Returns 0, HSAMEM_EINVAL (the URL is malformed or its transport is not supported), or -ENOMEM.
 */
int hsamem_open(const char *url, struct hsamem **hp);

/* Closes a handle: drops the connection and frees the handle. Accepts NULL. Results obtained
 * through the handle stay valid. Returns within 2 s: NNG 1.5's close can wait forever now and
 * then, and is then left to finish in a thread of the library's own, the connection's descriptor
 * open until it does. */
void hsamem_close(struct hsamem *h);

/*
 * Sets how long each request waits for its reply (and for the request to be sent), in milliseconds;
 * -1 waits forever. Long operations (an import of a large memory, an append of a big batch) may
 * need more than the default 30 s: the daemon replies to each request only when it is durable.
 * Returns 0, or HSAMEM_EINVAL for a value below -1.
 */
int hsamem_set_timeout(struct hsamem *h, int timeout_ms);

/* The URL the handle was opened with; for one opened with NULL, the default address it connected
 * to (before its first connection: the first one it will try). Valid until the next request or
 * hsamem_close(). */
const char *hsamem_url(const struct hsamem *h);

/*
 * The message that came with the last request's outcome on this handle: the daemon's reply message
 * (an explanation on error, maybe a short confirmation on success), or the library's own sentence
 * for an error it raised itself (which field of a reply was inconsistent, why a connection failed,
 * which record of an import stream is malformed). Never NULL; "" when there is none. Valid until
 * the next request on the handle or hsamem_close().
 */
const char *hsamem_last_message(const struct hsamem *h);

/*
 * Frees a result returned by any function of this library (struct hsamem_server, hsamem_memory,
 * hsamem_query_result, hsamem_attend_result, hsamem_entry_list, hsamem_chunk_list,
 * hsamem_user_list, hsamem_stats, the text of hsamem_stats_prometheus). Accepts NULL. Passing
 * anything else is undefined.
 */
void hsamem_result_free(void *result);

/* ---- the memory spec ---- */

/*
 * The spec of a memory (see hsamem(7), CONCEPTS): the encoder that makes its representations and
 * their sizes. Fixed when the memory is created. To create one, zero the struct and set what
 * matters: a field left 0 (NULL for the strings) takes the encoder's default. The number of
 * retrieval heads always equals h_kv.
 */
struct hsamem_spec {
	const char *encoder;             /* "lexical" (built in) or "client" (K/V/L from caller) */
	uint32_t revision;               /* encoder revision */
	const char *tokenizer;           /* tokenizer name; "" for client memories */
	uint32_t chunk_size;             /* S: tokens per chunk */
	uint32_t h_kv;                   /* key/value heads (= retrieval heads) */
	uint32_t d_h;                    /* head dimension */
	uint32_t h_q;                    /* query heads, a multiple of h_kv */
	uint32_t d_r;                    /* landmark dimension, a multiple of h_kv */
	enum hsamem_dtype dtype;         /* element type of K, V, landmarks */
	enum hsamem_weighting weighting; /* how selected chunks are fused */
	bool off_by_one;                 /* softmax-off-by-one in chunks; false: default (off) */
	uint32_t top_k;                  /* default k of queries */
};

/* A memory as the daemon describes it (create, users, stats). */
struct hsamem_memory {
	const char *user;
	struct hsamem_spec spec; /* every field filled in; strings never NULL */
	uint64_t entries;        /* entries appended */
	uint64_t tokens;         /* tokens in the stream */
	uint64_t chunks;         /* sealed chunks */
	uint32_t tail_tokens;    /* tokens of the unsealed tail */
	uint64_t bytes;          /* stored K/V/landmark bytes */
	int64_t created_ms;      /* Unix time in ms */
	int64_t updated_ms;
};

/* ---- requests ---- */

/* What hsamem_ping() learns about the daemon. */
struct hsamem_server {
	const char *server_version; /* e.g. "0.1.0" */
	uint32_t protocol_version;
	const char *backend; /* "cpu" or "cuda: <device>" */
	uint64_t uptime_ms;
};

/*
 * Asks the daemon whether it is there. out (may be NULL): the daemon's description, a heap result
 * (hsamem_result_free()). Returns 0, or a connection error.
 */
int hsamem_ping(struct hsamem *h, struct hsamem_server **out);

/*
 * Creates the memory of a user. spec: NULL, or a spec whose 0 fields take the encoder's defaults
 * (encoder NULL: the daemon's default built-in encoder). Creating is optional for built-in
 * encoders: the first append creates the memory with the defaults (see HSAMEM_APPEND_NO_CREATE).
 * out (may be NULL): the new memory with its effective spec, a heap result.
 * Errors: HSAMEM_EEXIST (the user has a memory: it is left as it is), HSAMEM_EINVAL (a spec field
 * is out of range; the message names it), HSAMEM_EENCODER (no such encoder in this daemon).
 */
int hsamem_create(struct hsamem *h, const char *user, const struct hsamem_spec *spec,
                  struct hsamem_memory **out);

/*
 * One entry to append: text and/or token ids. Built-in encoders tokenize text (tokens must then be
 * empty); client memories take tokens (text, if given, is kept as the entries' text for display).
 * Zero the struct and fill what applies. The library copies what it needs: nothing is kept after
 * the call returns.
 */
struct hsamem_entry_in {
	const char *text;       /* UTF-8, NUL-terminated; NULL: none */
	const uint32_t *tokens; /* token ids, n_tokens of them; NULL when n_tokens is 0 */
	size_t n_tokens;
	enum hsamem_role role;
	int64_t timestamp_ms;    /* the caller's clock (Unix ms); 0: the daemon's */
	const char *const *tags; /* n_tags NUL-terminated strings */
	size_t n_tags;
};

/*
 * The tensors of one chunk that an append or flush seals, for client memories: raw little-endian
 * bytes in the memory's dtype. k and v are [S][h_kv][d_h] elements each, landmark [d_r].
 */
struct hsamem_chunk_in {
	const void *k;
	size_t k_size; /* bytes */
	const void *v;
	size_t v_size;
	const void *landmark;
	size_t landmark_size;
};

/* What an append did. */
struct hsamem_append_info {
	uint64_t first_seq; /* seq of the first appended entry (the others follow it) */
	uint32_t count;     /* entries appended */
	uint64_t tokens;    /* tokens in the stream after the append */
	uint64_t chunks;    /* sealed chunks after the append */
	uint32_t sealed;    /* chunks this append sealed */
	bool created;       /* the memory was created by this append */
};

/* Flags of hsamem_append(). */
#define HSAMEM_APPEND_NO_CREATE 0x1u /* fail with HSAMEM_ENOUSER instead of creating the memory */

/*
 * Appends entries to a user's memory, as one atomic, durable step: when it returns 0 every entry is
 * stored and numbered (consecutive seq from out->first_seq); on error none is.
 *
 * entries, n_entries: the entries, at least one. chunks, n_chunks: for client memories, exactly the
 * chunks this append seals, in order (the tokens before the append plus the new ones, divided by S,
 * minus the chunks already sealed); NULL and 0 for built-in encoders. flags: 0 or
 * HSAMEM_APPEND_NO_CREATE. Without it, appending to a user that has no memory creates one with the
 * daemon's default encoder. out (may be NULL): what the append did.
 *
 * Keep a request to a few MiB: the daemon refuses messages past its limit with HSAMEM_ETOOBIG;
 * split larger batches into several calls.
 * Errors: HSAMEM_ENOUSER (with HSAMEM_APPEND_NO_CREATE), HSAMEM_ENOTSUP (token ids given to a
 * memory of a built-in encoder), HSAMEM_ESPEC (a tensor of the wrong size, or not the number of
 * chunks expected: the message says how many), HSAMEM_EINVAL (no entries, an entry with neither
 * text nor tokens), HSAMEM_ETOOBIG (too many entries or tags, a text past max-entry),
 * HSAMEM_EBUSY (the memory is being imported), HSAMEM_ESTORE, HSAMEM_EFULL (the store has no room:
 * map-max reached or the disk full; the message says which and what to do).
 */
int hsamem_append(struct hsamem *h, const char *user, const struct hsamem_entry_in *entries,
                  size_t n_entries, const struct hsamem_chunk_in *chunks, size_t n_chunks,
                  unsigned flags, struct hsamem_append_info *out);

/*
 * The common case of hsamem_append(): one text entry with a role, now, no tags. seq (may be NULL):
 * out, the entry's seq. Errors as hsamem_append().
 */
int hsamem_append_text(struct hsamem *h, const char *user, enum hsamem_role role, const char *text,
                       uint64_t *seq);

/*
 * Scope and metadata of an entry (hsamem(7), SCOPES AND FILTERS): "key=value" strings. Keys are 1
 * to 32 bytes of letters, digits, '_', '.' and '-'; values 1 to 128 bytes; at most 8 pairs of
 * each, and a scope names each key once (the daemon refuses the append with HSAMEM_EINVAL or
 * HSAMEM_ETOOBIG otherwise, and says which pair). Given to hsamem_append_attrs() (read during the
 * call only) and found in results (owned by the result).
 */
struct hsamem_attrs {
	const char *const *scope; /* e.g. "agent=planner", "session=42" */
	size_t n_scope;
	const char *const *meta; /* e.g. "source=email" */
	size_t n_meta;
};

/*
 * hsamem_append() with a scope and metadata per entry: attrs is NULL (none) or n_entries of them,
 * attrs[i] for entries[i]. Errors as hsamem_append().
 */
int hsamem_append_attrs(struct hsamem *h, const char *user, const struct hsamem_entry_in *entries,
                        const struct hsamem_attrs *attrs, size_t n_entries,
                        const struct hsamem_chunk_in *chunks, size_t n_chunks, unsigned flags,
                        struct hsamem_append_info *out);

/*
 * Which entries a reading operation sees (hsamem(7), SCOPES AND FILTERS): an entry passes when it
 * has every scope pair, every tag and every metadata pair given, its role is one of roles (none
 * given: any), and its timestamp is in [since_ms, until_ms) where those are set. Zero the struct
 * and fill what applies; the zero filter passes every entry.
 */
struct hsamem_filter {
	const char *const *scope; /* "key=value" strings */
	size_t n_scope;
	const enum hsamem_role *roles;
	size_t n_roles;
	bool has_since;
	int64_t since_ms; /* Unix ms */
	bool has_until;
	int64_t until_ms;
	const char *const *tags;
	size_t n_tags;
	const char *const *meta; /* "key=value" strings */
	size_t n_meta;
};

/* What a flush did. */
struct hsamem_flush_info {
	uint64_t chunks; /* sealed chunks after the flush */
	bool sealed;     /* whether the tail was sealed (padded) by this flush */
};

/*
 * Seals the user's unsealed tail now, padded to S tokens, so that it becomes retrievable as a chunk
 * (otherwise the tail waits until S tokens have arrived). A memory with an empty tail is left as it
 * is (out->sealed false). chunk: for client memories with a non-empty tail, the tensors of the
 * padded chunk; NULL otherwise. out (may be NULL).
 * Errors: HSAMEM_ENOUSER, HSAMEM_ESPEC (a client memory's tensors missing or of the wrong size),
 * HSAMEM_EINVAL (tensors sent for a memory of a built-in encoder), HSAMEM_EBUSY.
 */
int hsamem_flush(struct hsamem *h, const char *user, const struct hsamem_chunk_in *chunk,
                 struct hsamem_flush_info *out);

/* A text query's parameters. Zero the struct and set text (or tokens). */
struct hsamem_query {
	const char *text;       /* the query, for built-in encoders */
	const uint32_t *tokens; /* or token ids */
	size_t n_tokens;
	uint32_t top_k;       /* chunks to return; 0: the memory's default */
	uint32_t max_entries; /* covered entries returned per hit; 0: the default (8) */
	bool no_tail;         /* do not score the unsealed tail */
};

/* One entry of a memory. */
struct hsamem_entry {
	uint64_t seq;          /* number within the user's memory, from 0 */
	enum hsamem_role role; /* a role this library does not know reads HSAMEM_ROLE_OTHER */
	int64_t timestamp_ms;
	uint64_t first_token; /* position of its first token in the stream */
	uint32_t n_tokens;
	const char *text;
	const char **tags; /* n_tags strings */
	size_t n_tags;
};

/* A token that the in-chunk attention of a query weighs most. */
struct hsamem_token_weight {
	uint32_t index;   /* token slot in the chunk, < the hit's n_tokens */
	uint32_t id;      /* token id */
	const char *text; /* the token's text, as the tokenizer spells it */
	float weight;     /* attention weight, averaged over query heads */
};

/* One chunk a query selected. */
struct hsamem_hit {
	uint64_t chunk;               /* chunk index; for the tail: the number of sealed chunks */
	bool tail;                    /* the hit is the unsealed tail, not a sealed chunk */
	float score;                  /* landmark score, or BM25 (hsamem(7): step 2, ENCODERS) */
	float weight;                 /* fusion weight (step 4) */
	uint32_t n_tokens;            /* tokens in the chunk (fewer for the tail) */
	const char *text;             /* the chunk's text (it may start and end inside entries) */
	struct hsamem_entry *entries; /* the entries the chunk covers, at most max_entries */
	size_t n_entries;
	struct hsamem_token_weight *top_tokens; /* heaviest first */
	size_t n_top_tokens;
};

/*
 * One entry of the entry view (hsamem(7), ENTRY RECALL): scored by the HSA evidence on its tokens,
 * or shown as context around such an entry.
 */
struct hsamem_entry_hit {
	struct hsamem_entry entry;
	struct hsamem_attrs attrs; /* its scope and metadata */
	float score;            /* sum over selected chunks of weight x attention on its tokens */
	bool context;           /* context of the hit before it, not a hit (score 0) */
	const uint64_t *chunks; /* the selected chunks that hold its tokens (at most 4) */
	size_t n_chunks;
};

/* How a query's hit was ranked (hsamem(7), QUERY MODES), one per hit of a query result. */
struct hsamem_hit_rank {
	float rank_score;    /* what ranked it: the fused score in hybrid mode, else the score of
	                        the ranking used (the hit's score, or its lexical score) */
	float lexical_score; /* the chunk's lexical score, when has_lexical */
	bool has_lexical;    /* an hsa-small memory queried in lexical or hybrid mode */
};

/* What hsamem_query() returns. */
struct hsamem_query_result {
	struct hsamem_hit *hits; /* best first */
	size_t n_hits;
	uint64_t chunks; /* chunks searched */
	uint32_t k;      /* the k used */
	/* since 1.4 (hsamem_query_filtered(); hsamem_query() asks for the chunk view only): */
	struct hsamem_entry_hit *entry_hits; /* the entry view: best first, context after its hit */
	size_t n_entry_hits;
	bool filtered;            /* a filter was applied */
	uint64_t allowed;         /* with a filter: chunks holding a passing entry (the tail too) */
	uint32_t below_min_score; /* entries scored but dropped by min_score */
	const char *mode;         /* the ranking used: "learned", "lexical" or "hybrid" */
	struct hsamem_hit_rank *ranks; /* [n_hits], beside hits */
};

/*
 * Asks a memory which chunks matter for a text (or token ids): the daemon encodes the query,
 * scores every chunk's landmark, and returns the top k with their text, the entries they cover and
 * the tokens its in-chunk attention weighs most. out: a heap result (hsamem_result_free()).
 * Errors: HSAMEM_ENOUSER, HSAMEM_ENOTSUP (a text query on a client memory: use hsamem_attend()),
 * HSAMEM_EINVAL (neither text nor tokens; k or max_entries out of range), HSAMEM_ETOOBIG (a
 * question longer than max-entry, or of more than 4096 tokens).
 */
int hsamem_query(struct hsamem *h, const char *user, const struct hsamem_query *q,
                 struct hsamem_query_result **out);

/* Options of hsamem_query_filtered(). Zero the struct and fill what applies. */
struct hsamem_recall {
	const struct hsamem_filter *filter; /* NULL: every entry */
	bool chunks_only;                   /* the chunk view only: no entry view */
	uint32_t context;                   /* passing entries shown around each entry hit (<= 8) */
	bool has_min_score;                 /* drop entries scoring below min_score */
	float min_score;
	uint32_t max_hits; /* entries returned, context aside; 0: the query's k */
	const char *mode;  /* the ranking (hsamem_query_mode()); NULL: the memory's default */
};

/*
 * hsamem_query() with a filter and the entry view (hsamem(7), SCOPES AND FILTERS, ENTRY RECALL).
 * The filter is applied before ranking: only chunks that hold a passing entry compete for the top
 * k, and what is shown of a chunk (its text, entries and top tokens) belongs to passing entries
 * only. out->entry_hits ranks the passing entries of the selected chunks; with min_score, none
 * may pass: n_entry_hits is 0 and below_min_score says how many were dropped (the last message,
 * hsamem_last_message(), says so too). opts may be NULL (no filter, the entry view with defaults).
 * Errors as hsamem_query(), and HSAMEM_EINVAL for a bad filter (the message names the field) or
 * context above 8.
 */
int hsamem_query_filtered(struct hsamem *h, const char *user, const struct hsamem_query *q,
                          const struct hsamem_recall *opts, struct hsamem_query_result **out);
/*
 * hsamem_query() in a ranking mode (hsamem(7), QUERY MODES): "learned", "lexical" or "hybrid",
 * or NULL for the memory's default (hybrid for hsa-small memories, lexical for lexical ones).
 * Errors as hsamem_query(), and HSAMEM_EINVAL for a mode the memory does not rank by (a lexical
 * memory in learned or hybrid mode, or an unknown name), HSAMEM_ENOTSUP for an hsa-small memory
 * without lexical landmarks in lexical or hybrid mode (hsamem_reencode() adds them).
 */
int hsamem_query_mode(struct hsamem *h, const char *user, const struct hsamem_query *q,
                      const char *mode, struct hsamem_query_result **out);

/* hsamem_query() with a text and k (0: the memory's default), other parameters their defaults. */
int hsamem_query_text(struct hsamem *h, const char *user, const char *text, uint32_t top_k,
                      struct hsamem_query_result **out);

/*
 * An attention request (hsamem(7), THE HSA OPERATOR), for client memories: n query tokens, each
 * with a retrieval query qr [h_kv][d_r/h_kv] and attention queries qa [h_q][d_h], host-order f32
 * (the library sends them little-endian). The arrays are read during the call only.
 */
struct hsamem_attend {
	uint32_t n;      /* query tokens, at least 1 */
	const float *qr; /* [n][h_kv][d_r/h_kv] */
	size_t qr_len;   /* floats in qr */
	const float *qa; /* [n][h_q][d_h] */
	size_t qa_len;   /* floats in qa */
	/* [n] stream positions: chunk j is visible to a token iff (j+1)*S <= its position; 0 means
	 * after the whole stream. NULL: all 0. */
	const uint64_t *positions;
	uint32_t top_k;      /* 0: the memory's default */
	bool want_attention; /* also return the in-chunk attention of each selected chunk */
};

/*
 * What hsamem_attend() returns. Arrays are row-major in the shapes given, host-order; their lengths
 * are checked against n and k before the result is handed over, so reading within the stated
 * lengths is always safe.
 */
struct hsamem_attend_result {
	uint32_t n;    /* query tokens */
	uint32_t k;    /* chunks selected per token and kv head */
	uint32_t h_kv; /* kv heads (derived from the sizes) */
	float *output; /* [n][h_q][d_h] fused output; output_len = request qa_len */
	size_t output_len;
	int64_t *selected;   /* [n][h_kv][k] chunk indices; -1 where fewer were visible */
	float *weights;      /* [n][h_kv][k] fusion weights */
	float *scores;       /* [n][h_kv][k] landmark scores */
	size_t selected_len; /* n * h_kv * k: the length of selected, weights and scores */
	float *attention;    /* [n][h_q][k][S] in-chunk attention, or NULL if not asked for */
	size_t attention_len;
};

/*
 * Computes the HSA output of query vectors against a client memory: selects the top k chunks per
 * token and kv head, attends inside each, fuses. out: a heap result.
 * Errors: HSAMEM_ENOUSER, HSAMEM_ESPEC (qr or qa not n times the spec's sizes), HSAMEM_EINVAL
 * (n not 1 to 4096, k out of range, positions neither none nor n), HSAMEM_ETOOBIG (the reply would
 * exceed max-message).
 */
int hsamem_attend(struct hsamem *h, const char *user, const struct hsamem_attend *a,
                  struct hsamem_attend_result **out);

/* A range of entries. */
struct hsamem_entry_list {
	struct hsamem_entry *entries;
	size_t n_entries;
	uint64_t total;             /* entries in the memory */
	struct hsamem_attrs *attrs; /* since 1.4: [n_entries], each entry's scope and metadata */
};

/*
 * Reads entries first, first+1, ... (at most count; 0: the daemon's default, 100), with their text
 * and tags. Past the end gives an empty list. out: a heap result.
 * Errors: HSAMEM_ENOUSER, HSAMEM_EINVAL (count above the daemon's limit, 1000).
 */
int hsamem_entries(struct hsamem *h, const char *user, uint64_t first, uint32_t count,
                   struct hsamem_entry_list **out);

/*
 * hsamem_entries() with a filter (NULL: none): of entries first .. first+count-1, those that pass
 * it (so a page may hold fewer than count; the next page starts at first + count), with their
 * scope and metadata in out->attrs. Errors as hsamem_entries(), and HSAMEM_EINVAL for a bad filter.
 */
int hsamem_entries_filtered(struct hsamem *h, const char *user, uint64_t first, uint32_t count,
                            const struct hsamem_filter *filter, struct hsamem_entry_list **out);

/* One sealed chunk. */
struct hsamem_chunk {
	uint64_t index;
	uint32_t *tokens; /* S token ids, padding included */
	size_t n_tokens;
	uint32_t n_real; /* tokens before the padding of a flushed chunk (<= n_tokens) */
	const char *text;
	uint64_t first_entry; /* entries the chunk covers */
	uint64_t last_entry;
	/* With HSAMEM_CHUNKS_TENSORS: little-endian bytes in the memory's dtype, k and v
	 * [S][h_kv][d_h], landmark [d_r]; else NULL and 0. Check the sizes against the spec before
	 * reading by it: the library knows no spec here, only that k_size equals v_size. */
	void *k;
	size_t k_size;
	void *v;
	size_t v_size;
	void *landmark;
	size_t landmark_size;
};

/* A range of chunks. */
struct hsamem_chunk_list {
	struct hsamem_chunk *chunks;
	size_t n_chunks;
	uint64_t total; /* sealed chunks in the memory */
};

/* Flags of hsamem_chunks(). */
#define HSAMEM_CHUNKS_TENSORS 0x1u /* include K, V and landmark */

/*
 * Reads sealed chunks first, first+1, ... (at most count; 0: the daemon's default, 16), with their
 * tokens and text, and with HSAMEM_CHUNKS_TENSORS their tensors. out: a heap result.
 * Errors: HSAMEM_ENOUSER, HSAMEM_EINVAL (count above the daemon's limit, 256), HSAMEM_ETOOBIG
 * (with HSAMEM_CHUNKS_TENSORS: that many chunks' tensors would pass half of max-message).
 */
int hsamem_chunks(struct hsamem *h, const char *user, uint64_t first, uint32_t count,
                  unsigned flags, struct hsamem_chunk_list **out);

/* The memories of the daemon that this client may use (an administrator's: every one). */
struct hsamem_user_list {
	struct hsamem_memory *users; /* in name order */
	size_t n_users;
};

/* Lists the memories this client may use (all of them for an administrator of the daemon).
 * out: a heap result. */
int hsamem_users(struct hsamem *h, struct hsamem_user_list **out);

/* A latency histogram. counts has n_bounds + 1 elements: the last counts what exceeds the last
 * bound. */
struct hsamem_histogram {
	const char *name;  /* the operation, e.g. "query" */
	double *bounds_ms; /* upper bounds of the buckets */
	size_t n_bounds;
	uint64_t *counts;
	uint64_t total;
	double p50_ms;
	double p99_ms;
};

/* The daemon's counters. Fields the daemon does not fill read 0. */
struct hsamem_stats {
	uint64_t users;
	uint64_t tokens;
	uint64_t chunks;
	uint64_t store_map_size; /* bytes */
	uint64_t store_map_used;
	const char *backend;
	uint64_t gpu_mem_used; /* bytes */
	uint64_t gpu_mem_budget;
	uint64_t gpu_resident_users;
	uint64_t landmark_hits; /* GPU landmark cache */
	uint64_t landmark_misses;
	uint64_t chunk_hits; /* chunk cache */
	uint64_t chunk_misses;
	uint64_t requests;
	uint64_t errors;
	uint64_t commits; /* group commits */
	uint64_t committed_appends;
	uint64_t uptime_ms;
	struct hsamem_histogram *latency;
	size_t n_latency;
	struct hsamem_memory *memories; /* the one asked for, or every one */
	size_t n_memories;
	/* bytes of text the entries of every memory hold: store_map_used / text_bytes is the
	 * store's size against its text's, store_map_used / tokens its bytes per token */
	uint64_t text_bytes;
};

/*
 * Reads the daemon's statistics: global counters, latency histograms, and the memory of user (or
 * of every user when user is NULL). The counts of users, tokens and chunks cover the memories the
 * client may use. out: a heap result. Errors: HSAMEM_ENOUSER; HSAMEM_EPERM when user is NULL and
 * the client is not an administrator of the daemon.
 */
int hsamem_stats(struct hsamem *h, const char *user, struct hsamem_stats **out);

/*
 * Reads the daemon's metrics in the Prometheus text exposition format, version 0.0.4: the text the
 * daemon's metrics endpoint serves (hsamemd(8), METRICS), with the per-memory series limited as
 * hsamem_stats() limits its memories. user and the errors are those of hsamem_stats(), and
 * HSAMEM_ENOTSUP from a daemon too old to render them. out: a heap result, a NUL-terminated
 * string. Since libhsamem 1.3 (HSAMEM_1.3).
 */
int hsamem_stats_prometheus(struct hsamem *h, const char *user, char **out);

/* What a delete removed. */
struct hsamem_delete_info {
	uint64_t entries;
	uint64_t chunks;
};

/*
 * Deletes a user's memory: every entry, chunk and tensor, durably; nothing of it is left behind:
 * when it returns, the daemon has also overwritten every byte the memory left in the store's
 * files and its GPU caches (hsamem(7), DELETE AND ERASURE). There is no undo (export first to keep
 * a copy). out (may be NULL). Errors: HSAMEM_ENOUSER; HSAMEM_EPERM when the client is not an
 * administrator of the daemon.
 */
int hsamem_delete(struct hsamem *h, const char *user, struct hsamem_delete_info *out);

/* ---- forgetting and correcting entries (hsamem(7), FORGETTING) ---- */

/* What a forget did. */
struct hsamem_forget_info {
	uint64_t entries; /* entries forgotten now (those forgotten before are not counted) */
	uint64_t chunks;  /* sealed chunks the daemon encoded again without them */
};

/*
 * Forgets entries first .. last (inclusive) of a user's memory: their text and tokens leave the
 * store, and what was derived from them (K, V and landmarks of the chunks that held them, the
 * term statistics, the GPU's cached copies) is computed again without them. When it returns,
 * the daemon has overwritten every byte they left in the store's files, as a delete does. Each
 * entry keeps its number, role, time and token range, with no text (hsamem_history() says it was
 * forgotten); chunk boundaries do not move. Durable like an append; there is no undo.
 * out (may be NULL). Errors: HSAMEM_ENOUSER, HSAMEM_ENOTFOUND (an entry past the last),
 * HSAMEM_EINVAL (last < first), HSAMEM_ETOOBIG (more than 100000 entries at once),
 * HSAMEM_ENOTSUP (a client memory: the daemon cannot compute its tensors). Since libhsamem 1.3.
 */
int hsamem_forget(struct hsamem *h, const char *user, uint64_t first, uint64_t last,
                  struct hsamem_forget_info *out);

/*
 * Forgets every entry of a user's memory that passes filter (hsamem_filter; it must name at least
 * one condition), as hsamem_forget() forgets a range: forgetting a scope, a session or a tag takes
 * everything of it. out (may be NULL). Errors: HSAMEM_ENOUSER, HSAMEM_EINVAL (a filter without a
 * condition, or a bad one), HSAMEM_ENOTSUP (a client memory). Since libhsamem 1.4.
 */
int hsamem_forget_filtered(struct hsamem *h, const char *user, const struct hsamem_filter *filter,
                           struct hsamem_forget_info *out);

/* What an update did. */
struct hsamem_update_info {
	uint64_t seq;      /* the new entry */
	uint64_t replaces; /* the entry it replaces */
	bool forgotten;    /* whether the old one was forgotten (not keep_history) */
};

/*
 * Replaces entry seq by text (appended as a new entry of this role, which records that it replaces
 * seq): the old entry is forgotten as by hsamem_forget(), or, with keep_history, kept and marked
 * as replaced. out (may be NULL). Errors: those of hsamem_append_text() and hsamem_forget(), and
 * HSAMEM_EINVAL when seq was forgotten or already replaced (update the newest of its chain).
 * Since libhsamem 1.3.
 */
int hsamem_update(struct hsamem *h, const char *user, uint64_t seq, enum hsamem_role role,
                  const char *text, bool keep_history, struct hsamem_update_info *out);

/* One entry of a chain of updates. */
struct hsamem_history_item {
	struct hsamem_entry entry; /* text "" when forgotten */
	bool forgotten;
	bool has_replaces, has_replaced_by;
	uint64_t replaces, replaced_by;
};

/* A chain of updates, oldest first. */
struct hsamem_history {
	struct hsamem_history_item *items;
	size_t n_items;
};

/*
 * The chain of updates that entry seq belongs to, from the first entry of it to the newest (one
 * item when seq was never updated). out: a heap result. Errors: HSAMEM_ENOUSER, HSAMEM_ENOTFOUND.
 * Since libhsamem 1.3.
 */
int hsamem_history(struct hsamem *h, const char *user, uint64_t seq, struct hsamem_history **out);

/* ---- backup and compaction (hsamemd(8), OPERATIONS) ---- */

/* What a backup wrote. */
struct hsamem_backup_info {
	uint64_t bytes; /* the copy's data.mdb */
	uint64_t ms;    /* how long the copy took */
};

/*
 * Has the daemon write a consistent copy of its whole store into directory path, on the
 * daemon's side: an absolute path that does not exist (its parent must) or is an empty
 * directory. Other requests go on meanwhile. path then holds data.mdb, which hsamemd -d path
 * serves. It can take long: set a timeout to match (hsamem_set_timeout). out (may be NULL).
 * Errors: HSAMEM_EINVAL (a relative path, or one the daemon cannot make or write: the message
 * says why), HSAMEM_EEXIST (path is not an empty directory), HSAMEM_EBUSY (a compaction is
 * running), HSAMEM_EPERM when the client is not an administrator of the daemon.
 */
int hsamem_backup(struct hsamem *h, const char *path, struct hsamem_backup_info *out);

/* What a compaction did. */
struct hsamem_compact_info {
	uint64_t bytes_before; /* data.mdb before */
	uint64_t bytes_after;
	uint64_t ms;       /* the whole */
	uint64_t pause_ms; /* of it, while every other request waited */
};

/*
 * Has the daemon give back the space of deleted memories: its data.mdb is rewritten with only
 * the pages in use. out (may be NULL). Errors: HSAMEM_EBUSY (a backup is running, or another
 * process has the store open), HSAMEM_EPERM when the client is not an administrator.
 */
int hsamem_compact(struct hsamem *h, struct hsamem_compact_info *out);

/* ---- export and import ---- */

/*
 * An export stream is a user's memory as a sequence of records, each written as a 4-byte
 * little-endian length followed by that many bytes of a protobuf ExportRecord (proto/hsamem.proto):
 * a header (format, spec, counts), the entries in order, the sealed chunks in order with their
 * tensors, then the tail. It is complete: importing it into a daemon with the same encoder gives
 * the same memory, and nothing needs re-encoding.
 */

/* Totals of an export or import. */
struct hsamem_transfer {
	uint64_t records;  /* records written or read */
	uint64_t bytes;    /* stream bytes written or read */
	uint64_t entries;  /* entries in the stream (import: as the daemon counted them) */
	uint64_t chunks;   /* chunks in the stream (likewise) */
	uint32_t requests; /* requests it took */
};

/*
 * Progress of a long export or import on handle h, for a progress display: fn (NULL: none, the
 * default) is called with arg after every page of an export (sofar: what was written so far) and
 * after every batch of an import that the daemon has committed (sofar.entries and sofar.chunks:
 * what the daemon has imported so far, by its reply; records and bytes: what was read).
 * entries_total: the entries of the whole stream (the export's fixed count, the import header's),
 * 0 when unknown. fn must not use h.
 */
typedef void (*hsamem_progress_fn)(void *arg, const struct hsamem_transfer *sofar,
                                   uint64_t entries_total);
void hsamem_set_progress(struct hsamem *h, hsamem_progress_fn fn, void *arg);

/*
 * Where an export goes: called with consecutive pieces of the stream, in order. Returns 0, or a
 * negative code that stops the export and is returned by it (e.g. -errno of a failed write).
 */
typedef int (*hsamem_write_fn)(void *arg, const void *buf, size_t len);

/*
 * Where an import comes from: fills buf with up to len bytes of the stream. Returns the number of
 * bytes read (1 to len; short reads are fine), 0 at the end of the stream, or a negative code that
 * stops the import and is returned by it.
 */
typedef long (*hsamem_read_fn)(void *arg, void *buf, size_t len);

/*
 * Exports a user's memory as a stream (see above) through write. The daemon hands the stream out in
 * pages of a few MiB; the library asks for them in turn, so an export of any size takes memory for
 * one page only. The counts of entries and chunks are fixed by the first page: appends made while
 * the export runs are not in it, and the stream stays consistent. out (may be NULL): totals.
 * When it fails, the part already written is not a valid stream.
 * Errors: HSAMEM_ENOUSER (no memory; also when the memory was deleted while the export ran, even
 * if the user has a new one: the stream is never a mix of two memories), the errors of write,
 * HSAMEM_EPROTO.
 */
int hsamem_export_cb(struct hsamem *h, const char *user, hsamem_write_fn write, void *arg,
                     struct hsamem_transfer *out);

/* hsamem_export_cb() to a file descriptor (a file, pipe or socket; written with write(2), EINTR
 * retried). A failed write returns -errno. The descriptor stays open. */
int hsamem_export(struct hsamem *h, const char *user, int fd, struct hsamem_transfer *out);

/*
 * hsamem_export_cb() of the entries that pass filter (NULL: a whole export): a listing, not a
 * backup (hsamem(7), SCOPES AND FILTERS): the header and the passing entries' records, no chunks
 * and no tail; an import refuses it. Errors as hsamem_export_cb(), and HSAMEM_EINVAL for a bad
 * filter.
 */
int hsamem_export_filtered(struct hsamem *h, const char *user, const struct hsamem_filter *filter,
                           hsamem_write_fn write, void *arg, struct hsamem_transfer *out);

/*
 * Imports a stream made by hsamem_export() as the memory of user, a user that must not have a
 * memory yet (the name may differ from the one exported). The library reads records through read,
 * checks that each decodes, and sends them in batches of at most about 4 MiB; the last batch is
 * marked as such, and only then does the memory become visible, complete. A stream that ends inside
 * a record is refused with HSAMEM_EIMPORT before the last batch is sent, so a truncated stream
 * never becomes a memory. The daemon checks every record (hsamem(7), EXPORT STREAMS); a batch it
 * refuses leaves nothing of the import. The import belongs to this handle's connection: no other
 * can continue it, and another import of the same user is refused while it runs.
 * out (may be NULL): totals.
 * Errors: HSAMEM_EPERM (only the daemon's administrators import), HSAMEM_EEXIST (the user has a
 * memory), HSAMEM_EIMPORT (malformed, truncated or empty
 * stream, or one the daemon refuses; the message says which record), HSAMEM_ESPEC or
 * HSAMEM_EENCODER (the stream's spec is not what this daemon's encoder of that name has),
 * HSAMEM_EBUSY (another connection is importing the user), the errors of read.
 */
int hsamem_import_cb(struct hsamem *h, const char *user, hsamem_read_fn read, void *arg,
                     struct hsamem_transfer *out);

/* hsamem_import_cb() from a file descriptor (read with read(2), EINTR retried). A failed read
 * returns -errno. The descriptor stays open. */
int hsamem_import(struct hsamem *h, const char *user, int fd, struct hsamem_transfer *out);

/* ---- re-encode ---- */

/* Where a re-encode stands after one step. The source counts are of the memory being re-encoded
 * as it is now (appends made meanwhile count, so the totals may grow between steps). */
struct hsamem_reencode_info {
	bool done;     /* the memory is now encoded by encoder/revision */
	bool switched; /* this step swapped the memories (false when done: it already was) */
	uint64_t entries_done;  /* entries the new memory holds so far */
	uint64_t entries_total; /* entries of the memory */
	uint64_t chunks_done;   /* chunks of the memory whose text the new memory holds */
	uint64_t chunks_total;
	uint64_t tokens_done; /* tokens of the memory (its encoder's) whose text is re-encoded */
	uint64_t tokens_total;
	uint64_t chunks; /* chunks of the new memory so far */
	uint64_t tokens; /* tokens of the new memory so far */
	char encoder[32];
	uint32_t revision;
};

/*
 * Runs one step of re-encoding user's memory with the built-in encoder `encoder` at `revision`
 * (0: the encoder's newest): the daemon rebuilds the memory from its kept text (entries, with
 * their roles, timestamps and tags, as they are) in a hidden memory, one step of a bounded number
 * of tokens per call, and the step that catches up swaps the memories in one transaction
 * (hsamem(7), RE-ENCODING). Call it again until out->done; every call may be the first (the
 * hidden memory says how far the re-encode got), and a re-encode to another encoder or revision
 * starts over. Meanwhile the memory keeps serving queries, and appends to it go on and are
 * re-encoded too. A memory already encoded so gets done at once, with switched false.
 * out: written on success.
 * Errors: HSAMEM_ENOUSER; HSAMEM_EENCODER (encoder not built in, or a revision it does not have);
 * HSAMEM_EINVAL (the "client" encoder, which only the client's model runs, or an entry that has
 * no tokens for the new encoder); HSAMEM_ENOTSUP (a client memory: its entries are token ids, not
 * text); HSAMEM_EPERM (the client may not use the memory).
 */
int hsamem_reencode(struct hsamem *h, const char *user, const char *encoder, uint32_t revision,
                    struct hsamem_reencode_info *out);

/* ---- ask (experimental) ---- */

/* An ask's parameters; zero for the defaults. */
struct hsamem_ask {
	uint32_t max_tokens;  /* most answer tokens: 0 means 32; at most 64 */
	uint32_t max_entries; /* covered entries returned per chunk; 0: the default (8) */
};

/* What hsamem_ask() returns. */
struct hsamem_ask_result {
	const char *answer;     /* the answer's text */
	const uint32_t *tokens; /* its token ids (the end-of-sequence token not included) */
	size_t n_tokens;
	/* the chunks the answer drew on most (at most 3), most weight first: weight is the chunk's
	 * HSA fusion weight summed over the positions the answer was predicted from; score is 0 and
	 * there are no top tokens */
	struct hsamem_hit *chunks;
	size_t n_chunks;
	bool experimental;   /* true while the shipped model's answers are not reliable */
	bool complete;       /* the model ended the answer (false: it reached max_tokens) */
	uint32_t positions;  /* positions the model predicted from */
	uint64_t searched;   /* sealed chunks ranked at every position */
	const char *encoder; /* the model that answered */
};

/*
 * EXPERIMENTAL. Answers a question from user's memory (hsamem(7), ASKING): the memory's model
 * (encoder hsa-small) generates the answer greedily, with HSA over the memory's sealed chunks at
 * every generated token, until it ends it or writes max_tokens tokens. The question is phrased
 * as the model was trained (e.g. "What is the special magic number for KEY mentioned in the
 * provided text?"); on other text the shipped model's answers are not reliable (models/EVAL.md).
 * opts may be NULL. out: a heap result (hsamem_result_free()).
 * Errors: HSAMEM_ENOUSER; HSAMEM_ENOTSUP (a memory whose encoder is not a language model: lexical,
 * client); HSAMEM_EINVAL (no question, max_tokens or max_entries out of range); HSAMEM_ETOOBIG (a
 * question of more tokens than the model's query block takes); HSAMEM_EENCODER (the model is not
 * loaded); HSAMEM_EPERM.
 */
int hsamem_ask(struct hsamem *h, const char *user, const char *question,
               const struct hsamem_ask *opts, struct hsamem_ask_result **out);

/*
 * hsamem_ask() reading only the chunks that hold an entry passing filter (NULL: none), with no
 * stream context, showing passing entries only (hsamem(7), SCOPES AND FILTERS). Errors as
 * hsamem_ask(), and HSAMEM_EINVAL for a bad filter.
 */
int hsamem_ask_filtered(struct hsamem *h, const char *user, const char *question,
                        const struct hsamem_ask *opts, const struct hsamem_filter *filter,
                        struct hsamem_ask_result **out);

#ifdef __cplusplus
}
#endif

#endif /* HSAMEM_H */
