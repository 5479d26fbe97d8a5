/*
 * The shared HTTP client: every byte rekey exchanges with Vault, AWS or
 * Kubernetes goes through rk_http_do (libcurl underneath).
 *
 * Data path of one request:
 *   provider -> rk_http_do -> per attempt: circuit breaker -> rate token ->
 *   concurrency slot (by req->priority) and a pooled easy handle ->
 *   curl_easy_perform into a bounded buffer -> breaker/stats bookkeeping ->
 *   retry decision.
 *
 * Invariants:
 * - Every attempt has a connect and a total timeout, and every wait (rate
 *   token, slot, backoff, Retry-After) is a timed wait that ends by the
 *   request's budget: max_attempts * (total_timeout + max_delay), and by
 *   the caller's deadline (req->call) when that is earlier; the total
 *   timeout of an attempt is clipped to that deadline.
 * - A set cancel flag (req->call) aborts the transfer from libcurl's
 *   progress callback and ends every wait; the request is not sent again.
 * - Only requests marked idempotent are retried. A non-idempotent request is
 *   attempted once; if its fate is unknown the error says so. A write marked
 *   RK_HTTP_RETRY_UNPROCESSED is resent only after an answer that says it was
 *   not acted on (429, 503) or a connection that never opened.
 * - Header strings (they carry tokens) are wiped before they are freed, and
 *   so is every response buffer; libcurl's own heap is wiped on free as well
 *   (see curl_wipe_free). Headers, bodies and query strings never reach a
 *   log line or an error message.
 *
 * Connection reuse: libcurl documents that a connection cache in a share
 * object cannot be used by concurrent threads (CURLSHOPT_SHARE: "It is not
 * supported to share connections between multiple concurrent threads", curl
 * issue #4915), so CURL_LOCK_DATA_CONNECT is not used. Instead each struct
 * rk_http keeps a pool of easy handles, at most `concurrency` of them; an
 * idle handle keeps its live connection (curl_easy_reset preserves it), and
 * only the holder of a concurrency slot takes a handle from the pool. The
 * share object carries the DNS and TLS session caches, which are thread-safe
 * under the lock callbacks.
 *
 * The pieces composed here live in their own modules: backoff, breaker,
 * rate limit and slots in src/resilience.c, the settings in src/http_cfg.c,
 * Retry-After in src/http_date.c.
 */
#include <assert.h>
#include <malloc.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <sodium.h>

#include "rekey/http.h"
#include "rekey/http_date.h"
#include "rekey/log.h"
#include "rekey/resilience.h"
#include "rekey/secret.h"
#include "rekey/util.h"

/*
 * The longest Retry-After honoured. A server asking for more is telling us
 * to come back much later, not to hold a worker thread: the response is
 * returned (with resp->retry_after) and the engine reschedules.
 */
#define RETRY_AFTER_MAX_S 60

#define LOG_PATH_MAX 256

/* What a caller is told about a write that may have landed (providers read back). */
#define OUTCOME_UNKNOWN \
	"the outcome is unknown (the request may have been applied): read back before retrying"

const double rk_http_lat_bounds[RK_HTTP_LAT_BUCKETS] = {
	0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
};

struct rk_http {
	struct rk_http *next, *prev;	/* every live client, for rk_http_foreach */
	char *provider;
	char *base;			/* base URL without a trailing slash */
	struct rk_http_cfg cfg;		/* own copy, strings included */
	CURLSH *share;			/* DNS and TLS sessions, not connections */
	pthread_mutex_t share_mu[CURL_LOCK_DATA_LAST];
	struct rk_slots slots;		/* cfg.concurrency; its own lock */
	pthread_mutex_t mu;		/* everything below */
	struct rk_breaker breaker;
	struct rk_bucket bucket;
	CURL **idle;			/* cfg.concurrency entries */
	int nidle;
	struct rk_http_stats stats;
	int have_locks;
};

/* What one attempt produced. */
struct outcome {
	CURLcode cc;
	long status;			/* 0 when no response arrived */
	int too_big, oom;
	int cancelled;			/* aborted by the call's cancel flag */
	int deadline_hit;		/* timed out because the call's deadline came */
	const struct rk_call *call;	/* the request's, for the progress callback */
	double retry_after;		/* from this attempt's headers */
	int64_t date;			/* its Date header (Unix s), 0 when none */
	char *buf;			/* body, NUL-terminated when non-NULL */
	size_t len, cap, max;
	char errbuf[CURL_ERROR_SIZE];
};

/* ---- libcurl process setup ---------------------------------------------- */

/*
 * libcurl's heap receives the request as it is sent (headers with the token,
 * small bodies copied next to them) and the response as it arrives. Handing
 * it a free that wipes keeps those copies out of freed memory.
 * malloc_usable_size covers the whole block, slack included.
 */
static void
curl_wipe_free(void *p)
{
	if (p == NULL)
		return;
	sodium_memzero(p, malloc_usable_size(p));
	free(p);
}

/* realloc would leave the old block unwiped; move by hand. */
static void *
curl_wipe_realloc(void *p, size_t n)
{
	size_t old;
	void *q;

	if (p == NULL)
		return malloc(n);
	old = malloc_usable_size(p);
	if ((q = malloc(n ? n : 1)) == NULL)
		return NULL;
	memcpy(q, p, old < n ? old : n);
	curl_wipe_free(p);
	return q;
}

static char *
curl_strdup(const char *s)
{
	size_t n = strlen(s) + 1;
	char *d = malloc(n);

	if (d != NULL)
		memcpy(d, s, n);
	return d;
}

/*
 * libcurl's global state is process-wide by libcurl's design; it is set up
 * once, on first use, whichever thread gets there first.
 */
static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc = CURLE_FAILED_INIT;

static void
curl_init_once(void)
{
	curl_init_rc = curl_global_init_mem(CURL_GLOBAL_DEFAULT, malloc, curl_wipe_free,
					    curl_wipe_realloc, curl_strdup, calloc);
}

static void
share_lock(CURL *c, curl_lock_data data, curl_lock_access access, void *userp)
{
	struct rk_http *h = userp;

	(void)c;
	(void)access;
	if ((unsigned)data < CURL_LOCK_DATA_LAST)
		pthread_mutex_lock(&h->share_mu[data]);
}

static void
share_unlock(CURL *c, curl_lock_data data, void *userp)
{
	struct rk_http *h = userp;

	(void)c;
	if ((unsigned)data < CURL_LOCK_DATA_LAST)
		pthread_mutex_unlock(&h->share_mu[data]);
}

/* ---- small helpers ---------------------------------------------------- */

