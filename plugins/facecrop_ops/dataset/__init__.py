"""The dataset's rules, pure string and row logic: where things live in S3, what a path says,
shards, manifests, CSV rewriting and which faces a later run may reuse."""
