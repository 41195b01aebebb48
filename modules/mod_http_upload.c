/*
 * mod_http_upload - XEP-0363 HTTP file upload on upload.HOST, the bytes stored
 * once per SHA-256.
 *
 * A client asks the service for a slot (filename, size, content-type); the
 * answer is a PUT URL and a GET URL, the same: BASE/<id>/<filename>, and for
 * the PUT an Authorization header with a token that signs the slot (id, owner,
 * size, type, name, expiry) with a key every node shares (parley_secrets), so
 * no state is needed to check it and it cannot be forged. The PUT's body goes
 * to a temporary file through the worker threads (no disk write on the loop)
 * while its SHA-256 is computed; when it is whole, the file becomes
 * objects/<sha256> unless that object exists already, and a row in
 * upload_files points the slot's id to it. A second PUT to the id finds the
 * row and gets 409. GET and HEAD serve the object by the id, never by a path
 * the client wrote. Files expire (expiry) and an object goes with its last
 * file, at the hourly purge.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "base64.h"
#include "db.h"
#include "http.h"
#include "log.h"
#include "module.h"
#include "worker.h"

#define NS_UPLOAD "urn:xmpp:http:upload:0"
#define NS_XDATA "jabber:x:data"
#define NS_DISCO_INFO "http://jabber.org/protocol/disco#info"
#define ROUTE "/upload/"
#define SLOT_SECONDS 300		/* a slot's PUT must start within this */
#define NAME_MAX_LEN 255
#define TYPE_MAX_LEN 127
#define HELD_MAX (1u << 20)		/* body bytes waiting for the disk: then hold */
#define PURGE_MS (3600 * 1000ul)

struct options {
	long long max_file_size, quota, daily_quota, expiry;
	const char *storage, *url;
};

#define AT(f) MODULE_OPTION_AT(struct options, f)
static const struct module_option options[] = {
	{ "max-file-size", OPT_SIZE, "100M", 1, 4LL << 30, AT(max_file_size),
	  "the largest file a user may upload" },
	{ "quota", OPT_SIZE, "1G", 0, 1LL << 50, AT(quota),
	  "bytes a user may have stored at once (0: no limit)" },
	{ "daily-quota", OPT_SIZE, "500M", 0, 1LL << 50, AT(daily_quota),
	  "bytes a user may upload in a day (0: no limit)" },
	{ "expiry", OPT_DURATION, "2592000", 60, 10LL * 365 * 86400, AT(expiry),
	  "seconds an upload is kept (default 30 days)" },
	{ "storage", OPT_STRING, LOCALSTATEDIR "/lib/parley/upload", 0, 0, AT(storage),
	  "the directory of the stored files (made with mode 0700)" },
	{ "url", OPT_STRING, "", 0, 0, AT(url),
	  "the URL clients reach the upload path at (default https://HOST:5443/upload)" },
	{ NULL },
};

struct upload {
	struct module *m;
	const struct options *o;
	unsigned char key[32];
	bool key_ready;
	char base[512];			/* the URL prefix, without the trailing / */
	struct module_timer *purge;
	uint64_t affinity;
	unsigned long long bytes_in, files, objects_new, objects_shared;
};

static struct upload *instance;		/* the HTTP route's (one per process) */

/* ---- tokens ---- */

static void hex(const unsigned char *in, size_t n, char *out)
{
	static const char d[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = d[in[i] >> 4];
		out[2 * i + 1] = d[in[i] & 15];
	}
	out[2 * n] = '\0';
}

/* HMAC-SHA256 of the slot's fields, hex. */
static void sign(const struct upload *u, const char *id, const char *owner, long long size,
		 const char *type, const char *name, long long exp, char out[65])
{
	unsigned char mac[32];
	unsigned int len = 0;
	char *msg = NULL;
	int n = asprintf(&msg, "%s\n%s\n%lld\n%s\n%s\n%lld", id, owner, size, type, name, exp);

	out[0] = '\0';
	if (n < 0)
		return;
	if (HMAC(EVP_sha256(), u->key, sizeof(u->key), (unsigned char *)msg, (size_t)n, mac,
		 &len) && len == 32)
		hex(mac, 32, out);
	free(msg);
}

/* ---- slots (§4) ---- */

static bool name_ok(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (n == 0 || n > NAME_MAX_LEN || !strcmp(s, ".") || !strcmp(s, ".."))
		return false;
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == '/' || *s == '\\' || *s == 0x7f)
			return false;
	return true;
}

static bool type_ok(const char *s)
{
	size_t n = strlen(s);
	const char *slash = strchr(s, '/');

	if (n == 0 || n > TYPE_MAX_LEN || !slash || slash == s || !slash[1])
		return false;
	for (; *s; s++)
		if (!(((*s | 32) >= 'a' && (*s | 32) <= 'z') || (*s >= '0' && *s <= '9') ||
		      strchr("!#$&^_.+-/", *s)))
			return false;
	return true;
}

