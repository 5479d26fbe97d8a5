/*
 * The provider kit (include/rekey/provider_kit.h): the HTTP status to error
 * code rule, JSON body checks, credential files and numeric version ids,
 * written once for every provider.
 *
 * It sits between a provider and its service's answers; it keeps no state of
 * its own (a struct rk_cred_file is the caller's). It reads struct
 * rk_http_resp but calls no rk_http_* function, so it pulls no curl into a
 * binary that links only the local provider (rekey-guard).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rekey/provider_kit.h"
#include "rekey/util.h"

/* ---- HTTP status and bodies ---- */

int
rk_kit_status_code(long status)
{
	switch (status) {
	case 401:
	case 403:
		return RK_EAUTH;
	case 404:
		return RK_ENOTFOUND;
	/*
	 * Retried: a precondition a concurrent change may satisfy, a rate
	 * limit, and the 5xx a retry can cure. 501 and 505 are not among them:
	 * the same request gets the same answer.
	 */
	case 412:
	case 429:
	case 500:
	case 502:
	case 503:
	case 504:
		return RK_ETRANSIENT;
	/*
	 * The service's answer, not the user's input: a 400 is the service
	 * refusing a request rekey built. Exit 1 (RK_EPROTO), never 2.
	 */
	default:
		return RK_EPROTO;
	}
}

int
rk_kit_status_error(const struct rk_provider *p, const char *what,
		    const struct rk_http_resp *resp, rk_kit_errtext_fn errtext,
		    struct rk_error *err)
{
	char text[300] = "";
	int code = 0;

	if (errtext != NULL)
		code = errtext(resp, text, sizeof(text));
	if (code >= 0)
		code = rk_kit_status_code(resp->status);
	rk_error_set(err, code, "%s %s: %s: HTTP %ld%s%s", p->ops->type, p->name, what,
		     resp->status, text[0] ? ": " : "", text);
	err->http_status = (int)resp->status;
	err->retry_after = resp->retry_after;
	return code;
}

static const char *
json_type_name(const json_t *j)
{
	switch (json_typeof(j)) {
	case JSON_ARRAY: return "a JSON array";
	case JSON_STRING: return "a JSON string";
	case JSON_INTEGER:
	case JSON_REAL: return "a JSON number";
	case JSON_TRUE:
	case JSON_FALSE: return "a JSON boolean";
	case JSON_NULL: return "JSON null";
	default: return "not an object";
	}
}

int
rk_kit_json_object(const struct rk_provider *p, const char *what,
		   const struct rk_http_resp *resp, json_t **out, struct rk_error *err)
{
	json_error_t jerr;
	const char *why;
	json_t *j;

	/* JSON_DECODE_ANY: a top-level string or number is named as such, not as invalid. */
	*out = NULL;
	if (resp->len == 0) {
		why = "empty body";
	} else if ((j = json_loadb(resp->body, resp->len, JSON_DECODE_ANY, &jerr)) == NULL) {
		size_t sp = strspn(resp->body, " \t\r\n");
		why = sp < resp->len && resp->body[sp] == '<'
			      ? "an HTML page (a proxy or load balancer error?)"
			      : jerr.text;
	} else if (!json_is_object(j)) {
		why = json_type_name(j);
		json_decref(j);
	} else {
		*out = j;
		return 0;
	}
	return rk_error_set(err, RK_EPROTO,
			    "%s %s: %s: the response (HTTP %ld, %zu bytes) is not a JSON object: %s",
			    p->ops->type, p->name, what, resp->status, resp->len, why);
}

int
rk_kit_expect_json(const struct rk_provider *p, const char *what,
		   const struct rk_http_resp *resp, rk_kit_errtext_fn errtext, json_t **out,
		   struct rk_error *err)
{
	*out = NULL;
	if (resp->status != 200)
		return rk_kit_status_error(p, what, resp, errtext, err);
	return rk_kit_json_object(p, what, resp, out, err);
}

/* ---- credential and token files ---- */

void
rk_cred_file_init(struct rk_cred_file *cf, const char *path, size_t max, unsigned flags)
{
	memset(cf, 0, sizeof(*cf));
	cf->path = path;
	cf->max = max ? max : RK_CRED_MAX;
	cf->flags = flags;
}

static int
same_file(const struct rk_cred_file *cf, const struct stat *st)
{
	return cf->have && cf->dev == st->st_dev && cf->ino == st->st_ino &&
	       cf->size == st->st_size && cf->mtime.tv_sec == st->st_mtim.tv_sec &&
	       cf->mtime.tv_nsec == st->st_mtim.tv_nsec;
}

