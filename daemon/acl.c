/*
 * acl.c: the access policy (acl.h): parsing its lines, reading the secrets, making a request's
 * identity and matching it against the rules. It owns the policy objects, their cache of local
 * accounts and the rate limit of the denial log; it must not know operations or touch the store
 * (dispatch.c says which operation needs what, and asks here).
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "acl.h"
#include "hsamem_defs.h"
#include "log.h"

#define PATTERNS_MAX   32
#define SECRET_MIN     16
#define SECRET_MAX     1024
#define CACHE_SLOTS    64
#define CACHE_TTL_NS   (30 * 1000000000ll)
#define DENY_PER_SEC   10
#define PRINCIPALS_MAX 32

enum who_kind { W_ANY, W_SELF, W_UID, W_USER, W_GID, W_GROUP, W_SECRET, W_CERT };

struct who {
	enum who_kind kind;
	uint32_t id;   /* W_UID, W_GID; W_USER and W_GROUP once resolved */
	bool resolved; /* W_USER, W_GROUP: the name exists */
	char name[ACL_NAME_MAX];
};

struct pattern {
	bool any;                /* "*" */
	bool prefix;             /* ends in '*' */
	char text[ACL_NAME_MAX]; /* without the '*'; may hold $login */
};

struct rule {
	struct who who;
	struct pattern pat[PATTERNS_MAX];
	unsigned n_pat;
};

struct secret {
	char name[HSAMEM_NAME_MAX + 1];
	uint8_t *value;
	size_t len;
};

struct account {
	bool used;
	uint32_t uid;
	int64_t until_ns;
	char name[ACL_NAME_MAX];
	uint32_t gids[ACL_GROUPS_MAX];
	unsigned n_gids;
};

struct acl {
	atomic_uint refs;
	uint32_t self_uid;
	struct who *admin;
	unsigned n_admin;
	struct rule *rules;
	unsigned n_rules;
	struct secret *secret;
	unsigned n_secret;
	pthread_mutex_t mu; /* the account cache and the denial log's rate */
	struct account cache[CACHE_SLOTS];
	int64_t deny_sec;
	unsigned deny_n, deny_dropped;
};

static int64_t
mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int
fail(char *why, size_t len, const char *fmt, const char *arg)
{
	snprintf(why, len, fmt, arg);
	return HSAMEM_EINVAL;
}

/* A name of the memory-name alphabet (hsamem_defs.h), as secrets are named. */
static bool
good_name(const char *s, size_t max)
{
	size_t n = strlen(s);
	if (n == 0 || n > max || s[0] == '.' || s[0] == '-')
		return false;
	return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.@:-") ==
	       n;
}

static int
parse_id(const char *s, uint32_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || *s == '-' || v >= UINT32_MAX)
		return -1;
	*out = (uint32_t)v;
	return 0;
}

static int
parse_who(const char *tok, struct who *w, char *why, size_t len)
{
	const char *colon = strchr(tok, ':');
	const char *arg = colon != NULL ? colon + 1 : "";
	size_t kl = colon != NULL ? (size_t)(colon - tok) : strlen(tok);

	memset(w, 0, sizeof(*w));
	if (strcmp(tok, "*") == 0) {
		w->kind = W_ANY;
		return 0;
	}
	if (strcmp(tok, "self") == 0) {
		w->kind = W_SELF;
		return 0;
	}
	if (colon == NULL || *arg == '\0' || strlen(arg) >= ACL_NAME_MAX)
		return fail(why, len,
		            "'%s' is no principal: expected *, self, uid:N, user:LOGIN, gid:N, "
		            "group:NAME, secret:NAME, cert:* or cert:CN",
		            tok);
	snprintf(w->name, sizeof(w->name), "%s", arg);
	if (kl == 3 && strncmp(tok, "uid", 3) == 0) {
		w->kind = W_UID;
		if (parse_id(arg, &w->id) != 0)
			return fail(why, len, "'%s': expected uid:NUMBER", tok);
	} else if (kl == 3 && strncmp(tok, "gid", 3) == 0) {
		w->kind = W_GID;
		if (parse_id(arg, &w->id) != 0)
			return fail(why, len, "'%s': expected gid:NUMBER", tok);
	} else if (kl == 4 && strncmp(tok, "user", 4) == 0) {
		w->kind = W_USER;
	} else if (kl == 5 && strncmp(tok, "group", 5) == 0) {
		w->kind = W_GROUP;
	} else if (kl == 6 && strncmp(tok, "secret", 6) == 0) {
		w->kind = W_SECRET;
		if (!good_name(arg, HSAMEM_NAME_MAX))
			return fail(why, len,
			            "'%s': a secret's name is 1 to 64 of A-Z a-z 0-9 _.@:-", tok);
	} else if (kl == 4 && strncmp(tok, "cert", 4) == 0) {
		w->kind = W_CERT;
#ifndef NNG_OPT_TLS_PEER_CN
		if (strcmp(arg, "*") != 0)
			return fail(
			        why, len,
			        "'%s': this build's NNG (before 1.6) cannot read a certificate's "
			        "name; only cert:* can be used",
			        tok);
#endif
	} else {
		return fail(why, len, "'%s' is no principal: unknown kind before ':'", tok);
	}
	return 0;
}