/* Percent-encodes a filename for the URL path (RFC 3986 unreserved kept). */
static void url_name(const char *s, char *out, size_t outlen)
{
	static const char d[] = "0123456789ABCDEF";
	size_t o = 0;

	for (; *s && o + 4 < outlen; s++) {
		unsigned char c = (unsigned char)*s;

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    strchr("-._~", c)) {
			out[o++] = (char)c;
		} else {
			out[o++] = '%';
			out[o++] = d[c >> 4];
			out[o++] = d[c & 15];
		}
	}
	out[o] = '\0';
}

struct slot_req {
	struct iq *iq;
	struct upload *u;
	char *owner, *name, *type;
	long long size;
};

static void slot_free(struct slot_req *s)
{
	free(s->owner);
	free(s->name);
	free(s->type);
	free(s);
}

static struct xml_node *text_el(struct xml_node *parent, const char *name, const char *text)
{
	struct xml_node *e = xml_add_child(parent, name, NULL);

	if (e)
		xml_add_text(e, text, strlen(text));
	return e;
}

static void slot_answer(struct slot_req *s)
{
	struct upload *u = s->u;
	unsigned char rnd[16];
	char id[33], mac[65], enc[3 * NAME_MAX_LEN + 1], url[1400], auth[1600];
	long long exp = (long long)time(NULL) + SLOT_SECONDS;
	struct xml_node *slot = xml_new("slot", NS_UPLOAD), *put, *h, *get;
	char *b64o, *b64t;
	size_t lo = 0, lt = 0;

	if (!slot || RAND_bytes(rnd, sizeof(rnd)) != 1) {
		xml_unref(slot);
		iq_error(s->iq, "internal-server-error", NULL);
		return;
	}
	hex(rnd, sizeof(rnd), id);
	sign(u, id, s->owner, s->size, s->type, s->name, exp, mac);
	url_name(s->name, enc, sizeof(enc));
	snprintf(url, sizeof(url), "%s/%s/%s", u->base, id, enc);
	/* The token: what the PUT needs to check the slot without asking anyone. */
	b64o = base64_encode_alloc(s->owner, strlen(s->owner), &lo);
	b64t = base64_encode_alloc(s->type, strlen(s->type), &lt);
	snprintf(auth, sizeof(auth), "Bearer %s.%lld.%lld.%s.%s.%s", id, s->size, exp,
		 b64o ? b64o : "", b64t ? b64t : "", mac);
	free(b64o);
	free(b64t);
	put = xml_add_child(slot, "put", NULL);
	get = xml_add_child(slot, "get", NULL);
	if (!put || !get || !(h = text_el(put, "header", auth))) {
		xml_unref(slot);
		iq_error(s->iq, "internal-server-error", NULL);
		return;
	}
	xml_attr_set(h, "name", "Authorization");
	xml_attr_set(put, "url", url);
	xml_attr_set(get, "url", url);
	log_info("upload", "%s: a slot for %s (%lld bytes, %s)", s->owner, s->name, s->size,
		 s->type);
	iq_reply(s->iq, slot);
}

static void on_quota(void *arg, const PGresult *res, const char *err)
{
	struct slot_req *s = arg;
	const struct options *o = s->u->o;

	if (!res || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
		log_error("upload", "cannot read %s's quota: %s", s->owner,
			  res ? PQresultErrorMessage(res) : err);
		iq_error(s->iq, "internal-server-error", "the quota could not be checked");
	} else if (o->quota && atoll(PQgetvalue(res, 0, 0)) + s->size > o->quota) {
		iq_error_app(s->iq, "wait", "resource-constraint", "your uploads use your "
			     "whole quota; older ones expire in time", NULL);
	} else if (o->daily_quota && atoll(PQgetvalue(res, 0, 1)) + s->size > o->daily_quota) {
		/* §5: retry when the oldest upload of the last day leaves the window */
		struct xml_node *retry = xml_new("retry", NS_UPLOAD);

		if (retry && !PQgetisnull(res, 0, 2))
			xml_attr_set(retry, "stamp", PQgetvalue(res, 0, 2));
		iq_error_app(s->iq, "wait", "resource-constraint", "you uploaded as much as you "
			     "may today", retry);
	} else {
		slot_answer(s);
	}
	slot_free(s);
}

