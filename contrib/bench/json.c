/*
 * json.c - the JSON writer of the bench's result (see json.h): a few lines of
 * fprintf, so the bench needs no JSON library.
 */
#include <inttypes.h>
#include <math.h>

#include "json.h"

static FILE *J;
static bool j_comma[16];
static int j_depth;

void j_start(FILE *f, bool comma)
{
	J = f;
	j_depth = 0;
	j_comma[0] = comma;
}

static void j_raw_str(const char *s)
{
	fputc('"', J);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			fprintf(J, "\\%c", c);
		else if (c < 0x20)
			fprintf(J, "\\u%04x", c);
		else
			fputc(c, J);
	}
	fputc('"', J);
}

static void j_key(const char *k)
{
	if (j_comma[j_depth])
		fputc(',', J);
	j_comma[j_depth] = true;
	if (k) {
		j_raw_str(k);
		fputc(':', J);
	}
}

void j_open(const char *k, char c)
{
	j_key(k);
	fputc(c, J);
	if (j_depth < 15)
		j_comma[++j_depth] = false;
}

void j_close(char c)
{
	fputc(c, J);
	if (j_depth > 0)
		j_depth--;
}

void j_u64(const char *k, uint64_t v)
{
	j_key(k);
	fprintf(J, "%" PRIu64, v);
}

void j_num(const char *k, double v, int prec)
{
	j_key(k);
	if (isfinite(v))
		fprintf(J, "%.*f", prec, v);
	else
		fputs("null", J);
}

void j_str(const char *k, const char *v)
{
	j_key(k);
	j_raw_str(v);
}

void j_bool(const char *k, bool v)
{
	j_key(k);
	fputs(v ? "true" : "false", J);
}
