// SPDX-License-Identifier: MIT
/*
 * Metrics: the HTTP endpoint serves valid Prometheus text (parsed here
 * line by line: names, labels, values, TYPE before samples, counters in
 * _total, cumulative histogram buckets); bad HTTP requests are refused
 * without harm; and the dirty rate ptrackd reports matches the workload
 * VMM writing distinct pages at a fixed rate.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <sys/time.h>
#include <math.h>

#include "svc.h"

#define MAX_FAMILIES 64

struct prom {
	char names[MAX_FAMILIES][96];
	char types[MAX_FAMILIES][16];
	int n;
	int samples;
	double last_bucket, inf_bucket, count;
	char err[256];
};

static int prom_err(struct prom *p, int line, const char *what)
{
	if (!p->err[0])
		snprintf(p->err, sizeof(p->err), "line %d: %s", line, what);
	return -1;
}

static const char *metric_name(const char *s, char *out, size_t cap)
{
	size_t n = 0;

	if (!isalpha((unsigned char)*s) && *s != '_' && *s != ':')
		return NULL;
	while (isalnum((unsigned char)s[n]) || s[n] == '_' || s[n] == ':') {
		if (n + 1 >= cap)
			return NULL;
		out[n] = s[n];
		n++;
	}
	out[n] = '\0';
	return s + n;
}

/* label="value"(,label="value")*} */
static const char *labels(const char *s, char *le, size_t lecap)
{
	char lname[96];

	le[0] = '\0';
	for (;;) {
		size_t n = 0;

		s = metric_name(s, lname, sizeof(lname));
		if (!s || *s++ != '=' || *s++ != '"')
			return NULL;
		while (*s && *s != '"') {
			if (*s == '\\') {
				s++;
				if (*s != '\\' && *s != '"' && *s != 'n')
					return NULL;
			}
			if (!strcmp(lname, "le") && n + 1 < lecap)
				le[n++] = *s;
			s++;
		}
		if (!strcmp(lname, "le"))
			le[n] = '\0';
		if (*s++ != '"')
			return NULL;
		if (*s == '}')
			return s + 1;
		if (*s++ != ',')
			return NULL;
	}
}

static int family(struct prom *p, const char *name)
{
	for (int i = 0; i < p->n; i++) {
		size_t n = strlen(p->names[i]);

		if (strncmp(name, p->names[i], n))
			continue;
		if (!name[n])
			return i;
		if (!strcmp(p->types[i], "histogram") &&
		    (!strcmp(name + n, "_bucket") ||
		     !strcmp(name + n, "_sum") || !strcmp(name + n, "_count")))
			return i;
	}
	return -1;
}

static int comment(struct prom *p, int ln, const char *l)
{
	char name[96], type[16];
	const char *r;

	if (!strncmp(l, "# HELP ", 7))
		return metric_name(l + 7, name, sizeof(name))
			       ? 0
			       : prom_err(p, ln, "bad HELP");
	if (strncmp(l, "# TYPE ", 7))
		return 0;
	r = metric_name(l + 7, name, sizeof(name));
	if (!r || *r != ' ' || sscanf(r + 1, "%15s", type) != 1)
		return prom_err(p, ln, "bad TYPE");
	if (strcmp(type, "counter") && strcmp(type, "gauge") &&
	    strcmp(type, "histogram"))
		return prom_err(p, ln, "unknown type");
	if (family(p, name) >= 0 && !strcmp(p->names[family(p, name)], name))
		return prom_err(p, ln, "TYPE twice");
	if (!strcmp(type, "counter") &&
	    strcmp(name + strlen(name) - 6, "_total"))
		return prom_err(p, ln, "counter without _total");
	if (strncmp(name, "ptrack_", 7))
		return prom_err(p, ln, "no ptrack_ prefix");
	if (p->n == MAX_FAMILIES)
		return prom_err(p, ln, "too many families");
	strcpy(p->names[p->n], name);
	strcpy(p->types[p->n++], type);
	return 0;
}

static int histogram(struct prom *p, int ln, const char *name, const char *le,
		     double v)
{
	size_t n = strlen(name);

	if (n > 7 && !strcmp(name + n - 7, "_bucket")) {
		if (!le[0])
			return prom_err(p, ln, "bucket without le");
		if (!strcmp(le, "+Inf")) {
			p->inf_bucket = v;
		} else {
			if (v < p->last_bucket)
				return prom_err(p, ln,
						"buckets not cumulative");
			p->last_bucket = v;
		}
		if (v < p->last_bucket)
			return prom_err(p, ln, "+Inf below a bucket");
	} else if (n > 6 && !strcmp(name + n - 6, "_count")) {
		if (v != p->inf_bucket)
			return prom_err(p, ln, "_count != +Inf bucket");
		p->last_bucket = 0;
	}
	return 0;
}

