"""Storage: domain records → SQLite (WAL, versioned migrations) or memory, behind one contract."""
