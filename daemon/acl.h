/*
 * acl.h: the access policy of hsamemd. A request comes from an identity, made from what the
 * transport tells of its peer (peer.h) and the shared secret the request may carry; the policy
 * says whether that identity administers the daemon, and which memories it may use.
 *
 * Identities:
 *   local    an ipc:// peer: the uid and gid the kernel gives for the socket, plus the groups of
 *            the uid's account in the group database (getpwuid_r, getgrouplist); the groups of
 *            the peer process itself are not visible through the socket.
 *   secret   a tcp:// (or tls+tcp://) peer whose request carries one of the configured secrets.
 *   cert     a tls+tcp:// peer whose certificate tls-ca verified, and that sent no secret.
 *   nobody   anything else: a tcp:// peer without a valid secret, a pipe NNG says nothing of.
 *
 * Settings (hsamem.conf(5) has the full syntax):
 *   admin = PRINCIPAL...             these administer: every memory, and the operations of the
 *                                    whole store (list all, global stats, delete, import)
 *   allow = PRINCIPAL PATTERN...     this principal may use the memories the patterns name
 *   secret = NAME FILE               a shared secret, read from FILE, and its identity's name
 * A principal is *, self, uid:N, user:LOGIN, gid:N, group:NAME, secret:NAME, cert:* or
 * cert:CN; a pattern is a memory name, a prefix ending in '*', or '*', where $login stands for
 * the identity's name (the login of a local uid, the secret's name, the certificate's CN).
 *
 * A policy is immutable once opened, shared by reference: a reload opens a new one and swaps it
 * into the daemon's box, while requests in flight finish under the one they took.
 */
#ifndef HSAMEM_ACL_H
#define HSAMEM_ACL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "peer.h"

/* The defaults: root, the daemon's own uid and the group hsamem administer (as everyone who could
 * reach the service's socket did before there was a policy); everyone else may use the memory
 * named after its login, and those whose names start with the login and a colon. */
#define ACL_DEFAULT_ADMIN "uid:0 self group:hsamem"
#define ACL_DEFAULT_ALLOW "* $login $login:*"

#define ACL_NAME_MAX   128
#define ACL_GROUPS_MAX 256
#define ACL_WHO_MAX    240

enum acl_line { ACL_LINE_ADMIN, ACL_LINE_ALLOW, ACL_LINE_SECRET };

enum acl_kind { ACL_NOBODY, ACL_LOCAL, ACL_SECRET, ACL_CERT };

struct acl_id {
	enum acl_kind kind;
	bool admin;
	uint32_t uid;                  /* ACL_LOCAL */
	uint32_t gids[ACL_GROUPS_MAX]; /* ACL_LOCAL: the socket's gid, then the account's groups */
	unsigned n_gids;
	/* what $login stands for: the login of a local uid ("" when it has no account), the name
	 * of a secret, the common name of a certificate ("" where NNG does not tell it) */
	char name[ACL_NAME_MAX];
	/* for replies and the log ("uid 1000 (alice) pid 42", "secret 'app' from 127.0.0.1:4000");
	 * for ACL_NOBODY, why the peer is nobody */
	char who[ACL_WHO_MAX];
};

struct acl;

/* Checks the syntax of one admin, allow or secret line. Returns 0, or HSAMEM_EINVAL with the
 * reason in why. */
int acl_check_line(enum acl_line line, const char *value, char *why, size_t len);

/* Lines of one setting, as the configuration holds them (conf.h: admin, allow, secret). */
struct acl_lines {
	char *const *v;
	unsigned n;
};

/*
 * Opens a policy: parses the admin, allow and secret lines, resolves user: and group: names,
 * reads the secret files (each a regular file not readable by others, holding 16 to 1024 bytes;
 * a final newline is not part of the secret). Returns 0 with one reference in *out, or a
 * negative code with the reason in err.
 */
int acl_open(const struct acl_lines *admin, const struct acl_lines *allow,
             const struct acl_lines *secret, struct acl **out, char *err, size_t len);
/* Takes another reference; acl_put drops one and frees the policy with the last. NULL-safe. */
struct acl *acl_hold(struct acl *acl);
void acl_put(struct acl *acl);

/*
 * Makes the identity of a request from its peer and the secret it carried (len 0: none), and
 * decides whether it administers. May block in the account database (a local uid's login and
 * groups, cached for 30 seconds per policy): call it from a worker, not from an NNG callback.
 */
void acl_identify(struct acl *acl, const struct peer *p, const uint8_t *secret, size_t len,
                  struct acl_id *id);

/* Whether id may use memory name: an administrator may use every memory, nobody none. */
bool acl_may_use(const struct acl *acl, const struct acl_id *id, const char *name);

/* Logs the refusal of operation op (on memory name, or NULL) at notice level, at most 10 a
 * second; the rest are counted and reported. admin_op: the operation is for administrators. */
void acl_log_denied(struct acl *acl, const struct acl_id *id, const char *op, const char *name,
                    bool admin_op);

/* The daemon's current policy, swapped on reload. */
struct acl_box {
	pthread_mutex_t mu;
	struct acl *cur;
};
void acl_box_init(struct acl_box *b);
/* Takes over the caller's reference to acl, and drops the box's reference to the previous one. */
void acl_box_set(struct acl_box *b, struct acl *acl);
/* A reference to the current policy (acl_put it), or NULL before the first acl_box_set. */
struct acl *acl_box_get(struct acl_box *b);
void acl_box_fini(struct acl_box *b);

#endif
