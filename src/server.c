/*
 * rekey serve's HTTP server on libmicrohttpd (see include/rekey/server.h).
 *
 * A pool of MHD threads answers; each request's body is gathered (up to
 * max_body, else 413 without reading on), then the access rules run, then
 * the handler. Nothing here logs a header or a body: the token is in one.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rekey/config.h"
#include "rekey/log.h"
#include "rekey/resilience.h"
#include "rekey/server.h"
#include "rekey/util.h"

#define TOKENS_MAX 64
#define TOKEN_NAME_MAX 64
#define CLIENTS_MAX 256		/* rate-limit buckets kept; the least recent goes */
#define THREADS 4
#define CONN_LIMIT 128
#define CONN_TIMEOUT_S 15

struct token {
	char name[TOKEN_NAME_MAX];
	unsigned char hash[crypto_generichash_BYTES];
};

struct client {
	char addr[INET6_ADDRSTRLEN];
	struct rk_bucket bucket;
	int64_t seen_ms;
};

struct rk_server {
	struct MHD_Daemon *mhd;
	rk_server_handler fn;
	void *arg;
	size_t max_body;
	double rps, burst;
	int status_page;
	int port;
	int tls;
	char *token_path;
	char *cert, *key;		/* PEM text for MHD, the key in sodium memory */
	size_t key_len;
	unsigned char hkey[crypto_generichash_KEYBYTES];	/* for the token hashes */
	pthread_mutex_t mu;		/* everything below */
	struct token tokens[TOKENS_MAX];
	size_t ntokens;
	struct stat token_st;		/* the token file as last read */
	struct client clients[CLIENTS_MAX];
	size_t nclients;
	struct rk_server_stats stats;
};

/* One request as it arrives: its body so far. */
struct pending {
	char *body;
	size_t len, cap;
	int too_big;
};

/* ---- tokens ---- */

static int
token_hash(const struct rk_server *s, const char *tok, size_t n, unsigned char *out)
{
	return crypto_generichash(out, crypto_generichash_BYTES, (const unsigned char *)tok, n,
				  s->hkey, sizeof(s->hkey));
}

