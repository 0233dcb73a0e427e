/* csv.c -- the volunteer and order CSV formats: a streaming reader that
 * explains every bad line, and a writer fast enough for 10^7 rows.
 *
 * The formats are deliberately plain: comma-separated, one record per
 * line, no quoting (no field can hold a comma), a fixed header line.
 * docs/data.md specifies them field by field.
 *
 * Reader. Bytes come into a 64 KiB buffer (or are read in place from
 * memory); each line is copied into a fixed line buffer, split at commas
 * and parsed field by field with strict hand-written parsers: no strtod
 * (locale-dependent, and a decimal degree parses exactly into
 * micro-degrees without floating point), no sign or space where none
 * belongs. Every failure records the line, the field and the reason in
 * the reader's pd_csv_error_t. A bad line is consumed, so a caller may
 * report it and read on. Nothing is allocated per line.
 *
 * Writer. Lines are formatted straight into a 256 KiB output buffer with
 * integer-only digit routines (positions are int32 micro-degrees, so
 * "30.600000" is two integers and a dot) and written with fwrite in big
 * chunks. Nothing is allocated per line.
 */
#include "paidan/data.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>

#include "paidan/alloc.h"
#include "paidan/utf8.h"

#define READ_BUF (64 * 1024)
#define WRITE_BUF (256 * 1024)

static const char *const headers[2] = {
    "id,lat,lon,skills,tags,mode,schedule,capacity,status",
    "id,created,lat,lon,skills,need,start,duration_min,priority,minutes",
};

/* Field names by format, as in the header. */
static const char *const vol_fields[] = {"id",   "lat",      "lon",      "skills", "tags",
                                         "mode", "schedule", "capacity", "status"};
static const char *const ord_fields[] = {"id",   "created", "lat",          "lon",      "skills",
                                         "need", "start",   "duration_min", "priority", "minutes"};
#define VOL_NFIELDS 9
#define ORD_NFIELDS 10
#define MAX_NFIELDS 10

const char *pd_csv_header(pd_csv_kind kind) {
    return headers[kind == PD_CSV_ORDERS];
}

/* A name table is usable if it has at most 64 unique names, each 1..63
 * bytes with no control character, space, ',' or '|'. UTF-8 is fine. */
static bool names_ok(const char *const *names, size_t n) {
    if (n > PD_GEN_MAX_SKILLS || (n && !names)) return false;
    for (size_t i = 0; i < n; i++) {
        const char *s = names[i];
        if (!s) return false;
        size_t len = strlen(s);
        if (len == 0 || len > PD_CSV_NAME_MAX) return false;
        for (size_t k = 0; k < len; k++) {
            unsigned char c = (unsigned char)s[k];
            if (c <= ' ' || c == 0x7f || c == ',' || c == '|') return false;
        }
        for (size_t j = 0; j < i; j++)
            if (strcmp(s, names[j]) == 0) return false;
    }
    return true;
}

/* ================================================================ reader */

typedef struct field_s {
    const char *p; /* start, inside the line buffer */
    size_t n;      /* length */
} field_t;

struct pd_csv_reader_s {
    pd_csv_kind kind;
    const char *const *names; /* skill names, not owned */
    size_t n_names;
    uint8_t name_len[PD_GEN_MAX_SKILLS];

    FILE *fp;        /* NULL when reading memory */
    char *fbuf;      /* READ_BUF bytes for a file, else NULL */
    const char *buf; /* fbuf, or the caller's memory */
    size_t head;     /* first unread byte of buf */
    size_t tail;     /* end of valid bytes of buf */
    bool src_eof;    /* nothing more will come into buf */
    bool io_failed;  /* a read failed: sticky */
    char io_why[64]; /* ": <strerror>" of that failure */

    size_t step;   /* bytes one read call may pass over without a record; 0 = no bound */
    size_t spent;  /* bytes passed over by the current read call */
    bool skipping; /* in the middle of an over-long line */
    bool paused;   /* the last read call stopped early: call again */

    size_t line_no; /* of the line in `line` */
    char line[PD_CSV_LINE_MAX + 1];
    size_t line_len;

    char source[96]; /* file name for messages */
    pd_csv_error_t err;
};

/* Copy p[0..n) into `dst` (max + 4 bytes) for a message: at most `max`
 * bytes, anything unprintable or not UTF-8 (a file in GBK or Latin-1) as
 * '?', "..." if cut, never inside a character: messages travel to clients
 * as msgpack strings, which must be UTF-8. */
static const char *show_max(const char *p, size_t n, char *dst, size_t max) {
    const unsigned char *s = (const unsigned char *)p;
    size_t i = 0, j = 0;
    while (i < n) {
        size_t l = pd_utf8_len(s + i, n - i);
        bool ok = l > 1 || (l == 1 && s[i] >= ' ' && s[i] != 0x7f);
        size_t w = ok ? l : 1;
        if (j + w > max) break;
        if (ok)
            memcpy(dst + j, s + i, l);
        else
            dst[j] = '?';
        j += w;
        i += w;
    }
    if (i < n) {
        memcpy(dst + j, "...", 3);
        j += 3;
    }
    dst[j] = 0;
    return dst;
}

/* A value for a message, into `dst` of 48 bytes. */
static const char *show(const char *p, size_t n, char *dst) {
    return show_max(p, n, dst, 40);
}