static void
wipe_free(void *p, size_t n)
{
	if (p == NULL)
		return;
	sodium_memzero(p, n);
	free(p);
}



static int64_t
add_sat(int64_t a, int64_t b)
{
	return a > INT64_MAX - b ? INT64_MAX : a + b;
}

static int64_t
mul_sat(int64_t a, int64_t b)
{
	if (a <= 0 || b <= 0)
		return 0;
	return a > INT64_MAX / b ? INT64_MAX : a * b;
}

static void
fmt_ms(int64_t ms, char *buf, size_t n)
{
	if (ms >= 1000)
		snprintf(buf, n, "%.1fs", (double)ms / 1000.0);
	else
		snprintf(buf, n, "%lldms", (long long)ms);
}

/* Sets err with step "http" and the provider, first error wins. */
static int
http_error(const struct rk_http *h, struct rk_error *err, int code, long status,
	   const char *fmt, ...) RK_PRINTF(5, 6);

static int
http_error(const struct rk_http *h, struct rk_error *err, int code, long status,
	   const char *fmt, ...)
{
	char msg[sizeof(err->msg)];
	va_list ap;

	if (err == NULL || err->code != 0)
		return code;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	rk_error_set(err, code, "%s", msg);
	err->http_status = (int)status;
	if (err->step[0] == '\0')
		snprintf(err->step, sizeof(err->step), "http");
	if (err->provider[0] == '\0' && h != NULL)
		snprintf(err->provider, sizeof(err->provider), "%s", h->provider);
	return code;
}

/* ---- client ------------------------------------------------------------- */

/* Control characters and spaces would end a request line early or split it. */
static int
has_ctl(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s <= 0x20 || (unsigned char)*s == 0x7f)
			return 1;
	return 0;
}

static int
cfg_sane(const struct rk_http_cfg *c)
{
	return c->connect_timeout_ms > 0 && c->total_timeout_ms > 0 && c->max_attempts >= 1 &&
	       c->base_delay_ms >= 0 && c->max_delay_ms >= 0 && c->concurrency >= 1 &&
	       c->concurrency <= 1024 && c->max_response >= 1 && c->burst >= 0 &&
	       c->cb_cooldown_ms >= 0 && isfinite(c->rps);
}

int
rk_http_check(const char *provider, const char *url, const struct rk_http_cfg *cfg,
	      struct rk_error *err)
{
	int insecure = cfg->insecure_http;
	size_t scheme;

	if (!cfg_sane(cfg))
		return rk_error_set(err, RK_EINVAL, "invalid HTTP settings for provider '%s'",
				    provider);
	if ((cfg->ca_file && cfg->ca_pem) || (cfg->client_cert_file && cfg->client_cert_pem) ||
	    (cfg->client_key_file && cfg->client_key_pem))
		return rk_error_set(err, RK_EINVAL, "provider '%s': a CA, client certificate or "
				    "client key is given both as a file and in memory; give one",
				    provider);
	if ((cfg->ca_pem && cfg->ca_pem[0] == '\0') ||
	    (cfg->client_cert_pem && cfg->client_cert_pem[0] == '\0') ||
	    (cfg->client_key_pem && rk_secret_len(cfg->client_key_pem) == 0))
		return rk_error_set(err, RK_EINVAL, "provider '%s': an empty CA, client "
				    "certificate or client key", provider);
	if (strncasecmp(url, "https://", 8) == 0) {
		scheme = 8;
	} else if (strncasecmp(url, "http://", 7) == 0) {
		if (!insecure)
			return rk_error_set(err, RK_EINVAL,
					    "provider '%s': plain http:// address refused; use "
					    "https:// (insecure_http: true is for test fakes only)",
					    provider);
		scheme = 7;
	} else {
		return rk_error_set(err, RK_EINVAL, "provider '%s': address must start with "
				    "https://", provider);
	}
	/* The path is appended to it: a query or fragment here would swallow it. */
	if (has_ctl(url) || strpbrk(url, "?#") != NULL || url[scheme] == '\0' ||
	    url[scheme] == '/')
		return rk_error_set(err, RK_EINVAL, "provider '%s': invalid address '%s'",
				    provider, url);
	return 0;
}

static int
init_locks(struct rk_http *h, int concurrency)
{
	if (rk_slots_init(&h->slots, concurrency) < 0)
		return -1;
	for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_init(&h->share_mu[i], NULL);
	pthread_mutex_init(&h->mu, NULL);
	h->have_locks = 1;
	return 0;
}

/*
 * Every live client (for rk_http_foreach); h->next/prev under registry_mu.
 * A freed client's counters are kept (added up per provider name), so that
 * metrics stay monotonic when a provider is closed and opened again (a
 * daemon's reload).
 */
static pthread_mutex_t registry_mu = PTHREAD_MUTEX_INITIALIZER;
static struct rk_http *registry;
struct retired {
	struct retired *next;
	char *provider;
	struct rk_http_stats st;
};
static struct retired *retired;

static void
retire(struct rk_http *h)
{
	struct retired *r;
	struct rk_http_stats st;

	rk_http_stats(h, &st);
	for (r = retired; r != NULL && strcmp(r->provider, h->provider) != 0; r = r->next)
		;
	if (r == NULL) {
		if ((r = calloc(1, sizeof(*r))) == NULL || (r->provider = strdup(h->provider)) == NULL) {
			free(r);
			return;	/* out of memory: the counts are lost, nothing else */
		}
		r->next = retired;
		retired = r;
	}
	r->st.requests += st.requests;
	r->st.retries += st.retries;
	r->st.circuit_opened += st.circuit_opened;
	for (size_t i = 0; i < RK_ARRAY_SIZE(st.by_class); i++)
		r->st.by_class[i] += st.by_class[i];
	for (size_t i = 0; i < RK_ARRAY_SIZE(st.by_status); i++)
		r->st.by_status[i] += st.by_status[i];
	for (size_t i = 0; i < RK_ARRAY_SIZE(st.lat_count); i++)
		r->st.lat_count[i] += st.lat_count[i];
	r->st.lat_sum_s += st.lat_sum_s;
}

static void
registry_add(struct rk_http *h)
{
	pthread_mutex_lock(&registry_mu);
	h->next = registry;
	h->prev = NULL;
	if (registry != NULL)
		registry->prev = h;
	registry = h;
	pthread_mutex_unlock(&registry_mu);
}

static void
registry_remove(struct rk_http *h)
{
	pthread_mutex_lock(&registry_mu);
	if (h->prev != NULL || registry == h) {
		retire(h);
		if (h->prev != NULL)
			h->prev->next = h->next;
		else
			registry = h->next;
		if (h->next != NULL)
			h->next->prev = h->prev;
	}
	h->next = h->prev = NULL;
	pthread_mutex_unlock(&registry_mu);
}

