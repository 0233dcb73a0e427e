/* metrics.h -- the Prometheus endpoint of paidan-server (see metrics.c).
 *
 * Private to api/.
 */
#ifndef PAIDAN_API_METRICS_H
#define PAIDAN_API_METRICS_H

#include "server.h"

/**
 * Listen for scrapes on srv->cfg.host:srv->cfg.metrics_port; the address
 * bound goes to addr (the caller announces it).
 * @return PD_ERR_BAD_ARG / PD_ERR_IO as pd_server_listen().
 */
pd_err pd_metrics_start(pd_server_t *srv, char *addr, size_t cap);

/** Close the listener and every scrape in progress. */
void pd_metrics_stop(pd_server_t *srv);

#endif /* PAIDAN_API_METRICS_H */
