/* twin-httpd: the tiny HTTP server inside every lab-twin container.
 *
 *   twin-httpd [-l ADDR:PORT]... [-r RULE [-a AUTH] [-f FAIL]]...
 *
 * RULE  "PATH STATUS LOCATION"          for 3xx: a redirect, never followed by the server
 *       "PATH STATUS TYPE [BODY|@FILE]" otherwise; TYPE "subsonic" answers a Subsonic ping
 * AUTH  "header NAME ENV"    header NAME must equal $ENV
 *       "query NAME ENV"     query parameter NAME must equal $ENV
 *       "arr NAME ENV"       header NAME or query `apikey` (what Radarr & co accept)
 *       "subsonic UENV PENV" u= and t=md5(password+s) or p= (plain or enc:HEX)
 * FAIL  "STATUS TYPE BODY"   answer to a request that fails AUTH (default 401 JSON)
 *
 * Secrets come from the environment (as compose passes them), never from the command line.
 * Without -l the process idles until SIGTERM, like a worker with no web UI.
 * Build: gcc -static -O2 -o twin-httpd twin_httpd.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_LISTEN 8
#define MAX_RULES 32
#define REQ_MAX 16384

struct rule {
    char path[256];
    int status;
    char type[64];
    char *body;          /* or the Location of a redirect */
    size_t body_len;
    char auth[16];       /* "", header, query, arr, subsonic */
    char auth_a[64], auth_b[64];
    int fail_status;
    char fail_type[64];
    char *fail_body;
};

static struct rule rules[MAX_RULES];
static int nrules;

static void die(const char *what, const char *arg) {
    fprintf(stderr, "twin-httpd: %s: %s\n", what, arg);
    exit(2);
}

static void on_term(int sig) { (void)sig; _exit(0); }

/* ---- MD5 (RFC 1321), for Subsonic token auth ---- */
static const uint32_t md5_k[64] = {
    0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613, 0xfd469501,
    0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821,
    0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa, 0xd62f105d, 0x02441453, 0xd8a1e681, 0xe7d3fbc8,
    0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed, 0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a,
    0xfffa3942, 0x8771f681, 0x6d9d6122, 0xfde5380c, 0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70,
    0x289b7ec6, 0xeaa127fa, 0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665,
    0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
    0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb, 0xeb86d391};
static const uint8_t md5_r[64] = {7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22,
                                  5, 9,  14, 20, 5, 9,  14, 20, 5, 9,  14, 20, 5, 9,  14, 20,
                                  4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23,
                                  6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21};

static void md5_hex(const unsigned char *msg, size_t len, char out[33]) {
    uint32_t h[4] = {0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476};
    size_t total = ((len + 8) / 64 + 1) * 64;
    unsigned char *buf = calloc(total, 1);
    if (!buf) die("md5", "out of memory");
    memcpy(buf, msg, len);
    buf[len] = 0x80;
    uint64_t bits = (uint64_t)len * 8;
    for (int i = 0; i < 8; i++) buf[total - 8 + i] = (unsigned char)(bits >> (8 * i));
    for (size_t off = 0; off < total; off += 64) {
        uint32_t w[16], a = h[0], b = h[1], c = h[2], d = h[3];
        for (int i = 0; i < 16; i++)
            w[i] = (uint32_t)buf[off + 4 * i] | (uint32_t)buf[off + 4 * i + 1] << 8 |
                   (uint32_t)buf[off + 4 * i + 2] << 16 | (uint32_t)buf[off + 4 * i + 3] << 24;
        for (int i = 0; i < 64; i++) {
            uint32_t f;
            int g;
            if (i < 16) { f = (b & c) | (~b & d); g = i; }
            else if (i < 32) { f = (d & b) | (~d & c); g = (5 * i + 1) % 16; }
            else if (i < 48) { f = b ^ c ^ d; g = (3 * i + 5) % 16; }
            else { f = c ^ (b | ~d); g = (7 * i) % 16; }
            uint32_t t = d;
            d = c;
            c = b;
            uint32_t x = a + f + md5_k[i] + w[g];
            b = b + (x << md5_r[i] | x >> (32 - md5_r[i]));
            a = t;
        }
        h[0] += a; h[1] += b; h[2] += c; h[3] += d;
    }
    free(buf);
    for (int i = 0; i < 16; i++) sprintf(out + 2 * i, "%02x", (h[i / 4] >> (8 * (i % 4))) & 0xff);
}

