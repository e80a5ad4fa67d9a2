"""Every run param, declared once: name, JSON schema (type, bounds, choices), default, title,
form section and help.

The trigger form (`config.form`), the run's parser (`config.run`) and the crop settings'
checks (`config.crop`) are all derived from this table, and every value is judged by the same
JSON schema the form uses (Airflow validates a Param with `jsonschema`), so the form and the
parser can never disagree about what is valid. Pure: no Airflow, no I/O.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker

from facecrop_ops.dataset.planning import MAX_SHARDS_LIMIT

# Form sections (the two URIs sit above them: None).
RUN = "Dataset"
CROP = "Crop geometry"
DETECT = "Detection (MTCNN)"
SCALE = "Sharding and checks"

INTERPOLATIONS = ("area", "linear", "cubic", "nearest", "lanczos")
ENGINES = ("fast", "facenet")
FALLBACKS = ("centre", "sibling")
FALLBACK_SIZES = ("fixed", "auto")
# What `preset` expands to. `reference` is the notebook, exactly (every param at its default);
# `training` is the best-measured way to find masked faces (benchmarks/bench_quality.py, README:
# "Better crops where MTCNN misses"): the sitting's face found by template matching, then the
# second detector, then a guarded second pass, then the sibling's box.
PRESETS: dict[str, dict[str, Any]] = {
    "reference": {},
    "training": {"template_match": True, "second_detector": True, "second_pass": True, "fallback": "sibling"},
}
# The least template-matching score accepted, chosen on photos where MTCNN did find the face
# (hard sittings 1000-1159 of facecrop_dev.hard_sittings: 1,389 placements, 41 wrong, the best at 0.846, never those the benchmark judges): just
# above every placement there that missed the true face (IoU < 0.5).
TEMPLATE_MIN_SCORE = 0.85
# What spreadsheets save CSVs as: UTF-8, Korean Excel (cp949 / EUC-KR), Western Excel (cp1252,
# latin-1), Japanese and Chinese Excel, and UTF-16.
CSV_ENCODINGS = ("utf-8", "cp949", "euc-kr", "cp1252", "latin-1", "shift_jis", "gb18030", "utf-16")


def _spellings(names: tuple[str, ...]) -> str:
    """A pattern taking each name in any case, its parts joined by '-', '_' or nothing (UTF-8,
    utf8, EUC_KR, Shift-JIS): how codec names come from spreadsheets and people."""
    def one(name: str) -> str:
        parts = [part for part in name.replace("_", "-").split("-")]
        return "[-_]?".join("".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else c for c in part) for part in parts)

    return "^(" + "|".join(one(name) for name in names) + ")$"


def canonical_encoding(name: str) -> str:
    """The table's spelling of a codec name given in any of `_spellings`' forms."""
    key = name.lower().replace("_", "").replace("-", "")
    return next(n for n in CSV_ENCODINGS if n.replace("_", "").replace("-", "") == key)

BUCKET = r"[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]"
S3_URI = rf"s3://{BUCKET}(/.*)?"
# A CSV to rewrite: an s3:// URI, or a relative name under the dataset root with no `..`
# segment and no other scheme, ending in .csv.
CSV_NAME = rf"^(s3://{BUCKET}/.*|(?!/)(?!.*://)(?!(.*/)?\.\.(/|$)).*)\.[cC][sS][vV]$"


@dataclass(frozen=True)
class Spec:
    """One param. `schema` is its JSON schema (as Airflow's Param takes it); `rule` says in
    words what the schema accepts, for messages (derived from the schema when not given)."""

    name: str
    schema: dict[str, Any]
    default: Any
    title: str
    help: str
    section: str | None = None
    rule: str = ""
    setting: bool = False  # a crop setting (a field of config.crop.Settings)
    form: bool = True  # a DAG param; False: a CLI-only setting (device, workers)
    _validator: Any = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_validator", Draft202012Validator(self.schema, format_checker=FormatChecker()))
        if not self.rule:
            object.__setattr__(self, "rule", describe(self.schema))

    def valid(self, value: Any) -> bool:
        """What the trigger form would say: tuples count as JSON arrays."""
        return self._validator.is_valid(list(value) if isinstance(value, tuple) else value)

    def problem(self, value: Any) -> str | None:
        """None when valid; else what is wrong and what to set instead."""
        if self.valid(value):
            return None
        items = self.schema.get("items")
        if isinstance(value, list) and items is not None and "minItems" not in self.schema:
            bad = [v for v in value if not Draft202012Validator(items, format_checker=FormatChecker()).is_valid(v)]
            if bad:
                return f"{self.name} entry {bad[0]!r} is invalid: it must {self.rule}"
        default = "" if self.default is None else f" (default {self.default!r})"
        return f"{self.name}={value!r} is invalid: it must be {self.rule}{default}"

    @property
    def python_type(self) -> Any:
        """The type the code holds a value in (a settings field's annotation)."""
        types = [t for t in _types(self.schema) if t != "null"]
        if types == ["array"] and self.schema.get("minItems") == self.schema.get("maxItems") == 3:
            return tuple[float, float, float]
        return {"integer": int, "number": float, "boolean": bool, "string": str, "array": list, "object": dict}[types[0]]

    @property
    def code_default(self) -> Any:
        """The default in the type the code holds: arrays of settings are tuples."""
        return tuple(self.default) if isinstance(self.default, list) and self.setting else self.default

    def coerce(self, value: Any) -> Any:
        """A valid value in the type the code uses: 5.0 for an integer param is 5 (JSON
        schema counts it as an integer, as the form does)."""
        if "integer" in _types(self.schema) and isinstance(value, float) and value.is_integer():
            return int(value)
        return value


def describe(schema: Mapping[str, Any]) -> str:
    """The rule of a schema in words, as messages quote it."""
    types = _types(schema)
    if "enum" in schema:
        return "one of " + ", ".join(map(str, schema["enum"]))
    if types == ["boolean"]:
        return "true or false"
    if types in (["integer"], ["number"]):
        noun = "an integer" if types == ["integer"] else "a number"
        lo, hi = schema.get("minimum"), schema.get("maximum")
        if "exclusiveMinimum" in schema:
            return f"{noun} above {schema['exclusiveMinimum']}" + (f", at most {hi}" if hi is not None else "")
        if lo is not None and hi is not None:
            return f"{noun} {lo}..{hi}" if types == ["integer"] else f"{noun} from {lo} to {hi}"
        return f"{noun} >= {lo}" if lo is not None else noun
    if types == ["string"] and schema.get("minLength"):
        return "a non-empty string"
    raise ValueError(f"describe the rule of {schema} in the table")


def _types(schema: Mapping[str, Any]) -> list[str]:
    t = schema.get("type", [])
    return [t] if isinstance(t, str) else list(t)


def _integer(minimum: int, maximum: int | None = None) -> dict[str, Any]:
    return {"type": "integer", "minimum": minimum, **({"maximum": maximum} if maximum is not None else {})}


def _choice(values: tuple[str, ...]) -> dict[str, Any]:
    return {"type": "string", "enum": list(values)}


_BOOL = {"type": "boolean"}
_TRIPLE = {"type": "array", "items": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
           "minItems": 3, "maxItems": 3}
_TRIPLE_RULE = "three numbers between 0 and 1 (P-, R-, O-Net)"

TABLE: tuple[Spec, ...] = (
    # Above the sections, first: a preset sets several params below at once.
    Spec("preset", _choice(tuple(PRESETS)), "reference", "Preset",
         "reference: the reference notebook, exactly. training: the best-measured crops of masked faces: "
         "template_match, second_detector, second_pass and fallback sibling on. A param a preset sets must be left at its default "
         "or given the preset's value."),
    # Where: above the sections.
    Spec("source_uri", {"type": "string", "pattern": f"^{S3_URI}$"}, None, "Dataset root (S3 URI)",
         "Every <split>/images/ folder below it is cropped, e.g. s3://bucket/masks/ with train/images/ and eval/images/.",
         rule="an s3:// URI such as s3://bucket/prefix"),
    # Optional fields allow null: the form marks every other typed field as required.
    Spec("dest_uri", {"type": ["null", "string"], "pattern": f"^({S3_URI})?$"}, None, "Output root (S3 URI)",
         "Faces go to <dest>/<split>/faces/, CSVs to <dest>/<name>_face.csv, reports to "
         "<dest>/_facecrop/runs/<run_id>/. Empty: the dataset root.",
         rule="an s3:// URI such as s3://bucket/prefix, or empty for the dataset root"),
    # Dataset
    Spec("csv_uris", {"type": ["null", "array"], "items": {"type": "string", "pattern": CSV_NAME}}, None, "CSVs to rewrite",
         "S3 URIs (or names under the dataset root) of CSVs with photo paths. Empty: every *.csv directly under the dataset root.",
         RUN, rule="name a .csv object (an s3:// URI or a name under source_uri such as labels/train.csv)"),
    Spec("path_column", {"type": "string", "minLength": 1}, "path", "Path column",
         "The CSV column holding each row's photo path.", RUN),
    Spec("csv_encoding", {"type": "string", "pattern": _spellings(CSV_ENCODINGS), "examples": list(CSV_ENCODINGS)},
         "utf-8", "CSV encoding",
         "How the CSVs' text is encoded (cp949: Korean Excel; cp1252: Western Excel). Published CSVs keep it, and a "
         "UTF-8 byte-order mark when the source had one.", RUN,
         rule=f"one of {', '.join(CSV_ENCODINGS)} (in any case; parts joined by '-', '_' or nothing)"),
    Spec("aws_conn_id", {"type": "string", "minLength": 1}, "aws_default", "AWS connection",
         "Airflow connection with the credentials (and endpoint_url for MinIO or a local S3).", RUN),
    # Crop geometry. The extra 60 px on top keeps the hair, which helps tell gender and age.
    Spec("margin_left", _integer(0), 30, "Left margin (px)", "Added left of the face box.", CROP, setting=True),
    Spec("margin_right", _integer(0), 30, "Right margin (px)", "Added right of the face box.", CROP, setting=True),
    Spec("margin_top", _integer(0), 60, "Top margin (px)", "Added above the face box; keeps the hair.", CROP, setting=True),
    Spec("margin_bottom", _integer(0), 30, "Bottom margin (px)", "Added below the face box.", CROP, setting=True),
    Spec("fallback", _choice(FALLBACKS), "centre", "Where MTCNN misses",
         "centre: the reference's centre box. sibling: the face box of the same person's detected photos (one person "
         "folder, one sitting); the centre box only when none was detected.", CROP, setting=True),
    Spec("fallback_size", _choice(FALLBACK_SIZES), "fixed", "Centre box size",
         "fixed: fallback width x height below. auto: 1.2 x the mean padded crop of the shard's detections, for photos "
         "that are not 384 x 512.", CROP, setting=True),
    # 1.2 x the mean padded crop of the original data's detections (213 x 283).
    Spec("fallback_width", _integer(1), 256, "Fallback width (px)", "Centre crop when no face is found.", CROP, setting=True),
    Spec("fallback_height", _integer(1), 340, "Fallback height (px)", "Centre crop when no face is found.", CROP, setting=True),
    Spec("output_width", _integer(1), 210, "Face width (px)", "Every face is resized to this.", CROP, setting=True),
    Spec("output_height", _integer(1), 280, "Face height (px)", "Every face is resized to this.", CROP, setting=True),
    Spec("interpolation", _choice(INTERPOLATIONS), "area", "Resize interpolation", "OpenCV interpolation of the resize.",
         CROP, setting=True),
    # OpenCV's own default, as the notebook's cv2.imwrite used.
    Spec("jpeg_quality", _integer(1, 100), 95, "JPEG quality",
         "For faces of .jpg/.jpeg photos (faces keep the photo's format).", CROP, setting=True),
    # Detection (MTCNN, facenet-pytorch's defaults)
    Spec("min_face_size", _integer(1), 20, "Smallest face (px)",
         "MTCNN min_face_size. 40-80 is several times faster on these portraits but changes boxes.", DETECT, setting=True),
    Spec("thresholds", _TRIPLE, [0.6, 0.7, 0.7], "P/R/O-Net thresholds", "MTCNN score thresholds.", DETECT,
         rule=_TRIPLE_RULE, setting=True),
    Spec("factor", {"type": "number", "minimum": 0.1, "maximum": 0.95}, 0.709, "Pyramid factor",
         "MTCNN image-pyramid scale step.", DETECT, setting=True),
    Spec("select_largest", _BOOL, True, "Crop the largest face", "Off: crop the most probable face instead.", DETECT,
         setting=True),
    Spec("engine", _choice(ENGINES), "fast", "Detector engine",
         "fast: exact re-implementation of facenet's detect (same boxes, faster); facenet: its own.", DETECT, setting=True),
    # 8-16 is fastest on CPUs.
    Spec("batch_size", _integer(1, 256), 8, "Detection batch", "Photos of one size per MTCNN call.", DETECT, setting=True),
    Spec("second_pass", _BOOL, False, "Second pass on misses",
         "Detect missed photos again with relaxed thresholds; keep a face only where it agrees with the same person's "
         "detected photos (never a shirt or the background).", DETECT, setting=True),
    Spec("second_pass_thresholds", _TRIPLE, [0.4, 0.5, 0.5], "Second-pass thresholds",
         "P/R/O-Net thresholds of the second pass.", DETECT, rule=_TRIPLE_RULE, setting=True),
    Spec("second_pass_min_iou", {"type": "number", "exclusiveMinimum": 0, "maximum": 1}, 0.5, "Second-pass agreement (IoU)",
         "Least overlap of a second-pass face with the siblings' face box.", DETECT, setting=True),
    Spec("template_match", _BOOL, False, "Find missed faces by the sitting's face",
         "Where MTCNN misses, look for the same person's upper face (eyes, brows, hair) from their detected normal "
         "(else incorrect_mask) photo near where the siblings put it, over a few scales and rotations; take it when "
         "it matches well enough (method template). Runs before the second pass.", DETECT, setting=True),
    Spec("template_min_score", {"type": "number", "exclusiveMinimum": 0, "maximum": 1}, TEMPLATE_MIN_SCORE,
         "Template match score", "Least normalised correlation (0..1) of a template match that is accepted.", DETECT,
         setting=True),
    Spec("second_detector", _BOOL, False, "Second detector on misses",
         "Where MTCNN misses, ask a second face detector (YuNet, shipped with facecrop) and take its face when it passes "
         "rules chosen on calibration photos, its box put in MTCNN's geometry (method yunet). Finds faces in photos that "
         "have no sitting (eval/images/). Runs after template matching, before the second pass.", DETECT, setting=True),
    # Where detection runs: the CLI's choice; the DAG's tasks take what their worker has.
    Spec("device", {"type": "string", "pattern": r"^(auto|cpu|cuda(:\d+)?)$"}, "auto", "Device",
         "auto: cuda when this machine has a GPU, else cpu.", DETECT, rule="auto, cpu, cuda or cuda:N", setting=True,
         form=False),
    Spec("workers", _integer(0, 64), 0, "Worker processes",
         "Detection processes on the CPU (one torch thread each); 0: one per core, at most 8. A GPU uses one.", DETECT,
         rule="an integer 0..64 (0 = auto)", setting=True, form=False),
    # Sharding and checks
    # A photo's header is read before it is decoded: one claiming more pixels becomes an error
    # row ("pixel bomb": a few KB claiming 60000 x 60000). Not face-shaping (not in the
    # settings fingerprint): photos refused by it are tried again by the next run.
    Spec("max_megapixels", _integer(1, 1000), 50, "Largest photo (megapixels)",
         "Photos whose header claims more pixels are recorded as errors instead of decoded (a decompression bomb "
         "would take a worker's memory).", SCALE, setting=True),
    # The listing gives each object's size: a photo file larger than this is refused before it
    # is downloaded (what a worker or the API server holds of one photo is bounded by it).
    Spec("max_photo_megabytes", _integer(1, 1000), 50, "Largest photo file (MB)",
         "Photo files larger than this are recorded as errors, never downloaded; the review page refuses to show them.",
         SCALE, setting=True),
    # Each shard pays ~4 s to start (task start, torch and facenet-pytorch imports, worker
    # processes) on a 2-core CPU worker: 2,000 photos keep that near 6 % there (benchmarks/
    # bench_dag_vs_cli.py). Raise it for GPU workers; lower it to spread a small dataset over
    # many workers.
    Spec("photos_per_shard", _integer(1), 2000, "Photos per shard",
         "Person folders are packed into shards of about this many photos (each shard is one detect task; a task "
         "pays a few seconds to start).", SCALE),
    Spec("max_shards", _integer(1, MAX_SHARDS_LIMIT), 256, "Most shards",
         "Upper bound on mapped detect tasks; shards grow past photos_per_shard to respect it.", SCALE),
    Spec("full_recrop", _BOOL, False, "Crop every photo again",
         "Off: photos whose source object and face-shaping settings are unchanged since the last run over this output "
         "keep their face (no download, no detection).", SCALE),
    Spec("miss_rate_limits", {"type": "object", "additionalProperties": {"type": "number", "minimum": 0, "maximum": 1}},
         {}, "Miss-rate limits",
         'Fail the run when a class misses more faces than this, e.g. {"all": 0.3, "normal": 0.05}. Empty: report only.',
         SCALE, rule='an object mapping class names to rates 0..1, e.g. {"all": 0.3, "normal": 0.05}'),
    Spec("review_gate", _BOOL, False, "Wait for a review over the limits",
         "On: a run whose miss rates exceed the limits above waits before publishing the CSVs until a person approves "
         "it (Browse > Required Actions, with a link to Face review); rejecting ends it failed with nothing published.",
         SCALE),
)

PARAMS: dict[str, Spec] = {spec.name: spec for spec in TABLE}
FORM_PARAMS: tuple[Spec, ...] = tuple(spec for spec in TABLE if spec.form)
SETTINGS: tuple[Spec, ...] = tuple(spec for spec in TABLE if spec.setting)


def expand_preset(preset: str, values: Mapping[str, Any], given: frozenset[str] | None = None) -> tuple[dict[str, Any], list[str]]:
    """The values with the preset's applied, and the problems: a param the preset sets that
    holds another value than the preset's is refused, naming both. `given` names the params
    set explicitly (the CLI knows); without it (the trigger form sends every field) a value
    equal to the param's default counts as not set."""
    out, problems = dict(values), []
    for name, value in PRESETS.get(preset, {}).items():
        current = values.get(name, PARAMS[name].default)
        explicit = name in given if given is not None else current != PARAMS[name].default
        if explicit and current != value:
            problems.append(f"{name}={current!r} contradicts preset={preset!r}, which sets {name}={value!r}: "
                            f"leave {name} out, or use preset 'reference' and set each option")
        out[name] = value
    return out, problems


def closest(name: str, known: list[str]) -> str:
    """' (did you mean min_face_size?)' for a misspelt name, else ''."""
    match = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    return f" (did you mean {match[0]}?)" if match else ""
