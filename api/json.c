/* json.c -- a small JSON reader and writer over msgpack objects (see json.h).
 *
 * Reading builds a msgpack_object tree in a zone (containers collect their
 * children in a growing scratch array first, because MessagePack needs the
 * count before the elements), then packs it in one go, so a syntax error
 * halfway packs nothing. Nesting is limited to what fits in a request
 * (JSON_MAX_DEPTH).
 *
 * Writing always produces valid JSON: bytes of a string that are not UTF-8
 * print as U+FFFD, and NaN and the infinities as null.
 */
#include "json.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "paidan/utf8.h"

/* Arrays and objects nested in one value: the protocol stops at
 * PD_FRAME_MAX_DEPTH containers and the request array [0, msgid, method,
 * params] around the params is one of them. Deeper params would pack fine
 * and then make the server close the connection. */
#define JSON_MAX_DEPTH (PD_FRAME_MAX_DEPTH - 1)

typedef struct reader_s {
    const char *s;   /* the text */
    size_t len;      /* its length */
    size_t pos;      /* next byte */
    msgpack_zone *z; /* where the tree goes */
    const char *err; /* first error, static text */
    size_t err_pos;  /* where it happened */
    bool nomem;      /* an allocation failed */
} reader_t;

static bool fail(reader_t *r, const char *msg) {
    if (!r->err) {
        r->err = msg;
        r->err_pos = r->pos;
    }
    return false;
}

static void skip_ws(reader_t *r) {
    while (r->pos < r->len) {
        char ch = r->s[r->pos];
        if (ch != ' ' && ch != '\t' && ch != '\n' && ch != '\r') break;
        r->pos++;
    }
}

static bool literal(reader_t *r, const char *word) {
    size_t n = strlen(word);
    if (r->len - r->pos < n || memcmp(r->s + r->pos, word, n) != 0)
        return fail(r, "invalid literal");
    r->pos += n;
    return true;
}

static int hexval(char ch) {
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

static bool read_hex4(reader_t *r, uint32_t *out) {
    if (r->len - r->pos < 4) return fail(r, "short \\u escape");
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval(r->s[r->pos + (size_t)i]);
        if (h < 0) return fail(r, "bad \\u escape");
        v = (v << 4) | (uint32_t)h;
    }
    r->pos += 4;
    *out = v;
    return true;
}