int
rk_http_new(struct rk_http **out, const char *provider, const char *base_url,
	    const struct rk_http_cfg *cfg, struct rk_error *err)
{
	struct rk_http *h = NULL;
	size_t n;
	int r;

	pthread_once(&curl_once, curl_init_once);
	if (curl_init_rc != CURLE_OK)
		return rk_error_set(err, RK_EINTERNAL, "libcurl failed to initialise: %s",
				    curl_easy_strerror(curl_init_rc));
	if ((r = rk_http_check(provider, base_url, cfg, err)) < 0)
		return r;
	if ((h = calloc(1, sizeof(*h))) == NULL)
		return rk_error_set(err, RK_ENOMEM, "out of memory");
	if (init_locks(h, cfg->concurrency) < 0) {
		r = rk_error_set(err, RK_EINTERNAL, "cannot set up the HTTP client's locks");
		goto out;
	}
	n = strlen(base_url);
	while (n > 0 && base_url[n - 1] == '/')
		n--;
	if ((h->provider = strdup(provider)) == NULL || (h->base = strndup(base_url, n)) == NULL ||
	    (h->idle = calloc((size_t)cfg->concurrency, sizeof(*h->idle))) == NULL ||
	    rk_http_cfg_copy(&h->cfg, cfg) < 0 || (h->share = curl_share_init()) == NULL) {
		r = rk_error_set(err, RK_ENOMEM, "out of memory");
		goto out;
	}
	if (curl_share_setopt(h->share, CURLSHOPT_LOCKFUNC, share_lock) != CURLSHE_OK ||
	    curl_share_setopt(h->share, CURLSHOPT_UNLOCKFUNC, share_unlock) != CURLSHE_OK ||
	    curl_share_setopt(h->share, CURLSHOPT_USERDATA, h) != CURLSHE_OK ||
	    curl_share_setopt(h->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS) != CURLSHE_OK ||
	    curl_share_setopt(h->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION) != CURLSHE_OK) {
		r = rk_error_set(err, RK_EINTERNAL, "libcurl refused the share settings");
		goto out;
	}
	rk_breaker_init(&h->breaker, cfg->cb_failures, cfg->cb_cooldown_ms);
	rk_bucket_init(&h->bucket, cfg->rps, cfg->burst, rk_mono_ms());
	registry_add(h);
	*out = h;
	h = NULL;
	r = 0;
 out:
	rk_http_free(h);
	return r;
}

void
rk_http_free(struct rk_http *h)
{
	if (h == NULL)
		return;
	registry_remove(h);
	/* freed while a request runs: a caller bug */
	assert(!h->have_locks || rk_slots_inflight(&h->slots) == 0);
	/* Easy handles first: the share cannot go while handles use it. */
	for (int i = 0; i < h->nidle; i++)
		curl_easy_cleanup(h->idle[i]);
	if (h->share != NULL)
		curl_share_cleanup(h->share);
	if (h->have_locks) {
		for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
			pthread_mutex_destroy(&h->share_mu[i]);
		pthread_mutex_destroy(&h->mu);
		rk_slots_destroy(&h->slots);
	}
	free(h->idle);
	free(h->provider);
	free(h->base);
	rk_http_cfg_free(&h->cfg);
	free(h);
}

void
rk_http_foreach(void (*fn)(void *arg, const char *provider, const struct rk_http_stats *st),
		void *arg)
{
	struct rk_http_stats *st = malloc(sizeof(*st));

	if (st == NULL)
		return;
	pthread_mutex_lock(&registry_mu);
	for (struct rk_http *h = registry; h != NULL; h = h->next) {
		rk_http_stats(h, st);
		fn(arg, h->provider, st);
	}
	for (struct retired *r = retired; r != NULL; r = r->next)
		fn(arg, r->provider, &r->st);
	pthread_mutex_unlock(&registry_mu);
	free(st);
}

void
rk_http_stats(struct rk_http *h, struct rk_http_stats *out)
{
	pthread_mutex_lock(&h->mu);
	*out = h->stats;
	out->circuit_open = h->breaker.state != RK_BREAKER_CLOSED;
	pthread_mutex_unlock(&h->mu);
}

void
rk_http_resp_free(struct rk_http_resp *resp)
{
	if (resp == NULL)
		return;
	if (resp->body != NULL && resp->sensitive)
		sodium_memzero(resp->body, resp->len);
	free(resp->body);
	resp->body = NULL;
	resp->len = 0;
}

/* ---- one attempt ------------------------------------------------------- */

static void
outcome_reset(struct outcome *o, size_t max)
{
	wipe_free(o->buf, o->cap);
	memset(o, 0, sizeof(*o));
	o->max = max;
}

static size_t
on_body(char *data, size_t size, size_t nmemb, void *userp)
{
	struct outcome *o = userp;
	size_t n = size * nmemb;

	/* o->len <= o->max always holds, so this cannot wrap. */
	if (n > o->max - o->len) {
		o->too_big = 1;
		return 0;	/* aborts the transfer with CURLE_WRITE_ERROR */
	}
	if (o->len + n + 1 > o->cap) {
		size_t cap = o->cap ? o->cap : 4096;
		char *p;
		while (cap < o->len + n + 1)
			cap *= 2;
		if (cap > o->max + 1)
			cap = o->max + 1;
		/* Not realloc: the old block is wiped before it is freed. */
		if ((p = malloc(cap)) == NULL) {
			o->oom = 1;
			return 0;
		}
		if (o->len > 0)
			memcpy(p, o->buf, o->len);
		wipe_free(o->buf, o->cap);
		o->buf = p;
		o->cap = cap;
	}
	memcpy(o->buf + o->len, data, n);
	o->len += n;
	o->buf[o->len] = '\0';
	return n;
}

/* The value of header `name` ("retry-after:") in one header line, trimmed, into val. */
static int
header_value(const char *data, size_t n, const char *name, char *val, size_t vn)
{
	size_t nl = strlen(name), k;
	const char *v;

	if (n <= nl || strncasecmp(data, name, nl) != 0)
		return 0;
	v = data + nl;
	k = n - nl;
	while (k > 0 && (*v == ' ' || *v == '\t')) {
		v++;
		k--;
	}
	while (k > 0 && (v[k - 1] == '\r' || v[k - 1] == '\n' || v[k - 1] == ' ' ||
			 v[k - 1] == '\t'))
		k--;
	if (k == 0 || k >= vn)
		return 0;	/* absent or absurd */
	memcpy(val, v, k);
	val[k] = '\0';
	return 1;
}

