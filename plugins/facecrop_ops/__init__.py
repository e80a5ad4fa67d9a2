"""facecrop_ops: crop the faces out of a portrait dataset for classifier training.

The library behind the `facecrop_etl` DAG and the `facecrop` CLI. Importing the package is
cheap: torch, facenet-pytorch and OpenCV load only in the modules of `vision` that use them.

Module map (layers import downward only; `pyproject.toml` holds the rules, the tests check them):

    cli                    `facecrop crop SRC DST`: the library on a local folder
    operators              ReviewGate: Airflow's approval operator, asking only over the limits
    tasks/                 the DAG's task bodies, one module per task
      plan                 params checked, the dataset listed, CSVs checked, shard lists written
      tables               listing, manifests and faces into disk tables; rows streamed back out
      crop                 crop_shard: a shard pulled, cropped, uploaded; its manifest last (ShardCrop)
      gate                 needs_review: what the review gate asks a person
      publish              the manifest, the CSVs pointed at the faces, stale faces removed, the index
      report               record_metrics (metrics.json, history, report.html, gauges), check_miss_rates
      pool                 gpu_pool_started: has a shard got a slot of the gpu pool
      context              params parsed, the run's folder, RunError, fail_fast, open_store
    review/
      plugin               the Airflow plugin: Browse > Face review, its FastAPI app mounted
      app                  the page and its API, every route behind an Airflow login
      service              a run's doubtful crops, its photos, reviewers' decisions, via S3
    run_store              facecrop's own objects (plans, shard lists, rows, index, decisions) read and written
    s3io                   S3 through an Airflow connection: paged listing, streamed transfers, refusals
    spill                  tables too big for memory, in SQLite on the worker's disk
    vision/
      processor            photos in, faces and manifest rows out (worker processes, chunks)
      detector             MTCNN over many photos: device, batching by size, one answer each
      mtcnn_fast           facenet's detect, exactly, faster (pyramid and crops by integrals)
      imaging              decode photos, cut, resize and encode faces, thumbnails
      matching             where MTCNN missed: the sitting's upper face found by template matching
      yunet                where MTCNN missed: the shipped YuNet model run through OpenCV
      second_detector      where MTCNN missed: which YuNet face to take, in MTCNN's geometry (pure)
      rescue               where MTCNN missed: which template placement, second pass or sibling box (pure)
      geometry             boxes: padding and clamping, the centre box, IoU (pure)
    reporting/
      metrics              per-class counts and the miss rate (pure)
      history              every run's metrics as one table (pure)
      report               the review page (templates/report.html.j2) and its charts
      alerts               failure mails through Airflow's SMTP notifier
      progress             count, rate and ETA lines for long work
    config/
      params               every run param once: schema, default, title, section, help
      run                  the run's params parsed and checked before any data moves
      crop                 Settings: the knobs of a crop, checked against the table
      form                 the trigger form, built from the table
      options              the CLI's options, derived from the table
      reference            docs/configuration.md, generated from the table and deployment's
      deployment           FACECROP_* environment settings read at DAG parse time
      names                the DAG's id and the review page's path
    dataset/
      codes                statuses, methods, reason codes and decisions: what decisions read
      run_folder           every object under <dest>/_facecrop/ named, its documents typed
      locations            S3 URIs, images roots, face keys, published CSV names
      naming               what a path says: photo or not, class, person folder, face path
      planning             the listing sorted into photos and CSVs, shards of person folders
      manifest             one row per photo: what became of it
      csv_rewrite          a dataset CSV pointed at the faces; rejected rows and why
      incremental          which photos the last run's faces still serve
      corrections          reviewers' decisions: the latest per photo, applied while its ETag holds
      review_items         the run's doubtful crops for the review page, chosen and paged once
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("facecrop-ops")  # pyproject.toml's, as installed
except PackageNotFoundError:  # the folder copied onto Airflow's plugins path without pip
    __version__ = "0+unknown"
