"""``POST /oauth/token``: the ``client_credentials`` grant (RFC 6749 4.4),
served by authlib's ``AuthorizationServer`` behind a thin Starlette adapter,
plus the RFC 8414 metadata and the JWKS the tokens are checked with.

authlib's server is synchronous (its ``query_client`` returns the client
there and then) and has no Starlette integration. The adapter therefore
reads the form and loads the app's record and secret hashes from the
database *before* calling into authlib, and hands authlib that preloaded
record; a database round trip inside authlib would block the event loop.
Everything authlib does afterwards (client authentication, grant and scope
checks, signing the JWT) is CPU work.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any, ClassVar
from urllib.parse import parse_qsl

import orjson
from authlib.oauth2.rfc6749 import (
    AuthorizationServer,
    ClientMixin,
    InvalidClientError,
    InvalidRequestError,
    OAuth2Error,
    OAuth2Request,
    UnauthorizedClientError,
)
from authlib.oauth2.rfc6749.authenticate_client import ClientAuthentication
from authlib.oauth2.rfc6749.grants import ClientCredentialsGrant
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload
from authlib.oauth2.rfc6749.util import extract_basic_authorization
from authlib.oauth2.rfc9068 import JWTBearerTokenGenerator
from joserfc.jwk import KeySet
from sqlalchemy.exc import DBAPIError
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from auth.apps import secrets as client_secrets
from auth.apps.issuer import JWKS_PATH, METADATA_PATH, SECRET_CLAIM, TOKEN_PATH, GatewayIssuer
from auth.apps.model import AppSecret, AppStatus, Credentials
from auth.apps.store import AppStore
from auth.dev_issuer import ENV_CLAIM

GRANT = "client_credentials"
AUTH_METHODS = ("client_secret_basic", "client_secret_post")
FORM = "application/x-www-form-urlencoded"
MAX_FIELDS = 20
# RFC 6749 limits error_description to ASCII, so the Mongolian text travels
# beside it in a member of its own, which OAuth clients ignore. The English
# text fills in where authlib leaves error_description out.
DESCRIPTIONS = {
    "invalid_client": ("client authentication failed", "Клиентийн нэвтрэх мэдээлэл буруу байна"),
    "invalid_request": ("the request is malformed", "Хүсэлт буруу бүрдсэн байна"),
    "invalid_scope": (
        "the requested scope is not granted to this app",
        "Хүссэн эрх (scope) энэ аппад олгогдоогүй байна",
    ),
    "unauthorized_client": (
        "the app may not obtain tokens now",
        "Энэ апп одоогоор токен авах эрхгүй (батлагдаагүй эсвэл түр зогссон)",
    ),
    "unsupported_grant_type": (
        "only grant_type=client_credentials is supported",
        "Зөвхөн client_credentials төрлийг дэмжинэ",
    ),
}


class _Client(ClientMixin):  # type: ignore[misc]  # authlib is untyped
    """One request's view of an app: which of its secrets authenticated it."""

    def __init__(self, credentials: Credentials, now: dt.datetime) -> None:
        self.credentials = credentials
        self.app = credentials.app
        self.now = now
        self.secret: AppSecret | None = None

    def get_client_id(self) -> str:
        return self.app.client_id

    def check_client_secret(self, client_secret: str) -> bool:
        self.secret = client_secrets.verify(self.credentials, client_secret, self.now)
        return self.secret is not None

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return endpoint == "token" and method in AUTH_METHODS

    def check_grant_type(self, grant_type: str) -> bool:
        if self.app.status is not AppStatus.ACTIVE:
            # Authenticated, so the app may learn its own status.
            raise UnauthorizedClientError(f"the app is {self.app.status.value.lower()}")
        return grant_type == GRANT

    def get_allowed_scope(self, scope: str | None) -> str | None:
        """None requested: everything the app may have; more than that: refused."""
        requested = set((scope or "").split())
        if not requested:
            return " ".join(sorted(self.app.scopes))
        if not requested <= self.app.scopes:
            return None  # authlib answers invalid_scope
        return " ".join(sorted(requested))


class _TokenRequest(OAuth2Request):  # type: ignore[misc]
    def __init__(
        self, uri: str, headers: Headers, form: dict[str, str], client: _Client | None
    ) -> None:
        super().__init__("POST", uri, headers=headers)
        self.payload = BasicOAuth2Payload(form)
        self._form = form
        self.preloaded = client

    @property
    def form(self) -> dict[str, str]:
        return self._form


class _Tokens(JWTBearerTokenGenerator):  # type: ignore[misc]
    def __init__(self, issuer: GatewayIssuer) -> None:
        super().__init__(issuer.url, alg="RS256", expires_generator=issuer.lifetime)
        self.gateway = issuer

    def get_jwks(self) -> KeySet:
        return KeySet([self.gateway.key])  # the key's kid goes into the header

    def get_audiences(self, client: _Client, user: object, scope: str) -> str:
        return self.gateway.audience

    def get_extra_claims(
        self, client: _Client, grant_type: str, user: object, scope: str
    ) -> dict[str, str]:
        assert client.secret is not None  # authenticated by one of its secrets
        return {
            ENV_CLAIM: client.app.environment.value.lower(),
            SECRET_CLAIM: client.secret.id,
        }


