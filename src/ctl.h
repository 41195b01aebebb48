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

#define CTL_LINE_MAX 4096
#define CTL_ARGS_MAX 8

#endif
