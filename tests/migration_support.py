"""Migration tests: go to a point in the migration graph and back to its end."""

from __future__ import annotations

from django.db import connection
from django.db.migrations.executor import MigrationExecutor


def migrate(targets) -> MigrationExecutor:
    """Migrate to `targets` ([(app, migration name or None)]); the executor,
    whose loader gives the models as they were there."""
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    return executor


def migrate_to_the_end() -> None:
    """Every app at its last migration again, as the other tests expect."""
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