static int sample(struct prom *p, int ln, const char *l)
{
	char name[96], le[32] = "";
	const char *r = metric_name(l, name, sizeof(name));
	char *end;
	double v;
	int f;

	if (!r)
		return prom_err(p, ln, "bad metric name");
	if (*r == '{') {
		r = labels(r + 1, le, sizeof(le));
		if (!r)
			return prom_err(p, ln, "bad labels");
	}
	if (*r++ != ' ')
		return prom_err(p, ln, "no value");
	v = strtod(r, &end);
	if (end == r || (*end && *end != ' '))
		return prom_err(p, ln, "bad value");
	f = family(p, name);
	if (f < 0)
		return prom_err(p, ln, "sample before its TYPE");
	if (!strcmp(p->types[f], "counter") && v < 0)
		return prom_err(p, ln, "negative counter");
	p->samples++;
	if (!strcmp(p->types[f], "histogram"))
		return histogram(p, ln, name, le, v);
	return 0;
}

/* Parses Prometheus text format 0.0.4; 0 when valid, else -1 and p->err. */
static int prom_parse(struct prom *p, char *text)
{
	int ln = 0;

	memset(p, 0, sizeof(*p));
	if (!*text || text[strlen(text) - 1] != '\n')
		return prom_err(p, 0, "does not end in a newline");
	for (char *l = strtok(text, "\n"); l; l = strtok(NULL, "\n")) {
		int ret = *l == '#' ? comment(p, ++ln, l) : sample(p, ++ln, l);

		if (ret)
			return ret;
	}
	return 0;
}

/* curl's stdout (body) and, with @code, the HTTP status. */
static char *http(const struct svc *s, const char *url, const char *method,
		  int *code)
{
	char cmd[512], path[160];
	FILE *f;
	char *body;

	snprintf(path, sizeof(path), "%s/http.body", s->dir);
	snprintf(cmd, sizeof(cmd),
		 "curl -s -m 5 -X %s -o %s -w '%%{http_code}' %s", method, path,
		 url);
	f = popen(cmd, "r");
	if (!f)
		return NULL;
	if (fscanf(f, "%d", code) != 1)
		*code = -1;
	pclose(f);
	body = svc_slurp(path);
	return body;
}

static int metrics_url(const struct svc *s, char *url, size_t len)
{
	char *out = NULL;
	const char *p, *q;

	if (svc_ctl(s, &out, "status", "--json"))
		return -1;
	p = strstr(out, "\"metrics_listen\":\"");
	q = p ? strchr(p + 18, '"') : NULL;
	if (!q) {
		free(out);
		return -1;
	}
	snprintf(url, len, "http://%.*s/metrics", (int)(q - p - 18), p + 18);
	free(out);
	return 0;
}

/* Connects to the URL's host:port, sends @what, reads until closed. */
static int tcp_garbage(const char *url, const char *what)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	char host[64], buf[512];
	unsigned int port;
	int fd;

	if (sscanf(url, "http://%63[^:]:%u", host, &port) != 2)
		return -1;
	a.sin_port = htons((uint16_t)port);
	inet_pton(AF_INET, host, &a.sin_addr);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)))
		return -1;
	if (write(fd, what, strlen(what)) < 0)
		return -1;
	shutdown(fd, SHUT_WR);
	/* The server answers with an error or closes; MHD times out an
	 * unfinished body after its connection timeout at the latest. */
	{
		struct timeval tv = { .tv_sec = 12 };

		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	}
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	close(fd);
	return 0;
}

static void check_text(char *text)
{
	struct prom p;
	int ret;

	/* Prometheus's own linter (names, units, counters, HELP) first:
	 * prom_parse() cuts the text up. */
	CU_ASSERT_EQUAL(svc_promtool(text), 0);
	ret = prom_parse(&p, text);

	CU_ASSERT_EQUAL(ret, 0);
	if (ret)
		fprintf(stderr, "\n  invalid Prometheus text: %s\n", p.err);
	CU_ASSERT(p.samples > 5);
}