static size_t
on_header(char *data, size_t size, size_t nmemb, void *userp)
{
	struct outcome *o = userp;
	size_t n = size * nmemb;
	char val[64];
	double secs;
	int64_t when;

	/* A status line starts a new response (after a 1xx): forget the old one's. */
	if (n >= 5 && memcmp(data, "HTTP/", 5) == 0) {
		o->retry_after = 0;
		o->date = 0;
		return n;
	}
	if (header_value(data, n, "retry-after:", val, sizeof(val))) {
		/* An unparsable value is no minimum from the server. */
		if (rk_parse_retry_after(val, (int64_t)time(NULL), &secs) == 0)
			o->retry_after = secs;
	} else if (header_value(data, n, "date:", val, sizeof(val))) {
		if (rk_parse_http_date(val, (int64_t)time(NULL), &when) == 0)
			o->date = when;
	}
	return n;
}

/* libcurl calls this about once a second at worst, so a stop takes that long. */
static int
on_progress(void *userp, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
	    curl_off_t ulnow)
{
	const struct outcome *o = userp;

	(void)dltotal;
	(void)dlnow;
	(void)ultotal;
	(void)ulnow;
	return rk_call_cancelled(o->call);	/* non-zero: CURLE_ABORTED_BY_CALLBACK */
}

/* Transport failures after which the same request may simply be sent again. */
static int
transport_retryable(CURLcode cc)
{
	switch (cc) {
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_CONNECT:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
		return 1;
	default:
		return 0;
	}
}

/* Failures that mean the request never left: safe to say "not applied". */
static int
transport_not_sent(CURLcode cc)
{
	return cc == CURLE_COULDNT_RESOLVE_HOST || cc == CURLE_COULDNT_CONNECT;
}

/*
 * Statuses that say the server refused the request before acting on it: a
 * rate limit, or Vault sealed / a standby that cannot forward (503).
 */
static int
status_unprocessed(long s)
{
	return s == 429 || s == 503;
}

/* Failures an operator fixes in the config (CA, client certificate, URL). */
static int
transport_config(CURLcode cc)
{
	switch (cc) {
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_CRL_BADFILE:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_UNSUPPORTED_PROTOCOL:
	case CURLE_URL_MALFORMAT:
		return 1;
	default:
		return 0;
	}
}

static int
status_retryable(long s)
{
	/* 412: Vault Enterprise performance standby not caught up yet. */
	return s == 412 || s == 429 || s == 500 || s == 502 || s == 503 || s == 504;
}

/* Whether a failed attempt of req may be sent again (its retry class decides). */
static int
worth_resending(const struct rk_http_req *req, const struct outcome *o)
{
	switch (req->idempotent) {
	case RK_HTTP_IDEMPOTENT:
		return o->status > 0 ? status_retryable(o->status) : transport_retryable(o->cc);
	case RK_HTTP_RETRY_UNPROCESSED:
		return o->status > 0 ? status_unprocessed(o->status) : transport_not_sent(o->cc);
	default:
		return 0;
	}
}

/* What the circuit breaker counts against the provider: it is not answering. */
static int
is_breaker_failure(const struct outcome *o)
{
	if (o->status > 0)
		return o->status >= 500 || o->status == 429;
	return !o->too_big && !o->oom && o->cc != CURLE_OK;
}

struct call {
	const struct rk_http_req *req;
	const char *url;
	struct curl_slist *hdrs;
	int has_body;
	char path[LOG_PATH_MAX];	/* without the query, for logs and errors */
};

/*
 * In-memory TLS material (libcurl >= 7.77 for the CA blob). The blobs are
 * not copied by setopt (CURL_BLOB_NOCOPY): h->cfg owns them and outlives
 * every handle. libcurl still copies them into each connection's settings,
 * on its heap, which curl_wipe_free wipes.
 */
static int
set_tls_blobs(CURL *c, const struct rk_http_cfg *cfg)
{
	struct curl_blob b = { .flags = CURL_BLOB_NOCOPY };
	int bad = 0;

	if (cfg->ca_pem) {
		b.data = cfg->ca_pem;
		b.len = strlen(cfg->ca_pem);
		bad |= curl_easy_setopt(c, CURLOPT_CAINFO_BLOB, &b) != CURLE_OK;
		/*
		 * The blob replaces the CA bundle, but libcurl would still trust
		 * its built-in CA directory (Debian's /etc/ssl/certs): the PEM
		 * given is meant to be the only trust anchor.
		 */
		if (cfg->ca_path == NULL)
			bad |= curl_easy_setopt(c, CURLOPT_CAPATH, (char *)NULL) != CURLE_OK;
	}
	if (cfg->client_cert_pem) {
		b.data = cfg->client_cert_pem;
		b.len = strlen(cfg->client_cert_pem);
		bad |= curl_easy_setopt(c, CURLOPT_SSLCERT_BLOB, &b) != CURLE_OK;
	}
	if (cfg->client_key_pem) {
		/* libcurl does not write through it; the blob type is not const. */
		b.data = (void *)(uintptr_t)rk_secret_cdata(cfg->client_key_pem);
		b.len = rk_secret_len(cfg->client_key_pem);
		bad |= curl_easy_setopt(c, CURLOPT_SSLKEY_BLOB, &b) != CURLE_OK;
	}
	return bad;
}

