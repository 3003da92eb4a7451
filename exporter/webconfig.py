"""`--web.config.file`: TLS and basic auth on the exporter's own endpoints, in the Prometheus
exporter-toolkit format that node_exporter and blackbox_exporter read.

Like the toolkit, the file is looked at again on every request and TLS handshake: when it,
or a certificate, key or CA file it names, has changed on disk, it is re-read, so
certificates and passwords rotate without a restart. A file that no longer loads keeps the
last good settings and is logged once.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import os
import re
import secrets
import ssl
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bcrypt
import yaml
from aiohttp import web

from exporter.logs import FieldLogger
from exporter.validation import ConfigError, Problems, read_text, yaml_problem

log = FieldLogger("exporter.webconfig")

CLIENT_AUTH_TYPES = ("NoClientCert", "VerifyClientCertIfGiven", "RequireAndVerifyClientCert")
# The toolkit's two types that ask for a client certificate without verifying it. Python's
# ssl module always verifies a certificate it asks for, and reaching around it into OpenSSL
# would depend on one CPython build's memory layout: refused with the reason instead.
_UNVERIFIED_CLIENT_AUTH = ("RequestClientCert", "RequireAnyClientCert")
_VERIFYING = {"VerifyClientCertIfGiven", "RequireAndVerifyClientCert"}
TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
# The response headers the toolkit lets http_server_config.headers set.
ALLOWED_HEADERS = (
    "Strict-Transport-Security",
    "X-Content-Type-Options",
    "X-Frame-Options",
    "X-XSS-Protection",
    "Content-Security-Policy",
)
# Toolkit keys of tls_server_config this exporter recognises but cannot honour: refused with
# the reason, not ignored.
_UNSUPPORTED = {
    "cert": "inline certificates are not supported; use cert_file",
    "key": "inline keys are not supported; use key_file",
    "cipher_suites": "is not supported (Python's ssl module uses OpenSSL's defaults)",
    "curve_preferences": "is not supported (Python's ssl module uses OpenSSL's defaults)",
    "prefer_server_cipher_suites": "is not supported (OpenSSL's server preference applies)",
}
_BCRYPT_HASH = re.compile(r"^\$2[aby]?\$(\d\d)\$[./A-Za-z0-9]{53}$")
# Paths a probe must reach without credentials.
OPEN_PATHS = frozenset({"/-/healthy"})
AUTH_CACHE_SIZE = 256


class WebConfigError(ConfigError):
    """Every problem found in a web config file, each with its dotted location."""


@dataclass(frozen=True)
class TLSConfig:
    """tls_server_config."""

    cert_file: str
    key_file: str
    client_auth_type: str = "NoClientCert"
    client_ca_file: str | None = None
    client_allowed_sans: tuple[str, ...] = ()
    min_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2
    max_version: ssl.TLSVersion | None = None

    def files(self) -> tuple[str, ...]:
        """The files this config reads, which are watched for changes."""
        return (self.cert_file, self.key_file, *filter(None, [self.client_ca_file]))


@dataclass(frozen=True)
class WebConfig:
    """The whole web config file."""

    tls: TLSConfig | None = None
    # User name -> bcrypt hash. Never logged or shown.
    users: Mapping[str, bytes] = field(default_factory=dict, repr=False)
    headers: Mapping[str, str] = field(default_factory=dict)


def load_web_config(path: str | os.PathLike[str]) -> WebConfig:
    """Read and validate a web config file; raise WebConfigError naming every problem."""
    return _load(path)[0]


def _load(path: str | os.PathLike[str]) -> tuple[WebConfig, ssl.SSLContext | None]:
    """The validated file and, with TLS, its SSL context: built once, here, so that a bad
    certificate is refused at load and a good one is not loaded twice."""
    try:
        text = read_text(path, "web config file")
    except ConfigError as exc:
        raise WebConfigError(exc.problems) from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise WebConfigError([yaml_problem(exc)]) from None
    v = WebConfigValidator(Path(path).parent)
    config = v.web_config(raw)
    if v.problems:
        raise WebConfigError(v.problems)
    if config.tls is None:
        return config, None
    try:
        return config, build_ssl_context(config.tls)
    except (OSError, ssl.SSLError, ValueError) as exc:
        raise WebConfigError([f"tls_server_config: {_ssl_problem(exc)}"]) from None


def _ssl_problem(exc: Exception) -> str:
    if isinstance(exc, ssl.SSLError):
        return f"cannot load the certificate, key or CA ({exc.reason or exc.strerror})"
    if isinstance(exc, OSError):
        return f"cannot read {exc.filename}: {exc.strerror}"
    return str(exc)


class WebConfigValidator(Problems):
    """The web config file; relative paths in it are relative to `base`, its directory."""

    def __init__(self, base: Path) -> None:
        super().__init__()
        self.base = base

    def path(self, m: dict[str, Any], key: str, where: str) -> str | None:
        value = m.get(key)
        if value is None:
            return None
        if not isinstance(value, str) or not value:
            self.err(f"{where}.{key}", "must be a file path")
            return None
        # Relative paths are relative to the web config file, as in the toolkit.
        return str(self.base / value)

    def web_config(self, raw: Any) -> WebConfig:
        top = (
            self.mapping(raw, "", {"tls_server_config", "basic_auth_users", "http_server_config"})
            or {}
        )
        tls = self.tls(top.get("tls_server_config"), "tls_server_config")
        users = self.users(top.get("basic_auth_users"), "basic_auth_users")
        headers = self.http(top.get("http_server_config"), "http_server_config")
        return WebConfig(tls=tls, users=users, headers=headers)

    def tls(self, node: Any, where: str) -> TLSConfig | None:
        if node is None:
            return None
        m = (
            self.mapping(
                node,
                where,
                {
                    "cert_file",
                    "key_file",
                    "client_auth_type",
                    "client_ca_file",
                    "client_allowed_sans",
                    "min_version",
                    "max_version",
                },
                unsupported=_UNSUPPORTED,
            )
            or {}
        )
        cert, key = self.path(m, "cert_file", where), self.path(m, "key_file", where)
        if cert is None:
            self.err(f"{where}.cert_file", "is required")
        if key is None:
            self.err(f"{where}.key_file", "is required")
        auth = self.client_auth_type(m.get("client_auth_type", "NoClientCert"), where)
        ca = self.path(m, "client_ca_file", where)
        if ca is not None and auth == "NoClientCert":
            self.err(
                f"{where}.client_ca_file",
                "is set but client_auth_type is NoClientCert: client certificates would "
                "not be checked",
            )
        if ca is None and auth in _VERIFYING:
            self.err(f"{where}.client_ca_file", f"is required for {auth}")
        sans = m.get("client_allowed_sans") or []
        if not isinstance(sans, list) or not all(isinstance(s, str) and s for s in sans):
            self.err(f"{where}.client_allowed_sans", "must be a list of names")
            sans = []
        if sans and auth not in _VERIFYING:
            self.err(
                f"{where}.client_allowed_sans",
                "needs a verified client certificate: set client_auth_type to "
                "RequireAndVerifyClientCert (or VerifyClientCertIfGiven)",
            )
        low = self.version(m, "min_version", where) or ssl.TLSVersion.TLSv1_2
        high = self.version(m, "max_version", where)
        if high is not None and high < low:
            self.err(f"{where}.max_version", "is lower than min_version")
        if cert is None or key is None:
            return None
        return TLSConfig(cert, key, auth, ca, tuple(sans), low, high)

    def client_auth_type(self, auth: Any, where: str) -> str:
        if auth in _UNVERIFIED_CLIENT_AUTH:
            self.err(
                f"{where}.client_auth_type",
                f"{auth} is not supported: Python's ssl module verifies every client "
                "certificate it asks for; use VerifyClientCertIfGiven or "
                "RequireAndVerifyClientCert with client_ca_file",
            )
            return "NoClientCert"
        if not isinstance(auth, str) or auth not in CLIENT_AUTH_TYPES:
            self.err(
                f"{where}.client_auth_type",
                f"{auth!r} is not one of {', '.join(CLIENT_AUTH_TYPES)}",
            )
            return "NoClientCert"
        return auth

    def version(self, m: dict[str, Any], key: str, where: str) -> ssl.TLSVersion | None:
        value = m.get(key)
        if value is None:
            return None
        if not isinstance(value, str) or value not in TLS_VERSIONS:
            self.err(f"{where}.{key}", f"{value!r} is not one of {', '.join(TLS_VERSIONS)}")
            return None
        return TLS_VERSIONS[value]

    def users(self, node: Any, where: str) -> dict[str, bytes]:
        if node is None:
            return {}
        if not isinstance(node, dict):
            self.err(where, "must be a mapping of user names to bcrypt hashes")
            return {}
        out = {}
        for user, hashed in node.items():
            if not isinstance(user, str) or not user or ":" in user:
                self.err(where, f"{user!r} is not a valid user name")
                continue
            # The hash is not echoed: a config error message may end up anywhere.
            if not isinstance(hashed, str) or not _BCRYPT_HASH.match(hashed):
                self.err(f"{where}.{user}", 'is not a bcrypt hash (htpasswd -nBC 10 "" ...)')
                continue
            out[user] = hashed.encode()
        return out

    def http(self, node: Any, where: str) -> dict[str, str]:
        m = self.mapping(node, where, {"http2", "headers"}) or {}
        if "http2" in m and not isinstance(m["http2"], bool):
            self.err(f"{where}.http2", "must be true or false")
        headers = m.get("headers") or {}
        if not isinstance(headers, dict):
            self.err(f"{where}.headers", "must be a mapping")
            return {}
        out = {}
        allowed = {h.lower(): h for h in ALLOWED_HEADERS}
        for name, value in headers.items():
            if not isinstance(name, str) or name.lower() not in allowed:
                self.err(f"{where}.headers.{name}", f"is not one of {', '.join(ALLOWED_HEADERS)}")
            elif not isinstance(value, str) or "\n" in value or "\r" in value:
                self.err(f"{where}.headers.{name}", "must be a one-line string")
            else:
                out[allowed[name.lower()]] = value
        return out


# -- TLS -------------------------------------------------------------------------------------


def build_ssl_context(tls: TLSConfig) -> ssl.SSLContext:
    """An SSL context for the server side of `tls`."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = tls.min_version
    if tls.max_version is not None:
        ctx.maximum_version = tls.max_version
    ctx.load_cert_chain(tls.cert_file, tls.key_file)
    if tls.client_ca_file is not None:
        ctx.load_verify_locations(cafile=tls.client_ca_file)
    if tls.client_auth_type == "VerifyClientCertIfGiven":
        ctx.verify_mode = ssl.CERT_OPTIONAL
    elif tls.client_auth_type == "RequireAndVerifyClientCert":
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