static void test_prometheus(void)
{
	const char *extra[] = { "--metrics=127.0.0.1:0", "--set",
				"metrics.sample_ms=200", NULL };
	const char *vargs[] = { "--mem", "64M",	   "--vcpus", "2", "--dirty",
				"ring",	 "--rate", "2000",    NULL };
	char url[256], *body, *copy;
	struct svc s;
	pid_t vmm = -1;
	int code;

	CU_ASSERT_FATAL(svc_mkdir(&s) == 0);
	CU_ASSERT_FATAL(svc_start(&s, extra) == 0);
	CU_ASSERT_FATAL(metrics_url(&s, url, sizeof(url)) == 0);
	if (!svc_have_kvm())
		pt_test_skip(__FILE__, __LINE__,
			     "no /dev/kvm: the per-VM series were not checked");
	else {
		vmm = svc_vmm(&s, "prom\"vm", vargs);
		CU_ASSERT(vmm > 0);
		CU_ASSERT_EQUAL(svc_ctl(&s, NULL, "track", "start", "prom\"vm"),
				0);
		/* Not an event: a few 200 ms sample windows of writes. */
		usleep(700000);
	}
	body = http(&s, url, "GET", &code);
	CU_ASSERT_EQUAL(code, 200);
	copy = strdup(body);
	check_text(body);
	if (vmm > 0) {
		/* Label values are escaped; per-vCPU series for a ring VM. */
		CU_ASSERT_PTR_NOT_NULL(strstr(copy, "vm=\"prom\\\"vm\""));
		CU_ASSERT_PTR_NOT_NULL(strstr(
			copy, "ptrack_vcpu_dirty_rate_bytes_per_second{"));
		CU_ASSERT_PTR_NOT_NULL(strstr(
			copy, "ptrack_vm_harvest_duration_seconds_bucket{"));
		CU_ASSERT_PTR_NOT_NULL(strstr(
			copy,
			"ptrack_vm_dirty_bytes_total{vm=\"prom\\\"vm\",uuid=\""));
	}
	free(copy);
	free(body);
	/* ptrackctl metrics gives the same format without HTTP. */
	CU_ASSERT_EQUAL(svc_ctl(&s, &body, "metrics"), 0);
	check_text(body);
	free(body);
	/* Wrong path and method; raw garbage; the server stays up. */
	body = http(&s, url, "POST", &code);
	CU_ASSERT_EQUAL(code, 405);
	free(body);
	strcpy(strrchr(url, '/'), "/nope");
	body = http(&s, url, "GET", &code);
	CU_ASSERT_EQUAL(code, 404);
	free(body);
	/* Raw garbage and an unfinished huge request on the socket. */
	CU_ASSERT(tcp_garbage(url, "GARBAGE \x01\x02\r\n\r\n") == 0);
	CU_ASSERT(tcp_garbage(url,
			      "POST /metrics HTTP/1.1\r\nHost: x\r\n"
			      "Content-Length: 99999999999\r\n\r\nab") == 0);
	strcpy(strrchr(url, '/'), "/metrics");
	body = http(&s, url, "GET", &code);
	CU_ASSERT_EQUAL(code, 200);
	free(body);
	if (vmm > 0) {
		kill(vmm, SIGTERM);
		svc_wait(vmm, 5000);
	}
	CU_ASSERT_EQUAL(svc_stop(&s), 0);
	svc_cleanup(&s);
}

/*
 * Measures the dirty rate of a guest writing @rate distinct pages/s
 * (sequential pattern, nothing written twice) over @seconds, @tries times;
 * returns the median relative error.
 */