static int
setup_handle(struct rk_http *h, CURL *c, const struct call *call, struct outcome *o,
	     int64_t timeout_ms)
{
	const struct rk_http_req *req = call->req;
	const struct rk_http_cfg *cfg = &h->cfg;
	int bad = 0;

	/* The handle comes new or reset (slot_give): only this request's options. */
	bad |= curl_easy_setopt(c, CURLOPT_URL, call->url) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR,
				cfg->insecure_http ? "http,https" : "https") != CURLE_OK;
	/* A redirect could carry a token to another host; providers handle 3xx. */
	bad |= curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, cfg->insecure_tls ? 0L : 1L) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, cfg->insecure_tls ? 0L : 2L) != CURLE_OK;
	if (cfg->ca_file)
		bad |= curl_easy_setopt(c, CURLOPT_CAINFO, cfg->ca_file) != CURLE_OK;
	if (cfg->ca_path)
		bad |= curl_easy_setopt(c, CURLOPT_CAPATH, cfg->ca_path) != CURLE_OK;
	if (cfg->client_cert_file)
		bad |= curl_easy_setopt(c, CURLOPT_SSLCERT, cfg->client_cert_file) != CURLE_OK;
	if (cfg->client_key_file)
		bad |= curl_easy_setopt(c, CURLOPT_SSLKEY, cfg->client_key_file) != CURLE_OK;
	bad |= set_tls_blobs(c, cfg);
	bad |= curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)cfg->connect_timeout_ms) !=
	       CURLE_OK;
	/* timeout_ms >= 1: libcurl reads 0 as no timeout at all. */
	bad |= curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)timeout_ms) != CURLE_OK;
	/* Refuses a too-large Content-Length before reading the body at all. */
	bad |= curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)cfg->max_response) !=
	       CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_USERAGENT, "rekey") != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_HTTPHEADER, call->hdrs) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_WRITEDATA, o) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_HEADERDATA, o) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_ERRORBUFFER, o->errbuf) != CURLE_OK;
	/* Only a call that can be cancelled pays for the progress callback. */
	o->call = req->call;
	if (req->call != NULL && req->call->cancel != NULL) {
		bad |= curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress) != CURLE_OK;
		bad |= curl_easy_setopt(c, CURLOPT_XFERINFODATA, o) != CURLE_OK;
		bad |= curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L) != CURLE_OK;
	}
	/*
	 * libcurl silently sends a request again when a reused connection dies
	 * before any answer byte, which may be after the server acted on it: a
	 * write that is not idempotent gets a connection of its own instead.
	 */
	bad |= curl_easy_setopt(c, CURLOPT_FRESH_CONNECT, req->idempotent == RK_HTTP_IDEMPOTENT ? 0L : 1L) !=
	       CURLE_OK;
	/*
	 * POSTFIELDS makes libcurl send POST; any other method with a body, and
	 * every method libcurl has no switch for (PUT, PATCH, DELETE, LIST), is
	 * named explicitly.
	 */
	if (strcmp(req->method, "HEAD") == 0)
		bad |= curl_easy_setopt(c, CURLOPT_NOBODY, 1L) != CURLE_OK;
	else if (strcmp(req->method, "POST") != 0 &&
		 (strcmp(req->method, "GET") != 0 || call->has_body))
		bad |= curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, req->method) != CURLE_OK;
	if (call->has_body) {
		/* Not copied by libcurl: req->body outlives the transfer. */
		bad |= curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE,
					(curl_off_t)req->body_len) != CURLE_OK;
		bad |= curl_easy_setopt(c, CURLOPT_POSTFIELDS,
					req->body ? (const char *)req->body : "") != CURLE_OK;
	}
	return bad ? RK_EINTERNAL : 0;
}

/*
 * Takes a concurrency slot (waiting by priority), then a pooled handle or a
 * new one. Handles are made only by slot holders that found the pool empty,
 * so there are never more than cfg.concurrency of them.
 */
static int
slot_take(struct rk_http *h, const struct rk_http_req *req, int64_t deadline, CURL **out)
{
	CURL *c = NULL;
	int r;

	if ((r = rk_slots_take(&h->slots, req->priority, deadline, req->call)) < 0)
		return r;
	pthread_mutex_lock(&h->mu);
	if (h->nidle > 0)
		c = h->idle[--h->nidle];
	pthread_mutex_unlock(&h->mu);
	if (c == NULL && (c = curl_easy_init()) != NULL &&
	    curl_easy_setopt(c, CURLOPT_SHARE, h->share) != CURLE_OK) {
		curl_easy_cleanup(c);
		c = NULL;
	}
	if (c == NULL) {
		rk_slots_give(&h->slots);
		return RK_ENOMEM;
	}
	*out = c;
	return 0;
}

static void
slot_give(struct rk_http *h, CURL *c)
{
	/*
	 * An idle handle must hold no pointer into the finished request (header
	 * list, body, buffers on its stack): libcurl may still write an error
	 * message while closing a connection. The reset keeps the connection.
	 */
	curl_easy_reset(c);
	/* Pooled before the slot goes, so the next holder finds it. */
	pthread_mutex_lock(&h->mu);
	h->idle[h->nidle++] = c;
	pthread_mutex_unlock(&h->mu);
	rk_slots_give(&h->slots);
}

static const char *
state_name(enum rk_breaker_state s)
{
	switch (s) {
	case RK_BREAKER_CLOSED: return "closed";
	case RK_BREAKER_OPEN: return "open";
	case RK_BREAKER_HALF_OPEN: return "half-open";
	}
	return "?";
}

static void
log_circuit(const struct rk_http *h, enum rk_breaker_state s, int failures)
{
	char n[16];

	snprintf(n, sizeof(n), "%d", failures);
	rk_log(RK_LOG_INFO, "http.circuit", "provider", h->provider, "state", state_name(s),
	       "failures", n, NULL);
}

enum gate { GATE_OK, GATE_CIRCUIT, GATE_RATE, GATE_SLOT, GATE_NOMEM, GATE_CANCELED };

/* A half-open probe that will not give a verdict. */
static void
forget_probe(struct rk_http *h)
{
	pthread_mutex_lock(&h->mu);
	rk_breaker_forget_probe(&h->breaker);
	pthread_mutex_unlock(&h->mu);
}

/*
 * Admits one attempt: breaker, then a rate token, then a slot (by the
 * request's priority); the waits end at `deadline` and on the call's cancel
 * flag. The breaker goes first so an open circuit fails fast without
 * spending tokens. A half-open probe that then times out waiting is handed
 * back, or the breaker would stay half-open with no probe forever; *probe
 * says whether an admitted attempt is the probe.
 */
static enum gate
gate(struct rk_http *h, const struct rk_http_req *req, int64_t deadline, CURL **c, int *probe,
     char *why, size_t whylen)
{
	enum rk_breaker_state before, after;
	int allowed, failures;
	int64_t now = rk_mono_ms(), left;
	enum gate g = GATE_OK;
	char left_s[32];

	pthread_mutex_lock(&h->mu);
	before = h->breaker.state;
	allowed = rk_breaker_allow(&h->breaker, now);
	after = h->breaker.state;
	*probe = allowed && after == RK_BREAKER_HALF_OPEN;
	failures = h->breaker.failures;
	left = h->breaker.opened_at_ms + h->breaker.cooldown_ms - now;
	pthread_mutex_unlock(&h->mu);
	if (before != after)
		log_circuit(h, after, failures);
	if (!allowed) {
		fmt_ms(left > 0 ? left : 0, left_s, sizeof(left_s));
		snprintf(why, whylen, "circuit open for provider %s after %d failures; retrying "
			 "after %s", h->provider, failures, left_s);
		return GATE_CIRCUIT;
	}
	switch (rk_bucket_wait(&h->bucket, &h->mu, deadline, req->call)) {
	case 0:
		break;
	case RK_ECANCELED:
		g = GATE_CANCELED;
		goto out;
	default:
		snprintf(why, whylen, "rate limit of provider %s (%g requests/s) leaves "
			 "no room before the request's deadline", h->provider, h->cfg.rps);
		g = GATE_RATE;
		goto out;
	}
	switch (slot_take(h, req, deadline, c)) {
	case 0:
		break;
	case RK_ECANCELED:
		g = GATE_CANCELED;
		break;
	case RK_ENOMEM:
		snprintf(why, whylen, "out of memory");
		g = GATE_NOMEM;
		break;
	default:
		snprintf(why, whylen, "no free connection slot for provider %s (%d in flight) "
			 "before the request's deadline", h->provider, h->cfg.concurrency);
		g = GATE_SLOT;
		break;
	}
 out:
	if (g != GATE_OK && *probe)
		forget_probe(h);
	return g;
}

