"""The reviewer's loop inside Airflow: the Face review page (an Airflow plugin on the API
server), where a logged-in person looks at a run's doubtful crops, redraws a face box or marks
a photo as having no usable face; the next run applies those decisions."""