static int
parse_pattern(const char *tok, struct pattern *p, char *why, size_t len)
{
	char rest[ACL_NAME_MAX];
	size_t n = strlen(tok);

	memset(p, 0, sizeof(*p));
	if (strcmp(tok, "*") == 0) {
		p->any = true;
		return 0;
	}
	if (n >= ACL_NAME_MAX)
		return fail(why, len, "memory pattern '%.40s...' is too long", tok);
	p->prefix = tok[n - 1] == '*';
	snprintf(p->text, sizeof(p->text), "%.*s", (int)(n - (p->prefix ? 1 : 0)), tok);
	/* what is left once $login is taken out must be of the names' alphabet */
	size_t r = 0;
	for (const char *s = p->text; *s != '\0';) {
		if (strncmp(s, "$login", 6) == 0) {
			s += 6;
			continue;
		}
		rest[r++] = *s++;
	}
	rest[r] = '\0';
	if (strspn(rest, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.@:-") !=
	    r)
		return fail(
		        why, len,
		        "'%s' is no memory pattern: expected a name, a prefix ending in '*', or "
		        "'*', where $login stands for the identity's name",
		        tok);
	return 0;
}

/* Splits a line into at most max whitespace-separated tokens in buf; returns their number. */
static unsigned
split(const char *value, char *buf, size_t size, char **tok, unsigned max)
{
	unsigned n = 0;
	snprintf(buf, size, "%s", value);
	for (char *save = NULL, *t = strtok_r(buf, " \t", &save); t != NULL;
	     t = strtok_r(NULL, " \t", &save)) {
		if (n == max)
			return max + 1;
		tok[n++] = t;
	}
	return n;
}

/* Parses one line; rule (allow) or admins (admin) receive the result when not NULL. */
static int
parse_line(enum acl_line line, const char *value, struct rule *rule, struct who *admins,
           unsigned *n_admins, char *why, size_t len)
{
	char buf[1024], *tok[PATTERNS_MAX + 2] = {NULL};
	struct rule scratch;
	struct who w;
	unsigned n = split(value, buf, sizeof(buf), tok, PATTERNS_MAX + 1);
	int ret;

	if (n == 0)
		return fail(why, len, "%s", "empty line");
	if (n == 1 && strcmp(tok[0], "none") == 0 && line != ACL_LINE_SECRET)
		return 0;
	switch (line) {
	case ACL_LINE_ADMIN:
		if (n > PRINCIPALS_MAX)
			return fail(why, len, "%s", "at most 32 principals a line");
		for (unsigned i = 0; i < n; i++) {
			if ((ret = parse_who(tok[i], &w, why, len)) != 0)
				return ret;
			if (admins != NULL)
				admins[(*n_admins)++] = w;
		}
		return 0;
	case ACL_LINE_ALLOW:
		if (rule == NULL)
			rule = &scratch;
		if (n < 2)
			return fail(why, len, "'%s': expected a principal and memory patterns",
			            value);
		if (n > PATTERNS_MAX + 1)
			return fail(why, len, "%s", "at most 32 memory patterns a line");
		if ((ret = parse_who(tok[0], &rule->who, why, len)) != 0)
			return ret;
		rule->n_pat = 0;
		for (unsigned i = 1; i < n; i++)
			if ((ret = parse_pattern(tok[i], &rule->pat[rule->n_pat++], why, len)) != 0)
				return ret;
		return 0;
	case ACL_LINE_SECRET:
		if (n != 2 || !good_name(tok[0], HSAMEM_NAME_MAX) || tok[1][0] != '/')
			return fail(why, len,
			            "'%s': expected NAME FILE (a name of A-Z a-z 0-9 _.@:-, an "
			            "absolute "
			            "path)",
			            value);
		return 0;
	}
	return HSAMEM_EINVAL;
}

int
acl_check_line(enum acl_line line, const char *value, char *why, size_t len)
{
	unsigned n = 0;
	return parse_line(line, value, NULL, NULL, &n, why, len);
}

/* Reads a secret: a regular file that others cannot read, without its final newline. */
static int
read_secret(const char *name, const char *path, struct secret *s, char *err, size_t len)
{
	uint8_t buf[SECRET_MAX + 2];
	struct stat st;
	ssize_t n = -1;
	int fd = open(path, O_RDONLY | O_CLOEXEC), ret = HSAMEM_EINVAL;

	if (fd < 0 || fstat(fd, &st) != 0) {
		ret = -errno;
		snprintf(err, len, "secret %s: %s: %s", name, path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode) || (st.st_mode & 007) != 0) {
		snprintf(err, len, "secret %s: %s must be a regular file that others cannot read",
		         name, path);
		goto out;
	}
	n = read(fd, buf, sizeof(buf));
	if (n > 0 && buf[n - 1] == '\n')
		n--;
	if (n > 0 && buf[n - 1] == '\r')
		n--;
	if (n < SECRET_MIN || n > SECRET_MAX) {
		snprintf(err, len, "secret %s: %s must hold 16 to 1024 bytes", name, path);
		goto out;
	}
	if ((s->value = malloc((size_t)n)) == NULL) {
		ret = -ENOMEM;
		goto out;
	}
	memcpy(s->value, buf, (size_t)n);
	s->len = (size_t)n;
	snprintf(s->name, sizeof(s->name), "%s", name);
	ret = 0;
out:
	explicit_bzero(buf, sizeof(buf));
	if (fd >= 0)
		close(fd);
	return ret;
}

static int
add_secret(struct acl *acl, const char *line, char *err, size_t len)
{
	char buf[1024], *tok[3] = {NULL};
	split(line, buf, sizeof(buf), tok, 2);
	for (unsigned i = 0; i < acl->n_secret; i++)
		if (strcmp(acl->secret[i].name, tok[0]) == 0) {
			snprintf(err, len, "secret %s: the name is given twice", tok[0]);
			return HSAMEM_EINVAL;
		}
	struct secret *s = &acl->secret[acl->n_secret];
	int ret = read_secret(tok[0], tok[1], s, err, len);
	if (ret != 0)
		return ret;
	acl->n_secret++;
	for (unsigned i = 0; i + 1 < acl->n_secret; i++)
		if (acl->secret[i].len == s->len &&
		    memcmp(acl->secret[i].value, s->value, s->len) == 0) {
			snprintf(err, len, "secrets %s and %s are the same", acl->secret[i].name,
			         s->name);
			return HSAMEM_EINVAL;
		}
	return 0;
}

/* Finds the uid of user: and the gid of group: principals; a missing name matches nobody. */
static void
resolve(struct who *w, bool quiet)
{
	char buf[16384];
	if (w->kind == W_USER) {
		struct passwd pw, *res = NULL;
		if (getpwnam_r(w->name, &pw, buf, sizeof(buf), &res) == 0 && res != NULL) {
			w->id = (uint32_t)pw.pw_uid;
			w->resolved = true;
		}
	} else if (w->kind == W_GROUP) {
		struct group gr, *res = NULL;
		if (getgrnam_r(w->name, &gr, buf, sizeof(buf), &res) == 0 && res != NULL) {
			w->id = (uint32_t)gr.gr_gid;
			w->resolved = true;
		}
	} else {
		return;
	}
	if (!w->resolved)
		log_msg(quiet ? LOG_DEBUG : LOG_WARNING,
		        "acl: %s '%s' does not exist: it matches nobody",
		        w->kind == W_USER ? "user" : "group", w->name);
}

int
acl_open(const struct acl_lines *admin, const struct acl_lines *allow,
         const struct acl_lines *secret, struct acl **out, char *err, size_t len)
{
	struct acl *acl = calloc(1, sizeof(*acl));
	int ret = -ENOMEM;

	if (acl == NULL)
		return ret;
	atomic_init(&acl->refs, 1);
	acl->self_uid = (uint32_t)geteuid();
	pthread_mutex_init(&acl->mu, NULL);
	if ((acl->admin = calloc((size_t)admin->n * PRINCIPALS_MAX + 1, sizeof(*acl->admin))) ==
	            NULL ||
	    (acl->rules = calloc((size_t)allow->n + 1, sizeof(*acl->rules))) == NULL ||
	    (acl->secret = calloc((size_t)secret->n + 1, sizeof(*acl->secret))) == NULL)
		goto fail;
	for (unsigned i = 0; i < admin->n; i++) {
		bool quiet = strcmp(admin->v[i], ACL_DEFAULT_ADMIN) == 0;
		unsigned first = acl->n_admin;
		if ((ret = parse_line(ACL_LINE_ADMIN, admin->v[i], NULL, acl->admin, &acl->n_admin,
		                      err, len)) != 0)
			goto fail;
		for (unsigned j = first; j < acl->n_admin; j++)
			resolve(&acl->admin[j], quiet);
	}
	for (unsigned i = 0; i < allow->n; i++) {
		struct rule *r = &acl->rules[acl->n_rules];
		if (strcmp(allow->v[i], "none") == 0)
			continue;
		if ((ret = parse_line(ACL_LINE_ALLOW, allow->v[i], r, NULL, NULL, err, len)) != 0)
			goto fail;
		resolve(&r->who, false);
		acl->n_rules++;
	}
	for (unsigned i = 0; i < secret->n; i++)
		if ((ret = add_secret(acl, secret->v[i], err, len)) != 0)
			goto fail;
	*out = acl;
	return 0;
fail:
	acl_put(acl);
	return ret;
}

struct acl *
acl_hold(struct acl *acl)
{
	if (acl != NULL)
		atomic_fetch_add(&acl->refs, 1);
	return acl;
}

void
acl_put(struct acl *acl)
{
	if (acl == NULL || atomic_fetch_sub(&acl->refs, 1) != 1)
		return;
	for (unsigned i = 0; acl->secret != NULL && i < acl->n_secret; i++) {
		explicit_bzero(acl->secret[i].value, acl->secret[i].len);
		free(acl->secret[i].value);
	}
	pthread_mutex_destroy(&acl->mu);
	free(acl->secret);
	free(acl->rules);
	free(acl->admin);
	free(acl);
}

/* The login and groups of uid from the account database, through the policy's cache. */
static void
account_of(struct acl *acl, uint32_t uid, struct account *out)
{
	int64_t now = mono_ns();
	struct account *slot = NULL;

	pthread_mutex_lock(&acl->mu);
	for (unsigned i = 0; i < CACHE_SLOTS; i++) {
		struct account *a = &acl->cache[i];
		if (a->used && a->uid == uid && a->until_ns > now) {
			*out = *a;
			pthread_mutex_unlock(&acl->mu);
			return;
		}
	}
	pthread_mutex_unlock(&acl->mu);

	char buf[16384];
	struct passwd pw, *res = NULL;
	memset(out, 0, sizeof(*out));
	out->used = true;
	out->uid = uid;
	out->until_ns = now + CACHE_TTL_NS;
	if (getpwuid_r((uid_t)uid, &pw, buf, sizeof(buf), &res) == 0 && res != NULL) {
		gid_t gids[ACL_GROUPS_MAX];
		int n = ACL_GROUPS_MAX;
		snprintf(out->name, sizeof(out->name), "%s", pw.pw_name);
		if (getgrouplist(pw.pw_name, pw.pw_gid, gids, &n) < 0) {
			log_debug("acl: uid %u is in more than %d groups; the rest are ignored",
			          (unsigned)uid, ACL_GROUPS_MAX);
			n = ACL_GROUPS_MAX;
		}
		for (int i = 0; i < n; i++)
			out->gids[out->n_gids++] = (uint32_t)gids[i];
	}

	pthread_mutex_lock(&acl->mu);
	for (unsigned i = 0; i < CACHE_SLOTS; i++) {
		struct account *a = &acl->cache[i];
		if (!a->used || a->uid == uid) {
			slot = a;
			break;
		}
		if (slot == NULL || a->until_ns < slot->until_ns)
			slot = a;
	}
	*slot = *out;
	pthread_mutex_unlock(&acl->mu);
}

/* Compares the secret a client sent with a configured one in time that depends on the configured
 * secret's length only. */
static bool
same_secret(const uint8_t *sent, size_t sent_len, const struct secret *s)
{
	volatile uint8_t diff = sent_len != s->len;
	for (size_t i = 0; i < s->len; i++)
		diff |= s->value[i] ^ (i < sent_len ? sent[i] : 0);
	return diff == 0;
}

static bool
who_matches(const struct acl *acl, const struct who *w, const struct acl_id *id)
{
	switch (w->kind) {
	case W_ANY: return id->kind != ACL_NOBODY;
	case W_SELF: return id->kind == ACL_LOCAL && id->uid == acl->self_uid;
	case W_USER:
	case W_UID:
		return id->kind == ACL_LOCAL && (w->kind == W_UID || w->resolved) &&
		       id->uid == w->id;
	case W_GROUP:
	case W_GID:
		if (id->kind != ACL_LOCAL || (w->kind == W_GROUP && !w->resolved))
			return false;
		for (unsigned i = 0; i < id->n_gids; i++)
			if (id->gids[i] == w->id)
				return true;
		return false;
	case W_SECRET: return id->kind == ACL_SECRET && strcmp(id->name, w->name) == 0;
	case W_CERT:
		return id->kind == ACL_CERT &&
		       (strcmp(w->name, "*") == 0 ||
		        (id->name[0] != '\0' && strcmp(id->name, w->name) == 0));
	}
	return false;
}

static void
identify_local(struct acl *acl, const struct peer *p, struct acl_id *id)
{
	struct account a;
	account_of(acl, p->uid, &a);
	id->kind = ACL_LOCAL;
	id->uid = p->uid;
	id->gids[id->n_gids++] = p->gid;
	for (unsigned i = 0; i < a.n_gids && id->n_gids < ACL_GROUPS_MAX; i++)
		if (a.gids[i] != p->gid)
			id->gids[id->n_gids++] = a.gids[i];
	snprintf(id->name, sizeof(id->name), "%s", a.name);
	snprintf(id->who, sizeof(id->who), "uid %u (%s) pid %" PRIu64, (unsigned)p->uid,
	         a.name[0] != '\0' ? a.name : "no account", p->pid);
}

void
acl_identify(struct acl *acl, const struct peer *p, const uint8_t *secret, size_t len,
             struct acl_id *id)
{
	const struct secret *match = NULL;

	memset(id, 0, sizeof(*id));
	switch (p->transport) {
	case PEER_UNKNOWN:
		snprintf(id->who, sizeof(id->who), "a peer the transport cannot name");
		return;
	case PEER_IPC:
		if (!p->has_creds) {
			snprintf(id->who, sizeof(id->who), "an ipc peer without credentials");
			return;
		}
		identify_local(acl, p, id);
		break;
	case PEER_TCP:
	case PEER_TLS:
		if (p->transport == PEER_TLS && !p->verified) {
			snprintf(id->who, sizeof(id->who), "%s (certificate not verified)",
			         p->addr);
			return;
		}
		for (unsigned i = 0; len > 0 && i < acl->n_secret; i++)
			if (same_secret(secret, len, &acl->secret[i]))
				match = &acl->secret[i];
		if (match != NULL) {
			id->kind = ACL_SECRET;
			snprintf(id->name, sizeof(id->name), "%s", match->name);
			snprintf(id->who, sizeof(id->who), "secret '%s' from %s", match->name,
			         p->addr);
		} else if (len > 0) {
			snprintf(id->who, sizeof(id->who), "%s (the shared secret does not match)",
			         p->addr);
			return;
		} else if (p->transport == PEER_TLS) {
			id->kind = ACL_CERT;
			snprintf(id->name, sizeof(id->name), "%s", p->cn);
			snprintf(id->who, sizeof(id->who), "certificate%s%s%s from %s",
			         p->cn[0] ? " '" : "", p->cn, p->cn[0] ? "'" : "", p->addr);
		} else {
			snprintf(id->who, sizeof(id->who),
			         "%s (tcp without a shared secret: set HSAMEM_SECRET)", p->addr);
			return;
		}
		break;
	}
	for (unsigned i = 0; i < acl->n_admin && !id->admin; i++)
		id->admin = who_matches(acl, &acl->admin[i], id);
}

/* Whether name matches p, with $login standing for login. */
static bool
pattern_matches(const struct pattern *p, const char *login, const char *name)
{
	char want[2 * ACL_NAME_MAX];
	size_t n = 0, ll = strlen(login);

	if (p->any)
		return true;
	for (const char *s = p->text; *s != '\0';) {
		if (strncmp(s, "$login", 6) == 0) {
			if (ll == 0 || n + ll >= sizeof(want))
				return false;
			memcpy(want + n, login, ll);
			n += ll;
			s += 6;
		} else {
			if (n + 1 >= sizeof(want))
				return false;
			want[n++] = *s++;
		}
	}
	want[n] = '\0';
	return p->prefix ? strncmp(name, want, n) == 0 : strcmp(name, want) == 0;
}

bool
acl_may_use(const struct acl *acl, const struct acl_id *id, const char *name)
{
	if (id->admin)
		return true;
	if (acl == NULL || id->kind == ACL_NOBODY || name == NULL)
		return false;
	for (unsigned i = 0; i < acl->n_rules; i++) {
		const struct rule *r = &acl->rules[i];
		if (!who_matches(acl, &r->who, id))
			continue;
		for (unsigned j = 0; j < r->n_pat; j++)
			if (pattern_matches(&r->pat[j], id->name, name))
				return true;
	}
	return false;
}

void
acl_log_denied(struct acl *acl, const struct acl_id *id, const char *op, const char *name,
               bool admin_op)
{
	int64_t sec = mono_ns() / 1000000000;
	unsigned dropped = 0;
	bool log;

	pthread_mutex_lock(&acl->mu);
	if (sec != acl->deny_sec) {
		dropped = acl->deny_dropped;
		acl->deny_sec = sec;
		acl->deny_n = acl->deny_dropped = 0;
	}
	log = acl->deny_n < DENY_PER_SEC;
	if (log)
		acl->deny_n++;
	else
		acl->deny_dropped++;
	pthread_mutex_unlock(&acl->mu);
	if (dropped > 0)
		log_notice("acl: %u more denials not logged", dropped);
	if (log)
		log_notice("acl: denied %s%s%s%s to %s%s", op, name != NULL ? " of memory '" : "",
		           name != NULL ? name : "", name != NULL ? "'" : "", id->who,
		           admin_op && id->kind != ACL_NOBODY ? ": not an administrator" : "");
}

void
acl_box_init(struct acl_box *b)
{
	pthread_mutex_init(&b->mu, NULL);
	b->cur = NULL;
}

void
acl_box_set(struct acl_box *b, struct acl *acl)
{
	pthread_mutex_lock(&b->mu);
	struct acl *old = b->cur;
	b->cur = acl;
	pthread_mutex_unlock(&b->mu);
	acl_put(old);
}

struct acl *
acl_box_get(struct acl_box *b)
{
	pthread_mutex_lock(&b->mu);
	struct acl *acl = acl_hold(b->cur);
	pthread_mutex_unlock(&b->mu);
	return acl;
}

void
acl_box_fini(struct acl_box *b)
{
	acl_put(b->cur);
	b->cur = NULL;
	pthread_mutex_destroy(&b->mu);
}
