"""`python -m facecrop_dev samples`: the sample dataset to a folder or S3 (compose's init runs it)."""

from facecrop_dev.__main__ import main


def test_samples_to_a_folder_give_the_dataset_layout(tmp_path):
    assert main(["samples", str(tmp_path / "ds"), "--people", "2", "--eval", "1"]) == 0
    files = sorted(p.relative_to(tmp_path / "ds").as_posix() for p in (tmp_path / "ds").rglob("*") if p.is_file())
    assert "train_data.csv" in files and "test_data.csv" in files
    assert sum(f.startswith("train/images/") and "/._" not in f for f in files) == 14


def test_samples_to_s3_go_through_the_airflow_connection_once(monkeypatch, capsys):
    from facecrop_dev.local_s3 import moto_server

    with moto_server() as s3:
        for key, value in s3.airflow_connection_env().items():
            monkeypatch.setenv(key, value)
        assert main(["samples", "s3://seeded/dataset/", "--people", "1", "--eval", "1"]) == 0
        listed = s3.client().list_objects_v2(Bucket="seeded", Prefix="dataset/")["KeyCount"]
        assert main(["samples", "s3://seeded/dataset/"]) == 0
        assert s3.client().list_objects_v2(Bucket="seeded", Prefix="dataset/")["KeyCount"] == listed
    out = capsys.readouterr().out
    assert f"{listed} objects written to s3://seeded/dataset/" in out and "already holds objects" in out
