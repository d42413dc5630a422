-- How many decisions each (gate, reason) pair has had, kept as the decisions are written: the
-- counts `status` and the report show no longer GROUP BY the whole decisions table, which a
-- daemon fills for as long as it runs (one row per gate verdict, never pruned: docs/BENCHMARKS.md,
-- "Operations: a year of service"). The triggers keep the tallies whatever writes or removes a
-- decision (the repository, the backtest's decisions writer process, a person with sqlite3).
CREATE TABLE decision_tallies (
    gate      TEXT NOT NULL,
    reason    TEXT NOT NULL,
    decisions INTEGER NOT NULL,
    PRIMARY KEY (gate, reason)
) STRICT;
INSERT INTO decision_tallies (gate, reason, decisions)
SELECT gate, reason, count(*) FROM decisions GROUP BY gate, reason;
CREATE TRIGGER decisions_tallied AFTER INSERT ON decisions
BEGIN
    INSERT INTO decision_tallies (gate, reason, decisions) VALUES (NEW.gate, NEW.reason, 1)
    ON CONFLICT (gate, reason) DO UPDATE SET decisions = decisions + 1;
END;
CREATE TRIGGER decisions_untallied AFTER DELETE ON decisions
BEGIN
    UPDATE decision_tallies SET decisions = decisions - 1
    WHERE gate = OLD.gate AND reason = OLD.reason;
    DELETE FROM decision_tallies WHERE gate = OLD.gate AND reason = OLD.reason AND decisions = 0;
END;
