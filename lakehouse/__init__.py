"""The DuckLake lakehouse: connection, schema, the idempotent batch writer, upkeep."""

from lakehouse.connection import connect
from lakehouse.schema import ensure_schema
from lakehouse.writer import write_rows

__all__ = ["connect", "ensure_schema", "write_rows"]
