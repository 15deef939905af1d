/*
 * metrics_http.c: the metrics endpoint (metrics_http.h). One handler on NNG's HTTP server; a scrape
 * renders in the server's own thread within one short read transaction (metrics.h: the user
 * records only), which costs well under a millisecond (bench/bench_metrics.sh), so it needs no
 * worker. It owns the server and its handler; it must not be started before the store and the
 * committer, nor stopped after them.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/supplemental/http/http.h>

#include "daemon.h"
#include "log.h"
#include "metrics.h"
#include "metrics_http.h"
#include "store.h"

struct metrics_http {
	nng_http_server *server;
};

/* A reply of status (not 200) with a one-line text, or an empty one if even that fails. */
static void
reply_error(nng_aio *aio, uint16_t status, const char *text)
{
	nng_http_res *res;
	if (nng_http_res_alloc_error(&res, status) != 0) {
		nng_aio_finish(aio, NNG_ENOMEM);
		return;
	}
	nng_http_res_set_header(res, "Content-Type", "text/plain; charset=utf-8");
	nng_http_res_copy_data(res, text, strlen(text));
	nng_aio_set_output(aio, 0, res);
	nng_aio_finish(aio, 0);
}

static void
on_scrape(nng_aio *aio)
{
	nng_http_handler *h = nng_aio_get_input(aio, 1);
	struct daemon *d = nng_http_handler_get_data(h);
	struct store_txn txn;
	nng_http_res *res = NULL;
	char *text = NULL;
	size_t len = 0;
	int ret;

	if ((ret = store_txn_begin(d->store, &txn, false, NULL)) != 0) {
		log_warn("metrics: cannot begin a read: %s", hsamem_strerror(ret));
		reply_error(aio, NNG_HTTP_STATUS_SERVICE_UNAVAILABLE,
		            "store: cannot begin a read\n");
		return;
	}
	ret = metrics_render(d, &txn, NULL, NULL, NULL, &text, &len);
	store_txn_abort(&txn);
	if (ret != 0) {
		log_warn("metrics: cannot render: %s", hsamem_strerror(ret));
		reply_error(aio, NNG_HTTP_STATUS_INTERNAL_SERVER_ERROR, "cannot render metrics\n");
		return;
	}
	if (nng_http_res_alloc(&res) != 0 ||
	    nng_http_res_set_header(res, "Content-Type", METRICS_CONTENT_TYPE) != 0 ||
	    nng_http_res_copy_data(res, text, len) != 0) {
		nng_http_res_free(res);
		free(text);
		reply_error(aio, NNG_HTTP_STATUS_INTERNAL_SERVER_ERROR, "out of memory\n");
		return;
	}
	free(text);
	nng_aio_set_output(aio, 0, res);
	nng_aio_finish(aio, 0);
}

int
metrics_http_start(struct daemon *d, struct metrics_http **out)
{
	const char *where = d->conf.metrics_listen;
	struct metrics_http *m = calloc(1, sizeof(*m));
	nng_http_handler *h = NULL;
	nng_url *url = NULL;
	int rv;

	if (m == NULL)
		return -ENOMEM;
	if ((rv = nng_url_parse(&url, where)) != 0)
		goto fail;
	if ((rv = nng_http_server_hold(&m->server, url)) != 0)
		goto fail_url;
	if ((rv = nng_http_handler_alloc(&h, url->u_path, on_scrape)) != 0)
		goto fail_server;
	if ((rv = nng_http_handler_set_method(h, "GET")) != 0 ||
	    (rv = nng_http_handler_set_data(h, d, NULL)) != 0 ||
	    (rv = nng_http_server_add_handler(m->server, h)) != 0) {
		nng_http_handler_free(h);
		goto fail_server;
	}
	if ((rv = nng_http_server_start(m->server)) != 0)
		goto fail_server;
	nng_url_free(url);
	log_info("metrics: serving %s", where);
	*out = m;
	return 0;
fail_server:
	nng_http_server_release(m->server);
fail_url:
	nng_url_free(url);
fail:
	log_err("metrics: cannot listen on %s: %s", where, nng_strerror(rv));
	free(m);
	return rv == NNG_ENOMEM ? -ENOMEM : (rv == NNG_EADDRINUSE ? -EADDRINUSE : HSAMEM_ECONNECT);
}

void
metrics_http_stop(struct metrics_http *m)
{
	if (m == NULL)
		return;
	nng_http_server_stop(m->server);
	nng_http_server_release(m->server);
	free(m);
}