/* Record an error: "<source>:<line>: [field N 'name': ]<reason>". */
__attribute__((format(printf, 4, 5))) static pd_err fail(pd_csv_reader_t *r, pd_err code, int field,
                                                         const char *fmt, ...) {
    pd_csv_error_t *e = &r->err;
    e->code = code;
    e->line = r->line_no;
    e->field = field;
    int n;
    if (field >= 0) {
        const char *fname = r->kind == PD_CSV_ORDERS ? ord_fields[field] : vol_fields[field];
        n = snprintf(e->message, sizeof e->message, "%s:%zu: field %d '%s': ", r->source,
                     r->line_no, field + 1, fname);
    } else if (r->line_no > 0) {
        n = snprintf(e->message, sizeof e->message, "%s:%zu: ", r->source, r->line_no);
    } else {
        n = snprintf(e->message, sizeof e->message, "%s: ", r->source);
    }
    if (n < 0) n = 0;
    if ((size_t)n < sizeof e->message) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->message + n, sizeof e->message - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return code;
}

/* Bring more bytes into the buffer, keeping [head, tail). */
static void refill(pd_csv_reader_t *r) {
    if (r->src_eof) return;
    if (r->head > 0) {
        memmove(r->fbuf, r->fbuf + r->head, r->tail - r->head);
        r->tail -= r->head;
        r->head = 0;
    }
    size_t got = fread(r->fbuf + r->tail, 1, READ_BUF - r->tail, r->fp);
    r->tail += got;
    if (got == 0) {
        if (ferror(r->fp)) {
            r->io_failed = true;
            snprintf(r->io_why, sizeof r->io_why, ": %s", strerror(errno));
        }
        r->src_eof = true;
    }
}

/* Move the next line (without its newline and a trailing '\r') into
 * r->line. *got is false at the end of the input, or with r->paused when
 * the read call's step ran out. A line too long for the buffer is skipped
 * up to its newline and reported; the skip may span several calls. */
static pd_err next_line(pd_csv_reader_t *r, bool *got) {
    for (;;) {
        const char *start = r->buf + r->head;
        size_t avail = r->tail - r->head;
        const char *nl = memchr(start, '\n', avail);
        size_t len;
        if (r->skipping) {
            /* The rest of an over-long line, up to its newline. */
            if (!nl && !r->src_eof) {
                r->spent += avail;
                r->head = r->tail;
                refill(r);
                if (r->step && r->spent >= r->step) {
                    r->paused = true;
                    *got = false;
                    return PD_OK;
                }
                continue;
            }
            if (!nl && r->io_failed) return fail(r, PD_ERR_IO, -1, "read error%s", r->io_why);
            len = nl ? (size_t)(nl - start) + 1 : avail;
            r->spent += len;
            r->head += len;
            r->skipping = false;
            *got = true;
            return fail(r, PD_ERR_TOO_LARGE, -1, "line longer than %d bytes", PD_CSV_LINE_MAX);
        }
        if (nl) {
            len = (size_t)(nl - start);
            r->head += len + 1;
            r->spent += len + 1;
        } else if (r->src_eof) {
            /* Whole lines read before a read error are still returned;
             * after them the error sticks. */
            if (r->io_failed) return fail(r, PD_ERR_IO, -1, "read error%s", r->io_why);
            if (avail == 0) {
                *got = false;
                return PD_OK;
            }
            len = avail;
            r->head = r->tail;
            r->spent += len;
        } else if (avail > PD_CSV_LINE_MAX + 1) {
            /* No newline in a buffer's worth of line: skip it (above). */
            r->line_no++;
            r->skipping = true;
            continue;
        } else {
            refill(r);
            continue;
        }
        r->line_no++;
        if (len > 0 && start[len - 1] == '\r') len--;
        if (len > PD_CSV_LINE_MAX) {
            *got = true;
            return fail(r, PD_ERR_TOO_LARGE, -1, "line longer than %d bytes", PD_CSV_LINE_MAX);
        }
        memcpy(r->line, start, len);
        r->line[len] = 0;
        r->line_len = len;
        *got = true;
        return PD_OK;
    }
}

/* The next non-blank line split at commas into exactly `want` fields. */
static pd_err next_record(pd_csv_reader_t *r, field_t *f, int want, bool *got) {
    for (;;) {
        pd_err err = next_line(r, got);
        if (err || !*got) return err;
        if (r->line_len == 0) {
            /* A run of blank lines is work too: bounded by the step. */
            if (r->step && r->spent >= r->step) {
                r->paused = true;
                *got = false;
                return PD_OK;
            }
            continue;
        }
        if (memchr(r->line, 0, r->line_len))
            return fail(r, PD_ERR_CORRUPT, -1, "line contains a NUL byte");
        int n = 0;
        const char *p = r->line, *end = r->line + r->line_len;
        for (;;) {
            const char *c = memchr(p, ',', (size_t)(end - p));
            const char *stop = c ? c : end;
            if (n < MAX_NFIELDS) {
                f[n].p = p;
                f[n].n = (size_t)(stop - p);
            }
            n++;
            if (!c) break;
            p = c + 1;
        }
        if (n != want) return fail(r, PD_ERR_CORRUPT, -1, "expected %d fields, found %d", want, n);
        return PD_OK;
    }
}

/* ---------------------------------------------------------- field parsers */

static bool is_digit(char c) {
    return c >= '0' && c <= '9';
}

