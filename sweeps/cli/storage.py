"""``sweeps storage-proxy``: PgBouncer in front of a sweep's PostgreSQL, for more workers than it has
connections."""

from __future__ import annotations

import signal
from typing import Annotated

import typer

from sweeps.cli.common import Storage, console, fail, reached_storage
from sweeps.engine.storage.pooler import DEFAULT_POOL_SIZE, DEFAULT_PORT


def storage_proxy(
    storage: Storage = None,
    port: Annotated[int, typer.Option(min=1, max=65535, help="where workers connect")] = DEFAULT_PORT,
    listen: Annotated[
        str, typer.Option(help="address to listen on; 0.0.0.0 for workers on other machines")
    ] = "127.0.0.1",
    pool_size: Annotated[
        int, typer.Option(min=1, help="PostgreSQL connections shared by all workers")
    ] = DEFAULT_POOL_SIZE,
    advertise: Annotated[
        str | None, typer.Option(help="host name workers reach this machine by (default: its name)")
    ] = None,
) -> None:
    """Run PgBouncer (transaction pooling) in front of the PostgreSQL study database until Ctrl-C; print the
    --storage URL workers use, which holds hundreds of workers on --pool-size connections."""
    from sweeps.engine.servers import check_storage
    from sweeps.engine.storage.pooler import ProxyError
    from sweeps.engine.storage.pooler import storage_proxy as started
    from sweeps.masking import mask
    from sweeps.tools.servers import interrupt

    try:
        url = reached_storage(storage)
        with started(url, listen=listen, port=port, pool_size=pool_size, advertise=advertise) as proxy:
            check_storage(proxy.url)
            console.print(
                f"storage proxy (pgbouncer, {pool_size} connections to {mask(url)}) on {listen}:{port}\n"
                f"workers: --storage '{mask(proxy.url)}'  (Ctrl-C stops it)",
                highlight=False,
                soft_wrap=True,
            )
            signal.signal(signal.SIGTERM, interrupt)
            code = proxy.wait()
    except (ProxyError, ValueError) as exc:
        raise fail(str(exc)) from None
    except KeyboardInterrupt:
        console.print("storage proxy stopped")
        return
    raise fail(f"pgbouncer exited with {code}", code=1)
