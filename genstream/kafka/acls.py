"""A secured cluster's ACLs and SCRAM credentials, derived from ``genstream.kafka.principals``.

``infra/kafka.sh`` uses this module's command line on the three-broker stack:

- ``credentials FILE`` gives ``admin`` and every principal a generated password in FILE
  (``name=password`` lines, mode 0600), keeping those already there; the brokers' storage
  is formatted with them (``kafka-storage format --add-scram``);
- ``apply --bootstrap SERVERS --credentials FILE`` connects as ``admin`` and makes the
  cluster's ACLs those the table implies, no more and no fewer, and adds the SCRAM user of
  a principal the cluster was formatted without.

Tools and tests build a principal's client settings with ``as_principal``.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

# Not exported in the package's stubs:
from confluent_kafka.admin._acl import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
)
from confluent_kafka.admin._resource import ResourcePatternType, ResourceType
from confluent_kafka.admin._scram import (
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialAlteration,
    UserScramCredentialUpsertion,
)
from pydantic import SecretStr

from genstream.kafka.admin import wait_for_brokers
from genstream.kafka.config import KafkaSettings
from genstream.kafka.errors import KafkaKitError
from genstream.kafka.principals import ADMIN, PRINCIPALS, Principal, is_prefix, stem

__all__ = [
    "MECHANISM",
    "PROTOCOL",
    "AclReport",
    "acl_bindings",
    "apply_acls",
    "as_principal",
    "ensure_credentials",
    "read_credentials",
    "stack_credentials",
]

PROTOCOL: Final = "SASL_PLAINTEXT"
"""Loopback only: the stack's brokers listen on 127.0.0.1, so there is no TLS."""
MECHANISM: Final = "SCRAM-SHA-512"
_ITERATIONS: Final = 8192
_TIMEOUT_S: Final = 30.0


def _binding(kind: ResourceType, name: str, principal: str, operation: AclOperation) -> AclBinding:
    pattern = ResourcePatternType.PREFIXED if is_prefix(name) else ResourcePatternType.LITERAL
    return AclBinding(
        kind, stem(name), pattern, f"User:{principal}", "*", operation, AclPermissionType.ALLOW
    )


def _principal_bindings(grant: Principal) -> list[AclBinding]:
    # Read and Write imply Describe; Write on any topic lets an idempotent producer start.
    wanted: list[tuple[ResourceType, Iterable[str], AclOperation]] = [
        (ResourceType.TOPIC, grant.reads, AclOperation.READ),
        (ResourceType.TOPIC, grant.writes, AclOperation.WRITE),
        (ResourceType.GROUP, grant.groups, AclOperation.READ),
        (ResourceType.GROUP, grant.watches, AclOperation.DESCRIBE),
        (ResourceType.TOPIC, grant.owns, AclOperation.CREATE),
        (ResourceType.TOPIC, grant.owns, AclOperation.READ),
        (ResourceType.TOPIC, grant.owns, AclOperation.WRITE),
        (ResourceType.TRANSACTIONAL_ID, grant.transactional_ids, AclOperation.WRITE),
    ]
    return [
        _binding(kind, name, grant.name, operation)
        for kind, names, operation in wanted
        for name in sorted(names)
    ]


def acl_bindings(principals: Iterable[Principal] | None = None) -> list[AclBinding]:
    """The ACLs that allow each principal what the table says, and nothing else."""
    chosen = PRINCIPALS.values() if principals is None else principals
    return [binding for grant in chosen for binding in _principal_bindings(grant)]


# -- credentials ---------------------------------------------------------------------------


def read_credentials(path: Path) -> dict[str, SecretStr]:
    """``name=password`` lines; blank lines and ``#`` comments are passed over."""
    found: dict[str, SecretStr] = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, password = line.partition("=")
            found[name.strip()] = SecretStr(password.strip())
    return found


