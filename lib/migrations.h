/*
 * migrations: the numbered SQL files of sql/<backend>/, compiled in by
 * cmake/embed_sql.cmake in ascending version order, one array per backend.
 * The store applies every migration above the database's recorded version
 * at start-up (SQLite: PRAGMA user_version; PostgreSQL: a table of its own).
 */
#ifndef CONSUMA_MIGRATIONS_H
#define CONSUMA_MIGRATIONS_H

#include <stddef.h>

struct migration {
	int version;      /* the NNN of sql/<backend>/NNN_name.sql */
	const char *name; /* the file name, for logs */
	const char *sql;  /* the whole file, run as one script */
};

extern const struct migration consuma_sqlite_migrations[];
extern const size_t consuma_sqlite_migrations_count;
extern const struct migration consuma_pg_migrations[];
extern const size_t consuma_pg_migrations_count;

#endif