static int slot(struct iq *iq)
{
	struct upload *u = module_data(iq->m);
	const char *name = xml_attr(iq->payload, "filename");
	const char *size = xml_attr(iq->payload, "size");
	const char *type = xml_attr(iq->payload, "content-type");
	struct slot_req *s;
	const char *params[2];
	char *end = NULL;
	long long n;

	if (strcmp(iq->payload->name, "request") != 0)
		return iq_error(iq, "bad-request", "a <request/> is needed");
	if (!iq->from || strcmp(iq->from->domain, module_host(iq->m)) != 0)
		return iq_error(iq, "not-allowed", "only users of this server upload here");
	if (!u->key_ready)
		return iq_error_app(iq, "wait", "internal-server-error", "the service is "
				    "starting", NULL);
	if (!name_ok(name))
		return iq_error(iq, "bad-request", "a filename of 1 to 255 bytes without "
				"slashes or control characters is needed");
	n = size ? strtoll(size, &end, 10) : -1;
	if (!size || *end || n <= 0)
		return iq_error(iq, "bad-request", "a positive size is needed");
	if (!type || !*type)
		type = "application/octet-stream";
	if (!type_ok(type))
		return iq_error(iq, "bad-request", "that content-type is not one");
	if (n > u->o->max_file_size) {
		/* §5: file-too-large with the limit */
		struct xml_node *big = xml_new("file-too-large", NS_UPLOAD);
		char max[24];

		snprintf(max, sizeof(max), "%lld", u->o->max_file_size);
		if (big)
			text_el(big, "max-file-size", max);
		return iq_error_app(iq, "modify", "not-acceptable", "the file is too large", big);
	}
	if (!(s = calloc(1, sizeof(*s))))
		return -1;
	s->iq = iq;
	s->u = u;
	s->size = n;
	s->owner = jid_bare_str(iq->from);
	s->name = strdup(name);
	s->type = strdup(type);
	if (!s->owner || !s->name || !s->type) {
		slot_free(s);
		return -1;
	}
	params[0] = module_host(iq->m);
	params[1] = s->owner;
	if (db_exec_prepared(module_db(iq->m), u->affinity, "upload_quota", 2, params, on_quota,
			     s) < 0) {
		slot_free(s);
		return -1;
	}
	return 0;
}

/* §3: the service's limit in its disco#info, as an extended form (XEP-0128). */
static int info(struct iq *iq)
{
	struct upload *u = module_data(iq->m);
	struct xml_node *q = xml_new("query", NS_DISCO_INFO), *x, *f;
	char max[24];

	if (!q)
		return -1;
	if (xml_attr(iq->payload, "node")) {
		xml_unref(q);
		return iq_error(iq, "item-not-found", "no such node");
	}
	module_disco_info(iq->m, false, q);
	if ((f = xml_add_child(q, "feature", NULL)))
		xml_attr_set(f, "var", NS_DISCO_INFO);
	snprintf(max, sizeof(max), "%lld", u->o->max_file_size);
	if ((x = xml_add_child(q, "x", NS_XDATA))) {
		xml_attr_set(x, "type", "result");
		if ((f = xml_add_child(x, "field", NULL))) {
			xml_attr_set(f, "var", "FORM_TYPE");
			xml_attr_set(f, "type", "hidden");
			text_el(f, "value", NS_UPLOAD);
		}
		if ((f = xml_add_child(x, "field", NULL))) {
			xml_attr_set(f, "var", "max-file-size");
			text_el(f, "value", max);
		}
	}
	return iq_reply(iq, q);
}

/* ---- PUT: the body to a temporary file, through the workers ---- */

struct put {
	struct upload *u;
	struct http_request *r;
	char id[33], sha[65];
	char *owner, *name, *type;
	long long size, exp;
	char tmp[600], obj[600];
	int fd;
	EVP_MD_CTX *md;
	struct evbuffer *pending;	/* body bytes waiting for the disk (loop side) */
	struct evbuffer *chunk;		/* the bytes a worker writes now */
	bool writing;			/* a worker job is out */
	bool ended;			/* the whole body came */
	bool finishing;			/* the job out is the last: fsync, hash, rename */
	bool done_disk;			/* the object is in place */
	bool gone;			/* the connection went */
	bool held;			/* reading held until the disk catches up */
	int err;			/* errno of the worker, 0 */
	long long written;
};

static void put_free(struct put *p)
{
	if (p->fd >= 0)
		close(p->fd);
	if (p->md)
		EVP_MD_CTX_free(p->md);
	if (p->pending)
		evbuffer_free(p->pending);
	if (p->chunk)
		evbuffer_free(p->chunk);
	free(p->owner);
	free(p->name);
	free(p->type);
	free(p);
}

/* On a worker thread: touches only p's fields the loop leaves alone while
 * p->writing (fd, md, chunk, err, written, sha, obj, done_disk). */
