"""Where ClickHouse is: parsed from one URL, with the password kept secret."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

from pydantic import SecretStr

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
TRUE = {"1", "true", "yes", "on"}


def checked_identifier(name: str, what: str = "identifier") -> str:
    """Database/table names cannot be query parameters: validate them instead."""
    if not IDENTIFIER.match(name):
        raise ValueError(f"invalid ClickHouse {what} {name!r}: use letters, digits and _ (max 64)")
    return name


def _alt_hosts(text: str, default_port: int) -> tuple[str, ...]:
    hosts = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        host, _, port = item.rpartition(":") if ":" in item else (item, "", str(default_port))
        if not host or not port.isdigit() or not re.match(r"^[A-Za-z0-9_.-]+$", host):
            raise ValueError(f"alt_hosts entry {item!r} is not host[:port]")
        hosts.append(f"{host}:{port}")
    return tuple(hosts)


@dataclass(frozen=True)
class ClickHouseTarget:
    host: str
    port: int
    database: str
    user: str = "default"
    password: SecretStr = SecretStr("")
    secure: bool = False
    verify: bool = True
    ca_certs: str | None = None  # CA bundle that signed the server's certificate (TLS); None: the system's
    #: Other servers to try, in order, when `host` cannot be reached (`?alt_hosts=h2:9000,h3`):
    #: any server of a cluster serves the Distributed tables, so a down one is not a stop.
    alt_hosts: tuple[str, ...] = ()

    @classmethod
    def from_url(cls, url: str, password: SecretStr | None = None) -> "ClickHouseTarget":
        parts = urlsplit(url)
        if parts.scheme not in ("clickhouse", "clickhouses"):
            raise ValueError(
                f"unsupported ClickHouse URL scheme {parts.scheme!r}: "
                "use clickhouse://user:password@host:9000/database"
            )
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        secure = parts.scheme == "clickhouses" or query.get("secure", "").lower() in TRUE
        database = checked_identifier(parts.path.strip("/") or "journey", "database name")
        url_password = SecretStr(unquote(parts.password)) if parts.password else SecretStr("")
        return cls(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or (9440 if secure else 9000),
            database=database,
            user=unquote(parts.username) if parts.username else "default",
            password=password if password is not None else url_password,
            secure=secure,
            verify=query.get("verify", "true").lower() in TRUE,
            ca_certs=query.get("ca") or None,
            alt_hosts=_alt_hosts(query.get("alt_hosts", ""), 9440 if secure else 9000),
        )

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def __str__(self) -> str:  # never shows the password
        scheme = "clickhouses" if self.secure else "clickhouse"
        alternatives = f"?alt_hosts={','.join(self.alt_hosts)}" if self.alt_hosts else ""
        return f"{scheme}://{self.user}@{self.address}/{self.database}{alternatives}"
