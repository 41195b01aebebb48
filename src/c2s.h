/*
 * c2s.h - client-to-server streams over TCP (RFC 6120): stream header,
 * features, STARTTLS, SASL, resource binding, then stanzas to the router.
 *
 * Only parleyd.c includes this: sessions reach a c2s stream through its
 * struct stream_ops (stream.h), and the listener through the accept handler
 * c2s_init() registers.
 */
#ifndef PARLEY_C2S_H
#define PARLEY_C2S_H

/* Registers the accept handler of <listen type="c2s">. 0, or -1. */
int c2s_init(void);
/* Closes every stream with <system-shutdown/> (SIGTERM). */
void c2s_shutdown_all(void);
/* Frees every stream, flushed or not (after the loop has stopped). */
void c2s_free_all(void);

#endif
