"""The docs cannot go stale: every command in a ```bash block of the README and docs/ is run
or checked against the program it calls, every link points at a file, and the configuration
reference is what the tables generate. A documented command with no check here fails."""

from __future__ import annotations

import importlib.util
import json
import re
import shlex
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from facecrop_ops.config import reference
from facecrop_ops.config.names import DAG_ID
from facecrop_ops.config.run import parse

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
BLOCK = re.compile(r"```(bash|sh)\n(.*?)```", re.S)


def blocks() -> list[tuple[str, str]]:
    return [(page.relative_to(REPO).as_posix(), m.group(2)) for page in PAGES for m in BLOCK.finditer(page.read_text())]


def commands(block: str) -> list[list[str]]:
    """Each command of a block as words, comments dropped, continued lines joined."""
    out = []
    for line in block.replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        if words:
            out.append(words)
    return out


def test_the_configuration_reference_is_what_the_tables_generate():
    assert (REPO / "docs/configuration.md").read_text() == reference.markdown(), (
        "docs/configuration.md is stale: run .venv/bin/python -m facecrop_ops.config.reference > docs/configuration.md")


def test_every_link_between_the_pages_points_at_a_file():
    for page in PAGES:
        for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", page.read_text()):
            if not target.startswith(("http://", "https://")):
                assert (page.parent / target).exists(), f"{page.name} links to {target}, which does not exist"


# --- checks of documented commands: each takes the command's words and raises when it is wrong


def _parser_of(path: Path) -> Callable[[], object]:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build_parser


def _parses(build_parser: Callable[[], object], args: list[str]) -> None:
    try:
        build_parser().parse_args(args)
    except SystemExit as exc:
        raise AssertionError(f"the documented arguments {args} are refused") from exc


def check_demo(words: list[str]) -> None:
    """scripts/demo.sh hands its arguments to facecrop_dev.local_run, whose parser takes them;
    a --conf is params the run accepts (tests/e2e runs the demo itself)."""
    from facecrop_dev import local_run

    assert "facecrop_dev.local_run" in (REPO / "scripts/demo.sh").read_text()
    _parses(local_run.build_parser, words[1:])
    conf = local_run.build_parser().parse_args(words[1:]).conf
    parse({"source_uri": "s3://sample/d/", **json.loads(conf)})


def check_tests(words: list[str]) -> None:
    """scripts/test.sh is what CI runs: .ci/run calls it."""
    assert words == ["scripts/test.sh"] and "exec scripts/test.sh" in (REPO / ".ci/run").read_text()


def check_benchmark(words: list[str]) -> None:
    path = REPO / words[1]
    assert path.is_file(), f"{words[1]} does not exist"
    _parses(_parser_of(path), words[2:])


def check_local_deploy(words: list[str]) -> None:
    """Starting it is what tests/deploy do; here its arguments."""
    from facecrop_dev import local_deploy

    _parses(local_deploy.build_parser, words[3:])


def check_airflow(words: list[str]) -> None:
    """Airflow's own parser takes the arguments; a run of this DAG with the --conf given would
    pass its params check (tests/e2e and tests/deploy run dags test, trigger and pools set)."""
    from airflow.cli.cli_parser import get_parser

    args = get_parser().parse_args(words[1:])
    if words[1] == "dags":
        assert args.dag_id == DAG_ID, words
        parse(json.loads(args.conf))
    if words[1:3] == ["pools", "set"]:
        from facecrop_ops.config import deployment

        assert args.pool == deployment.GPU_POOL


def _compose() -> dict:
    import yaml

    return yaml.safe_load((REPO / "docker-compose.yaml").read_text())


def check_env_file(block: str) -> None:
    """The .env recipe writes exactly the secrets docker-compose.yaml refuses to start without."""
    written = set(re.search(r"for v in (.*?); do", block.replace("\\\n", " "), re.S).group(1).split())
    required = set(re.findall(r"\$\{(\w+):\?", (REPO / "docker-compose.yaml").read_text()))
    assert written == required, (sorted(written - required), sorted(required - written))


def check_compose(words: list[str]) -> None:
    """docker compose is validated against the Compose spec in tests/test_docker_compose.py; here
    the documented profiles exist and the variables set before it pass through."""
    compose = _compose()
    for profile in [words[i + 1] for i, w in enumerate(words) if w == "--profile"]:
        assert any(profile in (svc.get("profiles") or []) for svc in compose["services"].values()), profile
    text = (REPO / "docker-compose.yaml").read_text()
    for assignment in [w for w in words if re.fullmatch(r"[A-Z_]+=.*", w)]:
        assert "${" + assignment.split("=")[0] in text, assignment


CHECKS: list[tuple[str, Callable[[list[str]], None]]] = [
    (r"scripts/demo\.sh\b.*", check_demo),
    (r"scripts/test\.sh", check_tests),
    (r"\.venv/bin/python benchmarks/\S+\.py.*", check_benchmark),
    (r"\.venv/bin/python -m facecrop_dev\.local_deploy.*", check_local_deploy),
    (r"airflow (pools|dags) .*", check_airflow),
    (r"(\w+=\S+ )*docker compose .*", check_compose),
]
RUN_WHOLE = ("docs/cli.md",)  # blocks run as they are, in a scratch folder with the repository's .venv


def test_every_documented_command_is_checked(tmp_path):
    unchecked = []
    for page, block in blocks():
        if page in RUN_WHOLE:
            continue
        if block.lstrip().startswith("for v in"):
            check_env_file(block)
            block = block.split("> .env", 1)[1]
        for words in commands(block):
            line = " ".join(words)
            check = next((fn for pattern, fn in CHECKS if re.fullmatch(pattern, line)), None)
            if check is None:
                unchecked.append(f"{page}: {line}")
            else:
                check(words)
    assert not unchecked, "documented commands no test checks (add a check to tests/test_docs.py):\n" + "\n".join(unchecked)


@pytest.mark.parametrize("page", RUN_WHOLE)
def test_command_blocks_run_as_written(page, tmp_path):
    (tmp_path / ".venv").symlink_to(Path(sys.executable).parents[1])  # the venv running the tests
    for _, block in [b for b in blocks() if b[0] == page]:
        result = subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=tmp_path, capture_output=True, text=True,
                                timeout=600)
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert (tmp_path / "faces/manifest.csv").is_file()
    assert list((tmp_path / "faces/train/faces").rglob("*.jpg"))


def test_the_checks_themselves_refuse_a_wrong_command():
    with pytest.raises(AssertionError):
        check_benchmark([".venv/bin/python", "benchmarks/bench_quality.py", "--no-such-option"])
    with pytest.raises(AssertionError):
        check_airflow(["airflow", "dags", "test", "not_our_dag", "--conf", "{}"])
    with pytest.raises(Exception, match="min_face_sise"):
        check_demo(["scripts/demo.sh", "--conf", '{"min_face_sise": 40}'])
    assert sys.executable  # the checks ran in this interpreter, the repository's .venv
