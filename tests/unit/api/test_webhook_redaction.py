"""Webhook URLs as logs show them: scheme, host, port and path; never the query."""

from __future__ import annotations

import pytest

from api.webhooks.redaction import redacted_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://hooks.example.com/in?token=s3cret", "https://hooks.example.com/in?[redacted]"),
        (
            "https://hooks.example.com:8443/a/b?x=1&y=2",
            "https://hooks.example.com:8443/a/b?[redacted]",
        ),
        ("http://[2001:db8::1]:8080/hook?k=v", "http://[2001:db8::1]:8080/hook?[redacted]"),
        ("https://Hooks.Example.com/in#section", "https://hooks.example.com/in"),
        ("https://hooks.example.com/in", "https://hooks.example.com/in"),
        ("https://hooks.example.com", "https://hooks.example.com"),
        ("https://user:pw@hooks.example.com/in", "https://hooks.example.com/in"),
    ],
)
def test_the_query_is_never_shown(url: str, shown: str) -> None:
    assert redacted_url(url) == shown
