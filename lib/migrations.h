/*
 * migrations: the numbered SQL files of sql/, compiled in by
 * cmake/embed_sql.cmake in ascending version order. The store applies every
 * migration whose version is above PRAGMA user_version, at start-up.
 */
#ifndef CONSUMA_MIGRATIONS_H
#define CONSUMA_MIGRATIONS_H

#include <stddef.h>

struct migration {
	int version;      /* the NNN of sql/NNN_name.sql */
	const char *name; /* the file name, for logs */
	const char *sql;  /* the whole file, run as one script */
};

extern const struct migration consuma_migrations[];
extern const size_t consuma_migrations_count;

#endif
