/*
 * fuzz_config.c - libFuzzer target: any bytes as a config file. config_load()
 * must return a config or errors, never crash or leak.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char path[64];
	struct config_errors errs;
	struct config *cfg;
	FILE *fp;

	if (!path[0])
		snprintf(path, sizeof(path), "/tmp/parley-fuzz-config.%ld.xml", (long)getpid());
	fp = fopen(path, "w");
	if (!fp)
		return 0;
	fwrite(data, 1, size, fp);
	fclose(fp);
	cfg = config_load(path, &errs);
	if (cfg && errs.count)
		abort();	/* a config is returned only without problems */
	if (!cfg && !errs.count)
		abort();	/* a refusal always says why */
	config_free(cfg);
	config_errors_free(&errs);
	return 0;
}