static void put_work(void *arg)
{
	struct put *p = arg;

	if (p->fd < 0 && !p->err &&
	    (p->fd = open(p->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) < 0)
		p->err = errno;
	while (!p->err && p->chunk && evbuffer_get_length(p->chunk)) {
		struct evbuffer_iovec v;
		ssize_t n;

		if (evbuffer_peek(p->chunk, -1, NULL, &v, 1) < 1)
			break;
		n = write(p->fd, v.iov_base, v.iov_len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			p->err = n < 0 ? errno : EIO;
			break;
		}
		EVP_DigestUpdate(p->md, v.iov_base, (size_t)n);
		p->written += n;
		evbuffer_drain(p->chunk, (size_t)n);
	}
	if (p->finishing && !p->err) {
		unsigned char d[32];
		unsigned int dl = 0;

		/* durable before it is served: a crash leaves a .part, never an
		 * object with half its bytes */
		if (fsync(p->fd) < 0 || EVP_DigestFinal_ex(p->md, d, &dl) != 1 || dl != 32) {
			p->err = errno ? errno : EIO;
			return;
		}
		close(p->fd);
		p->fd = -1;
		hex(d, 32, p->sha);
		snprintf(p->obj, sizeof(p->obj), "%s/objects/%s", p->u->o->storage, p->sha);
		/* the same bytes replace the same bytes: whoever renames last wins;
		 * the directory is synced too, or a crash could undo the rename of a
		 * PUT already answered 201 */
		if (rename(p->tmp, p->obj) < 0) {
			p->err = errno;
		} else {
			char dir[600];
			int dfd;

			snprintf(dir, sizeof(dir), "%s/objects", p->u->o->storage);
			if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 ||
			    fsync(dfd) < 0)
				p->err = errno;
			else
				p->done_disk = true;
			if (dfd >= 0)
				close(dfd);
		}
	}
	if (p->err && p->fd >= 0) {
		close(p->fd);
		p->fd = -1;
		unlink(p->tmp);
	}
}

static void put_kick(struct put *p);

/* On a worker: the .part of an upload that will not finish goes. */
static void put_discard(void *arg)
{
	struct put *p = arg;

	if (p->fd >= 0) {
		close(p->fd);
		p->fd = -1;
	}
	unlink(p->tmp);
}

static void on_stored(void *arg, const PGresult *res, const char *err)
{
	struct put *p = arg;
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

	if (res && PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
		bool fresh = !strcmp(PQgetvalue(res, 0, 0), "t");

		p->u->files++;
		p->u->bytes_in += (unsigned long long)p->size;
		if (fresh)
			p->u->objects_new++;
		else
			p->u->objects_shared++;
		log_info("upload", "%s: %s stored (%lld bytes, object %.12s%s)", p->owner, p->name,
			 p->size, p->sha, fresh ? ", new" : ", already stored");
		http_respond(p->r, 201, "text/plain; charset=utf-8", "stored\n", 7);
	} else if (state && !strcmp(state, "23505")) {
		/* the slot's id is taken: this slot was used */
		http_respond(p->r, 409, "text/plain; charset=utf-8", "this slot was used\n", 19);
	} else {
		log_error("upload", "%s: cannot record %s: %s", p->owner, p->name,
			  res ? PQresultErrorMessage(res) : err);
		http_respond(p->r, 500, "text/plain; charset=utf-8", "not stored\n", 11);
	}
	put_free(p);
}

static void put_done(void *arg)
{
	struct put *p = arg;

	p->writing = false;
	if (p->err || p->gone) {
		if (!p->err)
			p->err = ECANCELED;
		/* A .part still open (the client went): removed on a worker, then
		 * here again. The worker's own errors removed theirs already; what a
		 * failed submit leaves, the purge takes. */
		if (!p->done_disk && p->fd >= 0) {
			p->writing = true;
			if (worker_submit(put_discard, put_done, p) == 0)
				return;
			p->writing = false;
			close(p->fd);
			p->fd = -1;
		}
		if (!p->gone)
			log_error("upload", "%s: cannot store %s: %s", p->owner, p->name,
				  strerror(p->err));
		http_respond(p->r, 500, "text/plain; charset=utf-8", "not stored\n", 11);
		put_free(p);
		return;
	}
	if (p->done_disk) {
		char size[24], exp[24];
		const char *params[8] = { p->id, module_host(p->u->m), p->owner, p->sha, p->name,
					  p->type, size, exp };

		snprintf(size, sizeof(size), "%lld", p->size);
		snprintf(exp, sizeof(exp), "%lld", p->u->o->expiry);
		if (db_exec_prepared(module_db(p->u->m), p->u->affinity, "upload_put", 8, params,
				     on_stored, p) < 0) {
			http_respond(p->r, 500, "text/plain; charset=utf-8", "not stored\n", 11);
			put_free(p);
		}
		return;
	}
	put_kick(p);
}

/* Sends what waits to a worker, or the last job when the body is whole. */
static void put_kick(struct put *p)
{
	if (p->writing)
		return;
	if (evbuffer_get_length(p->pending) || (p->ended && !p->finishing)) {
		evbuffer_add_buffer(p->chunk, p->pending);
		p->finishing = p->ended;
		p->writing = true;
		if (worker_submit(put_work, put_done, p) < 0) {
			p->writing = false;
			p->err = ENOMEM;
			put_done(p);
			return;
		}
	}
	if (p->held && evbuffer_get_length(p->pending) < HELD_MAX / 2) {
		p->held = false;
		http_resume(p->r);
	}
}

/* The id and the name of /upload/<id>/<name>, or false. */
static bool parse_path(const char *path, char id[33], const char **name)
{
	const char *s = path + strlen(ROUTE), *slash = strchr(s, '/');

	if (!slash || slash - s != 32)
		return false;
	for (const char *c = s; c < slash; c++)
		if (!((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'f')))
			return false;
	memcpy(id, s, 32);
	id[32] = '\0';
	*name = slash + 1;
	return name_ok(*name);
}

