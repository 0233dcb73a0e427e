/* spec.c -- an order of the generator or of the orders CSV as the engine
 * takes it: the one conversion that the server's import, replay and the
 * micro benchmark share. */
#include <string.h>

#include "paidan/data.h"
#include "paidan/engine.h"

_Static_assert((int)PD_GEN_PRIORITY_NORMAL == (int)PD_PRIORITY_NORMAL &&
                   (int)PD_GEN_PRIORITY_ELEVATED == (int)PD_PRIORITY_ELEVATED &&
                   (int)PD_GEN_PRIORITY_EMERGENCY == (int)PD_PRIORITY_EMERGENCY,
               "the generator's priorities are the engine's");

void pd_gen_order_spec(const pd_gen_order_t *o, pd_order_spec_t *out) {
    memset(out, 0, sizeof *out);
    out->id = o->id;
    out->at = o->pos;
    out->skills = o->skills;
    out->need = o->need;
    out->start_ms = o->start_ms;
    out->duration_min = o->duration_min;
    out->budget_s = o->budget_min * 60;
    out->priority = o->priority < PD_PRIORITY__COUNT ? o->priority : PD_PRIORITY_NORMAL;
    out->mode = PD_OFFER_SEQUENTIAL;
}
