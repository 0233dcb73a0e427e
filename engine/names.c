/* names.c -- names of the engine's enums, for the wire, logs and config.
 *
 * Names are lower-case ASCII and stable: they appear in the protocol and in
 * paidan.ini. Each table is indexed by the enum value.
 */
#include "paidan/engine.h"

#include <string.h>

static const char *const policy_names[PD_POLICY__COUNT] = {"nearest", "balanced", "rated"};
static const char *const priority_names[PD_PRIORITY__COUNT] = {"normal", "elevated", "emergency"};
static const char *const mode_names[PD_OFFER__COUNT] = {"sequential", "grab"};
static const char *const order_state_names[PD_ORDER__COUNT] = {
    "created", "offered", "accepted", "completed", "rated", "cancelled", "expired"};
static const char *const offer_state_names[PD_OFFER__STATE_COUNT] = {
    "live", "accepted", "declined", "expired", "withdrawn", "released"};
static const char *const reason_names[PD_REASON__COUNT] = {
    "none",      "no_candidate", "exhausted",         "cancelled",
    "grab_lost", "order_closed", "volunteer_removed", "withdrew"};
static const char *const event_names[PD_EVENT__COUNT] = {
    "offered",  "accepted", "declined",  "offer_expired", "offer_withdrawn",
    "released", "expired",  "cancelled", "completed",     "rated"};

static const char *name_of(const char *const *tab, unsigned n, unsigned v) {
    return v < n ? tab[v] : NULL;
}

static pd_err parse(const char *const *tab, unsigned n, const char *s, unsigned *out) {
    if (!s) return PD_ERR_BAD_ARG;
    for (unsigned i = 0; i < n; i++) {
        if (strcmp(tab[i], s) == 0) {
            *out = i;
            return PD_OK;
        }
    }
    return PD_ERR_BAD_ARG;
}

const char *pd_policy_name(pd_policy p) {
    return name_of(policy_names, PD_POLICY__COUNT, (unsigned)p);
}

pd_err pd_policy_from_name(const char *s, pd_policy *out) {
    unsigned v;
    pd_err err = parse(policy_names, PD_POLICY__COUNT, s, &v);
    if (err) return err;
    *out = (pd_policy)v;
    return PD_OK;
}

const char *pd_priority_name(pd_priority p) {
    return name_of(priority_names, PD_PRIORITY__COUNT, (unsigned)p);
}

pd_err pd_priority_from_name(const char *s, pd_priority *out) {
    unsigned v;
    pd_err err = parse(priority_names, PD_PRIORITY__COUNT, s, &v);
    if (err) return err;
    *out = (pd_priority)v;
    return PD_OK;
}

const char *pd_offer_mode_name(pd_offer_mode m) {
    return name_of(mode_names, PD_OFFER__COUNT, (unsigned)m);
}

pd_err pd_offer_mode_from_name(const char *s, pd_offer_mode *out) {
    unsigned v;
    pd_err err = parse(mode_names, PD_OFFER__COUNT, s, &v);
    if (err) return err;
    *out = (pd_offer_mode)v;
    return PD_OK;
}

pd_err pd_order_state_from_name(const char *s, pd_order_state *out) {
    unsigned v;
    pd_err err = parse(order_state_names, PD_ORDER__COUNT, s, &v);
    if (err) return err;
    *out = (pd_order_state)v;
    return PD_OK;
}

const char *pd_order_state_name(pd_order_state s) {
    return name_of(order_state_names, PD_ORDER__COUNT, (unsigned)s);
}

const char *pd_offer_state_name(pd_offer_state s) {
    return name_of(offer_state_names, PD_OFFER__STATE_COUNT, (unsigned)s);
}

const char *pd_reason_name(pd_reason r) {
    return name_of(reason_names, PD_REASON__COUNT, (unsigned)r);
}

const char *pd_event_type_name(pd_event_type t) {
    return name_of(event_names, PD_EVENT__COUNT, (unsigned)t);
}
