from __future__ import annotations

import pytest

from contracts import InvalidTraceparentError, TraceParent, child_traceparent, new_traceparent
from contracts.traceparent import checked_traceparent, parse_traceparent

VALID = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_parse_and_format_round_trip() -> None:
    parsed = parse_traceparent(VALID)
    assert parsed == TraceParent(
        trace_id="4bf92f3577b34da6a3ce929d0e0e4736", parent_id="00f067aa0ba902b7", flags=1
    )
    assert parsed.sampled
    assert parsed.format() == VALID
    assert str(parsed) == VALID


def test_unsampled_flags() -> None:
    parsed = TraceParent.parse(VALID[:-2] + "00")
    assert not parsed.sampled
    assert parsed.format().endswith("-00")


def test_new_is_valid_and_random() -> None:
    first, second = new_traceparent(), new_traceparent()
    assert TraceParent.parse(first).format() == first
    assert first != second
    assert not TraceParent.new(sampled=False).sampled


def test_child_keeps_the_trace_and_changes_the_span() -> None:
    parent = TraceParent.parse(VALID)
    child = parent.child()
    assert child.trace_id == parent.trace_id
    assert child.flags == parent.flags
    assert child.parent_id != parent.parent_id
    assert child_traceparent(VALID).startswith("00-4bf92f3577b34da6a3ce929d0e0e4736-")


@pytest.mark.parametrize(
    "value",
    [
        "",
        "garbage",
        VALID + "-extra",
        VALID.upper(),
        "01" + VALID[2:],
        "ff" + VALID[2:],
        "00-" + "0" * 32 + "-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-" + "0" * 16 + "-01",
        "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
        "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
        " " + VALID,
    ],
)
def test_malformed_values_are_refused(value: str) -> None:
    with pytest.raises(InvalidTraceparentError):
        TraceParent.parse(value)
    # The check envelopes run agrees with the full parse on every value.
    with pytest.raises(InvalidTraceparentError):
        checked_traceparent(value)


def test_the_check_returns_a_valid_value_as_it_came() -> None:
    assert checked_traceparent(VALID) == VALID == TraceParent.parse(VALID).format()


def test_invalid_fields_are_refused() -> None:
    with pytest.raises(InvalidTraceparentError):
        TraceParent(trace_id="0" * 32, parent_id="00f067aa0ba902b7")
    with pytest.raises(InvalidTraceparentError):
        TraceParent(trace_id="4bf92f3577b34da6a3ce929d0e0e4736", parent_id="x" * 16)
    with pytest.raises(InvalidTraceparentError):
        TraceParent(trace_id="4bf92f3577b34da6a3ce929d0e0e4736", parent_id="1" * 16, flags=256)


def test_it_is_a_value_error_for_validators() -> None:
    assert issubclass(InvalidTraceparentError, ValueError)
