/*
 * test_acl.c: the access policy (daemon/acl.c) without a daemon: the syntax of its lines, the
 * identities made from each kind of peer, the default policy, rules by uid, login, group and
 * secret with exact, prefix and $login patterns, the secret files' checks, and the swap of
 * policies on reload. tests/test_access.sh runs the same policy with real peers.
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "acl.h"
#include "conf.h"
#include "hsamem_defs.h"
#include "log.h"
#include "test.h"

static char dir[] = "/tmp/hsamem-test-acl-XXXXXX";

/* A conf of the defaults plus the given settings. */
static int
make_conf(struct conf *c, const char *const *sets)
{
	char err[400];
	int ret = conf_init(c);
	if (ret != 0)
		return ret;
	conf_next_layer(c);
	for (; *sets != NULL; sets++)
		if ((ret = conf_set(c, *sets, err, sizeof(err))) != 0) {
			fprintf(stderr, "test_acl: %s: %s\n", *sets, err);
			return ret;
		}
	return 0;
}

static int
open_conf(const struct conf *c, struct acl **acl, char *err, size_t len)
{
	struct acl_lines admin = {c->admin.v, c->admin.n}, allow = {c->allow.v, c->allow.n},
	                 secret = {c->secret.v, c->secret.n};
	return acl_open(&admin, &allow, &secret, acl, err, len);
}

static struct acl *
open_policy(const char *const *sets)
{
	struct conf c;
	struct acl *acl = NULL;
	char err[400];
	if (make_conf(&c, sets) != 0 || open_conf(&c, &acl, err, sizeof(err)) != 0) {
		fprintf(stderr, "test_acl: cannot open the policy: %s\n", err);
		acl = NULL;
	}
	conf_fini(&c);
	return acl;
}

/* The error acl_open gives for sets (0 when it opens). */
static int
open_error(const char *const *sets, char *err, size_t len)
{
	struct conf c;
	struct acl *acl = NULL;
	int ret = make_conf(&c, sets);
	if (ret == 0)
		ret = open_conf(&c, &acl, err, len);
	acl_put(acl);
	conf_fini(&c);
	return ret;
}

static struct peer
local(uint32_t uid, uint32_t gid)
{
	struct peer p = {
	        .transport = PEER_IPC, .has_creds = true, .uid = uid, .gid = gid, .pid = 7};
	return p;
}

static struct peer
net(enum peer_transport t, bool verified)
{
	struct peer p = {.transport = t, .verified = verified};
	snprintf(p.addr, sizeof(p.addr), "127.0.0.1:4000");
	return p;
}

static void
write_file(const char *name, const char *text, mode_t mode)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	CHECK(f != NULL);
	if (f == NULL)
		return;
	fputs(text, f);
	fclose(f);
	chmod(path, mode);
}

