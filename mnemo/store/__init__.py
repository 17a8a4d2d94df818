"""All agent state in Postgres + pgvector.

- `tables`: the SQLModel tables (`AgentRow`, `MessageRow`, …)
- `db`: URL normalisation, the async engine, `Database` (sessions)
- `migrate`: Alembic upgrade/downgrade, scripts in `migrations/`
- `vector`, `search`: query shapes that use the HNSW and GIN indexes
- `embedded`: the embedded Postgres (pgserver) for `mnemo up`
"""