/* Reads the token file into s->tokens (with s->mu held, or before the threads start). */
static int
tokens_load(struct rk_server *s, const struct stat *st, struct rk_error *err)
{
	char *text = NULL, *line, *save = NULL;
	size_t len = 0, n = 0;
	struct token *tk;
	int r;

	if ((st->st_mode & 077) != 0)
		return rk_error_set(err, RK_EINVAL, "the API token file %s is readable by others "
				    "(mode %04o): chmod 600 it", s->token_path,
				    (unsigned)(st->st_mode & 07777));
	if ((r = rk_read_file(s->token_path, 4096, &text, &len, err)) < 0)
		return r;
	if ((tk = sodium_malloc(sizeof(*tk) * TOKENS_MAX)) == NULL) {
		sodium_memzero(text, len);
		free(text);
		return rk_error_set(err, RK_ENOMEM, "out of memory");
	}
	for (line = strtok_r(text, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
		char *colon, *tok = line;
		size_t tl;
		line[strcspn(line, "\r")] = '\0';
		if (line[0] == '\0' || line[0] == '#')
			continue;
		if (n == TOKENS_MAX) {
			r = rk_error_set(err, RK_EINVAL, "%s: more than %d tokens", s->token_path,
					 TOKENS_MAX);
			goto out;
		}
		colon = strchr(line, ':');
		snprintf(tk[n].name, sizeof(tk[n].name), "default");
		if (colon != NULL) {
			*colon = '\0';
			tok = colon + 1;
			if (line[0] == '\0' || strlen(line) >= TOKEN_NAME_MAX ||
			    strspn(line, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
				   "0123456789-_.") != strlen(line)) {
				r = rk_error_set(err, RK_EINVAL, "%s: a token's name (before ':') "
						 "must be 1-63 letters, digits, '-', '_' or '.'",
						 s->token_path);
				goto out;
			}
			snprintf(tk[n].name, sizeof(tk[n].name), "%s", line);
		}
		tl = strlen(tok);
		if (tl < 16) {
			r = rk_error_set(err, RK_EINVAL, "%s: token '%s' is shorter than 16 "
					 "characters", s->token_path, tk[n].name);
			goto out;
		}
		token_hash(s, tok, tl, tk[n].hash);
		n++;
	}
	if (n == 0) {
		r = rk_error_set(err, RK_EINVAL, "%s holds no token", s->token_path);
		goto out;
	}
	memcpy(s->tokens, tk, sizeof(*tk) * n);
	s->ntokens = n;
	s->token_st = *st;
	r = 0;
out:
	sodium_free(tk);
	sodium_memzero(text, len);
	free(text);
	return r;
}

static int
same_file(const struct stat *a, const struct stat *b)
{
	return a->st_ino == b->st_ino && a->st_dev == b->st_dev && a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
	       a->st_mode == b->st_mode;
}

/* A missing token file gets a random token, so that the API is never open. */
static int
tokens_create(const char *path, struct rk_error *err)
{
	unsigned char raw[32];
	char b64[sodium_base64_ENCODED_LEN(32, sodium_base64_VARIANT_URLSAFE_NO_PADDING) + 1];
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	ssize_t w;

	if (fd < 0)
		return rk_error_set(err, RK_EIO, "cannot create the API token file %s: %s", path,
				    strerror(errno));
	randombytes_buf(raw, sizeof(raw));
	sodium_bin2base64(b64, sizeof(b64), raw, sizeof(raw),
			  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	strcat(b64, "\n");
	w = write(fd, b64, strlen(b64));
	sodium_memzero(raw, sizeof(raw));
	sodium_memzero(b64, sizeof(b64));
	if (w < 0 || fsync(fd) < 0) {
		int e = errno;
		close(fd);
		return rk_error_set(err, RK_EIO, "cannot write %s: %s", path, strerror(e));
	}
	close(fd);
	rk_log(RK_LOG_INFO, "server.token_created", "path", path, NULL);
	return 0;
}

/*
 * The name of the token given (Bearer ...), or NULL. Every token is
 * compared, in constant time each, whatever matched before.
 */
static const char *
token_check(struct rk_server *s, const char *auth, char *name, size_t n)
{
	unsigned char h[crypto_generichash_BYTES];
	struct stat st;
	struct rk_error err = { 0 };
	const char *found = NULL;

	if (auth == NULL || strncasecmp(auth, "Bearer ", 7) != 0)
		return NULL;
	auth += 7;
	while (*auth == ' ')
		auth++;
	token_hash(s, auth, strlen(auth), h);
	pthread_mutex_lock(&s->mu);
	if (stat(s->token_path, &st) == 0 && !same_file(&st, &s->token_st) &&
	    tokens_load(s, &st, &err) < 0)
		rk_log_err(&err, "kept the API tokens read before");	/* never locks everyone out */
	for (size_t i = 0; i < s->ntokens; i++)
		if (sodium_memcmp(h, s->tokens[i].hash, sizeof(h)) == 0 && found == NULL) {
			snprintf(name, n, "%s", s->tokens[i].name);
			found = name;
		}
	pthread_mutex_unlock(&s->mu);
	sodium_memzero(h, sizeof(h));
	return found;
}

/* ---- the rate limit per client address ---- */

/* 0 when the client may go on, else the seconds to wait (Retry-After). */
static int
rate_check(struct rk_server *s, const char *addr)
{
	int64_t now = rk_mono_ms(), wait;
	struct client *c = NULL;
	size_t i, oldest = 0;

	pthread_mutex_lock(&s->mu);
	for (i = 0; i < s->nclients; i++) {
		if (strcmp(s->clients[i].addr, addr) == 0) {
			c = &s->clients[i];
			break;
		}
		if (s->clients[i].seen_ms < s->clients[oldest].seen_ms)
			oldest = i;
	}
	if (c == NULL) {
		c = s->nclients < CLIENTS_MAX ? &s->clients[s->nclients++] : &s->clients[oldest];
		snprintf(c->addr, sizeof(c->addr), "%s", addr);
		rk_bucket_init(&c->bucket, s->rps, (int)s->burst, now);
	}
	c->seen_ms = now;
	wait = rk_bucket_take(&c->bucket, now);
	if (wait > 0)
		s->stats.rate_limited++;
	pthread_mutex_unlock(&s->mu);
	return wait > 0 ? (int)((wait + 999) / 1000) : 0;
}

/* ---- requests ---- */

int
rk_server_reply(struct rk_server_resp *resp, int status, const char *content_type,
		const char *text)
{
	free(resp->body);
	resp->status = status;
	resp->content_type = content_type;
	resp->len = strlen(text);
	if ((resp->body = strdup(text)) == NULL) {
		resp->len = 0;
		resp->status = 500;
		return -1;
	}
	return 0;
}

static enum MHD_Result
send_resp(struct rk_server *s, struct MHD_Connection *conn, struct rk_server_resp *r,
	  int retry_after)
{
	struct MHD_Response *mr;
	enum MHD_Result ok;
	char ra[16];

	if (r->body == NULL && rk_server_reply(r, r->status ? r->status : 500, NULL, "") < 0)
		return MHD_NO;
	mr = MHD_create_response_from_buffer(r->len, r->body, MHD_RESPMEM_MUST_FREE);
	if (mr == NULL) {
		free(r->body);
		return MHD_NO;
	}
	r->body = NULL;
	MHD_add_response_header(mr, "Content-Type",
				r->content_type ? r->content_type : "application/json");
	MHD_add_response_header(mr, "Cache-Control", "no-store");
	MHD_add_response_header(mr, "X-Content-Type-Options", "nosniff");
	if (retry_after > 0) {
		snprintf(ra, sizeof(ra), "%d", retry_after);
		MHD_add_response_header(mr, "Retry-After", ra);
	}
	if (r->status == 401)
		MHD_add_response_header(mr, "WWW-Authenticate", "Bearer");
	pthread_mutex_lock(&s->mu);
	if (r->status >= 100 && r->status < 600)
		s->stats.requests_by_code[r->status]++;
	if (r->status == 401)
		s->stats.unauthorized++;
	pthread_mutex_unlock(&s->mu);
	ok = MHD_queue_response(conn, (unsigned)r->status, mr);
	MHD_destroy_response(mr);
	return ok;
}

static void
client_addr(struct MHD_Connection *conn, char *out, size_t n, int *loopback)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	const struct sockaddr *sa = ci ? ci->client_addr : NULL;

	snprintf(out, n, "unknown");
	*loopback = 0;
	if (sa == NULL)
		return;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
		inet_ntop(AF_INET, &in->sin_addr, out, (socklen_t)n);
		*loopback = (ntohl(in->sin_addr.s_addr) >> 24) == 127;
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
		inet_ntop(AF_INET6, &in6->sin6_addr, out, (socklen_t)n);
		*loopback = IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
		if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr))
			*loopback = in6->sin6_addr.s6_addr[12] == 127;
	}
}