static void
test_lines(void)
{
	char why[300];
	static const char *const good_admin[] = {"uid:0", "self group:hsamem gid:10 user:root",
	                                         "secret:app cert:*", "*", "none"};
	static const char *const bad_admin[] = {
	        "uid:x", "uid:", "wizard", "group:", "secret:.x", "uid:-1", "cert:"};
	static const char *const good_allow[] = {"* $login $login:*", "uid:1000 a b* *",
	                                         "group:staff team-*", "secret:app app:$login",
	                                         "none"};
	static const char *const bad_allow[] = {"alice", "* a*b", "* $user",
	                                        "* **",  "* a/b", "bogus:x y"};
	for (size_t i = 0; i < sizeof(good_admin) / sizeof(*good_admin); i++)
		CHECK_RET(acl_check_line(ACL_LINE_ADMIN, good_admin[i], why, sizeof(why)), 0);
	for (size_t i = 0; i < sizeof(bad_admin) / sizeof(*bad_admin); i++)
		CHECK_RET(acl_check_line(ACL_LINE_ADMIN, bad_admin[i], why, sizeof(why)),
		          HSAMEM_EINVAL);
	for (size_t i = 0; i < sizeof(good_allow) / sizeof(*good_allow); i++)
		CHECK_RET(acl_check_line(ACL_LINE_ALLOW, good_allow[i], why, sizeof(why)), 0);
	for (size_t i = 0; i < sizeof(bad_allow) / sizeof(*bad_allow); i++)
		CHECK_RET(acl_check_line(ACL_LINE_ALLOW, bad_allow[i], why, sizeof(why)),
		          HSAMEM_EINVAL);
	CHECK_RET(acl_check_line(ACL_LINE_SECRET, "app /etc/hsamem/app.secret", why, sizeof(why)),
	          0);
	CHECK_RET(acl_check_line(ACL_LINE_SECRET, "app", why, sizeof(why)), HSAMEM_EINVAL);
	CHECK_RET(acl_check_line(ACL_LINE_SECRET, "app rel/path", why, sizeof(why)), HSAMEM_EINVAL);
	CHECK_RET(acl_check_line(ACL_LINE_SECRET, "a b /x", why, sizeof(why)), HSAMEM_EINVAL);
	CHECK_RET(acl_check_line(ACL_LINE_SECRET, "none", why, sizeof(why)), HSAMEM_EINVAL);
	CHECK(strstr(why, "NAME FILE") != NULL);
}

/* The default policy: root and the daemon's uid administer, everyone else uses its login. */
static void
test_default(void)
{
	static const char *const none[] = {NULL};
	struct acl *acl = open_policy(none);
	struct acl_id id;
	struct peer p;
	if (acl == NULL) {
		CHECK(0);
		return;
	}
	p = local(0, 0);
	acl_identify(acl, &p, NULL, 0, &id);
	CHECK(id.kind == ACL_LOCAL && id.admin && strcmp(id.name, "root") == 0);
	CHECK(acl_may_use(acl, &id, "anything"));

	p = local(65534, 65534);
	acl_identify(acl, &p, (const uint8_t *)"ignored-on-ipc-0123", 19, &id);
	CHECK(id.kind == ACL_LOCAL && !id.admin && strcmp(id.name, "nobody") == 0);
	CHECK(strstr(id.who, "uid 65534 (nobody) pid 7") != NULL);
	CHECK(acl_may_use(acl, &id, "nobody"));
	CHECK(acl_may_use(acl, &id, "nobody:diary"));
	CHECK(!acl_may_use(acl, &id, "nobodyx"));
	CHECK(!acl_may_use(acl, &id, "nobod"));
	CHECK(!acl_may_use(acl, &id, "root"));
	CHECK(!acl_may_use(acl, &id, NULL));
	CHECK(!acl_may_use(NULL, &id, "nobody"));

	/* a uid without an account has no login: $login matches nothing */
	p = local(3999999, 3999999);
	acl_identify(acl, &p, NULL, 0, &id);
	CHECK(id.kind == ACL_LOCAL && !id.admin && id.name[0] == '\0');
	CHECK(strstr(id.who, "no account") != NULL);
	CHECK(!acl_may_use(acl, &id, ""));
	CHECK(!acl_may_use(acl, &id, ":x"));

	/* peers the transport cannot name, and tcp without secrets, are nobody */
	p = (struct peer){.transport = PEER_UNKNOWN};
	acl_identify(acl, &p, NULL, 0, &id);
	CHECK(id.kind == ACL_NOBODY && !acl_may_use(acl, &id, "x"));
	p = (struct peer){.transport = PEER_IPC};
	acl_identify(acl, &p, NULL, 0, &id);
	CHECK(id.kind == ACL_NOBODY);
	p = net(PEER_TCP, false);
	acl_identify(acl, &p, NULL, 0, &id);
	CHECK(id.kind == ACL_NOBODY && strstr(id.who, "without a shared secret") != NULL);
	acl_identify(acl, &p, (const uint8_t *)"some-guess-0123456789", 21, &id);
	CHECK(id.kind == ACL_NOBODY && strstr(id.who, "does not match") != NULL);
	/* tls: a verified certificate is an identity; an unverified one never is */
	p = net(PEER_TLS, false);
	acl_identify(acl, &p, NULL, 0, &id);
	CHECK(id.kind == ACL_NOBODY);
	p = net(PEER_TLS, true);
	acl_identify(acl, &p, NULL, 0, &id);
	CHECK(id.kind == ACL_CERT && !id.admin && id.name[0] == '\0');
	CHECK(!acl_may_use(acl, &id, "x"));
	acl_put(acl);
}