/* ---- request parsing ---- */
static int hexval(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    c = tolower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static void urldecode(const char *in, size_t n, char *out, size_t cap) {
    size_t o = 0;
    for (size_t i = 0; i < n && o + 1 < cap; i++) {
        if (in[i] == '%' && i + 2 < n && hexval(in[i + 1]) >= 0 && hexval(in[i + 2]) >= 0) {
            out[o++] = (char)(hexval(in[i + 1]) * 16 + hexval(in[i + 2]));
            i += 2;
        } else out[o++] = in[i] == '+' ? ' ' : in[i];
    }
    out[o] = 0;
}

/* Decoded value of query parameter `name`, or NULL. */
static const char *query_get(const char *query, const char *name, char *out, size_t cap) {
    size_t nl = strlen(name);
    for (const char *p = query; p && *p;) {
        const char *end = strchr(p, '&');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len > nl && p[nl] == '=' && !strncmp(p, name, nl)) {
            urldecode(p + nl + 1, len - nl - 1, out, cap);
            return out;
        }
        p = end ? end + 1 : NULL;
    }
    return NULL;
}

/* Value of header `name` (case-insensitive), copied into out, or NULL. */
static const char *header_get(const char *headers, const char *name, char *out, size_t cap) {
    size_t nl = strlen(name);
    for (const char *p = headers; p && *p;) {
        const char *eol = strstr(p, "\r\n");
        if (!eol || eol == p) break;
        if ((size_t)(eol - p) > nl && p[nl] == ':' && !strncasecmp(p, name, nl)) {
            const char *v = p + nl + 1;
            while (v < eol && (*v == ' ' || *v == '\t')) v++;
            size_t len = (size_t)(eol - v);
            if (len >= cap) len = cap - 1;
            memcpy(out, v, len);
            out[len] = 0;
            return out;
        }
        p = eol + 2;
    }
    return NULL;
}

/* ---- responses ---- */
static const char *reason(int status) {
    switch (status) {
    case 200: return "OK";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 503: return "Service Unavailable";
    default: return "Status";
    }
}

static void write_all(int fd, const char *buf, size_t len) {
    while (len) {
        ssize_t n = write(fd, buf, len);
        if (n <= 0) {
            if (n < 0 && errno == EINTR) continue;
            return;
        }
        buf += n;
        len -= (size_t)n;
    }
}

static void respond(int fd, int head_only, int status, const char *type, const char *location,
                    const char *body, size_t len) {
    char hdr[1024];
    int n = snprintf(hdr, sizeof hdr, "HTTP/1.1 %d %s\r\nContent-Length: %zu\r\nConnection: close\r\n",
                     status, reason(status), len);
    if (type && *type) n += snprintf(hdr + n, sizeof hdr - n, "Content-Type: %s\r\n", type);
    if (location) n += snprintf(hdr + n, sizeof hdr - n, "Location: %s\r\n", location);
    n += snprintf(hdr + n, sizeof hdr - n, "\r\n");
    write_all(fd, hdr, (size_t)n);
    if (!head_only && len) write_all(fd, body, len);
}

static void subsonic(int fd, int head_only, const char *query, int ok, int missing) {
    char fmt[16], body[512];
    const char *f = query_get(query, "f", fmt, sizeof fmt);
    int json = f && !strcmp(f, "json");
    const char *common = "\"version\":\"1.16.1\",\"type\":\"navidrome\",\"serverVersion\":\"v0.55.0\","
                         "\"openSubsonic\":true";
    int code = missing ? 10 : 40;
    const char *msg = missing ? "Missing required parameter" : "Wrong username or password";
    int n;
    if (json && ok)
        n = snprintf(body, sizeof body, "{\"subsonic-response\":{\"status\":\"ok\",%s}}", common);
    else if (json)
        n = snprintf(body, sizeof body,
                     "{\"subsonic-response\":{\"status\":\"failed\",%s,\"error\":{\"code\":%d,"
                     "\"message\":\"%s\"}}}", common, code, msg);
    else
        n = snprintf(body, sizeof body,
                     "<subsonic-response xmlns=\"http://subsonic.org/restapi\" status=\"%s\" "
                     "version=\"1.16.1\" type=\"navidrome\" serverVersion=\"v0.55.0\" "
                     "openSubsonic=\"true\">%s</subsonic-response>", ok ? "ok" : "failed",
                     ok ? "" : (missing ? "<error code=\"10\" message=\"Missing required parameter\">"
                                          "</error>"
                                        : "<error code=\"40\" message=\"Wrong username or "
                                          "password\"></error>"));
    respond(fd, head_only, 200, json ? "application/json" : "application/xml", NULL, body,
            (size_t)n);
}

