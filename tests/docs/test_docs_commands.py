"""Every command and snippet in README.md and docs/*.md runs, so the docs cannot rot.

`make docs-check` runs this module alone; `make test` runs it with the rest (`make test-fast`
only the checks of the fences, the index and the links: the blocks are `e2e`). The convention is
in `tests/docs/_blocks.py` and docs/index.md ("How the docs are checked"). Once per run:

- a fixture directory: `model.keras`, `digit.png`, `digits.npy` (`tests/docs/_fixture.py`)
  and `models/mnist/1`, an export of `model.keras` with five of the methods, written by
  `saliency-export` with `configs/export.toml`;
- the bundled server (`model_server._process.ServerProcess`) serving `models/mnist` on free
  ports. Blocks talk to it as `localhost:8500` (gRPC) and `localhost:8501` (REST): those two
  strings are rewritten to its real ports, which are also in `$PORT` and `$REST_PORT`.

Each page gets its own scratch directory with a copy of the fixture, `configs/` and
`examples/` (links to the repository's), and its blocks run there in page order, so a block may
use what an earlier block of the same page wrote. Commands run in bash with `.venv/bin` first on
PATH and must exit 0; a command that starts a server (`saliency-serve`, `python -m
model_server`) is run on free ports until it prints its ready line, then stopped with
SIGTERM and must exit 0.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from tests.docs._blocks import REFUSED_LANGUAGES, RUN_LANGUAGES, Block, blocks

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
ALL_BLOCKS = [block for page in PAGES for block in blocks(page)]
RUN_BLOCKS = [block for block in ALL_BLOCKS if block.language in RUN_LANGUAGES]
COMMAND_TIMEOUT = 300
_SERVER_COMMAND = re.compile(r"^\s*(saliency-serve|python -m model_server)\b")


def _env(extra: dict[str, str]) -> dict[str, str]:
    venv_bin = Path(sys.executable).parent
    return {
        **os.environ,
        "PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": str(ROOT),
        "TF_CPP_MIN_LOG_LEVEL": "2",
        **extra,
    }


@pytest.fixture(scope="session")
def fixture_dir(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("docs-fixture")
    env = _env({})
    subprocess.run(  # noqa: S603 - our own module
        [sys.executable, "-m", "tests.docs._fixture", str(directory)],
        cwd=ROOT, env=env, check=True, timeout=COMMAND_TIMEOUT,
    )  # fmt: skip
    subprocess.run(  # noqa: S603 - our own CLI, fixed arguments
        [
            str(Path(sys.executable).parent / "saliency-export"), "--model", "model.keras",
            "--output", "models/mnist", "--config", str(ROOT / "configs" / "export.toml"),
            "--methods", "vanilla,smoothgrad,integrated_gradients,gradient_x_input,gradcam",
            "--quiet",
        ],
        cwd=directory, env=env, check=True, timeout=COMMAND_TIMEOUT,
    )  # fmt: skip
    return directory


@pytest.fixture(scope="session")
def server(fixture_dir, tmp_path_factory):
    from model_server._process import ServerProcess

    log = tmp_path_factory.mktemp("docs-server") / "server.log"
    with ServerProcess("mnist", fixture_dir / "models" / "mnist", log_path=log) as process:
        yield process


@pytest.fixture(scope="session")
def workdirs(fixture_dir, tmp_path_factory):
    """One scratch directory per page, made on first use."""
    made: dict[Path, Path] = {}

    def workdir(page: Path) -> Path:
        if page not in made:
            directory = tmp_path_factory.mktemp("docs-" + page.stem.lower())
            shutil.copytree(fixture_dir, directory, dirs_exist_ok=True)
            for name in ("configs", "examples"):
                if (ROOT / name).exists():
                    (directory / name).symlink_to(ROOT / name)
            made[page] = directory
        return made[page]

    return workdir


@pytest.fixture(scope="session")
def toml_errors(tmp_path_factory) -> dict[str, str | None]:
    """Every TOML block through `exporter.load_config`, in one process (TensorFlow loads once)."""
    toml_blocks = [b for b in RUN_BLOCKS if b.language == "toml" and not b.skip]
    directory = tmp_path_factory.mktemp("docs-toml")
    for k, block in enumerate(toml_blocks):
        tomllib.loads(block.text)  # a syntax error is named here, before TensorFlow loads
        (directory / f"{k}.toml").write_text(block.text, encoding="utf-8")
    script = (
        "import json, sys\n"
        "from exporter import load_config\n"
        "errors = {}\n"
        "for k in range(int(sys.argv[1])):\n"
        "    try:\n"
        "        load_config(f'{k}.toml')\n"
        "        errors[k] = None\n"
        "    except Exception as error:\n"
        "        errors[k] = f'{type(error).__name__}: {error}'\n"
        "print(json.dumps(errors))\n"
    )
    result = subprocess.run(  # noqa: S603 - our own script
        [sys.executable, "-c", script, str(len(toml_blocks))], cwd=directory, env=_env({}),
        capture_output=True, text=True, timeout=COMMAND_TIMEOUT, check=True,
    )  # fmt: skip
    errors = json.loads(result.stdout.strip().splitlines()[-1])
    return {block.where: errors[str(k)] for k, block in enumerate(toml_blocks)}


def _substitute(text: str, server) -> str:
    for host in ("localhost", "127.0.0.1"):
        text = text.replace(f"{host}:8500", f"127.0.0.1:{server.grpc_port}")
        text = text.replace(f"{host}:8501", f"127.0.0.1:{server.rest_port}")
    return text


def _run_server_command(command: str, cwd: Path, env: dict[str, str], where: str) -> None:
    from model_server._lines import READY_PREFIX  # the line protocol's one home

    process = subprocess.Popen(  # noqa: S602 - a command of our own docs
        f"exec {command} --port=0 --rest_api_port=0",
        shell=True, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + COMMAND_TIMEOUT
    seen: list[str] = []
    try:
        for line in process.stdout:
            seen.append(line)
            if line.startswith(READY_PREFIX) or time.monotonic() > deadline:
                break
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    assert any(line.startswith(READY_PREFIX) for line in seen), (
        f"{where}: `{command}` never printed '{READY_PREFIX}':\n{''.join(seen)}\n{stderr[-3000:]}"
    )
    assert process.returncode == 0, f"{where}: `{command}` exited {process.returncode} on SIGTERM"


def _run(block: Block, server, workdir: Path) -> None:
    env = _env({"PORT": str(server.grpc_port), "REST_PORT": str(server.rest_port)})
    text = _substitute(block.text, server)
    if block.language == "python":
        result = subprocess.run(  # noqa: S603 - a snippet of our own docs
            [sys.executable, "-"], input=text, cwd=workdir, env=env,
            capture_output=True, text=True, timeout=COMMAND_TIMEOUT,
        )  # fmt: skip
        assert result.returncode == 0, (
            f"{block.where}: the python block exited {result.returncode}\n"
            f"{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
        )
        return
    commands = Block(block.path, block.line, block.language, text, None).commands()
    assert commands, f"{block.where}: a console block without a `$ ` command; fence it as text"
    for command in commands:
        if _SERVER_COMMAND.match(command):
            _run_server_command(command, workdir, env, block.where)
            continue
        result = subprocess.run(  # noqa: S602 - a command of our own docs
            command, shell=True, executable="/bin/bash", cwd=workdir, env=env,
            capture_output=True, text=True, timeout=COMMAND_TIMEOUT,
        )  # fmt: skip
        assert result.returncode == 0, (
            f"{block.where}: `{command}` exited {result.returncode}\n"
            f"{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
        )


def test_fences_say_whether_they_run():
    refused = [b.where for b in ALL_BLOCKS if b.language in REFUSED_LANGUAGES]
    assert not refused, f"fence these as console (run) or text (shown): {refused}"
    untagged = [b.where for b in ALL_BLOCKS if not b.language]
    assert not untagged, f"fences without a language (use text for diagrams): {untagged}"


def test_docs_index_lists_every_page():
    index = (ROOT / "docs" / "index.md").read_text(encoding="utf-8")
    missing = [p.name for p in PAGES[1:] if p.name != "index.md" and f"]({p.name})" not in index]
    assert not missing, f"docs/index.md does not link {missing}"


def _anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    anchors = set()
    in_fence = False
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.startswith(("```", "~~~")):
            in_fence = not in_fence
        elif not in_fence and (heading := re.match(r"^#{1,6}\s+(.*)", line)):
            slug = re.sub(r"[^\w\- ]", "", heading.group(1).strip().lower()).replace(" ", "-")
            anchors.add(slug)
    return anchors


def test_relative_links_resolve():
    broken = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for target, anchor in re.findall(r"\]\(([^)#\s]*)(?:#([^)\s]*))?\)", text):
            if "://" in target or target.startswith("mailto:"):
                continue
            path = page.parent / target if target else page
            if not path.exists():
                broken.append(f"{page.name} → {target}")
            elif anchor and path.suffix == ".md" and anchor not in _anchors(path):
                broken.append(f"{page.name} → {target}#{anchor}")
    assert not broken, f"broken links: {broken}"


@pytest.mark.integration  # exports a model
@pytest.mark.e2e  # and starts the bundled server on it
@pytest.mark.parametrize("block", RUN_BLOCKS, ids=[b.where for b in RUN_BLOCKS])
def test_block_runs(block: Block, request):
    if block.skip:
        pytest.skip(block.skip)
    if block.language == "toml":
        error = request.getfixturevalue("toml_errors")[block.where]
        assert error is None, f"{block.where}: exporter.load_config refuses this block: {error}"
        return
    server = request.getfixturevalue("server")
    _run(block, server, request.getfixturevalue("workdirs")(block.path))