class _Server(AuthorizationServer):  # type: ignore[misc]
    def __init__(self, issuer: GatewayIssuer) -> None:
        super().__init__()
        self.register_grant(_Grant)
        self.register_token_generator("default", _Tokens(issuer))

    def create_oauth2_request(self, request: _TokenRequest) -> _TokenRequest:
        return request  # built by the adapter

    def authenticate_client(
        self, request: _TokenRequest, methods: list[str], endpoint: str = "token"
    ) -> _Client:
        """Against the record loaded for this request, never a shared lookup."""
        preloaded = request.preloaded

        def query_client(client_id: str) -> _Client | None:
            return preloaded if preloaded and preloaded.get_client_id() == client_id else None

        try:
            client: _Client = ClientAuthentication(query_client)(request, methods, endpoint)
        except InvalidClientError as exc:
            # One answer for an unknown client and a wrong secret, always
            # 401 with a Basic challenge (RFC 6749 5.2).
            raise InvalidClientError(
                status_code=401, description="client authentication failed"
            ) from exc
        return client

    def send_signal(self, name: str, *args: object, **kwargs: object) -> None:
        pass  # authlib's hook for framework signals; nothing listens

    def save_token(self, token: dict[str, Any], request: _TokenRequest) -> None:
        pass  # self-contained JWTs; revocation goes through the app's secret

    def handle_response(
        self, status: int, body: dict[str, Any], headers: list[tuple[str, str]]
    ) -> Response:
        if body.get("error") in DESCRIPTIONS:
            english, mongolian = DESCRIPTIONS[body["error"]]
            body = {"error_description": english, **body, "error_description_mn": mongolian}
        return Response(orjson.dumps(body), status_code=status, headers=dict(headers))


class _Grant(ClientCredentialsGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = list(AUTH_METHODS)


def _error(server: _Server, error: OAuth2Error) -> Response:
    response: Response = server.handle_response(*error())
    return response


class TokenEndpoint:
    def __init__(
        self,
        issuer: GatewayIssuer,
        store: AppStore,
        scopes_supported: Callable[[], list[str]],
    ) -> None:
        self.issuer = issuer
        self.store = store
        self.scopes_supported = scopes_supported
        self.server = _Server(issuer)

    def routes(self) -> list[BaseRoute]:
        return [
            Route(TOKEN_PATH, self.token, methods=["POST"]),
            Route(JWKS_PATH, self.jwks, methods=["GET"]),
            Route(METADATA_PATH, self.metadata, methods=["GET"]),
        ]

    async def token(self, request: Request) -> Response:
        try:
            form = await _form(request)
            client_id = _claimed_client(request.headers, form)
        except InvalidRequestError as exc:
            return _error(self.server, exc)
        try:
            credentials = await self.store.credentials(client_id) if client_id else None
        except (DBAPIError, OSError):
            # Not the client's fault, and nothing it sent is wrong: try later.
            return JSONResponse(
                {"error": "temporarily_unavailable",
                 "error_description": "the app registry cannot be read now",
                 "error_description_mn": "Аппын бүртгэлийг одоо унших боломжгүй байна"},
                status_code=503,
                headers={"Retry-After": "5", "Cache-Control": "no-store"},
            )  # fmt: skip
        client = _Client(credentials, self.store.clock()) if credentials else None
        # The issuer's URL, not the request's: behind a TLS-terminating proxy
        # the request arrives as http, and authlib refuses non-TLS URLs.
        oauth = _TokenRequest(self.issuer.token_endpoint, request.headers, form, client)
        response: Response = self.server.create_token_response(oauth)
        return response

    async def jwks(self, request: Request) -> Response:
        return JSONResponse(self.issuer.jwks(), headers={"Cache-Control": "max-age=300"})

    async def metadata(self, request: Request) -> Response:
        """RFC 8414. No authorization endpoint exists, so no response types."""
        return JSONResponse(
            {
                "issuer": self.issuer.url,
                "token_endpoint": self.issuer.token_endpoint,
                "jwks_uri": self.issuer.jwks_uri,
                "grant_types_supported": [GRANT],
                "response_types_supported": [],
                "token_endpoint_auth_methods_supported": list(AUTH_METHODS),
                "scopes_supported": self.scopes_supported(),
            },
            headers={"Cache-Control": "max-age=300"},
        )


async def _form(request: Request) -> dict[str, str]:
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != FORM:
        raise InvalidRequestError(f"the request body must be {FORM}")
    try:
        pairs = parse_qsl(
            (await request.body()).decode("utf-8"),
            keep_blank_values=True,
            max_num_fields=MAX_FIELDS,
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidRequestError("the request body is not a valid form") from exc
    form: dict[str, str] = {}
    for name, value in pairs:
        if name in form:  # RFC 6749 3.2: no parameter more than once
            raise InvalidRequestError(f"'{name}' is repeated")
        form[name] = value
    return form


def _claimed_client(headers: Mapping[str, str], form: Mapping[str, str]) -> str | None:
    try:
        basic_id, _ = extract_basic_authorization(headers)
    except UnicodeDecodeError as exc:  # authlib decodes the Basic credentials as UTF-8
        raise InvalidRequestError("the Basic credentials are not UTF-8") from exc
    if basic_id and "client_secret" in form:
        # RFC 6749 2.3: a client MUST NOT use more than one authentication method.
        raise InvalidRequestError("use one client authentication method, not two")
    client_id = basic_id or form.get("client_id")
    return str(client_id) if client_id else None