static void
test_rules(void)
{
	char s_app[300], s_ops[300];
	snprintf(s_app, sizeof(s_app), "secret=app %s/app.secret", dir);
	snprintf(s_ops, sizeof(s_ops), "secret=ops %s/ops.secret", dir);
	write_file("app.secret", "app-secret-0123456789\n", 0600);
	write_file("ops.secret", "ops-secret-0123456789", 0640);
	const char *const sets[] = {"admin=secret:ops group:nogroup",
	                            "allow=user:nobody nobody-notes",
	                            "allow=gid:4242 team-*",
	                            "allow=uid:3999999 $login exact",
	                            "allow=secret:app $login $login:*",
	                            "allow=cert:* shared",
	                            "allow=user:no-such-login-here *",
	                            "allow=group:no-such-group-here *",
	                            s_app,
	                            s_ops,
	                            NULL};
	struct acl *acl = open_policy(sets);
	struct acl_id id;
	struct peer p;
	if (acl == NULL) {
		CHECK(0);
		return;
	}
	/* the group database makes nobody (gid 0 on the socket) a member of nogroup */
	p = local(65534, 0);
	acl_identify(acl, &p, NULL, 0, &id);
	CHECK(id.admin);
	/* and the socket's gid counts for a uid without an account */
	p = local(3999999, 65534);
	acl_identify(acl, &p, NULL, 0, &id);
	CHECK(id.admin);
	p = local(3999999, 4242);
	acl_identify(acl, &p, NULL, 0, &id);
	CHECK(!id.admin);
	CHECK(acl_may_use(acl, &id, "team-a") && acl_may_use(acl, &id, "team-"));
	CHECK(acl_may_use(acl, &id, "exact") && !acl_may_use(acl, &id, "exactly"));
	CHECK(!acl_may_use(acl, &id, "nobody-notes") && !acl_may_use(acl, &id, "team"));
	/* rules naming a login or group that does not exist match nobody */
	p = local(1, 1);
	acl_identify(acl, &p, NULL, 0, &id);
	CHECK(!id.admin && !acl_may_use(acl, &id, "x"));

	/* secrets: the whole secret, nothing more or less; its name is $login */
	p = net(PEER_TCP, false);
	acl_identify(acl, &p, (const uint8_t *)"app-secret-0123456789", 21, &id);
	CHECK(id.kind == ACL_SECRET && !id.admin && strcmp(id.name, "app") == 0);
	CHECK(strstr(id.who, "secret 'app' from 127.0.0.1:4000") != NULL);
	CHECK(acl_may_use(acl, &id, "app") && acl_may_use(acl, &id, "app:u1"));
	CHECK(!acl_may_use(acl, &id, "ops") && !acl_may_use(acl, &id, "shared"));
	acl_identify(acl, &p, (const uint8_t *)"app-secret-012345678", 20, &id);
	CHECK(id.kind == ACL_NOBODY);
	acl_identify(acl, &p, (const uint8_t *)"app-secret-01234567890", 22, &id);
	CHECK(id.kind == ACL_NOBODY);
	acl_identify(acl, &p, (const uint8_t *)"app-secret-0123456789\n", 22, &id);
	CHECK(id.kind == ACL_NOBODY);
	acl_identify(acl, &p, (const uint8_t *)"ops-secret-0123456789", 21, &id);
	CHECK(id.kind == ACL_SECRET && id.admin);
	/* over tls a secret names the identity too; a wrong one is refused, not ignored */
	p = net(PEER_TLS, true);
	acl_identify(acl, &p, (const uint8_t *)"app-secret-0123456789", 21, &id);
	CHECK(id.kind == ACL_SECRET && strcmp(id.name, "app") == 0);
	acl_identify(acl, &p, (const uint8_t *)"wrong", 5, &id);
	CHECK(id.kind == ACL_NOBODY);
	acl_identify(acl, &p, NULL, 0, &id);
	CHECK(id.kind == ACL_CERT && acl_may_use(acl, &id, "shared") &&
	      !acl_may_use(acl, &id, "x"));
	acl_put(acl);
}

