/* methods.c -- the dispatch table and its name lookup (see methods.h). */
#include "methods.h"

#include <string.h>

#include "args.h"

const pd_method_t pd_methods[PD_MID__COUNT] = {
#define PD_METHOD(id, name, flags) {name, sizeof(name) - 1, pd_m_##id, flags},
#include "methods.def"
#undef PD_METHOD
};

/* Open addressing, a power of two at least 4x the methods; -1 = empty. */
#define LOOKUP_SLOTS 128
static signed char lookup[LOOKUP_SLOTS];

_Static_assert(PD_MID__COUNT * 4 <= LOOKUP_SLOTS, "grow LOOKUP_SLOTS");

static uint32_t name_hash(const char *s, size_t n) {
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

void pd_methods_init(void) {
    memset(lookup, -1, sizeof(lookup));
    for (int i = 0; i < PD_MID__COUNT; i++) {
        uint32_t h = name_hash(pd_methods[i].name, pd_methods[i].name_len);
        while (lookup[h & (LOOKUP_SLOTS - 1)] >= 0) h++;
        lookup[h & (LOOKUP_SLOTS - 1)] = (signed char)i;
    }
}

int pd_method_lookup(const char *name, size_t len) {
    uint32_t h = name_hash(name, len);
    for (;;) {
        int i = lookup[h & (LOOKUP_SLOTS - 1)];
        if (i < 0) return -1;
        if (pd_methods[i].name_len == len && memcmp(pd_methods[i].name, name, len) == 0) return i;
        h++;
    }
}

bool pd_method_call_writes(const pd_method_t *m, const msgpack_object *p) {
    if (!(m->flags & PD_M_WRITE)) return false;
    if (!(m->flags & PD_M_WRITE_IF_MARKED)) return true;
    /* a bad value is refused by the handler, and a refusal changes nothing */
    const msgpack_object *o =
        p->type == MSGPACK_OBJECT_MAP ? pd_arg_find(p, "mark_notified") : NULL;
    return o && o->type == MSGPACK_OBJECT_BOOLEAN && o->via.boolean;
}
