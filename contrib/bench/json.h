/*
 * json.h - the one JSON object the bench prints, written as it goes.
 *
 * The writer keeps only a comma flag per nesting level, so figures are
 * written in the order they are known, from any part of the parent, without
 * building a tree. Keys are NULL inside arrays. Numbers that are not finite
 * are written as null.
 */
#ifndef BENCH_JSON_H
#define BENCH_JSON_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* Writes to f from the top level on; comma: a member was written before. */
void j_start(FILE *f, bool comma);
/* Opens an object ('{') or array ('['), closes it with '}' or ']'. */
void j_open(const char *k, char c);
void j_close(char c);
void j_u64(const char *k, uint64_t v);
/* v with prec decimals. */
void j_num(const char *k, double v, int prec);
void j_str(const char *k, const char *v);
void j_bool(const char *k, bool v);

#endif
