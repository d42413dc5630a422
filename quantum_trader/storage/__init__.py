"""Storage: domain records → SQLite (WAL, versioned migrations) or memory, behind one contract.

- `sqlite.SqliteRepository`: the ledger; `await SqliteRepository.open(path, read_only=False)`,
  on `sqlite_open` (a file opened and checked), `sqlite_connection` (writes, one transaction
  each), `sqlite_statements` (the SQL per table) and `sqlite_audit` (the buffered audit tables).
- `memory.InMemoryRepository`: the same observable behaviour in Python containers (tests).
- `codec`: the one field-by-field mapping between domain records and rows, used by both;
  `tables`: each table's columns in that order, and the positions rows are read by.
- `migrate` + `migrations/NNNN_*.sql`: schema versions, applied one transaction each.
"""
