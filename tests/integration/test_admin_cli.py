"""``genstream admin grant``: an operator makes an account admin from the command line."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

from genstream.cli import main
from genstream.db import sync_engine
from genstream.db.models import User
from genstream.settings import StackSettings


def test_grant_and_revoke_change_the_role_of_the_account_named(
    stack: StackSettings,
    pg_schema: tuple[Engine, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # libpq reads it: the command's connections land in the test's schema.
    monkeypatch.setenv("PGOPTIONS", f"-csearch_path={pg_schema[1]}")
    engine = sync_engine(stack.pg, schema=pg_schema[1])
    email = f"ops-{uuid.uuid4().hex[:8]}@example.com"
    try:
        with engine.begin() as connection:
            connection.execute(
                text("INSERT INTO users (id, email, plan) VALUES (:id, :email, 'FREE')"),
                {"id": uuid.uuid4(), "email": email},
            )

        def role() -> str:
            with Session(engine) as session:
                return str(session.scalar(select(User.role).where(User.email == email)))

        assert role() == "user"  # every account starts as one
        assert main(["admin", "grant", email.upper()]) == 0
        assert role() == "admin"
        assert main(["admin", "revoke", email]) == 0
        assert role() == "user"
        assert main(["admin", "grant", "nobody@example.com"]) == 2
        assert "no account" in capsys.readouterr().err
    finally:
        engine.dispose()
