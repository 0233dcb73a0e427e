/* view.h -- how engine objects look on the wire.
 *
 * Private to api/. One place decides the shape of a volunteer's skills,
 * tags and schedule, of an order with its slots and offers, and of an
 * engine error, so every method answers alike and docs/protocol.md can
 * describe each shape once.
 */
#ifndef PAIDAN_API_VIEW_H
#define PAIDAN_API_VIEW_H

#include <msgpack.h>
#include <stdint.h>

#include "conn.h"
#include "paidan/engine.h"

/** A skill mask as an array of names, bit order. */
void pd_pack_skills(msgpack_packer *pk, const pd_engine_t *e, uint64_t mask);

/** A tag mask as an array of bit numbers, ascending. */
void pd_pack_tags(msgpack_packer *pk, uint64_t mask);

/** A weekly schedule as [[weekday, start_hour, end_hour], ...], runs within each day. */
void pd_pack_week(msgpack_packer *pk, const pd_week_t *w);

/** A hit: {id, eta_s, distance_m, score}; eta_s and distance_m as float32. */
void pd_pack_hit(msgpack_packer *pk, const pd_hit_t *h);

/** Keys pd_pack_order_fields() writes. */
#define PD_ORDER_FIELDS 24

/** An order's own fields, as PD_ORDER_FIELDS key/value pairs of a map
 * (order.get adds its slots and offers, order.list gives them alone). */
void pd_pack_order_fields(msgpack_packer *pk, const pd_order_info_t *oi);

/**
 * Reply with order `id` as a map: its fields, slots and offers. Replies
 * with the engine's error (NOT_FOUND) if it is gone, NOMEM if scratch
 * memory for its offers cannot be had.
 */
void pd_reply_order(pd_conn_t *c, uint64_t id);

/** Reply with an engine error, naming the object ("order 42 not found"). */
void pd_reply_engine_error(pd_conn_t *c, pd_err err, const char *what, uint64_t id);

#endif /* PAIDAN_API_VIEW_H */