static int
open_path(const char *path)
{
	return strcmp(path, "/healthz") == 0 || strcmp(path, "/readyz") == 0 ||
	       strcmp(path, "/metrics") == 0;
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
	   const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
	struct rk_server *s = cls;
	struct pending *p = *con_cls;
	struct rk_server_resp resp = { 0 };
	struct rk_server_req req = { 0 };
	char addr[INET6_ADDRSTRLEN + 8], tname[TOKEN_NAME_MAX], *path = NULL;
	const char *q;
	int retry = 0, loopback;
	enum MHD_Result ok;

	(void)version;
	if (p == NULL) {
		const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
							     MHD_HTTP_HEADER_CONTENT_LENGTH);
		if ((p = calloc(1, sizeof(*p))) == NULL)
			return MHD_NO;
		*con_cls = p;
		if (cl != NULL && strtoull(cl, NULL, 10) > s->max_body)
			p->too_big = 1;
		return MHD_YES;
	}
	if (*upload_size > 0) {
		if (!p->too_big && p->len + *upload_size > s->max_body)
			p->too_big = 1;
		if (!p->too_big) {
			if (p->len + *upload_size + 1 > p->cap) {
				size_t cap = (p->len + *upload_size + 1) * 2;
				char *nb = realloc(p->body, cap);
				if (nb == NULL)
					return MHD_NO;
				p->body = nb;
				p->cap = cap;
			}
			memcpy(p->body + p->len, upload, *upload_size);
			p->len += *upload_size;
			p->body[p->len] = '\0';
		}
		*upload_size = 0;
		return MHD_YES;
	}
	client_addr(conn, addr, sizeof(addr), &loopback);
	if ((q = strchr(url, '?')) != NULL)
		path = strndup(url, (size_t)(q - url));
	else
		path = strdup(url);
	if (path == NULL)
		return MHD_NO;
	req.method = method;
	req.path = path;
	req.query = q ? q + 1 : NULL;
	req.body = p->body ? p->body : "";
	req.body_len = p->len;
	req.client = addr;
	req.loopback = loopback;
	req.server = s;
	if (p->too_big) {
		rk_server_reply(&resp, 413, NULL,
				"{\"error\": \"the request body is larger than server.max_body_bytes\"}");
	} else if (!open_path(path) && (retry = rate_check(s, addr)) > 0) {
		rk_server_reply(&resp, 429, NULL, "{\"error\": \"too many requests\"}");
	} else {
		const char *auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
							       MHD_HTTP_HEADER_AUTHORIZATION);
		req.token_name = token_check(s, auth, tname, sizeof(tname));
		if (strncmp(path, "/v1/", 4) == 0 && req.token_name == NULL)
			rk_server_reply(&resp, 401, NULL, "{\"error\": \"unauthorized\"}");
		else if (strcmp(path, "/") == 0 &&
			 (s->status_page == 0 ||
			  (req.token_name == NULL && (s->status_page == 2 || !loopback))))
			rk_server_reply(&resp, s->status_page == 0 ? 404 : 401, NULL,
					s->status_page == 0 ? "{\"error\": \"not found\"}"
							    : "{\"error\": \"unauthorized\"}");
		else
			s->fn(s->arg, &req, &resp);
	}
	ok = send_resp(s, conn, &resp, retry);
	free(path);
	return ok;
}

