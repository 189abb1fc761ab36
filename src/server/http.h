/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The HTTPS front: libevent evhttp over bufferevent_openssl, one event base, evhttp and
 * store connection per worker thread, all accepting on one listening socket. TLS 1.3
 * preferred, 1.2 minimum; client certificates are requested, verified against the
 * server CA when presented, and passed to the API as a fingerprint.
 */
#ifndef PAVISE_SERVER_HTTP_H
#define PAVISE_SERVER_HTTP_H

#include "pavise/err.h"

#include "server.h"

/* Binds srv->cfg.listen, opens one store connection per worker, serves until SIGINT or
 * SIGTERM, then stops accepting, finishes the requests in flight and returns PV_OK.
 * If ready_file is not NULL, "HOST:PORT\n" of the bound address is written to it once
 * the server accepts (so tests can use port 0). */
int http_serve(server *srv, const char *ready_file, pv_err *e);

#endif
