"""A counter a service exports, read from its Prometheus endpoint (``/metrics``)."""

from __future__ import annotations

import urllib.request

from prometheus_client.parser import text_string_to_metric_families

__all__ = ["counter_value", "read_counter"]


def counter_value(exposition: str, name: str) -> float | None:
    """The sum of the samples of counter ``name`` (with its ``_total``) in a text
    exposition; None where there is no such counter."""
    found = None
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name == name:
                found = (found or 0.0) + sample.value
    return found


def read_counter(port: int, name: str, *, timeout_s: float = 5.0) -> float | None:
    """The counter from the endpoint on this machine's ``port``; None where it cannot be
    read or has no such counter."""
    try:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{port}/metrics", timeout=timeout_s
        ) as response:
            text = response.read().decode()
    except OSError:
        return None
    return counter_value(text, name)