int
rk_cred_file_read(struct rk_cred_file *cf, int force, struct rk_secret **out,
		  struct rk_error *err)
{
	struct rk_secret *s = NULL;
	struct stat st;
	size_t len = 0;
	unsigned char *d;
	int fd = -1, r;

	/*
	 * Unchanged: nothing to read. A file that cannot be stat'ed now but was
	 * read before counts as unchanged too (the credential in hand still
	 * works until the service says otherwise, and a refused call forces a
	 * read that reports it).
	 */
	if (!force && cf->have && (stat(cf->path, &st) < 0 || same_file(cf, &st)))
		return 0;
	if ((fd = open(cf->path, O_RDONLY | O_CLOEXEC)) < 0) {
		r = rk_error_set(err, errno == ENOENT ? RK_ENOTFOUND : RK_EIO, "cannot open %s: %s",
				 cf->path, strerror(errno));
		goto out;
	}
	if (fstat(fd, &st) < 0) {
		r = rk_error_set(err, RK_EIO, "cannot stat %s: %s", cf->path, strerror(errno));
		goto out;
	}
	if (S_ISDIR(st.st_mode)) {
		r = rk_error_set(err, RK_EINVAL, "%s is a directory", cf->path);
		goto out;
	}
	if ((cf->flags & RK_CRED_PRIVATE) && (st.st_mode & 077)) {
		r = rk_error_set(err, RK_EAUTH,
				 "%s holds a credential but is open to group or others (mode "
				 "%04o); fix it with: chmod 600 %s", cf->path,
				 (unsigned)(st.st_mode & 07777), cf->path);
		goto out;
	}
	/* Read straight into sodium memory: no heap copy of the credential. */
	if ((r = rk_secret_new(&s, cf->max + 1, err)) < 0)
		goto out;
	d = rk_secret_data(s);
	for (;;) {
		ssize_t n = read(fd, d + len, cf->max + 1 - len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = rk_error_set(err, RK_EIO, "cannot read %s: %s", cf->path,
					 strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > cf->max) {
			r = rk_error_set(err, RK_EINVAL, "%s is larger than the limit of %zu bytes",
					 cf->path, cf->max);
			goto out;
		}
	}
	while (len > 0 && (d[len - 1] == '\n' || d[len - 1] == '\r' || d[len - 1] == ' '))
		len--;
	if (len == 0) {
		r = rk_error_set(err, RK_EAUTH, "%s is empty", cf->path);
		goto out;
	}
	rk_secret_truncate(s, len);
	rk_secret_free(*out);
	*out = s;
	s = NULL;	/* transferred */
	cf->have = 1;
	cf->dev = st.st_dev;
	cf->ino = st.st_ino;
	cf->size = st.st_size;
	cf->mtime = st.st_mtim;
	r = 1;
out:
	if (fd >= 0)
		close(fd);
	rk_secret_free(s);
	return r;
}

/* ---- numeric version ids ---- */

int
rk_version_parse(const struct rk_version *ver, long *out, const char *what,
		 struct rk_error *err)
{
	long long n;
	const char *id;

	if (ver == NULL || ver->id[0] == '\0') {
		*out = 0;
		return 0;
	}
	id = ver->id;
	/* Only the canonical form rk_version_set writes: strtoll would take " 7" and "+7". */
	if (strspn(id, "0123456789") != strlen(id) || id[0] == '0' ||
	    rk_parse_int(id, 1, RK_VERSION_NUM_MAX, &n) < 0)
		return rk_error_set(err, RK_EINVAL, "'%s' is not a %s version number", id, what);
	*out = (long)n;
	return 0;
}

void
rk_version_set(struct rk_version *ver, long n)
{
	if (n <= 0)
		ver->id[0] = '\0';
	else
		snprintf(ver->id, sizeof(ver->id), "%ld", n);
}

int
rk_kit_outcome_unknown(const struct rk_error *err)
{
	return err->code == RK_ETRANSIENT &&
	       (err->http_status == 0 || (err->http_status >= 500 && err->http_status != 503));
}

int
rk_kit_dupstr(char **dst, const char *src, struct rk_error *err)
{
	if (src == NULL) {
		*dst = NULL;
		return 0;
	}
	if ((*dst = strdup(src)) == NULL)
		return rk_error_set(err, RK_ENOMEM, "out of memory");
	return 0;
}