static size_t put_utf8(char *d, uint32_t cp) {
    if (cp < 0x80) {
        d[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        d[0] = (char)(0xc0 | (cp >> 6));
        d[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        d[0] = (char)(0xe0 | (cp >> 12));
        d[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        d[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    d[0] = (char)(0xf0 | (cp >> 18));
    d[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    d[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    d[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* A string; r->pos is at the opening quote. Decoded text never grows
 * (each escape of n bytes yields at most n bytes of UTF-8). */
static bool read_string(reader_t *r, msgpack_object *o) {
    r->pos++;
    size_t start = r->pos;
    size_t end = start;
    while (end < r->len && r->s[end] != '"') end += (r->s[end] == '\\') ? 2 : 1;
    if (end >= r->len) return fail(r, "unterminated string");
    char *d = msgpack_zone_malloc(r->z, end - start + 1);
    if (!d) {
        r->nomem = true;
        return fail(r, "out of memory");
    }
    size_t n = 0;
    while (r->pos < end) {
        unsigned char ch = (unsigned char)r->s[r->pos];
        if (ch < 0x20) return fail(r, "control character in string");
        if (ch != '\\') {
            d[n++] = (char)ch;
            r->pos++;
            continue;
        }
        char e = r->s[r->pos + 1];
        r->pos += 2;
        switch (e) {
            case '"':
                d[n++] = '"';
                break;
            case '\\':
                d[n++] = '\\';
                break;
            case '/':
                d[n++] = '/';
                break;
            case 'b':
                d[n++] = '\b';
                break;
            case 'f':
                d[n++] = '\f';
                break;
            case 'n':
                d[n++] = '\n';
                break;
            case 'r':
                d[n++] = '\r';
                break;
            case 't':
                d[n++] = '\t';
                break;
            case 'u': {
                uint32_t cp;
                if (!read_hex4(r, &cp)) return false;
                if (cp >= 0xd800 && cp <= 0xdbff) {
                    uint32_t lo;
                    if (r->len - r->pos < 6 || r->s[r->pos] != '\\' || r->s[r->pos + 1] != 'u')
                        return fail(r, "lone surrogate");
                    r->pos += 2;
                    if (!read_hex4(r, &lo)) return false;
                    if (lo < 0xdc00 || lo > 0xdfff) return fail(r, "bad surrogate pair");
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                } else if (cp >= 0xdc00 && cp <= 0xdfff) {
                    return fail(r, "lone surrogate");
                }
                n += put_utf8(d + n, cp);
                break;
            }
            default:
                return fail(r, "bad escape");
        }
    }
    r->pos = end + 1;
    d[n] = '\0';
    o->type = MSGPACK_OBJECT_STR;
    o->via.str.ptr = d;
    o->via.str.size = (uint32_t)n;
    return true;
}

static bool read_number(reader_t *r, msgpack_object *o) {
    size_t start = r->pos;
    bool frac = false;
    if (r->pos < r->len && r->s[r->pos] == '-') r->pos++;
    size_t digits = r->pos;
    while (r->pos < r->len && r->s[r->pos] >= '0' && r->s[r->pos] <= '9') r->pos++;
    if (r->pos == digits) return fail(r, "bad number");
    if (r->s[digits] == '0' && r->pos - digits > 1) return fail(r, "leading zero");
    if (r->pos < r->len && r->s[r->pos] == '.') {
        frac = true;
        r->pos++;
        size_t f = r->pos;
        while (r->pos < r->len && r->s[r->pos] >= '0' && r->s[r->pos] <= '9') r->pos++;
        if (r->pos == f) return fail(r, "bad fraction");
    }
    if (r->pos < r->len && (r->s[r->pos] == 'e' || r->s[r->pos] == 'E')) {
        frac = true;
        r->pos++;
        if (r->pos < r->len && (r->s[r->pos] == '+' || r->s[r->pos] == '-')) r->pos++;
        size_t f = r->pos;
        while (r->pos < r->len && r->s[r->pos] >= '0' && r->s[r->pos] <= '9') r->pos++;
        if (r->pos == f) return fail(r, "bad exponent");
    }
    /* strtod() wants a terminated string; valid JSON numbers can be long
     * ("0.000...01"), so a long one is copied to the zone. */
    char small[64];
    size_t n = r->pos - start;
    char *buf = small;
    if (n >= sizeof(small) && !(buf = msgpack_zone_malloc(r->z, n + 1))) {
        r->nomem = true;
        return fail(r, "out of memory");
    }
    memcpy(buf, r->s + start, n);
    buf[n] = '\0';
    errno = 0;
    if (!frac) {
        if (buf[0] == '-') {
            long long v = strtoll(buf, NULL, 10);
            if (errno == 0) {
                o->type = v < 0 ? MSGPACK_OBJECT_NEGATIVE_INTEGER : MSGPACK_OBJECT_POSITIVE_INTEGER;
                if (v < 0)
                    o->via.i64 = v;
                else
                    o->via.u64 = (uint64_t)v;
                return true;
            }
        } else {
            unsigned long long v = strtoull(buf, NULL, 10);
            if (errno == 0) {
                o->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
                o->via.u64 = v;
                return true;
            }
        }
        errno = 0;
    }
    double d = strtod(buf, NULL);
    if (!isfinite(d)) return fail(r, "number out of range");
    o->type = MSGPACK_OBJECT_FLOAT64;
    o->via.f64 = d;
    return true;
}

static bool read_value(reader_t *r, msgpack_object *o, int depth);

/* A growing scratch array of objects (or key/value pairs). */
typedef struct vec_s {
    void *p;    /* elements */
    size_t n;   /* used */
    size_t cap; /* allocated */
} vec_t;

static void *vec_push(vec_t *v, size_t elem) {
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 8;
        void *p = realloc(v->p, cap * elem);
        if (!p) return NULL;
        v->p = p;
        v->cap = cap;
    }
    return (char *)v->p + elem * v->n++;
}

static void *vec_to_zone(reader_t *r, vec_t *v, size_t elem) {
    if (v->n == 0) return NULL;
    void *p = msgpack_zone_malloc(r->z, v->n * elem);
    if (!p) {
        r->nomem = true;
        fail(r, "out of memory");
        return NULL;
    }
    memcpy(p, v->p, v->n * elem);
    return p;
}

static bool read_array(reader_t *r, msgpack_object *o, int depth) {
    vec_t v = {0};
    bool ok = false;
    r->pos++;
    skip_ws(r);
    if (r->pos < r->len && r->s[r->pos] == ']') {
        r->pos++;
        ok = true;
    } else {
        for (;;) {
            msgpack_object *e = vec_push(&v, sizeof(msgpack_object));
            if (!e) {
                r->nomem = true;
                fail(r, "out of memory");
                break;
            }
            if (!read_value(r, e, depth + 1)) break;
            skip_ws(r);
            if (r->pos < r->len && r->s[r->pos] == ',') {
                r->pos++;
                continue;
            }
            if (r->pos < r->len && r->s[r->pos] == ']') {
                r->pos++;
                ok = true;
            } else {
                fail(r, "expected ',' or ']'");
            }
            break;
        }
    }
    if (ok) {
        o->type = MSGPACK_OBJECT_ARRAY;
        o->via.array.size = (uint32_t)v.n;
        o->via.array.ptr = vec_to_zone(r, &v, sizeof(msgpack_object));
        if (v.n && !o->via.array.ptr) ok = false;
    }
    free(v.p);
    return ok;
}

static bool read_object(reader_t *r, msgpack_object *o, int depth) {
    vec_t v = {0};
    bool ok = false;
    r->pos++;
    skip_ws(r);
    if (r->pos < r->len && r->s[r->pos] == '}') {
        r->pos++;
        ok = true;
    } else {
        for (;;) {
            msgpack_object_kv *kv = vec_push(&v, sizeof(msgpack_object_kv));
            if (!kv) {
                r->nomem = true;
                fail(r, "out of memory");
                break;
            }
            skip_ws(r);
            if (r->pos >= r->len || r->s[r->pos] != '"') {
                fail(r, "expected a string key");
                break;
            }
            if (!read_string(r, &kv->key)) break;
            skip_ws(r);
            if (r->pos >= r->len || r->s[r->pos] != ':') {
                fail(r, "expected ':'");
                break;
            }
            r->pos++;
            if (!read_value(r, &kv->val, depth + 1)) break;
            skip_ws(r);
            if (r->pos < r->len && r->s[r->pos] == ',') {
                r->pos++;
                continue;
            }
            if (r->pos < r->len && r->s[r->pos] == '}') {
                r->pos++;
                ok = true;
            } else {
                fail(r, "expected ',' or '}'");
            }
            break;
        }
    }
    if (ok) {
        o->type = MSGPACK_OBJECT_MAP;
        o->via.map.size = (uint32_t)v.n;
        o->via.map.ptr = vec_to_zone(r, &v, sizeof(msgpack_object_kv));
        if (v.n && !o->via.map.ptr) ok = false;
    }
    free(v.p);
    return ok;
}

/* depth: containers open around this value */
static bool read_value(reader_t *r, msgpack_object *o, int depth) {
    memset(o, 0, sizeof(*o));
    skip_ws(r);
    if (r->pos >= r->len) return fail(r, "unexpected end of input");
    char ch = r->s[r->pos];
    if ((ch == '{' || ch == '[') && depth >= JSON_MAX_DEPTH) return fail(r, "nested too deeply");
    switch (ch) {
        case '{':
            return read_object(r, o, depth);
        case '[':
            return read_array(r, o, depth);
        case '"':
            return read_string(r, o);
        case 't':
            o->type = MSGPACK_OBJECT_BOOLEAN;
            o->via.boolean = true;
            return literal(r, "true");
        case 'f':
            o->type = MSGPACK_OBJECT_BOOLEAN;
            o->via.boolean = false;
            return literal(r, "false");
        case 'n':
            o->type = MSGPACK_OBJECT_NIL;
            return literal(r, "null");
        default:
            return read_number(r, o);
    }
}

pd_err pd_json_to_msgpack(const char *text, size_t len, msgpack_packer *pk, char *errbuf,
                          size_t errlen) {
    msgpack_zone z;
    if (!msgpack_zone_init(&z, 4096)) return PD_ERR_NOMEM;
    reader_t r = {.s = text, .len = len, .z = &z};
    msgpack_object o;
    bool ok = read_value(&r, &o, 0);
    if (ok) {
        skip_ws(&r);
        if (r.pos != r.len) ok = fail(&r, "trailing characters");
    }
    pd_err err = PD_OK;
    if (!ok) {
        err = r.nomem ? PD_ERR_NOMEM : PD_ERR_BAD_ARG;
        if (errbuf && errlen) snprintf(errbuf, errlen, "%s at offset %zu", r.err, r.err_pos);
    } else if (msgpack_pack_object(pk, o) != 0) {
        err = PD_ERR_NOMEM;
    }
    msgpack_zone_destroy(&z);
    return err;
}

/* ------------------------------------------------------------- writing */

static void print_string(FILE *f, const char *p, size_t n) {
    fputc('"', f);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)p[i];
        if (ch >= 0x80) {
            size_t k = pd_utf8_len((const unsigned char *)p + i, n - i);
            if (k == 0) {
                fputs("\\ufffd", f); /* not UTF-8: JSON text must be */
            } else {
                fwrite(p + i, 1, k, f);
                i += k - 1;
            }
            continue;
        }
        switch (ch) {
            case '"':
                fputs("\\\"", f);
                break;
            case '\\':
                fputs("\\\\", f);
                break;
            case '\n':
                fputs("\\n", f);
                break;
            case '\r':
                fputs("\\r", f);
                break;
            case '\t':
                fputs("\\t", f);
                break;
            case '\b':
                fputs("\\b", f);
                break;
            case '\f':
                fputs("\\f", f);
                break;
            default:
                if (ch < 0x20)
                    fprintf(f, "\\u%04x", ch);
                else
                    fputc(ch, f);
        }
    }
    fputc('"', f);
}

static void print_hex(FILE *f, const char *p, size_t n) {
    fputc('"', f);
    for (size_t i = 0; i < n; i++) fprintf(f, "%02x", (unsigned char)p[i]);
    fputc('"', f);
}

/* The shortest decimal that reads back as the same double -- or, for a
 * float32 on the wire (ETAs, distances), as the same float: 152.58154,
 * not the float's exact binary value 152.58154296875. */
static void print_double(FILE *f, double d, bool f32) {
    if (!isfinite(d)) {
        fputs("null", f);
        return;
    }
    char buf[40];
    if (d == floor(d) && fabs(d) < 1e15) {
        fprintf(f, "%.0f", d);
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, sizeof(buf), "%.*g", prec, d);
        if (f32 ? strtof(buf, NULL) == (float)d : strtod(buf, NULL) == d) break;
    }
    fputs(buf, f);
}

void pd_json_print(FILE *f, const msgpack_object *o) {
    switch (o->type) {
        case MSGPACK_OBJECT_NIL:
            fputs("null", f);
            break;
        case MSGPACK_OBJECT_BOOLEAN:
            fputs(o->via.boolean ? "true" : "false", f);
            break;
        case MSGPACK_OBJECT_POSITIVE_INTEGER:
            fprintf(f, "%llu", (unsigned long long)o->via.u64);
            break;
        case MSGPACK_OBJECT_NEGATIVE_INTEGER:
            fprintf(f, "%lld", (long long)o->via.i64);
            break;
        case MSGPACK_OBJECT_FLOAT32:
        case MSGPACK_OBJECT_FLOAT64:
            print_double(f, o->via.f64, o->type == MSGPACK_OBJECT_FLOAT32);
            break;
        case MSGPACK_OBJECT_STR:
            print_string(f, o->via.str.ptr, o->via.str.size);
            break;
        case MSGPACK_OBJECT_BIN:
            print_hex(f, o->via.bin.ptr, o->via.bin.size);
            break;
        case MSGPACK_OBJECT_EXT:
            fprintf(f, "{\"ext\":%d,\"hex\":", (int)o->via.ext.type);
            print_hex(f, o->via.ext.ptr, o->via.ext.size);
            fputc('}', f);
            break;
        case MSGPACK_OBJECT_ARRAY:
            fputc('[', f);
            for (uint32_t i = 0; i < o->via.array.size; i++) {
                if (i) fputc(',', f);
                pd_json_print(f, &o->via.array.ptr[i]);
            }
            fputc(']', f);
            break;
        case MSGPACK_OBJECT_MAP:
            fputc('{', f);
            for (uint32_t i = 0; i < o->via.map.size; i++) {
                const msgpack_object_kv *kv = &o->via.map.ptr[i];
                if (i) fputc(',', f);
                if (kv->key.type == MSGPACK_OBJECT_STR) {
                    print_string(f, kv->key.via.str.ptr, kv->key.via.str.size);
                } else {
                    /* JSON keys are strings: print the key as JSON, then quote that. */
                    char *s = NULL;
                    size_t n = 0;
                    FILE *m = open_memstream(&s, &n);
                    if (m) {
                        pd_json_print(m, &kv->key);
                        fclose(m);
                        print_string(f, s, n);
                    } else {
                        fputs("\"\"", f);
                    }
                    free(s);
                }
                fputc(':', f);
                pd_json_print(f, &kv->val);
            }
            fputc('}', f);
            break;
        default:
            fputs("null", f);
    }
}
