"""Opening a ClickHouse connection with errors that name the address and the fix."""

from __future__ import annotations

from clickhouse_driver import Client
from clickhouse_driver import errors as ch_errors

from sinks.clickhouse.tables import Dialect
from sinks.clickhouse.target import ClickHouseTarget
from sinks.contract import SinkUnavailable

UNREACHABLE = (ch_errors.NetworkError, ch_errors.SocketTimeoutError, OSError, EOFError)


def unreachable_message(target: ClickHouseTarget, exc: BaseException | None = None) -> str:
    tls = tls_problem(target, exc)
    if tls:
        return tls
    detail = f" ({exc.__class__.__name__})" if exc else ""
    return (
        f"cannot reach ClickHouse at {target.address}{detail} — start clickhouse-server "
        "or set JOURNEY_CLICKHOUSE_URL"
    )


def tls_problem(target: ClickHouseTarget, exc: BaseException | None) -> str | None:
    """The cause and the fix when a TLS handshake, not the network, failed."""
    text = str(exc or "")
    if not target.secure or not exc:
        return None
    if "Hostname mismatch" in text or "doesn't match" in text or "IP address mismatch" in text:
        return (f"ClickHouse at {target.address}: its certificate is not valid for {target.host!r} — connect by a "
                "name the certificate lists, in JOURNEY_CLICKHOUSE_URL")
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return (f"ClickHouse at {target.address}: its certificate is signed by a CA this client does not trust — "
                "add ?ca=/path/to/ca.pem to JOURNEY_CLICKHOUSE_URL")
    if "WRONG_VERSION_NUMBER" in text or "wrong version number" in text:
        return (f"ClickHouse at {target.address} does not speak TLS on that port — use its secure port "
                "(tcp_port_secure, 9440 by default) or drop clickhouses:// / ?secure=1")
    return None


def connect(target: ClickHouseTarget, *, timeout_s: float = 30.0, with_database: bool = True) -> Client:
    client = Client(
        host=target.host,
        port=target.port,
        user=target.user,
        password=target.password.get_secret_value(),
        database=target.database if with_database else "default",
        secure=target.secure,
        verify=target.verify,
        **({"ca_certs": target.ca_certs} if target.ca_certs else {}),
        **({"alt_hosts": ",".join(target.alt_hosts)} if target.alt_hosts else {}),
        connect_timeout=min(5.0, timeout_s),
        send_receive_timeout=timeout_s,
        client_name="journey5a",
    )
    try:
        client.execute("SELECT 1")  # connects, authenticates and selects the database
    except ch_errors.ServerException as exc:
        if exc.code == 81:  # UNKNOWN_DATABASE
            raise SinkUnavailable(
                f"ClickHouse at {target.address} has no database {target.database!r} — run `journey migrate`"
            ) from None
        if exc.code in (192, 193, 516):  # unknown user, wrong password, authentication failed
            raise SinkUnavailable(
                f"ClickHouse at {target.address} refused user {target.user!r} — check the user and "
                "JOURNEY_CLICKHOUSE_PASSWORD"
            ) from None
        raise
    except UNREACHABLE as exc:
        raise SinkUnavailable(unreachable_message(target, exc)) from None
    return client


def server_dialect(client: Client) -> Dialect:
    info = client.connection.server_info
    return Dialect((info.version_major, info.version_minor))