static void
test_secret_files(void)
{
	char err[400], set1[300], set2[300];
	const char *const sets[] = {set1, set2, NULL};
	const char *const one[] = {set1, NULL};

	write_file("open.secret", "open-secret-0123456789\n", 0604);
	write_file("short.secret", "short\n", 0600);
	write_file("same.secret", "app-secret-0123456789", 0600);
	snprintf(set1, sizeof(set1), "secret=a %s/open.secret", dir);
	CHECK(open_error(one, err, sizeof(err)) != 0 && strstr(err, "others cannot read") != NULL);
	snprintf(set1, sizeof(set1), "secret=a %s/short.secret", dir);
	CHECK(open_error(one, err, sizeof(err)) != 0 && strstr(err, "16 to 1024") != NULL);
	snprintf(set1, sizeof(set1), "secret=a %s/missing.secret", dir);
	CHECK_RET(open_error(one, err, sizeof(err)), -ENOENT);
	snprintf(set1, sizeof(set1), "secret=a %s/app.secret", dir);
	snprintf(set2, sizeof(set2), "secret=b %s/same.secret", dir);
	CHECK(open_error(sets, err, sizeof(err)) != 0 && strstr(err, "are the same") != NULL);
	snprintf(set2, sizeof(set2), "secret=a %s/ops.secret", dir);
	CHECK(open_error(sets, err, sizeof(err)) != 0 && strstr(err, "given twice") != NULL);
}

static void
test_box(void)
{
	static const char *const none[] = {NULL};
	static const char *const admin_none[] = {"admin=none", NULL};
	struct acl_box box;
	struct acl_id id;
	struct peer p = local(0, 0);

	acl_box_init(&box);
	CHECK(acl_box_get(&box) == NULL);
	acl_box_set(&box, open_policy(none));
	struct acl *held = acl_box_get(&box);
	acl_box_set(&box, open_policy(admin_none)); /* a reload */
	/* a request in flight keeps judging by the policy it took */
	acl_identify(held, &p, NULL, 0, &id);
	CHECK(id.admin);
	acl_put(held);
	struct acl *now = acl_box_get(&box);
	acl_identify(now, &p, NULL, 0, &id);
	CHECK(!id.admin && acl_may_use(now, &id, "root") && !acl_may_use(now, &id, "other"));
	acl_put(now);
	acl_box_fini(&box);
}

int
main(void)
{
	log_set_level(LOG_ERR);
	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	struct passwd *pw = getpwnam("nobody");
	struct group *gr = getgrnam("nogroup");
	if (pw == NULL || pw->pw_uid != 65534 || pw->pw_gid != 65534 || gr == NULL ||
	    gr->gr_gid != 65534) {
		printf("test_acl: needs nobody and nogroup at 65534, as Debian has them; "
		       "skipped\n");
		return 77;
	}
	test_lines();
	test_default();
	test_rules();
	test_secret_files();
	test_box();
	char cmd[100];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	CHECK(system(cmd) == 0);
	return test_done("test_acl");
}