class _ReloadingContext(ssl.SSLContext):
    """Handed to the listening socket once; each new connection takes the current context."""

    current: Callable[[], ssl.SSLContext]

    def wrap_bio(self, *args: Any, **kwargs: Any) -> ssl.SSLObject:
        return self.current().wrap_bio(*args, **kwargs)


# -- the live settings -----------------------------------------------------------------------


def _cost(hashed: bytes) -> int:
    match = _BCRYPT_HASH.match(hashed.decode())
    return int(match.group(1)) if match else 10


def _checkpw(password: bytes, hashed: bytes) -> bool:
    try:
        return bcrypt.checkpw(password, hashed)
    except ValueError:  # e.g. a password over bcrypt's 72 bytes: never a match
        return False


def _signature(paths: tuple[str, ...]) -> tuple[object, ...]:
    out: list[object] = []
    for path in paths:
        try:
            st = os.stat(path)
            out.append((st.st_ino, st.st_mtime_ns, st.st_size))
        except OSError:
            out.append(None)
    return tuple(out)


class WebSecurity:
    """The web config in force: re-read when its files change, checked on every request."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.config, self._ssl = _load(path)  # a bad file at start: WebConfigError
        self._watched = self._files(self.config)
        self._seen = _signature(self._watched)
        self._failed: tuple[object, ...] | None = None
        self._dummy_hash = self._make_dummy(self.config)
        self._cache_key = secrets.token_bytes(32)
        self._verified: OrderedDict[bytes, None] = OrderedDict()

    def _files(self, config: WebConfig) -> tuple[str, ...]:
        return (self.path, *(config.tls.files() if config.tls else ()))

    @staticmethod
    def _make_dummy(config: WebConfig) -> bytes:
        # Checked for unknown users, at the cost of the real hashes: same work, same time.
        # A fresh salt and any hash part make a valid hash no password matches; building it
        # costs nothing, where hashing a password would block the loop at every refresh.
        costs = [_cost(hashed) for hashed in config.users.values()]
        return bcrypt.gensalt(max(costs, default=10)) + b"." * 31

    def refresh(self) -> None:
        """Re-read the files if any changed on disk; keep the last good settings otherwise."""
        seen = _signature(self._watched)
        if seen == self._seen or seen == self._failed:
            return
        try:
            config, ctx = _load(self.path)
            if (config.tls is None) != (self.config.tls is None):
                raise WebConfigError(["tls_server_config: turning TLS on or off needs a restart"])
        except WebConfigError as exc:
            self._failed = seen
            log.error(
                "web config not reloaded; keeping the last good one",
                file=self.path,
                problems="; ".join(exc.problems),
            )
            return
        self.config, self._ssl = config, ctx
        self._watched = self._files(config)
        self._seen = _signature(self._watched)
        self._failed = None
        self._dummy_hash = self._make_dummy(config)
        self._verified.clear()
        log.info("web config reloaded", file=self.path)

    # TLS

    def server_ssl_context(self) -> ssl.SSLContext | None:
        """The context to listen with, or None for plain HTTP."""
        if self._ssl is None:
            return None
        proxy = _ReloadingContext(ssl.PROTOCOL_TLS_SERVER)
        proxy.current = self._current_ssl
        return proxy

    def _current_ssl(self) -> ssl.SSLContext:
        self.refresh()
        assert self._ssl is not None
        return self._ssl

    # HTTP

    @web.middleware
    async def middleware(
        self,
        request: web.Request,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        """Basic auth on every path but /-/healthy, allowed SANs, and the configured headers."""
        self.refresh()
        config = self.config
        response: web.StreamResponse
        if not self._san_allowed(request, config):
            response = web.Response(status=403, text="Client certificate not allowed.\n")
        elif (
            config.users
            and request.path not in OPEN_PATHS
            and not await self._authorized(request, config)
        ):
            response = web.Response(
                status=401,
                text="Unauthorized.\n",
                headers={"WWW-Authenticate": "Basic"},
            )
        else:
            response = await handler(request)
        response.headers.update(config.headers)
        return response

    @staticmethod
    def _san_allowed(request: web.Request, config: WebConfig) -> bool:
        if config.tls is None or not config.tls.client_allowed_sans:
            return True
        cert = request.transport.get_extra_info("peercert") if request.transport else None
        if not cert:
            # No verified certificate: only VerifyClientCertIfGiven lets such a client in.
            return False
        names = {value for _, value in cert.get("subjectAltName", ())}
        return bool(names & set(config.tls.client_allowed_sans))

    async def _authorized(self, request: web.Request, config: WebConfig) -> bool:
        header = request.headers.get("Authorization", "")
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, sep, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        if not sep:
            return False
        stored = config.users.get(user)
        # Only successes are cached, keyed on the user, the hash in force and the exact
        # password: a wrong password (or the hash itself sent as one) never matches an entry.
        key = hmac.new(
            self._cache_key,
            b"\0".join([user.encode(), stored or b"", password.encode()]),
            hashlib.sha256,
        ).digest()
        if stored is not None and key in self._verified:
            self._verified.move_to_end(key)
            return True
        # An unknown user costs a bcrypt check too, so timing does not tell who exists.
        ok = await asyncio.to_thread(
            _checkpw, password.encode(), stored if stored is not None else self._dummy_hash
        )
        if ok and stored is not None and config is self.config:
            self._verified[key] = None
            while len(self._verified) > AUTH_CACHE_SIZE:
                self._verified.popitem(last=False)
        return ok and stored is not None