def ensure_credentials(path: Path, names: Iterable[str] | None = None) -> list[str]:
    """Gives every name (``admin`` and the table's principals by default) a password in
    ``path``, keeping those there; returns the names added."""
    wanted = [ADMIN, *PRINCIPALS] if names is None else list(names)
    known = read_credentials(path) if path.exists() else {}
    added = [name for name in wanted if name not in known]
    if added or not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = [f"{name}={secret.get_secret_value()}" for name, secret in known.items()]
        # Hex only: the value goes inside kafka-storage's "[name=..,password=..]" as it is.
        lines += [f"{name}={secrets.token_hex(24)}" for name in added]
        temporary = path.with_suffix(".tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as out:
            out.write("# Kafka SCRAM users of this stack, made by infra/kafka.sh. Never commit.\n")
            out.write("".join(f"{line}\n" for line in lines))
        temporary.replace(path)
    return added


def stack_credentials(var_dir: Path) -> dict[str, SecretStr]:
    """The credentials of the three-broker stack whose data directory is ``var_dir``."""
    return read_credentials(var_dir / "kafka" / "n3" / "credentials")


def as_principal(
    settings: KafkaSettings, name: str, credentials: Mapping[str, SecretStr]
) -> KafkaSettings:
    """``settings`` connecting as ``name`` over SASL/SCRAM."""
    return settings.model_copy(
        update={
            "security_protocol": PROTOCOL,
            "sasl_mechanism": MECHANISM,
            "sasl_username": name,
            "sasl_password": credentials[name],
        }
    )


# -- applying ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AclReport:
    created: int
    deleted: int
    users_added: list[str]


def _every_acl() -> AclBindingFilter:
    # None matches any name, principal and host (the stubs want strings).
    return AclBindingFilter(
        ResourceType.ANY,
        None,  # type: ignore[arg-type]
        ResourcePatternType.ANY,
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        AclOperation.ANY,
        AclPermissionType.ANY,
    )


def _as_filter(binding: AclBinding) -> AclBindingFilter:
    return AclBindingFilter(
        binding.restype,
        binding.name,
        binding.resource_pattern_type,
        binding.principal,
        binding.host,
        binding.operation,
        binding.permission_type,
    )


def _missing_users(admin: AdminClient, names: Sequence[str]) -> list[str]:
    # Per user when users are named, one future for all when none are.
    futures = admin.describe_user_scram_credentials(list(names), request_timeout=_TIMEOUT_S)
    if not isinstance(futures, dict):
        raise TypeError("describe_user_scram_credentials answered with one future for all")
    missing = []
    for name, future in futures.items():
        try:
            future.result()
        except KafkaException as exc:
            if exc.args[0].name() != "RESOURCE_NOT_FOUND":
                raise
            missing.append(name)
    return missing


def apply_acls(
    settings: KafkaSettings,
    credentials: Mapping[str, SecretStr],
    *,
    principals: Sequence[Principal] | None = None,
    expected_brokers: int = 3,
) -> AclReport:
    """Makes the cluster's ACLs exactly ``acl_bindings(principals)``; ``settings`` must be
    a super user's. A principal without a SCRAM user gets one from ``credentials``."""
    chosen = list(PRINCIPALS.values()) if principals is None else list(principals)
    wait_for_brokers(settings, expected=expected_brokers, timeout_s=90)
    admin = AdminClient(settings.librdkafka("acls"))
    missing = _missing_users(admin, [grant.name for grant in chosen])
    if missing:
        upserts: list[UserScramCredentialAlteration] = [
            UserScramCredentialUpsertion(
                name,
                ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, _ITERATIONS),
                credentials[name].get_secret_value().encode(),
            )
            for name in missing
        ]
        for future in admin.alter_user_scram_credentials(upserts).values():
            future.result()
    wanted = set(acl_bindings(chosen))
    present = set(admin.describe_acls(_every_acl(), request_timeout=_TIMEOUT_S).result())
    stale = [_as_filter(binding) for binding in present - wanted]
    new = sorted(wanted - present, key=str)
    for future in (admin.delete_acls(stale) if stale else {}).values():
        future.result()
    for future in (admin.create_acls(new) if new else {}).values():
        future.result()
    return AclReport(created=len(new), deleted=len(stale), users_added=missing)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m genstream.kafka.acls", description=__doc__.split("\n\n")[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    made = commands.add_parser("credentials", help="generate the passwords missing from FILE")
    made.add_argument("file", type=Path)
    applied = commands.add_parser("apply", help="make the cluster's ACLs those of the table")
    applied.add_argument("--bootstrap", required=True, help="host:port,... of the brokers")
    applied.add_argument("--credentials", required=True, type=Path)
    applied.add_argument("--brokers", type=int, default=3, help="brokers to wait for")
    args = parser.parse_args(argv)
    if args.command == "credentials":
        ensure_credentials(args.file)
        return 0
    credentials = read_credentials(args.credentials)
    base = KafkaSettings(bootstrap_servers=args.bootstrap, client_id="genstream-infra")
    try:
        report = apply_acls(
            as_principal(base, ADMIN, credentials), credentials, expected_brokers=args.brokers
        )
    except (KafkaException, KafkaKitError) as exc:
        print(f"applying the ACLs failed: {exc}", file=sys.stderr)
        return 1
    added = f"; SCRAM users added: {', '.join(report.users_added)}" if report.users_added else ""
    print(
        f"kafka ACLs: {len(PRINCIPALS)} principals, {report.created} created, "
        f"{report.deleted} removed{added}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
