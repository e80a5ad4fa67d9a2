"""The worker-disk tables: rows in batches, read back as they come, nothing left behind."""

from facecrop_ops import spill
from facecrop_ops.spill import Spill


def test_rows_go_in_batches_come_back_sorted_a_batch_at_a_time_and_the_file_goes_with_the_task(monkeypatch):
    monkeypatch.setattr(spill, "BATCH", 7)
    in_table_when_made = []

    def rows():
        for i in range(50):
            in_table_when_made.append(db.value("SELECT count(*) FROM t"))
            yield (f"k{49 - i:02d}", i)

    with Spill() as db:
        db.execute("CREATE TABLE t (key TEXT PRIMARY KEY, n INTEGER)")
        assert db.insert("t", rows()) == 50
        assert in_table_when_made[:15] == [0] * 7 + [7] * 7 + [14]  # the rows stream in, a batch at a time
        out = db.rows("SELECT key, n FROM t ORDER BY key")
        assert next(out) == ("k00", 49)
        assert [k for k, _ in out][:3] == ["k01", "k02", "k03"]
        assert db.value("SELECT count(*) FROM t WHERE n < ?", (10,)) == 10
        assert db.value("SELECT n FROM t WHERE key = 'none'") is None
        folder = db.folder
        assert (folder / "tables.sqlite").exists()
    assert not folder.exists()


def test_a_key_given_twice_keeps_its_last_row_and_a_failed_batch_leaves_nothing():
    with Spill() as db:
        db.execute("CREATE TABLE t (key TEXT PRIMARY KEY, n INTEGER NOT NULL)")
        db.insert("t", [("a", 1), ("b", 2), ("a", 3)])
        assert list(db.rows("SELECT key, n FROM t ORDER BY key")) == [("a", 3), ("b", 2)]
        try:
            db.insert("t", [("c", 4), ("d", None)])
        except Exception as exc:
            assert "NOT NULL" in str(exc)
        assert db.value("SELECT count(*) FROM t") == 2 and not db.db.in_transaction


def test_an_empty_insert_writes_nothing():
    with Spill() as db:
        db.execute("CREATE TABLE t (a)")
        assert db.insert("t", iter(())) == 0
        assert db.value("SELECT count(*) FROM t") == 0
