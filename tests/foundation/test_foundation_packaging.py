"""The two commands, the Docker image and compose stay in step with each other.

No Docker engine runs on the project's machines, so this checks what can be checked: the files
parse, the image installs exactly as the README does, and compose has what operations need.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_the_readme_opens_with_the_two_commands() -> None:
    first_block = re.search(r"```sh\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert first_block is not None
    commands = [line.split("#")[0].strip() for line in first_block.group(1).splitlines()]
    assert commands[:2] == ["make run", "make test"]


def test_ci_runs_exactly_the_readme_test_command() -> None:
    lines = [
        line.strip()
        for line in (ROOT / ".ci" / "run").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[-1] == "make test"


def test_the_make_targets_run_the_daemon_and_the_tests() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^run: .*\n\t\$\(BIN\)/quantum-trader run$", makefile, re.M)
    assert re.search(r"^test: .*\n(\t.*\n)*\t\$\(BIN\)/pytest", makefile, re.M)


def test_the_image_installs_as_the_readme_does_and_runs_unprivileged() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "RUN make install PYTHON=python3.11" in dockerfile
    users = re.findall(r"^USER (\S+)$", dockerfile, re.M)
    assert users
    assert users[-1] not in {"root", "0"}
    assert re.search(r"^HEALTHCHECK .*\n\s+CMD .*http://127.0.0.1:8080/health", dockerfile, re.M)
    assert "QT_SERVER__PORT=8080" in dockerfile
    assert 'ENTRYPOINT ["quantum-trader"]' in dockerfile


def test_compose_has_a_volume_an_env_file_init_a_grace_period_and_restarts() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    service = compose["services"]["quantum-trader"]
    assert service["init"] is True
    assert service["restart"] == "unless-stopped"
    assert any(str(v).endswith(":/data") for v in service["volumes"])
    assert service["env_file"][0]["path"] == ".env"
    grace_s = int(str(service["stop_grace_period"]).rstrip("s"))
    assert grace_s > 10  # longer than executor.shutdown_grace_s
    assert "qt-data" in compose["volumes"]


def test_no_secret_is_committed_in_the_example_env() -> None:
    for line in (ROOT / ".env.example").read_text().splitlines():
        if "API_KEY=" in line or "API_SECRET=" in line:
            assert line.startswith("#") or line.split("=", 1)[1] == ""
