"""How to reach the cluster: URL, basic auth, TLS, timeouts and retries, from flags, env vars or a config file.

Precedence (highest first): explicit values (CLI flags / keyword arguments), environment variables, the
``[opensearch]`` table of a TOML config file, defaults.

``url`` may name several nodes of one cluster, comma-separated (``http://a:9200,http://b:9200``; a TOML list works
too): requests go round-robin, a node that refuses a connection or answers 502/503/504 is set aside, and the request
is retried at once on another node (reads always; writes by the transport's rule, see
:mod:`distilrank.plugin.transport`).

Environment variables: ``OPENSEARCH_URL``, ``OPENSEARCH_USER``, ``OPENSEARCH_PASSWORD``,
``OPENSEARCH_CA_CERT`` (CA bundle, PEM), ``OPENSEARCH_VERIFY_CERTS`` (``false`` turns TLS verification off),
``OPENSEARCH_TIMEOUT`` (seconds), ``OPENSEARCH_RETRIES``.

The password is never printed: :meth:`ConnectionSettings.describe` and ``repr`` redact it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from distilrank.errors import ConfigError, DistilRankError

ENV = {
    "url": "OPENSEARCH_URL",
    "user": "OPENSEARCH_USER",
    "password": "OPENSEARCH_PASSWORD",
    "ca_certs": "OPENSEARCH_CA_CERT",
    "verify_certs": "OPENSEARCH_VERIFY_CERTS",
    "timeout": "OPENSEARCH_TIMEOUT",
    "retries": "OPENSEARCH_RETRIES",
}


@dataclass
class ConnectionSettings:
    """Everything needed to talk to one cluster.

    ``timeout`` is the per-request read timeout in seconds; ``retries`` how many times a request that got
    429/502/503/504 or a connection error is retried, with exponential backoff starting at ``backoff`` seconds
    (doubling, capped at 30 s). ``verify_certs=False`` must be asked for explicitly.
    """

    url: str = "http://localhost:9200"
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_certs: str | None = None
    verify_certs: bool = True
    timeout: float = 60.0
    retries: int = 3
    backoff: float = 0.5

    @property
    def urls(self) -> list[str]:
        """The node URLs of :attr:`url` (one, or several comma-separated)."""
        return [u.strip() for u in self.url.split(",") if u.strip()]

    def describe(self) -> str:
        """One line for logs: URL(s), user and TLS mode; never the password."""
        who = f"{self.user}:***@" if self.user else ""
        nodes = []
        for url in self.urls:
            parsed = urlparse(url)
            nodes.append(f"{parsed.scheme}://{who}{parsed.netloc}{parsed.path}")
        tls = ""
        if self.url.startswith("https"):
            tls = f" (TLS, CA {self.ca_certs})" if self.ca_certs else (" (TLS, system CAs)" if self.verify_certs else " (TLS, verification OFF)")
        return ", ".join(nodes) + tls

    def redacted(self) -> dict[str, Any]:
        """The settings as a dict with the password replaced by ``***`` (for ``--json`` and reports)."""
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        if d["password"]:
            d["password"] = "***"
        return d

    def client(self):
        """An ``opensearchpy.OpenSearch`` client for these settings (its own retries off: the transport retries)."""
        from opensearchpy import OpenSearch

        kw: dict[str, Any] = {"hosts": self.urls, "timeout": self.timeout, "max_retries": 0, "retry_on_timeout": False}
        if self.user:
            kw["http_auth"] = (self.user, self.password or "")
        if self.url.startswith("https"):
            kw.update(use_ssl=True, verify_certs=self.verify_certs, ssl_show_warn=False)
            if self.ca_certs:
                kw["ca_certs"] = self.ca_certs
            if not self.verify_certs:
                kw.update(ssl_assert_hostname=False)
        return OpenSearch(**kw)


def _parse_bool(value: str | bool, where: str) -> bool:
    if isinstance(value, bool):
        return value
    v = str(value).strip().lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off"):
        return False
    raise DistilRankError(f"{where}: expected true/false, got {value!r}")


def _coerce(name: str, value: Any, where: str) -> Any:
    if value is None:
        return None
    if name == "url" and isinstance(value, list | tuple):  # a TOML list of node URLs
        return ",".join(str(v).strip() for v in value)
    try:
        if name in ("timeout", "backoff"):
            out = float(value)
            if out <= 0:
                raise ValueError
            return out
        if name == "retries":
            out = int(value)
            if out < 0:
                raise ValueError
            return out
    except (TypeError, ValueError):
        raise DistilRankError(f"{where}: expected a positive number, got {value!r}") from None
    if name == "verify_certs":
        return _parse_bool(value, where)
    return str(value)


def load_connection(
    config_file: str | Path | None = None,
    *,
    env: dict[str, str] | None = None,
    **overrides: Any,
) -> ConnectionSettings:
    """Merge defaults < config file ``[opensearch]`` < environment < ``overrides`` (``None`` values are ignored).

    Raises :class:`ConfigError` naming the file and key for unknown keys or bad values, and
    :class:`DistilRankError` for a URL without ``http(s)://`` or a CA bundle that does not exist.
    """
    env = os.environ if env is None else env
    known = {f.name for f in fields(ConnectionSettings)}
    values: dict[str, Any] = {}
    if config_file:
        from distilrank.settings import read_toml

        path = Path(config_file)
        table = read_toml(path)
        section = table.get("opensearch", {})
        if not isinstance(section, dict):
            raise ConfigError(path, "opensearch", "must be a table")
        for key, value in section.items():
            if key == "password_env":  # keep secrets out of config files: name the variable instead
                if value not in env:
                    raise ConfigError(path, "opensearch.password_env", f"environment variable {value!r} is not set")
                values["password"] = env[value]
                continue
            if key not in known:
                raise ConfigError(path, f"opensearch.{key}", f"unknown key (known: {', '.join(sorted(known | {'password_env'}))})")
            try:
                values[key] = _coerce(key, value, f"{path}: field 'opensearch.{key}'")
            except DistilRankError as exc:
                raise ConfigError(path, f"opensearch.{key}", str(exc).split(": ", 2)[-1]) from None
    for key, var in ENV.items():
        if env.get(var) not in (None, ""):
            values[key] = _coerce(key, env[var], f"environment variable {var}")
    for key, value in overrides.items():
        if key not in known:
            raise TypeError(f"unknown connection setting {key!r}")
        if value is not None:
            values[key] = _coerce(key, value, f"--{key.replace('_', '-')}")
    settings = ConnectionSettings(**values)
    for url in settings.urls or [settings.url]:
        parsed = urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise DistilRankError(f"cluster URL {url!r} must look like http(s)://host:port (several nodes: comma-separated)")
    if len({urlparse(u).scheme for u in settings.urls}) > 1:
        raise DistilRankError(f"cluster URLs {settings.url!r} mix http and https: the nodes of one cluster use one scheme")
    if settings.ca_certs and not Path(settings.ca_certs).is_file():
        raise DistilRankError(f"CA bundle {settings.ca_certs} does not exist")
    return settings
