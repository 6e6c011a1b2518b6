"""The migration runner against the real PostgreSQL, each test in a schema of its own."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest
from psycopg import sql

from mailroom.db import connect
from mailroom.db.migrate import (
    MigrationError,
    applied_migrations,
    default_directory,
    discover,
    migrate,
    pending_migrations,
)


@pytest.fixture
def empty_schema(base_settings, unique_name):
    """A schema with nothing in it yet, dropped after the test."""
    schema = f"test_{unique_name}"
    with connect(base_settings, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        try:
            yield schema
        finally:
            admin.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


def _copy_migrations(tmp_path: Path) -> Path:
    target = tmp_path / "migrations"
    target.mkdir()
    for path in default_directory().glob("*.sql"):
        shutil.copy(path, target / path.name)
    return target


def test_migration_files_are_numbered_and_unique() -> None:
    files = discover()
    assert [m.version for m in files] == sorted({m.version for m in files})
    assert files[0].label == "0001_reference_records"
    for m in files:
        # No hard-coded schema: tests apply the files into a schema of their own.
        assert "public." not in m.sql.lower(), m.label


def test_a_stray_or_duplicate_file_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "0001_a.sql").write_text("SELECT 1;")
    (tmp_path / "0001_b.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match="0001"):
        discover(tmp_path)
    (tmp_path / "0001_b.sql").unlink()
    (tmp_path / "2_oops.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match="NNNN"):
        discover(tmp_path)


@pytest.mark.integration
def test_all_apply_then_nothing_then_tampering_is_detected(
    base_settings, empty_schema, tmp_path: Path
) -> None:
    directory = _copy_migrations(tmp_path)
    every = [m.label for m in discover(directory)]
    with connect(base_settings, schema=empty_schema) as conn:
        assert pending_migrations(conn, directory) == every
        assert migrate(conn, directory) == every
        assert migrate(conn, directory) == []
        assert pending_migrations(conn, directory) == []
        applied = applied_migrations(conn)
        assert [a.version for a in applied] == [m.version for m in discover(directory)]
        assert all(len(a.sha256) == 64 for a in applied)
        # The tables landed in the test's schema, not in public.
        tables = conn.execute(
            "SELECT count(*) FROM information_schema.tables "
            "WHERE table_schema = %s AND table_name IN ('users', 'blobs', 'schema_migrations')",
            (empty_schema,),
        ).fetchone()[0]
        assert tables == 3
        conn.rollback()  # end the SELECT's transaction: migrate() wants an idle connection

        first = sorted(directory.glob("0001_*.sql"))[0]
        first.write_text(first.read_text() + "\n-- an innocent-looking edit\n")
        with pytest.raises(MigrationError, match="changed after it was applied"):
            migrate(conn, directory)
        with pytest.raises(MigrationError, match="0001_reference_records"):
            pending_migrations(conn, directory)


@pytest.mark.integration
def test_a_failing_migration_leaves_nothing_behind(
    base_settings, empty_schema, tmp_path: Path
) -> None:
    (tmp_path / "0001_good.sql").write_text("CREATE TABLE good (id int);")
    (tmp_path / "0002_bad.sql").write_text(
        "CREATE TABLE half (id int);\nSELECT no_such_function();"
    )
    with connect(base_settings, schema=empty_schema, autocommit=True) as conn:
        with pytest.raises(MigrationError, match="0002_bad"):
            migrate(conn, tmp_path)
        assert pending_migrations(conn, tmp_path) == ["0002_bad"]
        assert conn.execute("SELECT to_regclass('half')").fetchone()[0] is None
        assert conn.execute("SELECT to_regclass('good')").fetchone()[0] is not None


@pytest.mark.integration
def test_two_processes_migrating_at_once_do_not_collide(base_settings, empty_schema) -> None:
    results: list[list[str]] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def run() -> None:
        try:
            with connect(base_settings, schema=empty_schema, autocommit=True) as conn:
                barrier.wait(timeout=10)
                results.append(migrate(conn))
        except BaseException as exc:  # reported to the test thread below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors
    every = [m.label for m in discover()]
    assert sorted(results, key=len) == [[], every]  # one applied everything, the other nothing


@pytest.mark.integration
def test_migrate_keeps_a_non_autocommit_connection_usable(base_settings, empty_schema) -> None:
    with connect(base_settings, schema=empty_schema) as conn:
        assert pending_migrations(conn)  # reads, and does not leave a transaction open
        migrate(conn)
        assert not conn.autocommit
        conn.execute("SELECT count(*) FROM users")
        with pytest.raises(MigrationError, match="inside a transaction"):
            migrate(conn)  # the SELECT above opened a transaction


@pytest.mark.integration
def test_db_schema_fixture_isolates_the_test(base_settings, db_schema) -> None:
    with connect(base_settings, schema=db_schema) as conn:
        assert conn.execute("SHOW search_path").fetchone()[0] == db_schema
        assert pending_migrations(conn) == []


LZ4_COLUMNS = {("email_activities", "text_body"), ("email_activities", "html_body"),
               ("attachment_contents", "content"), ("blob_chunks", "data"),
               ("persist_pending_plans", "plan")}


def test_large_values_are_compressed_with_lz4(base_settings, db_schema) -> None:
    """The bodies, attachment contents, blobs and parked plans: lz4 costs a fifth of pglz's CPU
    to write a body (the server here has lz4; one without it keeps pglz). A column's
    ``attcompression`` is what PostgreSQL compresses its new values with."""
    with connect(base_settings, schema=db_schema) as conn:
        has_lz4 = conn.execute(
            "SELECT 'lz4' = ANY (enumvals) FROM pg_settings "
            "WHERE name = 'default_toast_compression'").fetchone()[0]
        assert has_lz4, "the test stack's PostgreSQL is built with lz4"
        rows = conn.execute(
            "SELECT c.relname, a.attname, a.attcompression FROM pg_attribute a "
            "JOIN pg_class c ON c.oid = a.attrelid "
            "WHERE c.relnamespace = %s::regnamespace AND (c.relname, a.attname) IN "
            "(SELECT * FROM unnest(%s::text[], %s::text[]))",
            (db_schema, [t for t, _ in LZ4_COLUMNS], [c for _, c in LZ4_COLUMNS]),
        ).fetchall()
        assert {(t, c) for t, c, _ in rows} == LZ4_COLUMNS
        assert {m for _, _, m in rows} == {"l"}
