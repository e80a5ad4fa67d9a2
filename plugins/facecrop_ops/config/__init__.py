"""Configuration: per-run params (one table: the form, the parser and the crop settings derive
from it) and per-deployment settings from the environment."""