static double rate_error(const char *dirty, const char *vcpus, int rate,
			 const char *seconds, int tries)
{
	char rates[16];
	const char *vargs[] = { "--mem",   "1G",  "--vcpus",   vcpus,
				"--dirty", dirty, "--pattern", "seq",
				"--rate",  rates, NULL };
	double errs[8], want = (double)rate * 4096;
	struct svc s;
	pid_t vmm;
	int n = 0;

	snprintf(rates, sizeof(rates), "%d", rate);
	CU_ASSERT_FATAL(svc_mkdir(&s) == 0);
	CU_ASSERT_FATAL(svc_start(&s, NULL) == 0);
	vmm = svc_vmm(&s, "rate", vargs);
	CU_ASSERT_FATAL(vmm > 0);
	for (int i = 0; i < tries && i < 8; i++) {
		char *out = NULL;
		double bps;

		CU_ASSERT_EQUAL(
			svc_ctl(&s, &out, "dirtyrate", "rate", "--seconds",
				(char *)seconds, "--json",
				strcmp(dirty, "ring") ? NULL : "--vcpu"),
			0);
		bps = svc_json_num(out, "bytes_per_second");
		if (!strcmp(dirty, "ring")) {
			/* vCPUs write disjoint pages: their rates add up. */
			const char *v =
				strstr(out, "\"vcpu_bytes_per_second\":[");
			double sum = 0;

			for (v = v ? v + 25 : NULL; v && *v != ']';) {
				char *end;

				sum += strtod(v, &end);
				v = *end == ',' ? end + 1 : end;
				if (end == v && *v != ']')
					break;
			}
			CU_ASSERT(fabs(sum - bps) <= bps * 0.001);
		}
		errs[n++] = (bps - want) / want;
		fprintf(stderr,
			"\n  %s x%s: %.0f B/s measured, %.0f B/s written: %+.3f%%",
			dirty, vcpus, bps, want, errs[n - 1] * 100);
		free(out);
	}
	kill(vmm, SIGTERM);
	svc_wait(vmm, 5000);
	CU_ASSERT_EQUAL(svc_stop(&s), 0);
	svc_cleanup(&s);
	for (int i = 1; i < n; i++)
		for (int j = i; j > 0 && errs[j] < errs[j - 1]; j--) {
			double t = errs[j];

			errs[j] = errs[j - 1];
			errs[j - 1] = t;
		}
	return n ? errs[n / 2] : 1.0;
}

static void test_dirty_rate_accuracy(void)
{
	double e;

	if (!svc_have_kvm())
		PT_SKIP("no /dev/kvm");
	e = rate_error("bitmap", "1", 20000, "3", 3);
	fprintf(stderr, "\n  dirty-rate error (bitmap, median of 3): %+.3f%%\n",
		e * 100);
	/* The goal is 1%. The guest's rate limiter is only as steady as the
	 * host lets it be, so CI allows 3%; PTRACK_TEST_LONG holds to 1%. */
	CU_ASSERT(fabs(e) < (pt_test_long() ? 0.01 : 0.03));
	e = rate_error("ring", "2", 20000, "3", 3);
	fprintf(stderr,
		"\n  dirty-rate error (ring, 2 vCPUs, median of 3): %+.3f%%\n",
		e * 100);
	CU_ASSERT(fabs(e) < (pt_test_long() ? 0.01 : 0.03));
}

/*
 * contrib/: the alert rules pass promtool check rules and their unit tests
 * (promtool test rules), the Grafana dashboard is JSON, and every ptrack_*
 * metric either names is one ptrackd exports (a HELP/TYPE line of a
 * running ptrackd with libvirt on, test:///default).
 */
static void test_contrib(void)
{
	const char *extra[] = { "--libvirt-uri", "test:///default", NULL };
	char cmd[1024], path[200];
	char *text = NULL;
	struct svc s;
	FILE *f;

	CU_ASSERT_EQUAL(
		system("promtool check rules contrib/prometheus/ptrack-alerts.yml >&2 && "
		       "cd contrib/prometheus && "
		       "promtool test rules ptrack-alerts.test.yml >&2"),
		0);
	CU_ASSERT_EQUAL(system("python3 -c 'import json,sys; "
			       "json.load(open(sys.argv[1]))' "
			       "contrib/grafana/ptrack-dashboard.json"),
			0);
	CU_ASSERT_FATAL(svc_mkdir(&s) == 0);
	CU_ASSERT_FATAL(svc_start(&s, extra) == 0);
	CU_ASSERT_EQUAL(svc_ctl(&s, &text, "metrics"), 0);
	snprintf(path, sizeof(path), "%s/metrics.txt", s.dir);
	f = fopen(path, "w");
	CU_ASSERT_FATAL(f != NULL);
	fputs(text ? text : "", f);
	fclose(f);
	free(text);
	snprintf(cmd, sizeof(cmd),
		 "bad=0; for n in $(grep -ohE 'ptrack_[a-z0-9_]+' "
		 "contrib/prometheus/ptrack-alerts.yml "
		 "contrib/grafana/ptrack-dashboard.json | "
		 "sed 's/_bucket$//' | sort -u); do "
		 "grep -q \"^# TYPE $n \" %s || "
		 "{ echo \"contrib names $n, ptrackd does not export it\" >&2; "
		 "bad=1; }; done; exit $bad",
		 path);
	CU_ASSERT_EQUAL(system(cmd), 0);
	CU_ASSERT_EQUAL(svc_stop(&s), 0);
	svc_cleanup(&s);
}

PT_SUITE(service_metrics, PT_TEST(test_prometheus),
	 PT_TEST(test_dirty_rate_accuracy), PT_TEST(test_contrib));