static void
on_done(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode t)
{
	struct pending *p = *con_cls;

	(void)cls;
	(void)conn;
	(void)t;
	if (p != NULL) {
		if (p->body != NULL)
			sodium_memzero(p->body, p->cap);
		free(p->body);
		free(p);
	}
	*con_cls = NULL;
}

/* ---- start and stop ---- */

static int
resolve(const char *listen, struct sockaddr_storage *ss, struct rk_error *err)
{
	const char *colon = strrchr(listen, ':');
	char host[256];
	struct addrinfo hints = { 0 }, *ai = NULL;
	size_t hl;
	int r;

	hl = (size_t)(colon - listen);
	if (listen[0] == '[') {
		listen++;
		hl -= 2;
	}
	if (hl >= sizeof(host))
		return rk_error_set(err, RK_EINVAL, "server.listen: the host is too long");
	memcpy(host, listen, hl);
	host[hl] = '\0';
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	if ((r = getaddrinfo(host, colon + 1, &hints, &ai)) != 0)
		return rk_error_set(err, RK_EINVAL, "server.listen '%s': %s", host,
				    gai_strerror(r));
	memcpy(ss, ai->ai_addr, ai->ai_addrlen);
	freeaddrinfo(ai);
	return 0;
}

static int
bound_port(struct MHD_Daemon *d)
{
	const union MHD_DaemonInfo *di = MHD_get_daemon_info(d, MHD_DAEMON_INFO_LISTEN_FD);
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);

	if (di == NULL || getsockname(di->listen_fd, (struct sockaddr *)&ss, &sl) < 0)
		return -1;
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

