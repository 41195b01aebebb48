/*
 * hostmeta.h - XEP-0156 /.well-known/host-meta and host-meta.json, which tell
 * web clients where the WebSocket and BOSH endpoints are.
 */
#ifndef PARLEY_HOSTMETA_H
#define PARLEY_HOSTMETA_H

/* Registers the two routes on the http listeners (before they start). */
int hostmeta_init(void);

#endif
