"""The ``genstream`` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from genstream.settings import StackSettings


def _bootstrap(_: argparse.Namespace) -> int:
    from genstream.bootstrap import bootstrap

    report = bootstrap(StackSettings())
    print(
        f"kafka: {report.brokers} broker(s); topics: {report.topics_total} defined, "
        f"{len(report.topics_created)} created; migrations: at head; "
        f"buckets created: {', '.join(report.buckets_created) or 'none (all present)'}"
    )
    return 0


def _topics(_: argparse.Namespace) -> int:
    from contracts import ALL_TOPICS

    for spec in ALL_TOPICS:
        retention = "forever" if spec.retention_ms < 0 else f"{spec.retention_ms // 1000}s"
        print(
            f"{spec.name:32} key={spec.key:8} partitions={spec.partitions:<3} "
            f"{spec.cleanup_policy:8} retention={retention}"
        )
    return 0


def _demo(args: argparse.Namespace) -> int:
    from genstream.demo import run_demo

    return run_demo(StackSettings(), timeout_s=args.timeout)


def _redrive(args: argparse.Namespace) -> int:
    from genstream.redrive import redrive

    report = redrive(StackSettings().kafka, only_topic=args.topic, idle_s=args.idle)
    for topic, count in sorted(report.redriven.items()):
        print(f"{topic}: {count} record(s) sent back")
    print(f"{sum(report.redriven.values())} redriven, {report.skipped} left parked")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="genstream", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    infra = commands.add_parser("infra", help="prepare the running stack").add_subparsers(
        dest="infra_command", required=True
    )
    infra.add_parser(
        "bootstrap", help="create topics, apply migrations, create buckets"
    ).set_defaults(handler=_bootstrap)
    commands.add_parser("topics", help="list the topics genstream defines").set_defaults(
        handler=_topics
    )
    demo = commands.add_parser("demo", help="an event round trip through the real stack")
    demo.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for each step")
    demo.set_defaults(handler=_demo)
    deadletter = commands.add_parser("deadletter", help="parked records").add_subparsers(
        dest="deadletter_command", required=True
    )
    again = deadletter.add_parser("redrive", help="send parked records back to their topics")
    again.add_argument("--topic", help="only records that came from this topic")
    again.add_argument(
        "--idle", type=float, default=2.0, help="stop after this long without records"
    )
    again.set_defaults(handler=_redrive)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code: int = args.handler(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
