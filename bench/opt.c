/* opt.c -- numbers, lists and error lines of paidan-bench's command lines
 * (see opt.h for why they are parsed here and nowhere else). */
#include "opt.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void pd__opt_begin(const pd__opt_t *p, char **argv) {
    /* getopt prints argv[0] before its own complaints. */
    static char prog[64];
    snprintf(prog, sizeof prog, "paidan-bench %s", p->mode);
    argv[0] = prog;
    optind = 1;
    opterr = 1;
}

const char *pd__opt_name(const pd__opt_t *p, int ch, char *buf, size_t cap) {
    const char *name = NULL;
    for (const struct option *o = p->longs; o && o->name; o++)
        if (o->flag == NULL && o->val == ch) {
            name = o->name;
            break;
        }
    /* Long-only options may use letters as their codes too. */
    bool is_short = ch > ' ' && ch < 127 && ch != ':' && p->shorts && strchr(p->shorts, ch);
    if (name && is_short)
        snprintf(buf, cap, "-%c/--%s", ch, name);
    else if (name)
        snprintf(buf, cap, "--%s", name);
    else
        snprintf(buf, cap, "-%c", ch > ' ' && ch < 127 ? ch : '?');
    return buf;
}

void pd__opt_bad(const pd__opt_t *p, int ch, const char *s, const char *allowed) {
    char name[64];
    fprintf(stderr, "paidan-bench %s: bad value '%s' for %s (%s)\n", p->mode, s,
            pd__opt_name(p, ch, name, sizeof name), allowed);
}

bool pd__opt_u64(const pd__opt_t *p, int ch, const char *s, uint64_t lo, uint64_t hi,
                 uint64_t *out) {
    char *end = NULL;
    errno = 0;
    /* Digits only: strtoull would take a sign, blanks and "0x". */
    bool ok = *s && strspn(s, "0123456789") == strlen(s);
    unsigned long long v = ok ? strtoull(s, &end, 10) : 0;
    ok = ok && errno != ERANGE && v >= lo && v <= hi;
    if (!ok) {
        char range[64];
        snprintf(range, sizeof range, "%llu..%llu", (unsigned long long)lo, (unsigned long long)hi);
        pd__opt_bad(p, ch, s, range);
        return false;
    }
    *out = v;
    return true;
}

bool pd__opt_u32(const pd__opt_t *p, int ch, const char *s, uint32_t lo, uint32_t hi,
                 uint32_t *out) {
    uint64_t v = 0;
    if (!pd__opt_u64(p, ch, s, lo, hi, &v)) return false;
    *out = (uint32_t)v;
    return true;
}

bool pd__opt_num(const pd__opt_t *p, int ch, const char *s, double lo, double hi, double *out) {
    char *end = NULL;
    /* Plain decimals only: strtod also reads "nan", "inf" and hex. */
    bool ok = *s && strspn(s, "0123456789.eE+-") == strlen(s);
    double v = ok ? strtod(s, &end) : 0;
    ok = ok && end && *end == '\0' && isfinite(v) && v >= lo && v <= hi;
    if (!ok) {
        char range[64];
        snprintf(range, sizeof range, "%.15g..%.15g", lo, hi);
        pd__opt_bad(p, ch, s, range);
        return false;
    }
    *out = v;
    return true;
}

/* names[0..n) as "a, b, c" into buf. */
static void join(const char *const *names, size_t n, char *buf, size_t cap) {
    size_t len = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < n && len < cap; i++)
        len += (size_t)snprintf(buf + len, cap - len, "%s%s", i ? ", " : "", names[i]);
}

bool pd__opt_list(const pd__opt_t *p, int ch, const char *s, const char *what,
                  const char *const *names, size_t n) {
    char all[512], name[64];
    join(names, n, all, sizeof all);
    size_t named = 0;
    for (const char *q = s; *q;) {
        size_t len = strcspn(q, ",");
        bool known = len == 0;
        for (size_t i = 0; i < n && !known; i++)
            known = strlen(names[i]) == len && strncmp(q, names[i], len) == 0;
        if (!known) {
            fprintf(stderr, "paidan-bench %s: unknown %s '%.*s' for %s (%s)\n", p->mode, what,
                    (int)len, q, pd__opt_name(p, ch, name, sizeof name), all);
            return false;
        }
        named += len > 0;
        q += len + (q[len] == ',');
    }
    if (named == 0) {
        /* An empty list used to mean "everything": a long run nobody asked for. */
        char allowed[600];
        snprintf(allowed, sizeof allowed, "name at least one %s: %s", what, all);
        pd__opt_bad(p, ch, s, allowed);
        return false;
    }
    return true;
}

void pd__opt_try_help(const pd__opt_t *p) {
    fprintf(stderr, "try 'paidan-bench %s --help'\n", p->mode);
}