/*
 * Bookkeeping after an attempt: breaker, counters, the debug line. An
 * attempt its caller stopped (cancelled, or cut short by the call's
 * deadline) says nothing about the provider: the breaker records no verdict.
 */
static void
account(struct rk_http *h, const struct call *call, const struct outcome *o, int attempt,
	int64_t t0, int probe)
{
	enum rk_breaker_state before, after;
	int failures, cls = 0;
	char st[16], at[16], ms[24];

	if (o->status >= 100 && o->status <= 599)
		cls = (int)(o->status / 100);
	pthread_mutex_lock(&h->mu);
	before = h->breaker.state;
	if (!o->cancelled && !o->deadline_hit)
		rk_breaker_record(&h->breaker, !is_breaker_failure(o), rk_mono_ms());
	else if (probe)
		rk_breaker_forget_probe(&h->breaker);
	after = h->breaker.state;
	failures = h->breaker.failures;
	h->stats.requests++;
	if (cls > 0 || o->status == 0) {
		h->stats.by_class[cls]++;
		h->stats.by_status[o->status]++;
	}
	{
		double sec = (double)(rk_mono_ms() - t0) / 1000.0;
		int b = 0;

		while (b < RK_HTTP_LAT_BUCKETS && sec > rk_http_lat_bounds[b])
			b++;
		h->stats.lat_count[b]++;
		h->stats.lat_sum_s += sec;
	}
	if (after == RK_BREAKER_OPEN && before != RK_BREAKER_OPEN)
		h->stats.circuit_opened++;
	pthread_mutex_unlock(&h->mu);
	if (before != after)
		log_circuit(h, after, failures);
	if (rk_log_enabled(RK_LOG_DEBUG)) {
		snprintf(st, sizeof(st), "%ld", o->status);
		snprintf(at, sizeof(at), "%d", attempt);
		snprintf(ms, sizeof(ms), "%lld", (long long)(rk_mono_ms() - t0));
		rk_log(RK_LOG_DEBUG, "http.request", "provider", h->provider, "method",
		       call->req->method, "path", call->path, "status", st, "attempt", at,
		       "duration_ms", ms, "error",
		       o->status == 0 && o->cc != CURLE_OK ? curl_easy_strerror(o->cc) : NULL, NULL);
	}
}

/*
 * Every connection opened without verifying the server is logged, not only
 * the first: the user allowed it, and should keep seeing that it happens.
 */
static void
warn_insecure_connect(const struct rk_http *h, CURL *c)
{
	long n = 0;

	if (curl_easy_getinfo(c, CURLINFO_NUM_CONNECTS, &n) == CURLE_OK && n > 0)
		rk_log(RK_LOG_WARN, "http.insecure_tls", "provider", h->provider, "msg",
		       "connected without verifying the server's TLS certificate or name", NULL);
}

static int
attempt_once(struct rk_http *h, const struct call *call, CURL *c, struct outcome *o,
	     int64_t timeout_ms)
{
	int r;

	if ((r = setup_handle(h, c, call, o, timeout_ms)) < 0)
		return r;
	o->cc = curl_easy_perform(c);
	o->cancelled = o->cc == CURLE_ABORTED_BY_CALLBACK;
	/*
	 * The timeout was clipped to the deadline: libcurl's own clock may end
	 * it a hair before ours reaches the deadline, so the clip decides.
	 */
	o->deadline_hit = o->cc == CURLE_OPERATION_TIMEDOUT &&
			  (timeout_ms < h->cfg.total_timeout_ms || rk_call_expired(call->req->call));
	if (curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &o->status) != CURLE_OK)
		o->status = 0;
	if (h->cfg.insecure_tls)
		warn_insecure_connect(h, c);
	if (o->cc == CURLE_FILESIZE_EXCEEDED)
		o->too_big = 1;
	/* A transfer cut in the middle leaves a status but no whole response. */
	if (o->cc != CURLE_OK && !o->too_big && !o->oom)
		o->status = 0;
	return 0;
}

