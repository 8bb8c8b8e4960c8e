"""``genstream deadletter``: list, show, redrive and re-run what sits on the dead-letter topic.

``list`` and ``show`` read outside any consumer group, so they never move a redrive's
progress. ``rerun`` re-runs failed jobs wherever they sit on the topic: a re-run is keyed by
the failed job, so asking twice makes one.
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from contracts import (
    DEADLETTER,
    JOBS_REQUESTED,
    Envelope,
    TopicSpec,
    encode,
    kafka_headers,
    partition_key,
)
from genstream.kafka.config import KafkaSettings
from genstream.settings import StackSettings

__all__ = ["add_deadletter_commands", "parse_since", "render_line"]

_RELATIVE: Final = re.compile(r"^(\d+)([smhd])$")
_UNITS: Final = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
_SHOWN_BYTES: Final = 64 * 1024


def parse_since(text: str, *, now: datetime | None = None) -> datetime:
    """``15m``, ``2h``, ``3d`` (that long ago) or an ISO 8601 instant (UTC without offset)."""
    from genstream.replay import parse_instant

    relative = _RELATIVE.match(text)
    if relative is not None:
        amount, unit = int(relative.group(1)), _UNITS[relative.group(2)]
        return (now or datetime.now(UTC)) - timedelta(**{unit: amount})
    try:
        return parse_instant(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a duration (15m, 2h, 3d) or an ISO 8601 time: {text!r}"
        ) from None


def _filter_arguments(command: argparse.ArgumentParser) -> None:
    command.add_argument("--topic", help="only records that came from this topic")
    command.add_argument(
        "--reason", help="only this reason (as genstream status names it), or errors containing it"
    )
    command.add_argument("--job", help="only records of this job (the record key)")
    command.add_argument(
        "--since", type=parse_since, help="parked at or after: 15m, 2h, 3d or an ISO 8601 time"
    )
    command.add_argument("--until", type=parse_since, help="parked before: as --since")
    command.add_argument("--topic-prefix", default="", help="the dead-letter topic's prefix")


def _selected(args: argparse.Namespace, *, position: str | None = None) -> Iterator[Any]:
    from genstream.kafka.parked import ParkedFilter, read_parked

    wanted = ParkedFilter(topic=args.topic, reason=args.reason, job_id=args.job, position=position)
    topic = DEADLETTER.prefixed(args.topic_prefix).name
    for record in read_parked(StackSettings().kafka, topic, since=args.since, until=args.until):
        if wanted.matches(record):
            yield record


def _summary(record: Any) -> dict[str, Any]:
    return {
        "position": record.position,
        "parked_at": record.parked_at.isoformat(),
        "topic": record.origin,
        "reason": record.reason,
        "key": record.key.decode(errors="replace") if record.key is not None else None,
        "event_type": record.event_type,
        "consumer": record.consumer,
        "failed_job": record.failed_job,
        "error": record.error,
    }


def render_line(summary: dict[str, Any]) -> str:
    """One parked record on one line of ``genstream deadletter list``."""
    parked = summary["parked_at"][:19].replace("T", " ")
    return (
        f"{summary['position']:>9}  {parked}  {summary['topic'] or '-':28} "
        f"{summary['reason']:24} {summary['key'] or '-':38} {summary['consumer'] or '-'}"
    )


def _list(args: argparse.Namespace) -> int:
    shown = 0
    if not args.json:
        print(
            f"{'position':>9}  {'parked (UTC)':19}  {'from topic':28} {'reason':24} "
            f"{'key':38} consumer"
        )
    for record in _selected(args):
        summary = _summary(record)
        print(json.dumps(summary) if args.json else render_line(summary))
        shown += 1
        if shown >= args.limit:
            break
    if not args.json:
        print(f"{shown} record(s)" + (f" (--limit {args.limit})" if shown >= args.limit else ""))
    return 0


def _value_text(value: bytes | None) -> Any:
    if value is None:
        return None
    try:
        return json.loads(value[:_SHOWN_BYTES])
    except ValueError:
        return value[:_SHOWN_BYTES].decode("utf-8", "backslashreplace")


def _show(args: argparse.Namespace) -> int:
    found = 0
    for record in _selected(args, position=args.position):
        document = {
            **_summary(record),
            "headers": {
                name: value.decode("utf-8", "backslashreplace") for name, value in record.headers
            },
            "value": _value_text(record.value),
            "value_bytes": len(record.value or b""),
        }
        print(json.dumps(document, indent=2, ensure_ascii=False))
        found += 1
        if found >= args.limit:
            break
    if not found:
        print("no parked record matches", flush=True)
        return 1
    return 0


class _DurableSender:
    """Sends one event at a time, idempotent and acknowledged by all in-sync replicas."""

    def __init__(self, settings: KafkaSettings) -> None:
        from confluent_kafka import Producer

        self._producer = Producer(settings.producer_config("rerun"))

    def send_and_wait(self, spec: TopicSpec, envelope: Envelope[Any], *, timeout_s: float) -> None:
        self._producer.produce(
            spec.name,
            value=encode(envelope),
            key=partition_key(envelope, spec),
            headers=list[tuple[str, str | bytes | None]](kafka_headers(envelope)),
        )
        if self._producer.flush(timeout_s) != 0:
            raise RuntimeError(f"{spec.name} did not acknowledge the re-run's request")

    def close(self) -> None:
        self._producer.flush(30)


def _rerunner(topic_prefix: str) -> Any:
    from genstream.db import sync_engine
    from genstream.rerun import rerun_failed

    settings = StackSettings()
    engine = sync_engine(settings.pg)
    sender = _DurableSender(settings.kafka)
    requested = JOBS_REQUESTED.prefixed(topic_prefix)

    def rerun(job_id: str) -> Any:
        return rerun_failed(engine, sender, job_id, topic=requested)

    def close() -> None:
        sender.close()
        engine.dispose()

    return rerun, close


def _print_reruns(reruns: list[Any]) -> None:
    for done in reruns:
        target = f" -> {done.job_id}" if done.job_id else ""
        print(f"{done.original}: {done.how}{target}")
    made = sum(1 for done in reruns if done.how == "created")
    print(f"{made} re-run(s) made, {len(reruns) - made} not made again or not failed")


def _redrive(args: argparse.Namespace) -> int:
    from genstream.redrive import redrive

    rerun, close = _rerunner(args.topic_prefix) if args.rerun_failed else (None, None)
    try:
        report = redrive(
            StackSettings().kafka,
            only_topic=args.topic,
            deadletter=DEADLETTER.prefixed(args.topic_prefix),
            idle_s=args.idle,
            rerun=rerun,
        )
    finally:
        if close is not None:
            close()
    for topic, count in sorted(report.redriven.items()):
        print(f"{topic}: {count} record(s) sent back")
    print(f"{sum(report.redriven.values())} redriven, {report.skipped} left parked")
    if args.rerun_failed:
        _print_reruns(report.reruns)
    elif report.failed_jobs:
        print(
            f"{report.failed_jobs} failed job(s) left parked: "
            "genstream deadletter rerun (or redrive --rerun-failed) re-runs them"
        )
    return 0


def _rerun(args: argparse.Namespace) -> int:
    rerun, close = _rerunner(args.topic_prefix)
    reruns = []
    seen: set[bytes] = set()
    try:
        for record in _selected(args):
            if not record.failed_job or record.key is None or record.key in seen:
                continue
            seen.add(record.key)
            reruns.append(rerun(record.key.decode(errors="replace")))
    finally:
        close()
    _print_reruns(reruns)
    return 0


def add_deadletter_commands(commands: Any) -> None:
    """Adds ``deadletter list|show|redrive|rerun`` to the command line's subparsers."""
    deadletter = commands.add_parser("deadletter", help="parked records").add_subparsers(
        dest="deadletter_command", required=True
    )
    listed = deadletter.add_parser("list", help="parked records, one a line, oldest first")
    _filter_arguments(listed)
    listed.add_argument("--limit", type=int, default=200, help="records listed at most")
    listed.add_argument("--json", action="store_true", help="one JSON object a line")
    listed.set_defaults(handler=_list)
    shown = deadletter.add_parser(
        "show", help="parked records in full: headers, where from, why, and the value"
    )
    shown.add_argument("position", nargs="?", help="partition:offset, as list prints it")
    _filter_arguments(shown)
    shown.add_argument("--limit", type=int, default=1, help="records shown at most")
    shown.set_defaults(handler=_show)
    again = deadletter.add_parser(
        "redrive", help="send parked records back to their topics (each once)"
    )
    again.add_argument("--topic", help="only records that came from this topic")
    again.add_argument(
        "--idle", type=float, default=2.0, help="stop after this long without records"
    )
    again.add_argument(
        "--rerun-failed",
        action="store_true",
        help="re-run the failed jobs met: new jobs with their own ids, charged once",
    )
    again.add_argument("--topic-prefix", default="", help="the dead-letter topic's prefix")
    again.set_defaults(handler=_redrive)
    rerun = deadletter.add_parser(
        "rerun",
        help="re-run failed jobs parked on the topic: new jobs with their own ids, charged "
        "once; asking again makes no second re-run",
    )
    _filter_arguments(rerun)
    rerun.set_defaults(handler=_rerun)
