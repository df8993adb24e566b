"""ClickHouse over the native protocol (clickhouse-driver)."""
