"""facecrop_ops: crop the faces out of a portrait dataset for classifier training.

The library behind the `facecrop_etl` DAG and the `python -m facecrop_ops` CLI. Importing
the package is cheap: torch, facenet-pytorch and OpenCV load only in the modules that use
them (detector, mtcnn_fast, imaging, processor).
"""

__version__ = "0.1.0"
