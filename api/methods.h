/* methods.h -- the method table generated from methods.def.
 *
 * Private to api/. pd_methods[] holds one entry per PD_METHOD line, in file
 * order; pd_method_lookup() finds a wire name in a small open-addressing
 * hash built once at start, so dispatch costs one hash of the name and
 * usually one compare.
 */
#ifndef PAIDAN_API_METHODS_H
#define PAIDAN_API_METHODS_H

#include <msgpack.h>
#include <stddef.h>

#include "conn.h"

enum {
    PD_M_NOAUTH = 1u << 0, /* allowed before auth */
    PD_M_WRITE = 1u << 1,  /* changes engine state */
    /* with PD_M_WRITE: a write only when its params set mark_notified to
     * true (match.mobilize), otherwise a read -- served on a full disk,
     * neither journaled nor waiting for a sync */
    PD_M_WRITE_IF_MARKED = 1u << 2
};

typedef void (*pd_method_fn)(pd_conn_t *c, const msgpack_object *params);

/** One method. */
typedef struct pd_method_s {
    const char *name; /* wire name, e.g. "order.create" */
    size_t name_len;  /* strlen(name) */
    pd_method_fn fn;  /* handler */
    unsigned flags;   /* PD_M_* */
} pd_method_t;

/** Whether this call of m, with params p, changes engine state (and so
 *  is journaled and refused on a full disk). */
bool pd_method_call_writes(const pd_method_t *m, const msgpack_object *p);

/* Method ids: PD_MID_ping, PD_MID_order_create, ... */
enum {
#define PD_METHOD(id, name, flags) PD_MID_##id,
#include "methods.def"
#undef PD_METHOD
    PD_MID__COUNT
};

/* Handler prototypes. */
#define PD_METHOD(id, name, flags) void pd_m_##id(pd_conn_t *c, const msgpack_object *params);
#include "methods.def"
#undef PD_METHOD

extern const pd_method_t pd_methods[PD_MID__COUNT];

/** Build the lookup hash; call once before serving. */
void pd_methods_init(void);

/** Method id of a wire name, or -1. */
int pd_method_lookup(const char *name, size_t len);

#endif /* PAIDAN_API_METHODS_H */
