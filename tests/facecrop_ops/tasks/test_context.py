"""What ends a task at once and what is left to Airflow's retries."""


import pytest

from facecrop_ops import tasks
from facecrop_ops.config.run import ParamsError
from facecrop_ops.dataset.csv_rewrite import CsvError
from facecrop_ops.s3io import StorageError


def test_fail_fast_ends_the_task_only_for_what_a_retry_cannot_fix():
    from airflow.sdk.exceptions import AirflowFailException
    from botocore.exceptions import ClientError

    for final in (StorageError("bucket 'x' does not exist"), tasks.RunError("no photos"), ParamsError("bad params"), CsvError("no column")):
        with pytest.raises(AirflowFailException, match=str(final)):
            with tasks.fail_fast():
                raise final
    throttled = ClientError({"Error": {"Code": "SlowDown", "Message": "slow down"}}, "GetObject")
    with pytest.raises(ClientError):
        with tasks.fail_fast():
            raise throttled
