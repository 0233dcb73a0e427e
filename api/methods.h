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
    PD_M_WRITE = 1u << 1   /* changes engine state */
};

typedef void (*pd_method_fn)(pd_conn_t *c, const msgpack_object *params);

/** One method. */
typedef struct pd_method_s {
    const char *name; /* wire name, e.g. "order.create" */
    size_t name_len;  /* strlen(name) */
    pd_method_fn fn;  /* handler */
    unsigned flags;   /* PD_M_* */
} pd_method_t;

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
