"""The trigger form: one Param per run choice, JSON-schema validated, defaults from Settings.

Kept out of the DAG file so the file stays wiring; the schema mirrors the checks in
settings.py and run_params.py, which run again in the plan task (the form is the first
line of defence, the code the one that also covers `airflow dags test --conf`).
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import Param

from facecrop_ops.config import deployment
from facecrop_ops.config.crop import DEFAULTS, ENGINES, FALLBACK_SIZES, FALLBACKS, INTERPOLATIONS

RUN = "Dataset"
CROP = "Crop geometry"
DETECT = "Detection (MTCNN)"
SCALE = "Sharding and checks"


def _int(default: int, title: str, description: str, section: str, minimum: int, maximum: int | None = None) -> Param:
    extra: dict[str, Any] = {"minimum": minimum}
    if maximum is not None:
        extra["maximum"] = maximum
    return Param(default, type="integer", title=title, description=description, section=section, **extra)


def build() -> dict[str, Param]:
    d = DEFAULTS
    source: dict[str, Any] = {"default": deployment.SOURCE_URI} if deployment.SOURCE_URI else {}
    return {
        # The two URIs sit above the sections, which the form shows collapsed.
        "source_uri": Param(
            **source, type="string", pattern=r"^s3://[a-z0-9][a-z0-9.\-]+[a-z0-9](/.*)?$",
            title="Dataset root (S3 URI)",
            description="Every <split>/images/ folder below it is cropped, e.g. s3://bucket/masks/ with train/images/ and eval/images/.",
        ),
        # Optional fields allow null: the form marks every other typed field as required.
        "dest_uri": Param(
            None, type=["null", "string"], pattern=r"^(s3://[a-z0-9][a-z0-9.\-]+[a-z0-9](/.*)?)?$",
            title="Output root (S3 URI)",
            description="Faces go to <dest>/<split>/faces/, CSVs to <dest>/<name>_face.csv, reports to <dest>/_facecrop/runs/<run_id>/. Empty: the dataset root.",
        ),
        "csv_uris": Param(
            None, type=["null", "array"], items={"type": "string"}, section=RUN, title="CSVs to rewrite",
            description="S3 URIs (or names under the dataset root) of CSVs with photo paths. Empty: every *.csv directly under the dataset root.",
        ),
        "path_column": Param("path", type="string", minLength=1, section=RUN, title="Path column",
                             description="The CSV column holding each row's photo path."),
        "aws_conn_id": Param("aws_default", type="string", minLength=1, section=RUN, title="AWS connection",
                             description="Airflow connection with the credentials (and endpoint_url for MinIO or a local S3)."),
        "margin_left": _int(d.margin_left, "Left margin (px)", "Added left of the face box.", CROP, 0),
        "margin_right": _int(d.margin_right, "Right margin (px)", "Added right of the face box.", CROP, 0),
        "margin_top": _int(d.margin_top, "Top margin (px)", "Added above the face box; keeps the hair.", CROP, 0),
        "margin_bottom": _int(d.margin_bottom, "Bottom margin (px)", "Added below the face box.", CROP, 0),
        "fallback": Param(d.fallback, type="string", enum=list(FALLBACKS), section=CROP, title="Where MTCNN misses",
                          description="centre: the reference's centre box. sibling: the face box of the same person's "
                                      "detected photos (one person folder, one sitting); the centre box only when none was detected."),
        "fallback_size": Param(d.fallback_size, type="string", enum=list(FALLBACK_SIZES), section=CROP, title="Centre box size",
                               description="fixed: fallback width x height below. auto: 1.2 x the mean padded crop of the "
                                           "shard's detections, for photos that are not 384 x 512."),
        "fallback_width": _int(d.fallback_width, "Fallback width (px)", "Centre crop when no face is found.", CROP, 1),
        "fallback_height": _int(d.fallback_height, "Fallback height (px)", "Centre crop when no face is found.", CROP, 1),
        "output_width": _int(d.output_width, "Face width (px)", "Every face is resized to this.", CROP, 1),
        "output_height": _int(d.output_height, "Face height (px)", "Every face is resized to this.", CROP, 1),
        "interpolation": Param(d.interpolation, type="string", enum=list(INTERPOLATIONS), section=CROP,
                               title="Resize interpolation", description="OpenCV interpolation of the resize."),
        "jpeg_quality": _int(d.jpeg_quality, "JPEG quality", "For faces of .jpg/.jpeg photos (faces keep the photo's format).", CROP, 1, 100),
        "min_face_size": _int(d.min_face_size, "Smallest face (px)",
                              "MTCNN min_face_size. 40-80 is several times faster on these portraits but changes boxes.", DETECT, 1),
        "thresholds": Param(list(d.thresholds), type="array", items={"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
                            minItems=3, maxItems=3, section=DETECT, title="P/R/O-Net thresholds", description="MTCNN score thresholds."),
        "factor": Param(d.factor, type="number", minimum=0.1, maximum=0.95, section=DETECT, title="Pyramid factor",
                        description="MTCNN image-pyramid scale step."),
        "select_largest": Param(d.select_largest, type="boolean", section=DETECT, title="Crop the largest face",
                                description="Off: crop the most probable face instead."),
        "engine": Param(d.engine, type="string", enum=list(ENGINES), section=DETECT, title="Detector engine",
                        description="fast: exact re-implementation of facenet's detect (same boxes, faster); facenet: its own."),
        "batch_size": _int(d.batch_size, "Detection batch", "Photos of one size per MTCNN call.", DETECT, 1, 256),
        "second_pass": Param(d.second_pass, type="boolean", section=DETECT, title="Second pass on misses",
                             description="Detect missed photos again with relaxed thresholds; keep a face only where it "
                                         "agrees with the same person's detected photos (never a shirt or the background)."),
        "second_pass_thresholds": Param(list(d.second_pass_thresholds), type="array", minItems=3, maxItems=3, section=DETECT,
                                        items={"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
                                        title="Second-pass thresholds", description="P/R/O-Net thresholds of the second pass."),
        "second_pass_min_iou": Param(d.second_pass_min_iou, type="number", exclusiveMinimum=0, maximum=1, section=DETECT,
                                     title="Second-pass agreement (IoU)",
                                     description="Least overlap of a second-pass face with the siblings' face box."),
        "photos_per_shard": _int(500, "Photos per shard", "Person folders are packed into shards of about this many photos.", SCALE, 1),
        "max_shards": _int(256, "Most shards", "Upper bound on mapped detect tasks; shards grow past photos_per_shard to respect it.", SCALE, 1, 512),
        "full_recrop": Param(False, type="boolean", section=SCALE, title="Crop every photo again",
                             description="Off: photos whose source object and face-shaping settings are unchanged since the "
                                         "last run over this output keep their face (no download, no detection)."),
        "miss_rate_limits": Param(
            {}, type="object", additionalProperties={"type": "number", "minimum": 0, "maximum": 1}, section=SCALE,
            title="Miss-rate limits",
            description='Fail the run when a class misses more faces than this, e.g. {"all": 0.3, "normal": 0.05}. Empty: report only.',
        ),
    }
