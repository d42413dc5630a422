"""Operations: health checks and status reporting."""
