/* import.h -- the `import` method, run in slices between other clients'
 * requests (import.c). Private to api/. */
#ifndef PAIDAN_API_IMPORT_H
#define PAIDAN_API_IMPORT_H

#include <msgpack.h>

#include "server.h"

typedef struct pd_import_s pd_import_t;

/** The connection waiting for an import's reply closed: the import goes
 *  on, and its reply is dropped. */
void pd_import_conn_gone(pd_server_t *srv, pd_conn_t *c);

/** Stop a running import (the server stops): what was read stays. */
void pd_import_stop(pd_server_t *srv);

/** Reserve room in the engine for about as many volunteers as the CSV at
 *  `path` holds (from its size), so that loading it does not grow the
 *  per-volunteer arrays on the way. Best effort: a failure is logged. */
void pd_import_reserve_for(pd_server_t *srv, const char *path);

/** `stats`' "import" map: {running[, path, imported, skipped, seconds]}. */
void pd_import_pack_stats(pd_server_t *srv, msgpack_packer *pk);

#endif /* PAIDAN_API_IMPORT_H */