static char *b64_str(const char *s, size_t n)
{
	size_t len = 0;
	unsigned char *d = base64_decode_alloc(s, n, &len);
	char *out;

	if (!d)
		return NULL;
	out = malloc(len + 1);
	if (out) {
		memcpy(out, d, len);
		out[len] = '\0';
		if (memchr(out, '\0', len)) {
			free(out);
			out = NULL;
		}
	}
	free(d);
	return out;
}

/* Checks "Bearer id.size.exp.owner64.type64.mac" against the slot it must
 * sign; fills p. Returns NULL, or why not. */
static const char *check_token(struct put *p, const char *auth, const char *id,
			       const char *name)
{
	const char *f[6], *s;
	size_t len[6];
	char mac[65], idbuf[40];
	int n = 0;

	if (!auth || strncmp(auth, "Bearer ", 7) != 0)
		return "no slot token (Authorization: Bearer ...)";
	for (s = auth + 7; n < 6; n++) {
		const char *dot = n < 5 ? strchr(s, '.') : s + strlen(s);

		if (!dot)
			return "a malformed slot token";
		f[n] = s;
		len[n] = (size_t)(dot - s);
		s = dot + 1;
	}
	if (len[0] != 32 || memcmp(f[0], id, 32) != 0 || len[5] != 64)
		return "the token is not this slot's";
	snprintf(idbuf, sizeof(idbuf), "%.32s", f[0]);
	p->size = strtoll(f[1], NULL, 10);
	p->exp = strtoll(f[2], NULL, 10);
	p->owner = b64_str(f[3], len[3]);
	p->type = b64_str(f[4], len[4]);
	if (!p->owner || !p->type || p->size <= 0)
		return "a malformed slot token";
	sign(p->u, idbuf, p->owner, p->size, p->type, name, p->exp, mac);
	if (!mac[0] || CRYPTO_memcmp(mac, f[5], 64) != 0)
		return "the slot token does not verify";
	if (p->exp < (long long)time(NULL))
		return "the slot has expired; ask for another";
	return NULL;
}

#define TEXT_PLAIN "text/plain; charset=utf-8"

static int put_begin(struct http_request *r, struct upload *u)
{
	struct put *p = calloc(1, sizeof(*p));
	const char *name, *why, *clen = http_header(r, "Content-Length");
	const char *ctype = http_header(r, "Content-Type");
	char id[33], msg[160];

	if (!p) {
		http_respond(r, 500, TEXT_PLAIN, "no memory\n", 10);
		return -1;
	}
	p->u = u;
	p->r = r;
	p->fd = -1;
	if (!parse_path(http_path(r), id, &name)) {
		put_free(p);
		http_respond(r, 404, TEXT_PLAIN, "not an upload URL\n", 18);
		return -1;
	}
	if ((why = check_token(p, http_header(r, "Authorization"), id, name))) {
		log_info("upload", "%s: PUT %s refused: %s", http_peer(r), id, why);
		snprintf(msg, sizeof(msg), "%s\n", why);
		put_free(p);
		http_respond(r, 403, TEXT_PLAIN, msg, strlen(msg));
		return -1;
	}
	if (!clen || strtoll(clen, NULL, 10) != p->size) {
		put_free(p);
		http_respond(r, 400, TEXT_PLAIN, "the Content-Length is not the slot's size\n", 42);
		return -1;
	}
	if (ctype && strcasecmp(ctype, p->type) != 0) {
		put_free(p);
		http_respond(r, 400, TEXT_PLAIN, "the Content-Type is not the slot's\n", 35);
		return -1;
	}
	memcpy(p->id, id, sizeof(p->id));
	p->name = strdup(name);
	p->md = EVP_MD_CTX_new();
	p->pending = evbuffer_new();
	p->chunk = evbuffer_new();
	snprintf(p->tmp, sizeof(p->tmp), "%s/tmp/%s.part", u->o->storage, id);
	if (!p->name || !p->md || !p->pending || !p->chunk ||
	    EVP_DigestInit_ex(p->md, EVP_sha256(), NULL) != 1) {
		put_free(p);
		http_respond(r, 500, TEXT_PLAIN, "no memory\n", 10);
		return -1;
	}
	http_set_data(r, p);
	return 0;
}

static int put_data(struct http_request *r, const char *d, size_t n, void *arg)
{
	struct put *p = http_data(r);

	(void)arg;
	if (!p)
		return 0;	/* a GET's body: ignored */
	if (evbuffer_add(p->pending, d, n) < 0)
		p->err = ENOMEM;
	put_kick(p);
	if (evbuffer_get_length(p->pending) >= HELD_MAX) {
		p->held = true;
		return 1;
	}
	return 0;
}

/* ---- GET and HEAD: by the id, from the object ---- */

struct get {
	struct http_request *r;
	struct upload *u;
};