static int
load_tls(struct rk_server *s, const struct rk_config_server *cfg, struct rk_error *err)
{
	size_t n;
	int r;

	if (cfg->tls_cert_file == NULL)
		return 0;
	if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES)
		return rk_error_set(err, RK_EINVAL, "server.tls_cert_file is set but this "
				    "libmicrohttpd was built without TLS");
	if ((r = rk_read_file(cfg->tls_cert_file, 1 << 20, &s->cert, &n, err)) < 0)
		return r;
	{
		char *k = NULL;
		if ((r = rk_read_file(cfg->tls_key_file, 1 << 20, &k, &n, err)) < 0)
			return r;
		s->key = sodium_malloc(n + 1);
		if (s->key != NULL)
			memcpy(s->key, k, n + 1);
		sodium_memzero(k, n);
		free(k);
		if (s->key == NULL)
			return rk_error_set(err, RK_ENOMEM, "out of memory");
		s->key_len = n;
	}
	s->tls = 1;
	return 0;
}

int
rk_server_start(struct rk_server **out, const struct rk_config_server *cfg, rk_server_handler fn,
		void *arg, struct rk_error *err)
{
	struct rk_server *s;
	struct sockaddr_storage ss = { 0 };
	struct stat st;
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
	int r;

	*out = NULL;
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return rk_error_set(err, RK_ENOMEM, "out of memory");
	pthread_mutex_init(&s->mu, NULL);
	s->fn = fn;
	s->arg = arg;
	s->max_body = (size_t)cfg->max_body;
	s->rps = cfg->rate_rps;
	s->burst = cfg->rate_burst;
	s->status_page = cfg->status_page;
	randombytes_buf(s->hkey, sizeof(s->hkey));
	if ((s->token_path = strdup(cfg->token_file)) == NULL) {
		r = rk_error_set(err, RK_ENOMEM, "out of memory");
		goto fail;
	}
	if (stat(s->token_path, &st) < 0) {
		if (errno != ENOENT) {
			r = rk_error_set(err, RK_EIO, "cannot read %s: %s", s->token_path,
					 strerror(errno));
			goto fail;
		}
		if ((r = tokens_create(s->token_path, err)) < 0)
			goto fail;
		if (stat(s->token_path, &st) < 0) {
			r = rk_error_set(err, RK_EIO, "cannot read %s: %s", s->token_path,
					 strerror(errno));
			goto fail;
		}
	}
	if ((r = tokens_load(s, &st, err)) < 0 || (r = resolve(cfg->listen, &ss, err)) < 0 ||
	    (r = load_tls(s, cfg, err)) < 0)
		goto fail;
	if (ss.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	if (s->tls)
		flags |= MHD_USE_TLS;
	s->mhd = MHD_start_daemon(
		flags, 0, NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
		MHD_OPTION_THREAD_POOL_SIZE, (unsigned)THREADS, MHD_OPTION_CONNECTION_LIMIT,
		(unsigned)CONN_LIMIT, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)CONN_TIMEOUT_S,
		MHD_OPTION_NOTIFY_COMPLETED, on_done, s, MHD_OPTION_LISTENING_ADDRESS_REUSE,
		(unsigned)1, s->tls ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, s->cert,
		MHD_OPTION_HTTPS_MEM_KEY, s->key, MHD_OPTION_END);
	if (s->mhd == NULL) {
		r = rk_error_set(err, RK_EIO, "cannot listen on %s (taken, or not an address of "
				 "this machine)%s", cfg->listen,
				 s->tls ? ", or the TLS certificate or key is not valid PEM" : "");
		goto fail;
	}
	s->port = bound_port(s->mhd);
	*out = s;
	return 0;
fail:
	rk_server_stop(s);
	return r;
}

int
rk_server_port(const struct rk_server *s)
{
	return s->port;
}

const char *
rk_server_scheme(const struct rk_server *s)
{
	return s->tls ? "https" : "http";
}

void
rk_server_stats(struct rk_server *s, struct rk_server_stats *out)
{
	pthread_mutex_lock(&s->mu);
	*out = s->stats;
	pthread_mutex_unlock(&s->mu);
}

void
rk_server_stop(struct rk_server *s)
{
	if (s == NULL)
		return;
	if (s->mhd != NULL)
		MHD_stop_daemon(s->mhd);
	free(s->token_path);
	free(s->cert);
	sodium_free(s->key);
	sodium_memzero(s->tokens, sizeof(s->tokens));
	pthread_mutex_destroy(&s->mu);
	free(s);
}