static int
method_ok(const char *m)
{
	size_t n = strlen(m);

	return n > 0 && n <= 16 && strspn(m, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") == n;
}

/* Builds the header list; every string is wiped before the list is freed. */
static void
free_headers(struct curl_slist *l)
{
	for (struct curl_slist *p = l; p != NULL; p = p->next)
		if (p->data != NULL)
			sodium_memzero(p->data, strlen(p->data));
	curl_slist_free_all(l);
}

static int
build_headers(const struct rk_http_req *req, int has_body, struct curl_slist **out)
{
	struct curl_slist *l = NULL, *t;
	int have_ct = 0;

	for (const char *const *hp = req->headers; hp != NULL && *hp != NULL; hp++) {
		if (strchr(*hp, ':') == NULL || strpbrk(*hp, "\r\n") != NULL)
			goto bad;
		if (strncasecmp(*hp, "content-type:", 13) == 0)
			have_ct = 1;
		if ((t = curl_slist_append(l, *hp)) == NULL)
			goto nomem;
		l = t;
	}
	/* A 100-continue round trip would add up to a second per body. */
	if ((t = curl_slist_append(l, "Expect:")) == NULL)
		goto nomem;
	l = t;
	/* libcurl would label a body form-urlencoded; better no label than a wrong one. */
	if (has_body && !have_ct) {
		if ((t = curl_slist_append(l, "Content-Type:")) == NULL)
			goto nomem;
		l = t;
	}
	*out = l;
	return 0;
 bad:
	free_headers(l);
	return RK_EINVAL;
 nomem:
	free_headers(l);
	return RK_ENOMEM;
}

static int
wants_body(const struct rk_http_req *req)
{
	return req->body != NULL || strcmp(req->method, "POST") == 0 ||
	       strcmp(req->method, "PUT") == 0 || strcmp(req->method, "PATCH") == 0;
}

/* Sets err from the final outcome of a request that got no usable response. */
static int
fail_transport(struct rk_http *h, const struct call *call, const struct outcome *o,
	       int attempts, struct rk_error *err)
{
	const char *m = call->req->method;
	const char *what = o->errbuf[0] ? o->errbuf : curl_easy_strerror(o->cc);
	char deadline_what[CURL_ERROR_SIZE + 32];

	if (o->deadline_hit) {
		snprintf(deadline_what, sizeof(deadline_what), "deadline passed (%s)", what);
		what = deadline_what;
	}
	if (o->cc == CURLE_OUT_OF_MEMORY)
		return http_error(h, err, RK_ENOMEM, 0, "out of memory");
	if (transport_config(o->cc))
		return http_error(h, err, RK_EINVAL, 0, "%s %s to provider %s: %s (check the "
				  "address, ca_file, ca_path and client certificate settings)", m,
				  call->path, h->provider, what);
	if (call->req->idempotent != RK_HTTP_IDEMPOTENT && !transport_not_sent(o->cc))
		return http_error(h, err, RK_ETRANSIENT, 0,
				  "%s %s to provider %s failed: %s; " OUTCOME_UNKNOWN, m,
				  call->path, h->provider, what);
	if (call->req->idempotent != RK_HTTP_IDEMPOTENT)
		return http_error(h, err, RK_ETRANSIENT, 0,
				  "%s %s to provider %s was not sent: %s", m, call->path,
				  h->provider, what);
	return http_error(h, err, RK_ETRANSIENT, 0, "%s %s to provider %s failed after %d "
			  "attempt%s: %s", m, call->path, h->provider, attempts,
			  attempts == 1 ? "" : "s", what);
}

/*
 * How long to wait before sending again: 0 and *wait_ms, which ends before
 * the caller's deadline and within the budget; 1 when the last answer is
 * handed back as it is (the server asks for longer than a thread is held,
 * or the budget is spent); RK_ETRANSIENT when the server's minimum would
 * pass the caller's deadline (err set).
 */
static int
plan_resend(struct rk_http *h, const struct call *call, const struct outcome *o, int attempts,
	    int64_t budget, int64_t *wait_ms, struct rk_error *err)
{
	const struct rk_call *rc = call->req->call;
	int64_t ra_ms = 0, dl = rc != NULL ? rc->deadline_ms : 0, now;
	char ra_s[24], left_s[24];

	if (o->status > 0 && o->retry_after > 0) {
		if (o->retry_after > RETRY_AFTER_MAX_S)
			return 1;
		ra_ms = (int64_t)(o->retry_after * 1000.0);
	}
	/* Retry-After is a floor (whole seconds, truncated); jitter goes on top. */
	*wait_ms = ra_ms + rk_backoff_ms(attempts - 1, h->cfg.base_delay_ms, h->cfg.max_delay_ms,
					 randombytes_random());
	now = rk_mono_ms();
	/* The caller's deadline, where it is the earlier bound, is never slept past. */
	if (dl > 0 && dl <= budget) {
		if (ra_ms > 0 && add_sat(now, ra_ms) >= dl) {
			fmt_ms(ra_ms, ra_s, sizeof(ra_s));
			fmt_ms(dl > now ? dl - now : 0, left_s, sizeof(left_s));
			return http_error(h, err, RK_ETRANSIENT, o->status, "deadline passed before "
					  "%s %s to provider %s could be sent again: the server asks "
					  "to wait %s, %s left", call->req->method, call->path,
					  h->provider, ra_s, left_s);
		}
		if (add_sat(now, *wait_ms) >= dl) {
			if (now >= dl)
				return 1;
			/* Half the time past the floor: an attempt at the deadline could not run. */
			*wait_ms = ra_ms + (dl - now - ra_ms) / 2;
		}
	}
	/* Never shorten the server's minimum: out of budget, hand back what we have. */
	if (add_sat(now, *wait_ms) >= budget)
		return 1;
	return 0;
}

/*
 * Sets err for a request its call stopped: RK_ECANCELED (rekey is stopping),
 * or RK_ETRANSIENT when the deadline left no time to send it at all. A
 * write aborted mid-transfer may have reached the server whole: never "not
 * sent".
 */
static int
fail_call(struct rk_http *h, const struct call *call, int code, const struct outcome *o,
	  int attempts, struct rk_error *err)
{
	const struct rk_http_req *req = call->req;

	if (code != RK_ECANCELED)
		return http_error(h, err, RK_ETRANSIENT, 0, "deadline passed before %s %s to "
				  "provider %s was sent", req->method, call->path, h->provider);
	if (attempts == 0)
		return http_error(h, err, RK_ECANCELED, 0, "provider '%s': cancelled (rekey is "
				  "stopping); %s %s was not sent", h->provider, req->method,
				  call->path);
	if (o->cancelled)
		return http_error(h, err, RK_ECANCELED, 0, "provider '%s': cancelled (rekey is "
				  "stopping) during %s %s%s", h->provider, req->method, call->path,
				  req->idempotent == RK_HTTP_IDEMPOTENT ? "" : "; " OUTCOME_UNKNOWN);
	/* Between attempts: each earlier one was answered or resent only when that was safe. */
	return http_error(h, err, RK_ECANCELED, o->status, "provider '%s': cancelled (rekey is "
			  "stopping) after %d attempt%s of %s %s", h->provider, attempts,
			  attempts == 1 ? "" : "s", req->method, call->path);
}

/*
 * Whether req's call lets an attempt go now: 0 and *timeout_ms, the
 * client's per-attempt timeout clipped to the time left (at least 1 ms:
 * libcurl reads 0 as no timeout); else RK_ECANCELED, or RK_ETRANSIENT when
 * no time is left.
 */
static int
call_admits(const struct rk_http *h, const struct rk_http_req *req, int64_t *timeout_ms)
{
	int64_t left;

	*timeout_ms = h->cfg.total_timeout_ms;
	if (rk_call_cancelled(req->call))
		return RK_ECANCELED;
	if (req->call == NULL || req->call->deadline_ms <= 0)
		return 0;
	if ((left = req->call->deadline_ms - rk_mono_ms()) <= 0)
		return RK_ETRANSIENT;
	if (left < *timeout_ms)
		*timeout_ms = left;
	return 0;
}

int
rk_http_do(struct rk_http *h, const struct rk_http_req *req, struct rk_http_resp *resp,
	   struct rk_error *err)
{
	struct call call = { .req = req };
	struct outcome o;
	CURL *c = NULL;
	char *url = NULL, why[400];
	size_t ulen = 0;
	int64_t start = rk_mono_ms(), budget, deadline, timeout_ms, t0;
	int r = RK_EINTERNAL, attempts = 0;

	memset(&o, 0, sizeof(o));
	memset(resp, 0, sizeof(*resp));
	resp->sensitive = req->sensitive;
	if (req->method == NULL || !method_ok(req->method) || req->path == NULL ||
	    has_ctl(req->path) ||
	    (req->body == NULL && req->body_len != 0)) {
		r = http_error(h, err, RK_EINVAL, 0, "invalid request to provider %s (method, path "
			       "or body)", h->provider);
		goto out;
	}
	snprintf(call.path, sizeof(call.path), "%.*s", (int)strcspn(req->path, "?"), req->path);
	call.has_body = wants_body(req);
	if ((r = build_headers(req, call.has_body, &call.hdrs)) < 0) {
		r = r == RK_ENOMEM ? http_error(h, err, r, 0, "out of memory")
				   : http_error(h, err, r, 0, "invalid request header for provider "
						"%s", h->provider);
		goto out;
	}
	ulen = strlen(h->base) + strlen(req->path) + 2;
	if ((url = malloc(ulen)) == NULL) {
		r = http_error(h, err, RK_ENOMEM, 0, "out of memory");
		goto out;
	}
	snprintf(url, ulen, "%s%s%s", h->base, req->path[0] == '/' ? "" : "/", req->path);
	call.url = url;
	/* Every attempt at its longest plus every backoff at its longest. */
	budget = add_sat(start, mul_sat(h->cfg.max_attempts,
					add_sat(h->cfg.total_timeout_ms, h->cfg.max_delay_ms)));
	/* The caller's deadline, when earlier, ends the waits for a token or a slot. */
	deadline = rk_call_deadline(req->call, budget);
	/* Stopped or out of time already: nothing is sent, no token or probe spent. */
	if ((r = call_admits(h, req, &timeout_ms)) < 0) {
		r = fail_call(h, &call, r, &o, 0, err);
		goto out;
	}

	for (;;) {
		int64_t wait_ms;
		const char *reason;
		char reason_buf[32], at[16], delay_s[24];
		int probe = 0;

		switch (gate(h, req, deadline, &c, &probe, why, sizeof(why))) {
		case GATE_OK:
			break;
		case GATE_NOMEM:
			r = http_error(h, err, RK_ENOMEM, 0, "out of memory");
			goto out;
		case GATE_CANCELED:
			r = fail_call(h, &call, RK_ECANCELED, &o, attempts, err);
			goto done;
		default:
			/* An earlier attempt's result says more than "not admitted". */
			if (attempts > 0)
				goto done;
			r = http_error(h, err, RK_ETRANSIENT, 0, "%s", why);
			goto out;
		}
		/* The waits may have used the time up, or rekey began stopping meanwhile. */
		if ((r = call_admits(h, req, &timeout_ms)) < 0) {
			slot_give(h, c);
			c = NULL;
			if (probe)
				forget_probe(h);
			if (r == RK_ETRANSIENT && attempts > 0) {
				r = 0;
				goto done;
			}
			r = fail_call(h, &call, r, &o, attempts, err);
			goto done;
		}
		outcome_reset(&o, h->cfg.max_response);
		attempts++;
		t0 = rk_mono_ms();
		r = attempt_once(h, &call, c, &o, timeout_ms);
		slot_give(h, c);
		c = NULL;
		if (r < 0) {
			r = http_error(h, err, r, 0, "libcurl refused the request settings");
			goto out;
		}
		account(h, &call, &o, attempts, t0, probe);
		/* A stopped request is never sent again. */
		if (o.cancelled) {
			r = fail_call(h, &call, RK_ECANCELED, &o, attempts, err);
			goto done;
		}
		if (attempts >= h->cfg.max_attempts || o.too_big || o.oom || o.deadline_hit ||
		    !worth_resending(req, &o))
			break;
		if ((r = plan_resend(h, &call, &o, attempts, budget, &wait_ms, err)) < 0)
			goto done;
		if (r > 0) {
			r = 0;
			break;
		}
		if (o.status > 0) {
			snprintf(reason_buf, sizeof(reason_buf), "HTTP %ld", o.status);
			reason = reason_buf;
		} else {
			reason = curl_easy_strerror(o.cc);
		}
		snprintf(at, sizeof(at), "%d", attempts);
		snprintf(delay_s, sizeof(delay_s), "%lld", (long long)wait_ms);
		rk_log(RK_LOG_INFO, "http.retry", "provider", h->provider, "method", req->method,
		       "path", call.path, "attempt", at, "reason", reason, "delay_ms", delay_s, NULL);
		pthread_mutex_lock(&h->mu);
		h->stats.retries++;
		pthread_mutex_unlock(&h->mu);
		/* Ends before the deadline (plan_resend): only a cancel cuts it short. */
		if (rk_call_sleep(req->call, wait_ms) == RK_ECANCELED) {
			r = fail_call(h, &call, RK_ECANCELED, &o, attempts, err);
			goto done;
		}
	}
 done:
	resp->attempts = attempts;
	resp->status = o.status;
	resp->retry_after = o.status > 0 ? o.retry_after : 0;
	resp->date = o.status > 0 ? o.date : 0;
	if (r < 0)
		goto out;	/* err is set; what the last attempt got is in resp */
	if (o.oom) {
		r = http_error(h, err, RK_ENOMEM, o.status, "out of memory");
		goto out;
	}
	if (o.too_big) {
		r = http_error(h, err, RK_EINVAL, o.status, "response from %s larger than %zu bytes",
			       h->provider, h->cfg.max_response);
		goto out;
	}
	if (o.status == 0) {
		r = fail_transport(h, &call, &o, attempts, err);
		goto out;
	}
	if (o.buf == NULL && (o.buf = calloc(1, 1)) != NULL)
		o.cap = 1;
	if (o.buf == NULL) {
		r = http_error(h, err, RK_ENOMEM, 0, "out of memory");
		goto out;
	}
	resp->body = o.buf;
	resp->len = o.len;
	o.buf = NULL;	/* the caller's now */
	o.cap = 0;
	r = 0;
 out:
	if (r < 0 && err != NULL && err->code == r && resp->retry_after > 0)
		err->retry_after = resp->retry_after;
	outcome_reset(&o, 0);
	free_headers(call.hdrs);
	if (url != NULL)
		wipe_free(url, ulen);
	return r;
}