static void content_disposition(struct http_request *r, const char *name)
{
	char enc[3 * NAME_MAX_LEN + 1], v[3 * NAME_MAX_LEN + 64];

	url_name(name, enc, sizeof(enc));
	/* RFC 6266 with the RFC 8187 form only: nothing of the name is quoted raw */
	snprintf(v, sizeof(v), "inline; filename*=UTF-8''%s", enc);
	http_add_header(r, "Content-Disposition", v);
}

/* RFC 9110 §14: one range of bytes=A-B, A-, or -N of a file of size bytes.
 * 1 with [*from, *len) when there is one to serve, 0 when the header is absent
 * or not one we take (the whole file then, as §14.2 allows), -1 when it cannot
 * be satisfied (416). */
static int range_of(const char *h, long long size, long long *from, long long *len)
{
	long long a, b;
	char *end;

	if (!h || strncmp(h, "bytes=", 6) != 0 || strchr(h, ','))
		return 0;
	h += 6;
	if (*h == '-') {	/* the last N bytes */
		b = strtoll(h + 1, &end, 10);
		if (end == h + 1 || *end || b < 0)
			return 0;
		if (b == 0 || size == 0)
			return -1;
		*len = b < size ? b : size;
		*from = size - *len;
		return 1;
	}
	a = strtoll(h, &end, 10);
	if (end == h || *end != '-' || a < 0)
		return 0;
	h = end + 1;
	if (!*h) {
		b = size - 1;
	} else {
		b = strtoll(h, &end, 10);
		if (*end || b < a)
			return 0;
		if (b >= size)
			b = size - 1;
	}
	if (a >= size)
		return -1;
	*from = a;
	*len = b - a + 1;
	return 1;
}

static void on_found(void *arg, const PGresult *res, const char *err)
{
	struct get *g = arg;
	struct http_request *r = g->r;
	char path[600], etag[80];
	int fd;

	if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
		log_error("upload", "cannot look an upload up: %s",
			  res ? PQresultErrorMessage(res) : err);
		http_respond(r, 503, TEXT_PLAIN, "try again\n", 10);
	} else if (PQntuples(res) != 1) {
		http_respond(r, 404, TEXT_PLAIN, "no such file (or it expired)\n", 29);
	} else {
		const char *sha = PQgetvalue(res, 0, 0);
		long long size = atoll(PQgetvalue(res, 0, 2));

		snprintf(path, sizeof(path), "%s/objects/%s", g->u->o->storage, sha);
		snprintf(etag, sizeof(etag), "\"%s\"", sha);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			log_error("upload", "%s: %s", path, strerror(errno));
			http_respond(r, 404, TEXT_PLAIN, "no such file\n", 13);
		} else if (http_header(r, "If-None-Match") &&
			   !strcmp(http_header(r, "If-None-Match"), etag)) {
			close(fd);
			http_add_header(r, "ETag", etag);
			http_respond(r, 304, NULL, NULL, 0);
		} else {
			long long from = 0, len = size;
			int ranged = range_of(http_header(r, "Range"), size, &from, &len);
			char cr[80];

			http_add_header(r, "ETag", etag);
			http_add_header(r, "Accept-Ranges", "bytes");
			http_add_header(r, "Cache-Control", "public, max-age=31536000, immutable");
			http_add_header(r, "X-Content-Type-Options", "nosniff");
			http_add_header(r, "Content-Security-Policy", "default-src 'none'; sandbox");
			content_disposition(r, PQgetvalue(res, 0, 3));
			if (ranged < 0) {
				close(fd);
				snprintf(cr, sizeof(cr), "bytes */%lld", size);
				http_add_header(r, "Content-Range", cr);
				http_respond(r, 416, TEXT_PLAIN, "no such range\n", 14);
			} else if (ranged > 0) {
				snprintf(cr, sizeof(cr), "bytes %lld-%lld/%lld", from, from + len - 1,
					 size);
				http_add_header(r, "Content-Range", cr);
				http_respond_file(r, 206, PQgetvalue(res, 0, 1), fd, from, len);
			} else {
				http_respond_file(r, 200, PQgetvalue(res, 0, 1), fd, 0, size);
			}
		}
	}
	free(g);
}

static void get_file(struct http_request *r, struct upload *u)
{
	struct get *g;
	const char *name, *params[1];
	char id[33];

	if (!parse_path(http_path(r), id, &name)) {
		http_respond(r, 404, TEXT_PLAIN, "no such file\n", 13);
		return;
	}
	if (!(g = calloc(1, sizeof(*g)))) {
		http_respond(r, 500, TEXT_PLAIN, "no memory\n", 10);
		return;
	}
	g->r = r;
	g->u = u;
	params[0] = id;
	if (db_exec_prepared(module_db(u->m), u->affinity, "upload_get", 1, params, on_found,
			     g) < 0) {
		free(g);
		http_respond(r, 503, TEXT_PLAIN, "try again\n", 10);
	}
}

/* ---- the route ---- */

