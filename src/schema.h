/*
 * schema.h - the SQL migrations compiled into the binary.
 *
 * build-aux/embed-schema.sh turns schema/NNN_name.sql into src/schema_gen.c, which
 * defines the table below in ascending version order. db_migrate() walks it; the
 * highest version is the one this build expects.
 */
#ifndef PARLEY_SCHEMA_H
#define PARLEY_SCHEMA_H

struct schema_migration {
	int version;		/* NNN of the file name */
	const char *name;	/* the name part: "users" for 001_users.sql */
	const char *sql;	/* the whole file; run in one transaction */
};

extern const struct schema_migration schema_migrations[];
extern const unsigned schema_nmigrations;

#endif
