"""The DuckLake lakehouse: connection, tables, the idempotent batch writer."""

from lakehouse.connection import connect
from lakehouse.tables import TABLES, LakeTable, ensure_schema
from lakehouse.writer import write_rows

__all__ = ["TABLES", "LakeTable", "connect", "ensure_schema", "write_rows"]
