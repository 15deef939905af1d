/*
 * metrics_http.h: the metrics endpoint (hsamemd(8), METRICS): NNG's HTTP server, answering GET on
 * the path of metrics-listen with metrics_render's text. It serves without the access policy, so
 * conf_check keeps it on loopback unless metrics-allow-remote says otherwise.
 */
#ifndef HSAMEM_METRICS_HTTP_H
#define HSAMEM_METRICS_HTTP_H

struct daemon;
struct metrics_http;

/* Listens on d->conf.metrics_listen (checked by conf_check). Returns 0 or a negative code (an
 * NNG error as -errno where it has one, else HSAMEM_ECONNECT), logged. */
int metrics_http_start(struct daemon *d, struct metrics_http **out);
/* Stops listening, after any scrape in progress. NULL-safe. */
void metrics_http_stop(struct metrics_http *m);

#endif