static int route_begin(struct http_request *r, void *arg)
{
	(void)arg;
	if (!instance) {
		http_respond(r, 503, TEXT_PLAIN, "the upload service is not loaded\n", 33);
		return -1;
	}
	if (!strcmp(http_method(r), "PUT"))
		return put_begin(r, instance);
	if (strcmp(http_method(r), "GET") && strcmp(http_method(r), "HEAD")) {
		http_add_header(r, "Allow", "GET, HEAD, PUT");
		http_respond(r, 405, TEXT_PLAIN, "GET, HEAD or PUT\n", 17);
		return -1;
	}
	return 0;	/* answered at route_end, once the (empty) body is in */
}

static void route_end(struct http_request *r, void *arg)
{
	struct put *p = http_data(r);

	(void)arg;
	if (!p) {
		get_file(r, instance);
		return;
	}
	p->ended = true;
	put_kick(p);
}

static void route_gone(struct http_request *r, void *arg)
{
	struct put *p = http_data(r);

	(void)arg;
	if (!p) {
		http_respond(r, 500, NULL, NULL, 0);	/* frees it */
		return;
	}
	p->gone = true;
	if (!p->writing)
		put_done(p);	/* answers into the void, removes the .part */
}

static const struct http_body_route upload_route = {
	.begin = route_begin,
	.data = put_data,
	.end = route_end,
	.gone = route_gone,
	.body_max = 4ull << 30,
};

/* ---- the purge: expired files, then objects no file points to ---- */

struct purge_job {
	struct upload *u;
	char **shas;
	int n;
	unsigned unlinked, parts;
};

static void purge_work(void *arg)
{
	struct purge_job *j = arg;
	char path[700];

	for (int i = 0; i < j->n; i++) {
		snprintf(path, sizeof(path), "%s/objects/%s", j->u->o->storage, j->shas[i]);
		j->unlinked += unlink(path) == 0;
	}
}

static void purge_done(void *arg)
{
	struct purge_job *j = arg;

	if (j->n)
		log_info("upload", "%s: %d expired object%s removed (%u files)",
			 module_host(j->u->m), j->n, j->n == 1 ? "" : "s", j->unlinked);
	for (int i = 0; i < j->n; i++)
		free(j->shas[i]);
	free(j->shas);
	free(j);
}

static void on_purged(void *arg, const PGresult *res, const char *err)
{
	struct upload *u = arg;
	struct purge_job *j;
	int n;

	if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
		log_error("upload", "%s: the purge failed: %s", module_host(u->m),
			  res ? PQresultErrorMessage(res) : err);
		return;
	}
	n = PQntuples(res);
	if (!(j = calloc(1, sizeof(*j))) || (n && !(j->shas = calloc((size_t)n, sizeof(char *))))) {
		free(j);
		return;
	}
	j->u = u;
	for (int i = 0; i < n; i++)
		if ((j->shas[j->n] = strdup(PQgetvalue(res, i, 0))))
			j->n++;
	if (worker_submit(purge_work, purge_done, j) < 0)
		purge_done(j);
}

static void on_purge_timer(struct module *m, void *arg)
{
	struct upload *u = arg;
	const char *params[1] = { module_host(m) };

	db_exec_prepared(module_db(m), u->affinity, "upload_expire", 1, params, NULL, NULL);
	db_exec_prepared(module_db(m), u->affinity, "upload_orphans", 0, NULL, on_purged, u);
	module_timer_start(u->purge, PURGE_MS, false);
}

/* ---- loading ---- */

static const char sql_quota[] =
	"SELECT coalesce(sum(size), 0), "
	"coalesce(sum(size) FILTER (WHERE created > now() - interval '1 day'), 0), "
	"to_char((min(created) FILTER (WHERE created > now() - interval '1 day') + "
	"interval '1 day') AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') "
	"FROM upload_files WHERE host = $1 AND owner = $2 AND expires > now()";
/* The object (new, or its clock restarted so the purge leaves it) and the
 * file, in one statement: a used slot id fails it whole (23505). */
static const char sql_put[] =
	"WITH o AS (INSERT INTO upload_objects (sha256, size) VALUES ($4, $7) "
	"ON CONFLICT (sha256) DO UPDATE SET created = now() RETURNING (xmax = 0) AS fresh), "
	"f AS (INSERT INTO upload_files (id, host, owner, sha256, name, type, size, expires) "
	"VALUES ($1, $2, $3, $4, $5, $6, $7, now() + make_interval(secs => $8::float8)) "
	"RETURNING 1) SELECT o.fresh FROM o, f";
static const char sql_get[] =
	"SELECT sha256, type, size, name FROM upload_files WHERE id = $1 AND expires > now()";
static const char sql_expire[] =
	"DELETE FROM upload_files WHERE host = $1 AND expires <= now()";
/* An hour's grace: an upload that just found its object on disk records it
 * within that. */
static const char sql_orphans[] =
	"DELETE FROM upload_objects o WHERE created < now() - interval '1 hour' AND "
	"NOT EXISTS (SELECT 1 FROM upload_files f WHERE f.sha256 = o.sha256) RETURNING sha256";
