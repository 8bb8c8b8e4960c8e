"""The ``genstream`` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from genstream.deadletter_commands import add_deadletter_commands
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

    return run_demo(args.api_url, timeout_s=args.timeout)


def _instant(text: str) -> datetime:
    from genstream.replay import parse_instant

    try:
        return parse_instant(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from None


def _replay_export(args: argparse.Namespace) -> int:
    from genstream.replay import DEFAULT_TOPICS, export_range

    if args.end <= args.start:
        print("--to must be after --from", file=sys.stderr)
        return 2
    exports = export_range(
        StackSettings().kafka,
        start=args.start,
        end=args.end,
        out_dir=args.out,
        topics=[f"{args.topic_prefix}{topic}" for topic in DEFAULT_TOPICS],
    )
    for done in exports:
        print(
            f"{done.topic}: {done.written} event(s) -> {done.path} "
            f"({done.duplicates} duplicate(s) dropped, {done.undecodable} undecodable skipped)"
        )
    print(f"{sum(done.written for done in exports)} event(s) exported")
    return 0


def _replay_rebuild(args: argparse.Namespace) -> int:
    from api.projection.rebuild import (
        RebuildOptions,
        RebuildRefusedError,
        default_workers,
        rebuild,
    )

    options = RebuildOptions(
        group=args.group,
        topic_prefix=args.topic_prefix,
        schema=args.schema,
        swap=args.swap,
        keep_scratch=args.keep_scratch,
        timeout_s=args.timeout,
        workers=args.workers or default_workers(),
    )
    try:
        report = rebuild(StackSettings(), options)
    except RebuildRefusedError as refused:
        print(f"refused: {refused}", file=sys.stderr)
        return 2
    print(
        f"replayed {report.replayed} event(s) of {' and '.join(report.topics)} up to the offsets "
        f"of {args.group!r} into {report.scratch} ({report.unreadable} unreadable record(s))"
    )
    print(
        f"{report.jobs} job(s) rebuilt; in flight, not compared: "
        f"{len(report.in_flight_jobs)} job(s), {len(report.in_flight_users)} user(s)"
    )
    phases = ", ".join(f"{phase} {seconds:.1f}s" for phase, seconds in report.seconds.items())
    print(f"time by phase ({report.shards} shard(s)): {phases}")
    for difference in report.differences[: args.show]:
        print(f"  {difference.what} {difference.key}: {difference.detail}")
    if len(report.differences) > args.show:
        print(f"  … and {len(report.differences) - args.show} more")
    if report.differences:
        print(f"{len(report.differences)} difference(s) from the live read model")
    else:
        print("the rebuilt read model equals the live one")
    if report.swapped is not None:
        counts = report.swapped
        print(
            f"live read model replaced: {counts.events_added} event(s) added, "
            f"{counts.events_removed} removed, {counts.jobs_changed} job(s) changed, "
            f"ledger entries: {counts.ledger_added} added, {counts.ledger_removed} removed"
        )
        return 0
    return 1 if report.differences else 0


def _status(args: argparse.Namespace) -> int:
    import json
    import time

    from contracts.catalog import load_catalog
    from genstream.db import sync_engine
    from genstream.status_screen import render_status
    from genstream.system_status import StatusScope, collect_status

    settings = StackSettings()
    engine = sync_engine(settings.pg)
    scope = StatusScope(topic_prefix=args.topic_prefix)
    try:
        while True:
            with engine.connect() as connection:
                status = collect_status(
                    kafka=settings.kafka, connection=connection, scope=scope, catalog=load_catalog()
                )
            if args.json:
                print(json.dumps(status.model_dump(mode="json"), indent=2))
            else:
                if args.watch:
                    print("\033[H\033[2J", end="")  # clear the terminal between refreshes
                print(render_status(status), flush=True)
            if not args.watch:
                return 0 if status.healthy else 1
            time.sleep(args.watch)
    except KeyboardInterrupt:
        return 0
    finally:
        engine.dispose()


def _admin_grant(args: argparse.Namespace) -> int:
    from sqlalchemy import update

    from genstream.db import sync_engine
    from genstream.db.models import User

    engine = sync_engine(StackSettings().pg)
    try:
        with engine.begin() as connection:
            changed = connection.execute(
                update(User).where(User.email == args.email.strip().lower()).values(role=args.role)
            ).rowcount
    finally:
        engine.dispose()
    if not changed:
        print(f"no account with the email {args.email!r}", file=sys.stderr)
        return 2
    print(f"{args.email}: role {args.role}")
    return 0


def _positive(text: str) -> int:
    number = int(text)
    if number < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number")
    return number


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
    demo = commands.add_parser(
        "demo", help="submit an image and a speech job and watch them through SSE"
    )
    demo.add_argument("--api-url", default="http://127.0.0.1:8000", help="the running API")
    demo.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for both")
    demo.set_defaults(handler=_demo)
    add_deadletter_commands(commands)
    replay = commands.add_parser("replay", help="the event log, replayed").add_subparsers(
        dest="replay_command", required=True
    )
    export = replay.add_parser(
        "export", help="a time range of the lifecycle and the credit ledger, as Parquet"
    )
    export.add_argument(
        "--from", dest="start", required=True, type=_instant, help="ISO 8601; UTC without offset"
    )
    export.add_argument(
        "--to", dest="end", required=True, type=_instant, help="ISO 8601, exclusive"
    )
    export.add_argument("--out", required=True, type=Path, help="directory for the files")
    export.add_argument(
        "--topic-prefix", default="", help="read <prefix>jobs.lifecycle and <prefix>credits.ledger"
    )
    export.set_defaults(handler=_replay_export)
    rebuilt = replay.add_parser(
        "rebuild",
        help="rebuild the read model from the topics into a scratch schema and compare it "
        "with the live one (exit 0 when equal, 1 when not)",
    )
    rebuilt.add_argument(
        "--group", default="genstream-projection", help="the live projection's consumer group"
    )
    rebuilt.add_argument(
        "--topic-prefix", default="", help="read <prefix>jobs.lifecycle and <prefix>credits.ledger"
    )
    rebuilt.add_argument("--schema", help="the live read model's schema (default: the default)")
    rebuilt.add_argument(
        "--swap",
        action="store_true",
        help="then replace the live read model by the rebuilt one (stop the projection first)",
    )
    rebuilt.add_argument("--keep-scratch", action="store_true", help="keep the scratch schema")
    rebuilt.add_argument("--show", type=int, default=20, help="differences listed at most")
    rebuilt.add_argument("--timeout", type=float, default=900.0, help="seconds for the replay")
    rebuilt.add_argument(
        "--workers",
        type=_positive,
        help="processes replaying shares of the partitions (default: one per core)",
    )
    rebuilt.set_defaults(handler=_replay_rebuild)
    status = commands.add_parser(
        "status", help="is it healthy: services, tiers, groups, dead letters, credits"
    )
    status.add_argument("--json", action="store_true", help="the snapshot as JSON, for scripts")
    status.add_argument(
        "--watch", type=float, metavar="SECONDS", help="refresh every SECONDS until interrupted"
    )
    status.add_argument("--topic-prefix", default="", help="topics under this prefix")
    status.set_defaults(handler=_status)
    admin = commands.add_parser("admin", help="operators' accounts").add_subparsers(
        dest="admin_command", required=True
    )
    grant = admin.add_parser("grant", help="make the account with this email an admin")
    grant.add_argument("email")
    grant.set_defaults(handler=_admin_grant, role="admin")
    revoke = admin.add_parser("revoke", help="make an admin an ordinary user again")
    revoke.add_argument("email")
    revoke.set_defaults(handler=_admin_grant, role="user")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code: int = args.handler(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