static int env_equals(const char *env, const char *value) {
    const char *want = getenv(env);
    return want && *want && value && !strcmp(want, value);
}

/* 1 when authorised, 0 when refused, -1 (Subsonic only) when a parameter is missing. */
static int authorised(const struct rule *r, const char *query, const char *headers) {
    char a[512], b[512], c[512];
    if (!*r->auth) return 1;
    if (!strcmp(r->auth, "header"))
        return env_equals(r->auth_b, header_get(headers, r->auth_a, a, sizeof a));
    if (!strcmp(r->auth, "query"))
        return env_equals(r->auth_b, query_get(query, r->auth_a, a, sizeof a));
    if (!strcmp(r->auth, "arr"))
        return env_equals(r->auth_b, header_get(headers, r->auth_a, a, sizeof a)) ||
               env_equals(r->auth_b, query_get(query, "apikey", b, sizeof b));
    /* subsonic */
    const char *user = query_get(query, "u", a, sizeof a);
    const char *token = query_get(query, "t", b, sizeof b);
    const char *password = getenv(r->auth_b);
    if (!user) return -1;
    if (!env_equals(r->auth_a, user) || !password) return 0;
    if (token) {
        char salt[256], digest[33], joined[1024];
        if (!query_get(query, "s", salt, sizeof salt)) return -1;
        snprintf(joined, sizeof joined, "%s%s", password, salt);
        md5_hex((const unsigned char *)joined, strlen(joined), digest);
        return !strcasecmp(digest, token);
    }
    const char *plain = query_get(query, "p", c, sizeof c);
    if (!plain) return -1;
    if (!strncmp(plain, "enc:", 4)) {
        char dec[256];
        size_t n = 0;
        for (const char *p = plain + 4; p[0] && p[1] && n + 1 < sizeof dec; p += 2)
            dec[n++] = (char)(hexval(p[0]) * 16 + hexval(p[1]));
        dec[n] = 0;
        return !strcmp(dec, password);
    }
    return !strcmp(plain, password);
}

static void serve(int fd) {
    char req[REQ_MAX + 1];
    size_t got = 0;
    alarm(10);
    while (got < REQ_MAX) {
        ssize_t n = read(fd, req + got, REQ_MAX - got);
        if (n <= 0) break;
        got += (size_t)n;
        req[got] = 0;
        if (strstr(req, "\r\n\r\n")) break;
    }
    req[got] = 0;
    char method[16], target[4096];
    if (sscanf(req, "%15s %4095s", method, target) != 2) return;
    const char *headers = strstr(req, "\r\n");
    headers = headers ? headers + 2 : "";
    int head_only = !strcmp(method, "HEAD");
    char *query = strchr(target, '?');
    if (query) *query++ = 0;
    for (int i = 0; i < nrules; i++) {
        const struct rule *r = &rules[i];
        if (strcmp(r->path, target)) continue;
        if (strcmp(method, "GET") && !head_only) {
            respond(fd, 0, 405, "text/plain", NULL, "Method Not Allowed", 18);
            return;
        }
        int ok = authorised(r, query ? query : "", headers);
        if (!strcmp(r->type, "subsonic")) {
            subsonic(fd, head_only, query ? query : "", ok == 1, ok < 0);
        } else if (ok != 1) {
            respond(fd, head_only, r->fail_status, r->fail_type, NULL, r->fail_body,
                    strlen(r->fail_body));
        } else if (r->status >= 300 && r->status < 400) {
            respond(fd, head_only, r->status, NULL, r->body, "", 0);
        } else {
            respond(fd, head_only, r->status, r->type, NULL, r->body, r->body_len);
        }
        return;
    }
    respond(fd, head_only, 404, "text/plain", NULL, "Not Found", 9);
}

