"""What can go wrong between the index and a PostgreSQL server, each as a message for the user: what, where,
and the fix. All derive from `index.errors.IndexStoreError`, so the CLI prints them (exit 1), the UI's API shows
them and `rag eval` reports them, without knowing this backend.

`translate` turns a psycopg exception into one of these; the connection string is shown without its password.
"""

from __future__ import annotations

from index.errors import IndexStoreError

URL_FIX = ("correct index.postgres_url (RAG_INDEX__POSTGRES_URL), or leave it empty to use the embedded server "
           "under the index directory")


class PostgresError(IndexStoreError):
    """Any problem of the PostgreSQL backend the user has to act on."""


class PostgresUnreachable(PostgresError):
    """No server answers at the configured address."""


class PostgresAuthFailed(PostgresError):
    """The server refused the user name or password."""


class PgvectorMissing(PostgresError):
    """The database lacks the pgvector extension and this user cannot create it."""


class DimensionMismatch(PostgresError):
    """The stored vectors have another width than the embedding model makes."""


class SchemaTooNew(PostgresError):
    """The schema was written by a newer version of this program."""


def redact(dsn: str) -> str:
    """The server, port, database and user of `dsn`, never its password."""
    try:
        from psycopg.conninfo import conninfo_to_dict

        parts = conninfo_to_dict(dsn)
    except Exception:  # an unparsable DSN: say so rather than echo a possible password
        return "(an unparsable postgres_url)"
    host = parts.get("host") or "localhost"
    where = f"socket {host}" if str(host).startswith("/") else f"{host}:{parts.get('port') or 5432}"
    return f"{where}, database {parts.get('dbname') or parts.get('user') or '(default)'}, user " \
           f"{parts.get('user') or '(default)'}"


def translate(exc: Exception, dsn: str) -> PostgresError:
    """A psycopg error as the message that says what happened, where, and what to do."""
    where = redact(dsn)
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[-1 if "FATAL" in str(exc) else 0]
    text = str(exc).lower()
    if "password authentication failed" in text or "no password supplied" in text or \
            "authentication failed" in text:
        return PostgresAuthFailed(f"PostgreSQL at {where} refused the credentials ({first.strip()}). Fix: correct "
                                  f"the user and password in index.postgres_url, or in PGPASSWORD / ~/.pgpass.")
    if "does not exist" in text and "database" in text:
        return PostgresError(f"PostgreSQL at {where}: {first.strip()}. Fix: create it (`createdb NAME`) or "
                             f"{URL_FIX}.")
    if "read-only transaction" in text or "during recovery" in text:
        return PostgresError(f"PostgreSQL at {where} is a read-only replica ({first.strip()}). Fix: run `rag "
                             f"index` (and the first start of a new index) against the primary server's URL; "
                             f"replicas only answer questions.")
    if "permission denied" in text:
        return PostgresError(f"PostgreSQL at {where} refused an operation to this user ({first.strip()}). Fix: "
                             f"grant it, e.g. `GRANT CREATE ON DATABASE <db> TO <user>;` so it can create the "
                             f"index's schema, or have an owner create the schema named by index.postgres_schema "
                             f"and grant it to this user.")
    if any(s in text for s in ("connection refused", "could not connect", "timeout expired", "no such file",
                               "could not translate host name", "network is unreachable", "connection failed",
                               "server closed the connection", "terminating connection")):
        return PostgresUnreachable(f"Cannot reach PostgreSQL at {where} ({first.strip()}). Fix: start the server "
                                   f"or check the network, or {URL_FIX}.")
    return PostgresError(f"PostgreSQL at {where} failed: {first.strip()}. Fix: check the server log; if the index "
                         f"is damaged run `rag index --check`.")
