/*
 * metrics.h: the daemon's metrics in the Prometheus text exposition format, version 0.0.4
 * (hsamemd(8), METRICS). One renderer serves both the HTTP endpoint (metrics_http.h) and the stats
 * operation's prometheus field, so `hsamem stats --prometheus` and a scrape never disagree. It
 * reads the counters the request path keeps in atomics (stats.h, commit.h, the backend's stats
 * hook) and the counts each memory's user record keeps: a scrape walks the user records, never a
 * memory's entries or chunks.
 */
#ifndef HSAMEM_METRICS_H
#define HSAMEM_METRICS_H

#include <stddef.h>

struct acl;
struct acl_id;
struct daemon;
struct store_txn;

/* The media type of what metrics_render writes. */
#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/*
 * Renders every family into a malloc'd, NUL-terminated text (*out, *len without the NUL), reading
 * the memories within txn. The per-memory families list the memories id may use under acl (acl
 * NULL: every memory), and only the memory named only when it is not NULL. Returns 0, a store
 * error, or -ENOMEM; *out is written only on success.
 */
int metrics_render(struct daemon *d, struct store_txn *txn, const struct acl *acl,
                   const struct acl_id *id, const char *only, char **out, size_t *len);

#endif
