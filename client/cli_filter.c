/*
 * cli_filter.c: the hsamem CLI's options for scopes, metadata and filters (cli_filter.h). It only
 * splits and checks the form of what is given (K=V, a known role, a time); the daemon checks the
 * sizes and characters and says what is wrong.
 */
#define _DEFAULT_SOURCE /* timegm */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli_filter.h"

int
cli_pairs_add(struct ctx *c, struct cli_pairs *p, const char *arg, bool commas, const char *opt)
{
	size_t len = strlen(arg) + 1;
	if (len > sizeof(p->buf) - p->used)
		return cli_usage(c, "%s: too long", opt);
	char *s = memcpy(p->buf + p->used, arg, len), *save = NULL;
	p->used += len;
	for (char *tok = commas ? strtok_r(s, ",", &save) : s; tok != NULL;
	     tok = commas ? strtok_r(NULL, ",", &save) : NULL) {
		char *eq = strchr(tok, '=');
		if (eq == NULL || eq == tok || eq[1] == '\0')
			return cli_usage(c, "%s takes KEY=VALUE%s, not '%s'", opt,
			                 commas ? "[,KEY=VALUE]..." : "", tok);
		if (p->n == CLI_PAIRS_MAX)
			return cli_usage(c, "%s: at most %d pairs", opt, CLI_PAIRS_MAX);
		p->v[p->n++] = tok;
	}
	return -1;
}

static bool
parse_offset(const char *s, long *secs)
{
	int hh, mm = 0, n = 0;
	if (strcmp(s, "Z") == 0 || *s == '\0') {
		*secs = 0;
		return true;
	}
	if ((*s != '+' && *s != '-') ||
	    !((sscanf(s + 1, "%2d:%2d%n", &hh, &mm, &n) == 2 && n == 5) ||
	      (sscanf(s + 1, "%2d%2d%n", &hh, &mm, &n) == 2 && n == 4) ||
	      (sscanf(s + 1, "%2d%n", &hh, &n) == 1 && n == 2)) ||
	    s[1 + n] != '\0' || hh > 23 || mm > 59)
		return false;
	*secs = (*s == '-' ? -1 : 1) * (long)(hh * 3600 + mm * 60);
	return true;
}

bool
cli_parse_time(const char *s, int64_t *ms)
{
	struct tm tm = {0};
	int y, mo, d, h = 0, mi = 0, sec = 0, n = 0, frac_ms = 0;
	long off;

	if (sscanf(s, "%4d-%2d-%2d%n", &y, &mo, &d, &n) != 3 || n != 10)
		return false;
	s += n;
	if (*s == 'T' || *s == ' ') {
		if (sscanf(s + 1, "%2d:%2d%n", &h, &mi, &n) != 2 || n != 5)
			return false;
		s += 1 + n;
		if (*s == ':') {
			if (sscanf(s + 1, "%2d%n", &sec, &n) != 1 || n != 2)
				return false;
			s += 1 + n;
			if (*s == '.' || *s == ',') {
				int digits = 0;
				for (s++; *s >= '0' && *s <= '9'; s++, digits++)
					if (digits < 3)
						frac_ms = frac_ms * 10 + (*s - '0');
				if (digits == 0)
					return false;
				for (; digits < 3; digits++)
					frac_ms *= 10;
			}
		}
	}
	if (!parse_offset(s, &off) || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 ||
	    sec > 60)
		return false;
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	time_t t = timegm(&tm);
	if (tm.tm_mday != d) /* normalised: the 31st of a month of 30 days */
		return false;
	*ms = ((int64_t)t - off) * 1000 + frac_ms;
	return true;
}

int
cli_filter_opt(struct ctx *c, struct cli_filter *f, int id, const char *arg)
{
	int64_t t;
	int r;

	f->any = true;
	switch (id) {
	case O_F_SCOPE: return cli_pairs_add(c, &f->scope, arg, true, "--scope");
	case O_F_TAG:
		if (f->f.n_tags == CLI_TAGS_MAX)
			return cli_usage(c, "at most %d tags", CLI_TAGS_MAX);
		f->tags[f->f.n_tags++] = arg;
		return -1;
	case O_F_SINCE:
	case O_F_UNTIL:
		if (!cli_parse_time(arg, &t))
			return cli_usage(c,
			                 "%s takes an ISO 8601 date or time (2026-11-01, "
			                 "2026-11-01T09:30Z), not '%s'",
			                 id == O_F_SINCE ? "--since" : "--until", arg);
		if (id == O_F_SINCE) {
			f->f.has_since = true;
			f->f.since_ms = t;
		} else {
			f->f.has_until = true;
			f->f.until_ms = t;
		}
		return -1;
	case O_F_WHERE:
		if (strncmp(arg, "role=", 5) != 0)
			return cli_pairs_add(c, &f->meta, arg, false, "--where");
		for (r = HSAMEM_ROLE_OTHER; r <= HSAMEM_ROLE_TOOL; r++)
			if (strcmp(arg + 5, hsamem_role_name(r)) == 0)
				break;
		if (r > HSAMEM_ROLE_TOOL)
			return cli_usage(
			        c, "--where role= takes user, assistant, system, tool or other");
		if (f->f.n_roles <= HSAMEM_ROLE_TOOL)
			f->roles[f->f.n_roles++] = (enum hsamem_role)r;
		return -1;
	}
	return -1;
}

const struct hsamem_filter *
cli_filter_get(struct cli_filter *f)
{
	if (!f->any)
		return NULL;
	f->f.scope = f->scope.v;
	f->f.n_scope = f->scope.n;
	f->f.meta = f->meta.v;
	f->f.n_meta = f->meta.n;
	f->f.tags = f->tags;
	f->f.roles = f->roles;
	return &f->f;
}
