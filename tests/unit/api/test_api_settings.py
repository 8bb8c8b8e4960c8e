"""The API's settings that decide what it exposes: trusted proxies, descriptions, metrics."""

from __future__ import annotations

import base64
import os
import secrets
from typing import Any, Literal

import pytest
from pydantic import SecretStr, ValidationError

from api.settings import ApiSettings, AuthSettings, HttpSettings, PaymentSettings
from api.webhooks.settings import WebhookSettings

Environment = Literal["local", "test", "production"]


def _settings(environment: Environment, **http: Any) -> ApiSettings:
    return ApiSettings(
        _env_file=None,  # type: ignore[call-arg]
        environment=environment,
        api=HttpSettings(**http),
        auth=AuthSettings(jwt_secret=SecretStr(secrets.token_urlsafe(48))),
        payments=PaymentSettings(webhook_secret=SecretStr("whsec_" + secrets.token_urlsafe(24))),
        webhooks=WebhookSettings(
            encryption_key=SecretStr(base64.b64encode(os.urandom(32)).decode())
        ),
    )


@pytest.mark.parametrize(
    ("environment", "enabled", "served"),
    [
        ("local", None, True),
        ("test", None, True),
        ("production", None, False),
        ("production", True, True),
        ("local", False, False),
    ],
)
def test_the_api_description_is_off_in_production_unless_turned_on(
    environment: Environment, enabled: bool | None, served: bool
) -> None:
    assert _settings(environment, docs_enabled=enabled).docs_served is served


def test_trusted_proxies_are_addresses_or_networks() -> None:
    proxies = ("10.0.0.5", "10.1.0.0/16", "fd00::/8", "::1")
    assert _settings("local", trusted_proxies=proxies).api.trusted_proxies == proxies
    for typo in ("10.0.0.256", "proxy.internal", "*"):
        with pytest.raises(ValidationError):
            HttpSettings(trusted_proxies=(typo,))


def test_no_proxy_is_trusted_and_no_metrics_token_is_set_by_default() -> None:
    http = HttpSettings()
    assert http.trusted_proxies == ()
    assert http.metrics_token.get_secret_value() == ""