/* ---- command line ---- */
static char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) die("cannot read body file", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    char *buf = malloc((size_t)n + 1);
    if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) die("cannot read body file", path);
    buf[n] = 0;
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static void parse_rule(const char *spec) {
    if (nrules == MAX_RULES) die("too many rules", spec);
    struct rule *r = &rules[nrules++];
    int used = 0;
    if (sscanf(spec, "%255s %d %n", r->path, &r->status, &used) != 2 || r->path[0] != '/')
        die("bad rule (want 'PATH STATUS ...')", spec);
    const char *rest = spec + used;
    if (r->status >= 300 && r->status < 400) {
        r->body = strdup(rest);
    } else {
        if (sscanf(rest, "%63s %n", r->type, &used) != 1) die("rule without content type", spec);
        rest += used;
        r->body = *rest == '@' ? read_file(rest + 1, &r->body_len) : strdup(rest);
        if (*rest != '@') r->body_len = strlen(r->body);
    }
    r->fail_status = 401;
    strcpy(r->fail_type, "application/json");
    r->fail_body = "{\"error\":\"Unauthorized\"}";
}

static void parse_auth(const char *spec) {
    if (!nrules) die("-a before any -r", spec);
    struct rule *r = &rules[nrules - 1];
    if (sscanf(spec, "%15s %63s %63s", r->auth, r->auth_a, r->auth_b) != 3 ||
        (strcmp(r->auth, "header") && strcmp(r->auth, "query") && strcmp(r->auth, "arr") &&
         strcmp(r->auth, "subsonic")))
        die("bad auth (want 'header|query|arr NAME ENV' or 'subsonic UENV PENV')", spec);
}

static void parse_fail(const char *spec) {
    if (!nrules) die("-f before any -r", spec);
    struct rule *r = &rules[nrules - 1];
    int used = 0;
    if (sscanf(spec, "%d %63s %n", &r->fail_status, r->fail_type, &used) != 2)
        die("bad failure answer (want 'STATUS TYPE BODY')", spec);
    r->fail_body = strdup(spec + used);
}

static int listen_on(const char *spec) {
    char host[64];
    int port;
    const char *colon = strrchr(spec, ':');
    if (!colon || (size_t)(colon - spec) >= sizeof host) die("bad listen address", spec);
    memcpy(host, spec, (size_t)(colon - spec));
    host[colon - spec] = 0;
    port = atoi(colon + 1);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (port <= 0 || port > 65535 || inet_pton(AF_INET, host, &sa.sin_addr) != 1)
        die("bad listen address", spec);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) || listen(fd, 64)) {
        fprintf(stderr, "twin-httpd: cannot listen on %s: %s\n", spec, strerror(errno));
        exit(1);
    }
    return fd;
}

int main(int argc, char **argv) {
    struct pollfd fds[MAX_LISTEN];
    int nfds = 0, opt;
    signal(SIGTERM, on_term);
    signal(SIGINT, on_term);
    signal(SIGCHLD, SIG_IGN); /* children are reaped by the kernel */
    signal(SIGPIPE, SIG_IGN);
    while ((opt = getopt(argc, argv, "l:r:a:f:")) != -1) {
        switch (opt) {
        case 'l':
            if (nfds == MAX_LISTEN) die("too many listen addresses", optarg);
            fds[nfds].fd = listen_on(optarg);
            fds[nfds++].events = POLLIN;
            break;
        case 'r': parse_rule(optarg); break;
        case 'a': parse_auth(optarg); break;
        case 'f': parse_fail(optarg); break;
        default:
            fprintf(stderr, "usage: twin-httpd [-l ADDR:PORT]... [-r RULE [-a AUTH] [-f FAIL]]...\n");
            return 2;
        }
    }
    if (!nfds)
        for (;;) pause();
    for (;;) {
        if (poll(fds, (nfds_t)nfds, -1) < 0) continue;
        for (int i = 0; i < nfds; i++) {
            if (!(fds[i].revents & POLLIN)) continue;
            int c = accept4(fds[i].fd, NULL, NULL, SOCK_CLOEXEC);
            if (c < 0) continue;
            pid_t pid = fork();
            if (pid == 0) {
                serve(c);
                shutdown(c, SHUT_WR);
                close(c);
                _exit(0);
            }
            close(c);
        }
    }
}