/* Unsigned decimal, 1..20 digits, no sign, no overflow. */
static bool parse_u64(const field_t *f, uint64_t *out) {
    if (f->n == 0 || f->n > 20) return false;
    uint64_t v = 0;
    for (size_t i = 0; i < f->n; i++) {
        if (!is_digit(f->p[i])) return false;
        uint64_t d = (uint64_t)(f->p[i] - '0');
        if (v > (UINT64_MAX - d) / 10) return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

/* Signed decimal: an optional '-', then as parse_u64, within int64. */
static bool parse_i64(const field_t *f, int64_t *out) {
    field_t digits = *f;
    bool neg = f->n > 0 && f->p[0] == '-';
    if (neg) {
        digits.p++;
        digits.n--;
    }
    uint64_t v;
    if (!parse_u64(&digits, &v)) return false;
    if (neg ? v > (uint64_t)INT64_MAX + 1 : v > (uint64_t)INT64_MAX) return false;
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return true;
}

typedef enum { DEG_OK, DEG_MALFORMED, DEG_RANGE } deg_result;

/* Decimal degrees to micro-degrees, exactly: [-]digits[.digits], rounded
 * half away from zero at the seventh decimal; no exponent, no spaces. */
static deg_result parse_deg_e6(const field_t *f, int64_t limit_e6, int32_t *out) {
    size_t i = 0;
    bool neg = f->n > 0 && f->p[0] == '-';
    if (neg) i++;
    int64_t whole = 0;
    size_t int_digits = 0;
    bool too_big = false;
    for (; i < f->n && is_digit(f->p[i]); i++, int_digits++) {
        if (whole < 1000000)
            whole = whole * 10 + (f->p[i] - '0');
        else
            too_big = true;
    }
    if (int_digits == 0) return DEG_MALFORMED;
    int64_t frac = 0;
    int round_up = 0;
    if (i < f->n && f->p[i] == '.') {
        i++;
        size_t frac_digits = 0;
        for (; i < f->n && is_digit(f->p[i]); i++, frac_digits++) {
            if (frac_digits < 6)
                frac = frac * 10 + (f->p[i] - '0');
            else if (frac_digits == 6)
                round_up = f->p[i] >= '5';
        }
        if (frac_digits == 0) return DEG_MALFORMED;
        for (size_t k = frac_digits; k < 6; k++) frac *= 10;
    }
    if (i != f->n) return DEG_MALFORMED;
    if (too_big) return DEG_RANGE;
    int64_t v = whole * 1000000 + frac + round_up;
    if (v > limit_e6) return DEG_RANGE;
    *out = (int32_t)(neg ? -v : v);
    return DEG_OK;
}

static pd_err field_deg(pd_csv_reader_t *r, const field_t *f, int idx, int limit_deg,
                        int32_t *out) {
    char shown[48];
    switch (parse_deg_e6(f, (int64_t)limit_deg * 1000000, out)) {
        case DEG_OK:
            return PD_OK;
        case DEG_RANGE:
            return fail(r, PD_ERR_BAD_COORD, idx, "value '%s' is out of range -%d..%d",
                        show(f->p, f->n, shown), limit_deg, limit_deg);
        default:
            return fail(r, PD_ERR_BAD_COORD, idx,
                        "'%s' is not a decimal number of degrees (like 30.600000)",
                        show(f->p, f->n, shown));
    }
}

static pd_err field_u64(pd_csv_reader_t *r, const field_t *f, int idx, uint64_t lo, uint64_t hi,
                        uint64_t *out) {
    char shown[48];
    if (!parse_u64(f, out))
        return fail(r, PD_ERR_CORRUPT, idx, "'%s' is not an unsigned integer",
                    show(f->p, f->n, shown));
    if (*out < lo || *out > hi)
        return fail(r, PD_ERR_CORRUPT, idx, "value %s is out of range %llu..%llu",
                    show(f->p, f->n, shown), (unsigned long long)lo, (unsigned long long)hi);
    return PD_OK;
}

static pd_err field_i64(pd_csv_reader_t *r, const field_t *f, int idx, int64_t *out) {
    char shown[48];
    if (!parse_i64(f, out))
        return fail(r, PD_ERR_CORRUPT, idx, "'%s' is not an integer (ms since the epoch)",
                    show(f->p, f->n, shown));
    return PD_OK;
}

static pd_err field_skills(pd_csv_reader_t *r, const field_t *f, int idx, uint64_t *out) {
    char shown[48];
    uint64_t mask = 0;
    const char *p = f->p, *end = f->p + f->n;
    while (p < end) {
        const char *bar = memchr(p, '|', (size_t)(end - p));
        const char *stop = bar ? bar : end;
        size_t n = (size_t)(stop - p);
        size_t bit = r->n_names;
        for (size_t i = 0; i < r->n_names; i++) {
            if (r->name_len[i] == n && memcmp(r->names[i], p, n) == 0) {
                bit = i;
                break;
            }
        }
        if (n == 0)
            return fail(r, PD_ERR_CORRUPT, idx, "empty skill name in '%s'",
                        show(f->p, f->n, shown));
        if (bit == r->n_names)
            return fail(r, PD_ERR_UNKNOWN_SKILL, idx, "unknown skill '%s'", show(p, n, shown));
        mask |= 1ULL << bit;
        if (!bar) break;
        p = bar + 1;
        if (p == end)
            return fail(r, PD_ERR_CORRUPT, idx, "empty skill name in '%s'",
                        show(f->p, f->n, shown));
    }
    *out = mask;
    return PD_OK;
}

/* Index of the name equal to the field in table[0..n), or -1. */
static int match_name(const field_t *f, const char *(*name_of)(int), int n) {
    for (int i = 0; i < n; i++) {
        const char *s = name_of(i);
        if (s && strlen(s) == f->n && memcmp(s, f->p, f->n) == 0) return i;
    }
    return -1;
}

static const char *mode_name_of(int i) {
    return pd_mode_name((pd_mode)i);
}
static const char *status_name_of(int i) {
    return pd_status_name((pd_status)i);
}
static const char *priority_name_of(int i) {
    return pd_gen_priority_name((pd_gen_priority)i);
}

/* Small decimal of 1..2 digits at p[*i], within [0, 99]. */
static bool small_int(const char *p, size_t n, size_t *i, int *out) {
    size_t k = 0;
    int v = 0;
    while (*i < n && is_digit(p[*i]) && k < 2) {
        v = v * 10 + (p[*i] - '0');
        (*i)++;
        k++;
    }
    *out = v;
    return k > 0;
}

static pd_err field_schedule(pd_csv_reader_t *r, const field_t *f, int idx, pd_week_t *out) {
    char shown[48];
    if (f->n == 6 && memcmp(f->p, "always", 6) == 0) {
        *out = pd_week_all();
        return PD_OK;
    }
    if (f->n == 4 && memcmp(f->p, "none", 4) == 0) {
        *out = pd_week_none();
        return PD_OK;
    }
    pd_week_t w = pd_week_none();
    const char *p = f->p, *end = f->p + f->n;
    if (f->n == 0) return fail(r, PD_ERR_CORRUPT, idx, "empty schedule (use 'none' for none)");
    for (;;) {
        const char *semi = memchr(p, ';', (size_t)(end - p));
        size_t n = (size_t)((semi ? semi : end) - p);
        size_t i = 0;
        int day, s, e;
        bool ok = n > 0 && is_digit(p[0]) && small_int(p, n, &i, &day) && i < n && p[i] == ':';
        if (ok) {
            i++;
            ok = small_int(p, n, &i, &s) && i < n && p[i] == '-';
        }
        if (ok) {
            i++;
            ok = small_int(p, n, &i, &e) && i == n;
        }
        if (!ok)
            return fail(r, PD_ERR_CORRUPT, idx, "range '%s' is not D:S-E (like 0:18-22)",
                        show(p, n, shown));
        if (pd_week_add_range(&w, day, s, e) != PD_OK)
            return fail(r, PD_ERR_CORRUPT, idx,
                        "range '%s' needs weekday 0..6 and hours 0 <= start < end <= 24",
                        show(p, n, shown));
        if (!semi) break;
        p = semi + 1;
    }
    *out = w;
    return PD_OK;
}

/* ------------------------------------------------------------- open/read */

/* Fill the caller's optional error for a failure before any line. */
static pd_err open_fail(pd_csv_error_t *err, pd_err code, const char *source, const char *why) {
    if (err) {
        memset(err, 0, sizeof *err);
        err->code = code;
        err->field = -1;
        char src[96];
        snprintf(err->message, sizeof err->message, "%s: %s",
                 show_max(source, strlen(source), src, sizeof src - 4), why);
    }
    return code;
}

static pd_err reader_new(pd_csv_kind kind, const char *const *names, size_t n_names,
                         const char *source, pd_csv_reader_t **out, pd_csv_error_t *err) {
    if (kind != PD_CSV_VOLUNTEERS && kind != PD_CSV_ORDERS)
        return open_fail(err, PD_ERR_BAD_ARG, source, "unknown CSV kind");
    if (!names_ok(names, n_names))
        return open_fail(err, PD_ERR_BAD_ARG, source,
                         "bad skill-name table (at most 64 unique names of 1..63 bytes, "
                         "no spaces, ',' or '|')");
    pd_csv_reader_t *r = pd_calloc(1, sizeof *r);
    if (!r) return open_fail(err, PD_ERR_NOMEM, source, pd_strerror(PD_ERR_NOMEM));
    r->kind = kind;
    r->names = names;
    r->n_names = n_names;
    for (size_t i = 0; i < n_names; i++) r->name_len[i] = (uint8_t)strlen(names[i]);
    show_max(source, strlen(source), r->source, sizeof r->source - 4);
    r->err.field = -1;
    *out = r;
    return PD_OK;
}

/* Explain a header line that is not `want`: name the first field that
 * differs, or say the line is not a header at all. */
static pd_err wrong_header(pd_csv_reader_t *r, const char *want) {
    char shown[48], expected[48];
    const char *g = r->line, *gend = r->line + r->line_len;
    const char *w = want, *wend = want + strlen(want);
    for (int i = 0;; i++) {
        const char *gc = memchr(g, ',', (size_t)(gend - g));
        const char *wc = memchr(w, ',', (size_t)(wend - w));
        size_t gn = (size_t)((gc ? gc : gend) - g), wn = (size_t)((wc ? wc : wend) - w);
        if (gn != wn || memcmp(g, w, gn) != 0 || !gc != !wc) {
            if (i == 0) break;
            if (gn == wn && memcmp(g, w, gn) == 0) { /* same field, one line goes on */
                if (gc)
                    return fail(r, PD_ERR_CORRUPT, -1,
                                "wrong header: found '%s' after the %d fields of '%s'",
                                show(gc, (size_t)(gend - gc), shown), i + 1, want);
                return fail(r, PD_ERR_CORRUPT, -1,
                            "wrong header: found '%s', only the first %d fields of '%s'",
                            show(r->line, r->line_len, shown), i + 1, want);
            }
            return fail(r, PD_ERR_CORRUPT, -1,
                        "wrong header: field %d is '%s', expected '%s' (the header is exactly "
                        "'%s')",
                        i + 1, show(g, gn, shown), show(w, wn, expected), want);
        }
        if (!gc) break; /* equal: not reached, the caller compared them */
        g = gc + 1;
        w = wc + 1;
    }
    return fail(r, PD_ERR_CORRUPT, -1, "missing header: expected '%s', found '%s'", want,
                show(r->line, r->line_len, shown));
}

/* Read and check line 1. A header cannot be long, so line 1 is judged
 * from the first buffer: a file without a newline there (a binary file,
 * or one whose lines end in a lone CR) is refused without reading on. */
static pd_err check_header(pd_csv_reader_t *r) {
    bool got;
    if (r->fp) refill(r);
    /* A UTF-8 byte-order mark (spreadsheets write one) is skipped. */
    if (r->tail - r->head >= 3 && memcmp(r->buf + r->head, "\xEF\xBB\xBF", 3) == 0) r->head += 3;
    const char *start = r->buf + r->head;
    size_t avail = r->tail - r->head;
    const char *nl = memchr(start, '\n', avail);
    size_t len = nl ? (size_t)(nl - start) : avail;
    if (len > 0 && start[len - 1] == '\r') len--;
    const char *cr = memchr(start, '\r', len);
    if (cr || len > PD_CSV_LINE_MAX) {
        char shown[48];
        r->line_no = 1;
        if (cr)
            return fail(r, PD_ERR_CORRUPT, -1,
                        "line 1 holds a carriage return: lines must end in LF or CRLF, not in "
                        "a lone CR (found '%s')",
                        show(start, len, shown));
        return fail(r, PD_ERR_CORRUPT, -1,
                    "missing header: line 1 is longer than %d bytes (found '%s')", PD_CSV_LINE_MAX,
                    show(start, len, shown));
    }
    pd_err err = next_line(r, &got);
    if (err) return err;
    if (!got)
        return fail(r, PD_ERR_CORRUPT, -1, "empty file: expected the header line '%s'",
                    pd_csv_header(r->kind));
    if (strcmp(r->line, pd_csv_header(r->kind)) == 0) return PD_OK;
    pd_csv_kind other = r->kind == PD_CSV_ORDERS ? PD_CSV_VOLUNTEERS : PD_CSV_ORDERS;
    if (strcmp(r->line, pd_csv_header(other)) == 0)
        return fail(r, PD_ERR_CORRUPT, -1, "this is %s file; expected %s",
                    other == PD_CSV_ORDERS ? "an orders" : "a volunteers",
                    r->kind == PD_CSV_ORDERS ? "orders" : "volunteers");
    return wrong_header(r, pd_csv_header(r->kind));
}

static pd_err finish_open(pd_csv_reader_t *r, pd_csv_reader_t **out, pd_csv_error_t *err) {
    pd_err e = check_header(r);
    if (e) {
        if (err) *err = r->err;
        pd_csv_reader_close(r);
        return e;
    }
    r->err.code = PD_OK;
    r->err.message[0] = 0;
    *out = r;
    return PD_OK;
}

pd_err pd_csv_reader_open(const char *path, pd_csv_kind kind, const char *const *names,
                          size_t n_names, pd_csv_reader_t **out, pd_csv_error_t *err) {
    if (!path) return open_fail(err, PD_ERR_BAD_ARG, "(null)", "no path");
    pd_csv_reader_t *r;
    pd_err e = reader_new(kind, names, n_names, path, &r, err);
    if (e) return e;
    r->fbuf = pd_malloc(READ_BUF);
    if (!r->fbuf) {
        pd_csv_reader_close(r);
        return open_fail(err, PD_ERR_NOMEM, path, pd_strerror(PD_ERR_NOMEM));
    }
    r->buf = r->fbuf;
    r->fp = fopen(path, "rb");
    if (!r->fp) {
        fail(r, PD_ERR_IO, -1, "cannot open: %s", strerror(errno));
        if (err) *err = r->err;
        pd_csv_reader_close(r);
        return PD_ERR_IO;
    }
    return finish_open(r, out, err);
}

pd_err pd_csv_reader_open_mem(const char *buf, size_t len, pd_csv_kind kind,
                              const char *const *names, size_t n_names, pd_csv_reader_t **out,
                              pd_csv_error_t *err) {
    if (!buf && len) return open_fail(err, PD_ERR_BAD_ARG, "<memory>", "no buffer");
    pd_csv_reader_t *r;
    pd_err e = reader_new(kind, names, n_names, "<memory>", &r, err);
    if (e) return e;
    r->buf = buf ? buf : "";
    r->tail = len;
    r->src_eof = true;
    return finish_open(r, out, err);
}

void pd_csv_reader_close(pd_csv_reader_t *r) {
    if (!r) return;
    if (r->fp) fclose(r->fp);
    pd_free(r->fbuf);
    pd_free(r);
}

size_t pd_csv_reader_get_line(const pd_csv_reader_t *r) {
    return r->line_no;
}

const pd_csv_error_t *pd_csv_reader_get_error(const pd_csv_reader_t *r) {
    return &r->err;
}

void pd_csv_reader_set_step(pd_csv_reader_t *r, size_t bytes) {
    r->step = bytes;
}

bool pd_csv_reader_paused(const pd_csv_reader_t *r) {
    return r->paused;
}

/* At the start of each read call. */
static void clear_error(pd_csv_reader_t *r) {
    r->spent = 0;
    r->paused = false;
    r->err.code = PD_OK;
    r->err.line = 0;
    r->err.field = -1;
    r->err.message[0] = 0;
}

pd_err pd_csv_read_volunteer(pd_csv_reader_t *r, pd_volunteer_t *out, bool *got) {
    *got = false;
    if (r->kind != PD_CSV_VOLUNTEERS) return PD_ERR_BAD_ARG;
    clear_error(r);
    field_t f[MAX_NFIELDS];
    bool have;
    pd_err err = next_record(r, f, VOL_NFIELDS, &have);
    if (err || !have) return err;

    pd_volunteer_t v;
    memset(&v, 0, sizeof v);
    uint64_t u;
    int i;
    char shown[48];
    if ((err = field_u64(r, &f[0], 0, 0, UINT64_MAX, &v.id))) return err;
    if ((err = field_deg(r, &f[1], 1, 90, &v.pos.lat))) return err;
    if ((err = field_deg(r, &f[2], 2, 180, &v.pos.lon))) return err;
    if ((err = field_skills(r, &f[3], 3, &v.skills))) return err;
    if ((err = field_u64(r, &f[4], 4, 0, UINT64_MAX, &v.tags))) return err;
    if ((i = match_name(&f[5], mode_name_of, PD_MODE__COUNT)) < 0)
        return fail(r, PD_ERR_CORRUPT, 5, "unknown mode '%s' (walk, bike, ebike or car)",
                    show(f[5].p, f[5].n, shown));
    v.mode = (uint8_t)i;
    if ((err = field_schedule(r, &f[6], 6, &v.week))) return err;
    if ((err = field_u64(r, &f[7], 7, 1, 255, &u))) return err;
    v.capacity = (uint8_t)u;
    if ((i = match_name(&f[8], status_name_of, PD_STATUS__COUNT)) < 0)
        return fail(r, PD_ERR_CORRUPT, 8, "unknown status '%s' (online, busy or offline)",
                    show(f[8].p, f[8].n, shown));
    v.status = (uint8_t)i;
    if (PD_NEVER(pd_volunteer_check(&v) != PD_OK))
        return fail(r, PD_ERR_CORRUPT, -1, "record fails the volunteer check");
    *out = v;
    *got = true;
    return PD_OK;
}

pd_err pd_csv_read_order(pd_csv_reader_t *r, pd_gen_order_t *out, bool *got) {
    *got = false;
    if (r->kind != PD_CSV_ORDERS) return PD_ERR_BAD_ARG;
    clear_error(r);
    field_t f[MAX_NFIELDS];
    bool have;
    pd_err err = next_record(r, f, ORD_NFIELDS, &have);
    if (err || !have) return err;

    pd_gen_order_t o;
    memset(&o, 0, sizeof o);
    uint64_t u;
    int i;
    char shown[48];
    if ((err = field_u64(r, &f[0], 0, 0, UINT64_MAX, &o.id))) return err;
    if ((err = field_i64(r, &f[1], 1, &o.created_ms))) return err;
    if ((err = field_deg(r, &f[2], 2, 90, &o.pos.lat))) return err;
    if ((err = field_deg(r, &f[3], 3, 180, &o.pos.lon))) return err;
    if ((err = field_skills(r, &f[4], 4, &o.skills))) return err;
    if ((err = field_u64(r, &f[5], 5, 1, PD_GEN_MAX_NEED, &u))) return err;
    o.need = (uint32_t)u;
    if ((err = field_i64(r, &f[6], 6, &o.start_ms))) return err;
    if ((err = field_u64(r, &f[7], 7, 0, PD_GEN_MAX_DURATION_MIN, &u))) return err;
    o.duration_min = (int32_t)u;
    if ((i = match_name(&f[8], priority_name_of, PD_GEN_PRIORITY__COUNT)) < 0)
        return fail(r, PD_ERR_CORRUPT, 8, "unknown priority '%s' (normal, elevated or emergency)",
                    show(f[8].p, f[8].n, shown));
    o.priority = (uint8_t)i;
    if ((err = field_u64(r, &f[9], 9, 1, PD_GEN_MAX_BUDGET_MIN, &u))) return err;
    o.budget_min = (int32_t)u;
    if (PD_NEVER(pd_gen_order_check(&o) != PD_OK))
        return fail(r, PD_ERR_CORRUPT, -1, "record fails the order check");
    *out = o;
    *got = true;
    return PD_OK;
}

/* ================================================================ writer */

/* Two-digit table for fast decimal output. */
static const char digits2[201] =
    "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
    "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
    "8081828384858687888990919293949596979899";

static char *put_u64(char *p, uint64_t v) {
    char tmp[20];
    char *t = tmp + sizeof tmp;
    while (v >= 100) {
        unsigned k = (unsigned)(v % 100) * 2;
        v /= 100;
        *--t = digits2[k + 1];
        *--t = digits2[k];
    }
    if (v >= 10) {
        unsigned k = (unsigned)v * 2;
        *--t = digits2[k + 1];
        *--t = digits2[k];
    } else {
        *--t = (char)('0' + v);
    }
    size_t n = (size_t)(tmp + sizeof tmp - t);
    memcpy(p, t, n);
    return p + n;
}

static char *put_i64(char *p, int64_t v) {
    if (v < 0) {
        *p++ = '-';
        return put_u64(p, 0 - (uint64_t)v);
    }
    return put_u64(p, (uint64_t)v);
}

/* Micro-degrees as degrees with exactly six decimals. */
static char *put_e6(char *p, int32_t v) {
    uint32_t a = v < 0 ? 0u - (uint32_t)v : (uint32_t)v;
    if (v < 0) *p++ = '-';
    p = put_u64(p, a / 1000000);
    *p++ = '.';
    uint32_t f = a % 1000000;
    for (int k = 4; k >= 0; k -= 2) {
        unsigned d = (f % 100) * 2;
        f /= 100;
        p[k] = digits2[d];
        p[k + 1] = digits2[d + 1];
    }
    return p + 6;
}

static char *put_str(char *p, const char *s) {
    size_t n = strlen(s);
    memcpy(p, s, n);
    return p + n;
}

static char *put_skills(char *p, uint64_t mask, const char *const *names) {
    bool first = true;
    while (mask) {
        int b = __builtin_ctzll(mask);
        mask &= mask - 1;
        if (!first) *p++ = '|';
        first = false;
        p = put_str(p, names[b]);
    }
    return p;
}

/* Hours 0..23 of weekday d as the low 24 bits. */
static uint32_t day_bits(const pd_week_t *w, int d) {
    int start = d * 24, word = start >> 6, off = start & 63;
    uint64_t v = w->bits[word] >> off;
    if (off > 40) v |= w->bits[word + 1] << (64 - off);
    return (uint32_t)(v & 0xFFFFFF);
}

/* "always", "none", or the maximal runs of each day as D:S-E;D:S-E. */
static char *put_week(char *p, const pd_week_t *w) {
    pd_week_t all = pd_week_all();
    if (pd_week_covers(w, &all)) return put_str(p, "always");
    if (pd_week_is_empty(w)) return put_str(p, "none");
    bool first = true;
    for (int d = 0; d < 7; d++) {
        uint32_t m = day_bits(w, d);
        while (m) {
            int s = __builtin_ctz(m);
            uint32_t rest = ~(m >> s); /* has a zero-free tail: bit 24+ are set */
            int e = s + __builtin_ctz(rest);
            m &= ~((1u << e) - 1);
            if (!first) *p++ = ';';
            first = false;
            *p++ = (char)('0' + d);
            *p++ = ':';
            p = put_u64(p, (uint64_t)s);
            *p++ = '-';
            p = put_u64(p, (uint64_t)e);
        }
    }
    return p;
}

/* Both formatters write at most PD_CSV_LINE_MAX + 1 bytes: with name
 * tables checked by names_ok() the skills field is at most 64 * 64 - 1
 * bytes and every other field together stays under 1000. */
static pd_err skills_known(uint64_t skills, size_t n_names) {
    if (n_names < 64 && (skills >> n_names)) return PD_ERR_UNKNOWN_SKILL;
    return PD_OK;
}

static pd_err format_volunteer(const pd_volunteer_t *v, const char *const *names, size_t n_names,
                               char *buf, size_t *len) {
    pd_err err = pd_volunteer_check(v);
    if (err) return err;
    if ((err = skills_known(v->skills, n_names))) return err;
    char *p = buf;
    p = put_u64(p, v->id);
    *p++ = ',';
    p = put_e6(p, v->pos.lat);
    *p++ = ',';
    p = put_e6(p, v->pos.lon);
    *p++ = ',';
    p = put_skills(p, v->skills, names);
    *p++ = ',';
    p = put_u64(p, v->tags);
    *p++ = ',';
    p = put_str(p, pd_mode_name((pd_mode)v->mode));
    *p++ = ',';
    p = put_week(p, &v->week);
    *p++ = ',';
    p = put_u64(p, v->capacity);
    *p++ = ',';
    p = put_str(p, pd_status_name((pd_status)v->status));
    *p++ = '\n';
    *len = (size_t)(p - buf);
    return PD_OK;
}

static pd_err format_order(const pd_gen_order_t *o, const char *const *names, size_t n_names,
                           char *buf, size_t *len) {
    pd_err err = pd_gen_order_check(o);
    if (err) return err;
    if ((err = skills_known(o->skills, n_names))) return err;
    char *p = buf;
    p = put_u64(p, o->id);
    *p++ = ',';
    p = put_i64(p, o->created_ms);
    *p++ = ',';
    p = put_e6(p, o->pos.lat);
    *p++ = ',';
    p = put_e6(p, o->pos.lon);
    *p++ = ',';
    p = put_skills(p, o->skills, names);
    *p++ = ',';
    p = put_u64(p, o->need);
    *p++ = ',';
    p = put_i64(p, o->start_ms);
    *p++ = ',';
    p = put_u64(p, (uint64_t)o->duration_min);
    *p++ = ',';
    p = put_str(p, pd_gen_priority_name((pd_gen_priority)o->priority));
    *p++ = ',';
    p = put_u64(p, (uint64_t)o->budget_min);
    *p++ = '\n';
    *len = (size_t)(p - buf);
    return PD_OK;
}

pd_err pd_csv_format_volunteer(const pd_volunteer_t *v, const char *const *names, size_t n_names,
                               char *buf, size_t cap, size_t *len) {
    if (!names_ok(names, n_names)) return PD_ERR_BAD_ARG;
    char line[PD_CSV_LINE_MAX + 1];
    size_t n;
    pd_err err = format_volunteer(v, names, n_names, line, &n);
    if (err) return err;
    if (n > cap) return PD_ERR_BOUNDS;
    memcpy(buf, line, n);
    *len = n;
    return PD_OK;
}

pd_err pd_csv_format_order(const pd_gen_order_t *o, const char *const *names, size_t n_names,
                           char *buf, size_t cap, size_t *len) {
    if (!names_ok(names, n_names)) return PD_ERR_BAD_ARG;
    char line[PD_CSV_LINE_MAX + 1];
    size_t n;
    pd_err err = format_order(o, names, n_names, line, &n);
    if (err) return err;
    if (n > cap) return PD_ERR_BOUNDS;
    memcpy(buf, line, n);
    *len = n;
    return PD_OK;
}

struct pd_csv_writer_s {
    pd_csv_kind kind;
    const char *const *names; /* not owned */
    size_t n_names;
    FILE *fp;
    bool own_fp; /* close fp on close */
    bool failed; /* a write failed; sticky */
    char *buf;   /* WRITE_BUF bytes */
    size_t len;  /* bytes pending in buf */
};

static void writer_flush(pd_csv_writer_t *w) {
    if (w->len && !w->failed && fwrite(w->buf, 1, w->len, w->fp) != w->len) w->failed = true;
    w->len = 0;
}

static pd_err writer_new(FILE *fp, bool own, pd_csv_kind kind, const char *const *names,
                         size_t n_names, pd_csv_writer_t **out) {
    pd_csv_writer_t *w = pd_calloc(1, sizeof *w);
    char *buf = pd_malloc(WRITE_BUF);
    if (!w || !buf) {
        pd_free(w);
        pd_free(buf);
        return PD_ERR_NOMEM;
    }
    w->kind = kind;
    w->names = names;
    w->n_names = n_names;
    w->fp = fp;
    w->own_fp = own;
    w->buf = buf;
    const char *h = pd_csv_header(kind);
    size_t n = strlen(h);
    memcpy(w->buf, h, n);
    w->buf[n] = '\n';
    w->len = n + 1;
    *out = w;
    return PD_OK;
}

pd_err pd_csv_writer_open_fp(FILE *fp, pd_csv_kind kind, const char *const *names, size_t n_names,
                             pd_csv_writer_t **out) {
    if (!fp || (kind != PD_CSV_VOLUNTEERS && kind != PD_CSV_ORDERS)) return PD_ERR_BAD_ARG;
    if (!names_ok(names, n_names)) return PD_ERR_BAD_ARG;
    return writer_new(fp, false, kind, names, n_names, out);
}

pd_err pd_csv_writer_open(const char *path, pd_csv_kind kind, const char *const *names,
                          size_t n_names, pd_csv_writer_t **out) {
    if (!path || strcmp(path, "-") == 0)
        return pd_csv_writer_open_fp(stdout, kind, names, n_names, out);
    if (kind != PD_CSV_VOLUNTEERS && kind != PD_CSV_ORDERS) return PD_ERR_BAD_ARG;
    if (!names_ok(names, n_names)) return PD_ERR_BAD_ARG;
    FILE *fp = fopen(path, "wb");
    if (!fp) return PD_ERR_IO;
    pd_err err = writer_new(fp, true, kind, names, n_names, out);
    if (err) fclose(fp);
    return err;
}

/* Room for one more line of the longest kind. */
static void writer_reserve(pd_csv_writer_t *w) {
    if (WRITE_BUF - w->len < PD_CSV_LINE_MAX + 1) writer_flush(w);
}

pd_err pd_csv_write_volunteer(pd_csv_writer_t *w, const pd_volunteer_t *v) {
    if (w->kind != PD_CSV_VOLUNTEERS) return PD_ERR_BAD_ARG;
    if (w->failed) return PD_ERR_IO;
    writer_reserve(w);
    size_t n;
    pd_err err = format_volunteer(v, w->names, w->n_names, w->buf + w->len, &n);
    if (err) return err;
    w->len += n;
    return w->failed ? PD_ERR_IO : PD_OK;
}

pd_err pd_csv_write_order(pd_csv_writer_t *w, const pd_gen_order_t *o) {
    if (w->kind != PD_CSV_ORDERS) return PD_ERR_BAD_ARG;
    if (w->failed) return PD_ERR_IO;
    writer_reserve(w);
    size_t n;
    pd_err err = format_order(o, w->names, w->n_names, w->buf + w->len, &n);
    if (err) return err;
    w->len += n;
    return w->failed ? PD_ERR_IO : PD_OK;
}

pd_err pd_csv_writer_close(pd_csv_writer_t *w) {
    if (!w) return PD_OK;
    writer_flush(w);
    bool failed = w->failed;
    if (fflush(w->fp) != 0) failed = true;
    if (w->own_fp && fclose(w->fp) != 0) failed = true;
    pd_free(w->buf);
    pd_free(w);
    return failed ? PD_ERR_IO : PD_OK;
}
