/* mix.c -- parsing and drawing from a command mix.
 *
 * A mix is a list of weights, one per command; a draw walks the running
 * sums. Parsing refuses anything doubtful (unknown names, repeats, bad or
 * negative numbers, an all-zero mix) with a reason a person can act on,
 * because a typo in a benchmark's mix silently changes what is measured.
 */
#include "mix.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const cmd_names[PD__CMD__COUNT] = {
    [PD__CMD_PING] = "ping", [PD__CMD_NEARBY] = "nearby", [PD__CMD_UPDATE] = "update",
    [PD__CMD_GET] = "get",   [PD__CMD_ORDER] = "order",
};

const char *pd__cmd_name(pd__cmd c) {
    return (unsigned)c < PD__CMD__COUNT ? cmd_names[c] : NULL;
}

static pd_err fail(char *why, size_t cap, const char *fmt, ...) {
    if (why && cap) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, cap, fmt, ap);
        va_end(ap);
    }
    return PD_ERR_BAD_ARG;
}

pd_err pd__mix_parse(const char *spec, pd__mix_t *out, char *why, size_t cap) {
    bool seen[PD__CMD__COUNT] = {false};
    memset(out, 0, sizeof *out);
    if (!spec) return fail(why, cap, "empty mix");
    const char *p = spec;
    for (;;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        while (len && isspace((unsigned char)*p)) p++, len--;
        while (len && isspace((unsigned char)p[len - 1])) len--;
        if (!len) return fail(why, cap, "empty item in mix '%s'", spec);
        const char *colon = memchr(p, ':', len);
        size_t nlen = colon ? (size_t)(colon - p) : len;
        while (nlen && isspace((unsigned char)p[nlen - 1])) nlen--;
        int cmd = -1;
        for (int c = 0; c < PD__CMD__COUNT; c++)
            if (strlen(cmd_names[c]) == nlen && memcmp(cmd_names[c], p, nlen) == 0) cmd = c;
        if (cmd < 0)
            return fail(why, cap,
                        "unknown command '%.*s' in mix (ping, nearby, update, get, order)",
                        (int)(nlen > 40 ? 40 : nlen), p);
        if (seen[cmd]) return fail(why, cap, "command '%s' named twice in mix", cmd_names[cmd]);
        seen[cmd] = true;
        double w = 1;
        if (colon) {
            char num[64];
            size_t wl = len - (size_t)(colon + 1 - p);
            const char *ws = colon + 1;
            while (wl && isspace((unsigned char)*ws)) ws++, wl--;
            if (!wl || wl >= sizeof num)
                return fail(why, cap, "missing or bad weight for '%s'", cmd_names[cmd]);
            memcpy(num, ws, wl);
            num[wl] = '\0';
            /* Plain decimals only: no sign, exponent, hex, inf or nan. */
            char *e = NULL;
            bool plain = strspn(num, "0123456789.") == wl &&
                         strchr(num, '.') == strrchr(num, '.') &&
                         strpbrk(num, "0123456789") != NULL;
            w = plain ? strtod(num, &e) : -1;
            if (!plain || !e || *e || !isfinite(w) || w < 0)
                return fail(why, cap, "bad weight '%s' for '%s' (a number >= 0)", num,
                            cmd_names[cmd]);
        }
        out->weight[cmd] = w;
        out->total += w;
        if (!end) break;
        p = end + 1;
    }
    if (!(out->total > 0)) return fail(why, cap, "every weight in mix '%s' is 0", spec);
    double run = 0;
    for (int c = 0; c < PD__CMD__COUNT; c++) {
        run += out->weight[c];
        out->cum[c] = run / out->total;
    }
    /* The last named command takes whatever rounding left over. */
    for (int c = PD__CMD__COUNT - 1; c >= 0; c--) {
        if (out->weight[c] > 0) {
            out->cum[c] = 1.0;
            for (int d = c + 1; d < PD__CMD__COUNT; d++) out->cum[d] = 1.0;
            break;
        }
    }
    return PD_OK;
}

pd__cmd pd__mix_pick(const pd__mix_t *m, double u) {
    for (int c = 0; c < PD__CMD__COUNT; c++)
        if (m->weight[c] > 0 && u < m->cum[c]) return (pd__cmd)c;
    for (int c = PD__CMD__COUNT - 1; c >= 0; c--)
        if (m->weight[c] > 0) return (pd__cmd)c;
    return PD__CMD_PING;
}

void pd__mix_to_string(const pd__mix_t *m, char *buf, size_t cap) {
    size_t len = 0;
    if (!cap) return;
    buf[0] = '\0';
    for (int c = 0; c < PD__CMD__COUNT; c++) {
        if (!(m->weight[c] > 0)) continue;
        int n =
            snprintf(buf + len, cap - len, "%s%s:%g", len ? "," : "", cmd_names[c], m->weight[c]);
        if (n < 0 || (size_t)n >= cap - len) break;
        len += (size_t)n;
    }
}
