/*
 * ctl.h - the control socket parleyctl talks to.
 *
 * A Unix stream socket (mode 0600, path from <control socket>). A request is one
 * line: "FORMAT\tCOMMAND\tARG...\n" with FORMAT "text" or "json" and the fields
 * separated by tabs. The answer is "OK\n" or "ERR\n", then the body in the
 * requested format, then the daemon closes the connection.
 */
#ifndef PARLEY_CTL_H
#define PARLEY_CTL_H

#include "config.h"

int ctl_start(const struct config *cfg);
void ctl_stop(void);

struct module;
/* The registry of module commands (module_command): module_unload drops an
 * instance's. */
void ctl_commands_remove(struct module *m);

/* A command of a core subsystem that is not the control socket's own (s2s:
 * `parleyctl s2s`), registered at start-up so ctl.c names no transport. fn
 * writes the whole reply to out, text or, with json, one JSON object with
 * "ok", and returns 0, or -1 for a failure (ERR). At most CTL_CORE_MAX words;
 * -1 when full; registering the same word and fn again is a no-op. */
struct evbuffer;
typedef int (*ctl_core_fn)(struct evbuffer *out, bool json, int argc, char **argv);
#define CTL_CORE_MAX 8
int ctl_register(const char *word, ctl_core_fn fn);
/* A JSON string, quoted and escaped, for such a reply. */
void ctl_json_str(struct evbuffer *out, const char *s);

#define CTL_LINE_MAX 4096
#define CTL_ARGS_MAX 8

#endif