static const char sql_key_put[] =
	"INSERT INTO parley_secrets (name, value) VALUES ('upload_key', $1) "
	"ON CONFLICT (name) DO NOTHING";
static const char sql_key_get[] = "SELECT value FROM parley_secrets WHERE name = 'upload_key'";

static void on_key(void *arg, const PGresult *res, const char *err)
{
	struct upload *u = arg;
	size_t len = 0;

	if (res && PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
	    base64_decode(PQgetvalue(res, 0, 0), strlen(PQgetvalue(res, 0, 0)), u->key,
			  sizeof(u->key), &len) == 0 && len == sizeof(u->key)) {
		u->key_ready = true;
		return;
	}
	log_error("upload", "%s: cannot read the upload key: %s (slots are refused)",
		  module_host(u->m), res ? PQresultErrorMessage(res) : err);
}

static int make_dir(const char *path)
{
	if (mkdir(path, 0700) == 0 || errno == EEXIST)
		return 0;
	log_error("upload", "cannot make the directory %s: %s", path, strerror(errno));
	return -1;
}

static void metrics(struct module *m, struct metrics *out)
{
	const struct upload *u = module_data(m);

	metrics_sample(out, m, "parley_upload_files_total", "counter",
		       "Uploads stored (each one URL).", (double)u->files);
	metrics_sample(out, m, "parley_upload_bytes_total", "counter",
		       "Bytes uploaded (stored or not new).", (double)u->bytes_in);
	metrics_sample(out, m, "parley_upload_objects_new_total", "counter",
		       "Uploads whose bytes were new (a new object on disk).",
		       (double)u->objects_new);
	metrics_sample(out, m, "parley_upload_objects_shared_total", "counter",
		       "Uploads whose bytes were stored already (no new object).",
		       (double)u->objects_shared);
}

static void upload_free(void *p)
{
	if (instance == p)
		instance = NULL;
	free(p);
}

static int load(struct module *m)
{
	struct upload *u = calloc(1, sizeof(*u));
	struct db *db = module_db(m);
	unsigned char fresh[32];
	char b64[64], dir[600];
	const char *params[1] = { b64 };

	if (!u)
		return -1;
	u->m = m;
	u->o = module_options(m);
	module_set_data(m, u, upload_free);
	if (instance) {
		log_error("upload", "%s: mod_http_upload serves one host per process for now "
			  "(%s has it)", module_host(m), module_host(instance->m));
		return -1;
	}
	if (u->o->url[0])
		snprintf(u->base, sizeof(u->base), "%s", u->o->url);
	else
		snprintf(u->base, sizeof(u->base), "https://%s:5443/upload", module_host(m));
	while (strlen(u->base) > 1 && u->base[strlen(u->base) - 1] == '/')
		u->base[strlen(u->base) - 1] = '\0';
	snprintf(dir, sizeof(dir), "%s/tmp", u->o->storage);
	if (make_dir(u->o->storage) < 0 || make_dir(dir) < 0)
		return -1;
	snprintf(dir, sizeof(dir), "%s/objects", u->o->storage);
	if (make_dir(dir) < 0)
		return -1;
	if (db_prepare(db, "upload_quota", sql_quota, 2) < 0 ||
	    db_prepare(db, "upload_put", sql_put, 8) < 0 ||
	    db_prepare(db, "upload_get", sql_get, 1) < 0 ||
	    db_prepare(db, "upload_expire", sql_expire, 1) < 0 ||
	    db_prepare(db, "upload_orphans", sql_orphans, 0) < 0)
		return -1;
	if (RAND_bytes(fresh, sizeof(fresh)) != 1)
		return -1;
	base64_encode(fresh, sizeof(fresh), b64);
	/* The first node makes the key; every node reads the same one. */
	if (db_query(db, u->affinity, sql_key_put, 1, params, NULL, NULL) < 0 ||
	    db_query(db, u->affinity, sql_key_get, 0, NULL, on_key, u) < 0)
		return -1;
	if (http_route_body(ROUTE, false, &upload_route, NULL) < 0) {
		log_error("upload", "the HTTP path %s is taken", ROUTE);
		return -1;
	}
	instance = u;
	u->purge = module_timer_new(m, on_purge_timer, u);
	if (!u->purge || module_metrics(m, metrics) < 0)
		return -1;
	module_timer_start(u->purge, 60 * 1000ul, false);
	module_identity(m, "store", "file", "HTTP File Upload");
	module_feature(m, NS_UPLOAD);
	module_iq(m, IQ_GET, NS_UPLOAD, slot);
	module_iq(m, IQ_GET, NS_DISCO_INFO, info);
	log_info("upload", "%s: slots for %s/..., files in %s", module_host(m), u->base,
		 u->o->storage);
	return 0;
}

static void unload(struct module *m)
{
	(void)m;
	http_route_remove(ROUTE);
}

PARLEY_MODULE(http_upload,
	.description = "XEP-0363: HTTP file upload on upload.HOST, stored once per hash",
	.options = options,
	.options_size = sizeof(struct options),
	.service = "upload",
	.load = load,
	.unload = unload);
