/* fuzz_csv.c -- the CSV importers on arbitrary bytes, with a round trip.
 *
 * paidan-server --load-volunteers and paidan-bench replay read files that
 * people and other tools write, so the reader (data/csv.c) must refuse bad
 * lines with an error and carry on, never crash. This target feeds the
 * bytes to pd_csv_reader_open_mem() as a volunteers or an orders file and
 * reads every record. Each record it accepts is formatted again with
 * pd_csv_format_*() and read back: the reader and the writer must agree,
 * field for field, so a file the server loads is a file it could have
 * written.
 *
 * Input: byte 0 picks the format (even: volunteers, odd: orders); the rest
 * is the file. The skill table is the generator's, first 12 names.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "paidan/data.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                    \
    do {                            \
        if (!(x)) __builtin_trap(); \
    } while (0)

#define N_SKILLS 12

/* Read one record of `kind` from a one-line file: header + line. */
static bool reread(pd_csv_kind kind, const char *line, size_t len, void *out) {
    static char file[PD_CSV_LINE_MAX * 2 + 512];
    const char *hdr = pd_csv_header(kind);
    size_t hl = strlen(hdr);
    CHECK(hl + 1 + len <= sizeof(file));
    memcpy(file, hdr, hl);
    file[hl] = '\n';
    memcpy(file + hl + 1, line, len);
    pd_csv_reader_t *r = NULL;
    pd_err err = pd_csv_reader_open_mem(file, hl + 1 + len, kind, pd_gen_skill_names(NULL),
                                        N_SKILLS, &r, NULL);
    CHECK(err == PD_OK);
    bool got = false;
    if (kind == PD_CSV_VOLUNTEERS)
        err = pd_csv_read_volunteer(r, out, &got);
    else
        err = pd_csv_read_order(r, out, &got);
    pd_csv_reader_close(r);
    return err == PD_OK && got;
}

static void volunteer_round_trip(const pd_volunteer_t *v) {
    char line[PD_CSV_LINE_MAX + 1];
    size_t len = 0;
    pd_err err =
        pd_csv_format_volunteer(v, pd_gen_skill_names(NULL), N_SKILLS, line, sizeof(line), &len);
    CHECK(err == PD_OK);
    pd_volunteer_t w;
    memset(&w, 0, sizeof(w));
    CHECK(reread(PD_CSV_VOLUNTEERS, line, len, &w));
    CHECK(w.id == v->id && w.skills == v->skills && w.tags == v->tags && w.mode == v->mode);
    CHECK(w.capacity == v->capacity && w.status == v->status);
    CHECK(memcmp(&w.week, &v->week, sizeof(w.week)) == 0);
    CHECK(w.pos.lat == v->pos.lat && w.pos.lon == v->pos.lon);
}

static void order_round_trip(const pd_gen_order_t *o) {
    char line[PD_CSV_LINE_MAX + 1];
    size_t len = 0;
    pd_err err =
        pd_csv_format_order(o, pd_gen_skill_names(NULL), N_SKILLS, line, sizeof(line), &len);
    CHECK(err == PD_OK);
    pd_gen_order_t p;
    memset(&p, 0, sizeof(p));
    CHECK(reread(PD_CSV_ORDERS, line, len, &p));
    CHECK(p.id == o->id && p.created_ms == o->created_ms && p.skills == o->skills);
    CHECK(p.need == o->need && p.start_ms == o->start_ms && p.duration_min == o->duration_min);
    CHECK(p.priority == o->priority && p.budget_min == o->budget_min);
    CHECK(p.pos.lat == o->pos.lat && p.pos.lon == o->pos.lon);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    pd_csv_kind kind = (data[0] & 1) ? PD_CSV_ORDERS : PD_CSV_VOLUNTEERS;
    pd_csv_reader_t *r = NULL;
    pd_csv_error_t cerr;
    pd_err err = pd_csv_reader_open_mem((const char *)data + 1, size - 1, kind,
                                        pd_gen_skill_names(NULL), N_SKILLS, &r, &cerr);
    if (err) {
        CHECK(cerr.message[sizeof(cerr.message) - 1] == '\0' || strlen(cerr.message) > 0);
        return 0;
    }
    for (int guard = 0; guard < 100000; guard++) {
        bool got = false;
        if (kind == PD_CSV_VOLUNTEERS) {
            pd_volunteer_t v;
            err = pd_csv_read_volunteer(r, &v, &got);
            if (err == PD_OK && got) volunteer_round_trip(&v);
        } else {
            pd_gen_order_t o;
            err = pd_csv_read_order(r, &o, &got);
            if (err == PD_OK && got) order_round_trip(&o);
        }
        if (err == PD_ERR_IO) break;
        if (err) {
            const pd_csv_error_t *e = pd_csv_reader_get_error(r);
            CHECK(e->code == err);
            CHECK(memchr(e->message, '\0', sizeof(e->message)) != NULL);
            continue;
        }
        if (!got) break;
    }
    pd_csv_reader_close(r);
    return 0;
}
