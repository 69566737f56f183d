"""The docker compose stack (issue 9): docker-compose.yml, both Dockerfiles, .env.example.

No Docker engine runs here, so these tests read the files the way Compose and the image builder
would: the compose file against the Compose Specification's JSON schema, the services' start
order, health checks and settings against what the bot reads (bot/config.py), and the bot
image's build steps (install the package, compile the catalogs) replayed on the package as
setuptools lays it out. The same commands run as plain processes in the serve tests.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatch
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from babel.messages.pofile import read_po
from sqlalchemy.engine import make_url

from bot.config import Settings
from tests.support import REPO

COMPOSE_FILE = REPO / "docker-compose.yml"
COMPOSE_SCHEMA = REPO / "tests" / "data" / "compose-spec.json"
ENV_EXAMPLE = REPO / ".env.example"
BOT_DOCKERFILE = REPO / "Dockerfile"
NLU_DOCKERFILE = REPO / "nlu" / "Dockerfile"
# The services the stack needs (contract 5); `synapse` comes with the `matrix` profile.
CORE_SERVICES = {"postgres", "nlu", "migrate", "bot"}
EXAMPLE_PASSWORD = "example-password"  # stands in for POSTGRES_PASSWORD from .env


# --- reading the files ---------------------------------------------------------------------


@cache
def compose() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


def service(name: str) -> dict[str, Any]:
    services: dict[str, dict[str, Any]] = compose()["services"]
    return services[name]


_VARIABLE = re.compile(
    r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<operator>:?[-?])(?P<word>[^}]*))?\}"
)


def interpolate(value: str, variables: Mapping[str, str]) -> str:
    """Compose's `${NAME}`, `${NAME:-default}` and `${NAME:?error}` against `variables`."""

    def substitute(match: re.Match[str]) -> str:
        name, operator, word = match["name"], match["operator"], match["word"]
        current = variables.get(name)
        unset = current is None or (current == "" and operator is not None and ":" in operator)
        if unset and operator is not None and operator.endswith("-"):
            return word
        if unset and operator is not None and operator.endswith("?"):
            raise ValueError(f"{name}: {word}")
        return current or ""

    return _VARIABLE.sub(substitute, value)


def compose_environment(name: str, variables: Mapping[str, str]) -> dict[str, str]:
    environment: dict[str, Any] = service(name).get("environment", {})
    assert isinstance(environment, dict), f"{name}: write `environment` as a mapping"
    return {key: interpolate(str(value), variables) for key, value in environment.items()}


@dataclass(frozen=True)
class EnvExample:
    """`.env.example`: the lines that set a value, and the commented-out examples."""

    active: dict[str, str]
    commented: dict[str, str]

    @property
    def names(self) -> set[str]:
        return set(self.active) | set(self.commented)


def read_env_example() -> EnvExample:
    active: dict[str, str] = {}
    commented: dict[str, str] = {}
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        if match := re.fullmatch(r"([A-Z][A-Z0-9_]*)=(.*)", line):
            assert match[1] not in active, f".env.example sets {match[1]} twice"
            active[match[1]] = match[2]
        elif match := re.fullmatch(r"#\s*([A-Z][A-Z0-9_]*)=(.*)", line):
            commented[match[1]] = match[2]
    return EnvExample(active, commented)


def settings_variables() -> set[str]:
    return {f"LOTSE_{name.upper()}" for name in Settings.model_fields}


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str

    def exec_form(self) -> list[str]:
        """The JSON array of CMD, ENTRYPOINT or HEALTHCHECK (after its --options and CMD)."""
        start = self.arguments.index("[")
        value = json.loads(self.arguments[start:])
        assert isinstance(value, list), self
        return [str(item) for item in value]


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> Instruction:
        found = self.all(keyword)
        assert found, f"stage {self.name or self.base} has no {keyword}"
        return found[-1]

    def environment(self) -> dict[str, str]:
        variables: dict[str, str] = {}
        for instruction in self.all("ENV"):
            for pair in shlex.split(instruction.arguments):
                key, _, value = pair.partition("=")
                variables[key] = value
        return variables

    def run_text(self) -> str:
        return "\n".join(i.arguments for i in self.all("RUN"))


def _logical_lines(text: str) -> Iterator[str]:
    """Dockerfile lines with continuations joined; comments and blank lines dropped."""
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        yield pending + line
        pending = ""
    if pending:
        yield pending


def read_dockerfile(path: Path) -> list[Stage]:
    build_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in _logical_lines(path.read_text(encoding="utf-8")):
        keyword, _, arguments = line.partition(" ")
        keyword, arguments = keyword.upper(), arguments.strip()
        if keyword == "ARG" and not stages:
            argument, _, default = arguments.partition("=")
            build_args[argument] = default
        elif keyword == "FROM":
            words = [w for w in arguments.split() if not w.startswith("--")]
            base = interpolate(words[0], build_args)
            stage_name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base, stage_name))
        else:
            assert stages, f"{path}: {keyword} before FROM"
            stages[-1].instructions.append(Instruction(keyword, arguments))
    return stages


def dockerignore_excludes(ignore_file: Path, path: str) -> bool:
    """Whether the builder leaves `path` (relative to the context) out, by .dockerignore."""
    excluded = False
    for raw in ignore_file.read_text(encoding="utf-8").splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negated = pattern.startswith("!")
        pattern = pattern.removeprefix("!").strip("/").removeprefix("**/")
        parts = Path(path).parts
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(
            fnmatch(prefix, pattern) or fnmatch(part, pattern)
            for prefix, part in zip(prefixes, parts, strict=True)
        ):
            excluded = not negated
    return excluded


# --- the compose file ----------------------------------------------------------------------


def test_the_compose_file_is_valid_under_the_compose_specification() -> None:
    schema = json.loads(COMPOSE_SCHEMA.read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema)
    errors = [
        f"{'/'.join(map(str, error.absolute_path)) or '(top)'}: {error.message}"
        for error in validator.iter_errors(compose())
    ]
    assert errors == []


def test_the_schema_check_catches_a_mistake_operators_make() -> None:
    # An unquoted `restart: no` is YAML's false, which Compose rejects; the schema must too,
    # or the test above would prove little.
    broken = json.loads(json.dumps(compose()))
    broken["services"]["migrate"]["restart"] = False
    schema = json.loads(COMPOSE_SCHEMA.read_text(encoding="utf-8"))
    assert not jsonschema.Draft202012Validator(schema).is_valid(broken)


def test_the_stack_has_the_database_the_nlu_server_a_migration_step_and_the_bot() -> None:
    services = set(compose()["services"])
    assert services - {"synapse"} == CORE_SERVICES
    assert service("postgres")["image"].startswith("postgres:")
    assert service("nlu")["build"]["context"] in ("./nlu", "nlu")
    for name in ("migrate", "bot"):
        assert service(name)["build"]["context"] in (".", "./"), name
    assert service("migrate")["image"] == service("bot")["image"], "one image for both"


def test_migrate_upgrades_the_database_once_and_the_bot_serves() -> None:
    assert service("migrate")["command"] == ["lotse", "db", "upgrade"]
    assert service("migrate")["restart"] == "no"
    assert service("migrate")["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert service("bot")["command"] == ["lotse", "serve"]


def test_the_bot_starts_after_healthy_postgres_a_migration_and_a_started_nlu() -> None:
    # Not a healthy nlu: Rasa loads for minutes or may be down, and the lexicon answers then.
    assert service("bot")["depends_on"] == {
        "postgres": {"condition": "service_healthy"},
        "nlu": {"condition": "service_started"},
        "migrate": {"condition": "service_completed_successfully"},
    }


def test_a_bot_with_a_channel_that_stays_failed_ends_and_compose_restarts_it() -> None:
    # Compose restarts a container that exits, not an unhealthy one: `lotse serve` exits with 1
    # once a channel has failed for LOTSE_CHANNEL_FAILURE_EXIT_SECONDS (tests/test_serve.py).
    assert service("bot")["restart"] == "unless-stopped"
    example = read_env_example()
    seconds = float(example.active["LOTSE_CHANNEL_FAILURE_EXIT_SECONDS"])
    assert 60 <= seconds <= 900  # after a look at /healthz, before users wait too long
    assert "LOTSE_CHANNEL_FAILURE_EXIT_SECONDS" not in service("bot")["environment"]


def test_every_long_running_service_restarts_and_has_a_health_check() -> None:
    for name in sorted(set(compose()["services"]) - {"migrate"}):
        assert service(name)["restart"] in ("unless-stopped", "always"), name
        healthcheck = service(name)["healthcheck"]
        assert healthcheck["test"][0] == "CMD", f"{name}: exec form, no shell needed"
        assert "start_period" in healthcheck, name


def test_the_health_checks_ask_the_right_thing() -> None:
    postgres = service("postgres")["healthcheck"]["test"]
    assert postgres[1] == "pg_isready"
    assert "--username=lotse" in postgres and "--dbname=lotse" in postgres
    # The slim images have no curl: Python's urllib, which fails on any non-2xx answer.
    nlu = " ".join(service("nlu")["healthcheck"]["test"])
    assert nlu.startswith("CMD python -c") and "http://127.0.0.1:5005/status" in nlu
    bot = " ".join(service("bot")["healthcheck"]["test"])
    port = service("bot")["environment"]["LOTSE_HTTP_PORT"]
    assert bot.startswith("CMD python -c") and f"http://127.0.0.1:{port}/healthz" in bot


def test_the_bot_listens_on_all_interfaces_of_its_container_on_port_8080() -> None:
    environment = compose_environment("bot", {"POSTGRES_PASSWORD": EXAMPLE_PASSWORD})
    assert environment["LOTSE_HTTP_LISTEN"] == "0.0.0.0"
    assert environment["LOTSE_HTTP_PORT"] == "8080"
    assert "127.0.0.1:8080:8080" in service("bot")["ports"]


def test_published_ports_listen_on_the_hosts_loopback_only() -> None:
    for name, definition in compose()["services"].items():
        for port in definition.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} to the world"


def test_the_database_url_points_at_the_postgres_service_with_asyncpg() -> None:
    postgres = service("postgres")["environment"]
    for name in ("migrate", "bot"):
        variables = {"POSTGRES_PASSWORD": EXAMPLE_PASSWORD}
        url = make_url(compose_environment(name, variables)["LOTSE_DATABASE_URL"])
        assert url.drivername == "postgresql+asyncpg", name
        assert (url.host, url.port) == ("postgres", 5432), name
        assert url.username == postgres["POSTGRES_USER"], name
        assert url.database == postgres["POSTGRES_DB"], name
        assert url.password == interpolate(postgres["POSTGRES_PASSWORD"], variables), name


def test_a_forgotten_database_password_stops_compose_with_a_message_naming_it() -> None:
    with pytest.raises(ValueError, match="POSTGRES_PASSWORD"):
        interpolate(service("postgres")["environment"]["POSTGRES_PASSWORD"], {})
    with pytest.raises(ValueError, match="POSTGRES_PASSWORD"):
        compose_environment("bot", {"POSTGRES_PASSWORD": ""})


def test_the_bot_uses_rasa_at_the_nlu_service_on_the_port_rasa_serves() -> None:
    environment = compose_environment("bot", {"POSTGRES_PASSWORD": EXAMPLE_PASSWORD})
    assert environment["LOTSE_NLU"] == "rasa"
    url = make_url(environment["LOTSE_RASA_URL"].replace("http://", "http+x://"))
    command = read_dockerfile(NLU_DOCKERFILE)[-1].last("CMD").exec_form()
    assert (url.host, str(url.port)) == ("nlu", command[command.index("--port") + 1])
    assert command[command.index("-i") + 1] == "0.0.0.0", "reachable from the bot's container"


def test_every_lotse_variable_the_stack_sets_is_a_setting_the_bot_reads() -> None:
    # Settings ignore unknown LOTSE_* variables, so a typo here would pass silently.
    image = read_dockerfile(BOT_DOCKERFILE)[-1].environment()
    for name, variables in [
        ("docker-compose.yml bot", set(service("bot")["environment"])),
        ("docker-compose.yml migrate", set(service("migrate")["environment"])),
        ("Dockerfile", set(image)),
    ]:
        lotse = {variable for variable in variables if variable.startswith("LOTSE_")}
        assert lotse - settings_variables() == set(), name


def test_secrets_come_from_the_env_file_not_the_compose_file() -> None:
    for name in ("migrate", "bot"):
        assert service(name)["env_file"] in (".env", [".env"], "./.env"), name
    secret_fields = [
        f"LOTSE_{name.upper()}"
        for name, info in Settings.model_fields.items()
        if "SecretStr" in str(info.annotation)
    ]
    for name in ("migrate", "bot"):
        assert set(service(name)["environment"]) & set(secret_fields) == set(), name


def test_the_matrix_profile_adds_a_synapse_that_the_default_stack_leaves_out() -> None:
    synapse = service("synapse")
    assert synapse["profiles"] == ["matrix"]
    assert "synapse" in synapse["image"]
    assert synapse["environment"]["SYNAPSE_REPORT_STATS"] == "no"  # `generate` needs both
    assert synapse["environment"]["SYNAPSE_SERVER_NAME"]
    assert any(volume.endswith(":/data") for volume in synapse["volumes"])
    for name in CORE_SERVICES:
        assert "profiles" not in service(name), name
        assert "synapse" not in service(name).get("depends_on", {}), name


def test_data_lives_in_named_volumes() -> None:
    volumes = set(compose()["volumes"])
    assert "postgres-data:/var/lib/postgresql/data" in service("postgres")["volumes"]
    matrix_store = read_dockerfile(BOT_DOCKERFILE)[-1].environment()["LOTSE_MATRIX_STORE_DIR"]
    mounts = dict(volume.split(":", 1) for volume in service("bot")["volumes"])
    assert any(matrix_store.startswith(target) for target in mounts.values())
    assert set(mounts) <= volumes


def test_the_compose_file_passes_yamllint() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "yamllint", "-s", "docker-compose.yml"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- .env.example ----------------------------------------------------------------------------


def test_env_example_documents_every_setting_and_only_real_ones() -> None:
    example = read_env_example()
    lotse = {name for name in example.names if name.startswith("LOTSE_")}
    assert settings_variables() - lotse == set(), "settings missing from .env.example"
    assert lotse - settings_variables() == set(), "not settings of bot/config.py"
    assert example.names - lotse == {"POSTGRES_PASSWORD"}


def test_every_setting_in_env_example_has_a_comment_above_it() -> None:
    lines = ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines):
        if re.match(r"#?\s*[A-Z][A-Z0-9_]*=", line):
            above = lines[number - 1]
            assert above.startswith("# "), f".env.example:{number + 1}: {line} needs a comment"


def test_env_example_values_read_the_same_in_compose_and_in_lotse() -> None:
    # Compose and python-dotenv disagree on quotes and on comments after a value.
    example = read_env_example()
    for name, value in {**example.active, **example.commented}.items():
        assert not re.search(r"""["'\s]""", value), f"{name}={value}: plain values only"


def test_env_example_sets_no_secret() -> None:
    example = read_env_example()
    assert example.active["POSTGRES_PASSWORD"] == ""
    for name, info in Settings.model_fields.items():
        if "SecretStr" in str(info.annotation):
            variable = f"LOTSE_{name.upper()}"
            assert variable not in example.active, f"{variable}: leave it commented out"
            assert example.commented[variable] == "", f"{variable}: no example secret"


def test_copied_to_env_it_gives_settings_that_load_with_optional_ones_unset(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # An empty `LOTSE_TELEGRAM_TOKEN=` would be an empty token, not "no Telegram"; and an empty
    # number fails to parse. Optional settings stay commented out.
    for variable in os.environ:
        if variable.startswith("LOTSE_"):
            monkeypatch.delenv(variable)
    env_file = tmp_path / ".env"
    env_file.write_text(ENV_EXAMPLE.read_text(encoding="utf-8"), encoding="utf-8")
    settings = Settings(_env_file=env_file)
    for name, info in Settings.model_fields.items():
        if info.default is None:
            assert getattr(settings, name) is None, f"LOTSE_{name.upper()} is set"
    assert settings.log_format == "json"


def test_settings_the_stack_sets_are_commented_out_in_env_example() -> None:
    # compose's `environment` and the image's ENV win over (or make pointless) .env lines.
    example = read_env_example()
    image = read_dockerfile(BOT_DOCKERFILE)[-1].environment()
    fixed = (set(service("bot")["environment"]) | set(image)) & settings_variables()
    assert fixed & set(example.active) == set()
    assert fixed <= set(example.commented)


def test_the_bot_in_its_container_gets_the_settings_the_stack_means(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # What the container sees: the image's ENV, then .env (from .env.example), then compose's
    # `environment`, later ones winning, as Docker does.
    example = read_env_example()
    variables = {**example.active, "POSTGRES_PASSWORD": EXAMPLE_PASSWORD}
    environment = {
        **read_dockerfile(BOT_DOCKERFILE)[-1].environment(),
        **variables,
        **compose_environment("bot", variables),
    }
    for variable in os.environ:
        if variable.startswith("LOTSE_"):
            monkeypatch.delenv(variable)
    for variable, value in environment.items():
        monkeypatch.setenv(variable, value)
    settings = Settings(_env_file=None)
    assert settings.database_url.startswith("postgresql+asyncpg://lotse:example-password@postgres")
    assert (settings.nlu, settings.rasa_url) == ("rasa", "http://nlu:5005")
    assert (settings.http_listen, settings.http_port) == ("0.0.0.0", 8080)
    assert settings.knowledge_dir == Path("/app/knowledge")
    assert settings.matrix_store_dir == Path("/var/lib/lotse/matrix")


# --- the Dockerfiles -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dockerfile", "python"),
    [(BOT_DOCKERFILE, "python:3.11-slim"), (NLU_DOCKERFILE, "python:3.10-slim")],
    ids=["bot", "nlu"],
)
def test_both_images_are_multi_stage_slim_and_run_as_a_non_root_user(
    dockerfile: Path, python: str
) -> None:
    stages = read_dockerfile(dockerfile)
    assert len(stages) >= 2, "multi-stage: compilers stay in the build stage"
    assert {stage.base for stage in stages} == {python}
    runtime = stages[-1]
    user = runtime.last("USER").arguments.split(":")[0]
    assert user not in ("root", "0"), dockerfile
    keywords = [i.keyword for i in runtime.instructions]
    assert keywords.index("USER") < keywords.index("CMD"), "the process runs as that user"
    assert "build-essential" in stages[0].run_text()
    assert not re.search(r"build-essential|gcc|apt-get install", runtime.run_text()), dockerfile
    assert runtime.all("HEALTHCHECK") and runtime.all("EXPOSE")


def test_the_bot_image_runs_lotse_with_compiled_catalogs_and_the_knowledge_base() -> None:
    build, runtime = read_dockerfile(BOT_DOCKERFILE)[0], read_dockerfile(BOT_DOCKERFILE)[-1]
    assert "pybabel compile --domain lotse" in build.run_text()
    copies = [i.arguments for i in runtime.all("COPY")]
    assert f"--from={build.name} /opt/venv /opt/venv" in copies
    assert "knowledge /app/knowledge" in copies
    assert runtime.environment()["LOTSE_KNOWLEDGE_DIR"] == "/app/knowledge"
    assert runtime.last("ENTRYPOINT").exec_form() == ["lotse"]
    assert runtime.last("CMD").exec_form() == ["serve"]
    assert runtime.last("EXPOSE").arguments == "8080"
    assert "/healthz" in " ".join(runtime.last("HEALTHCHECK").exec_form())


def test_the_nlu_image_trains_at_build_time_with_the_rasa_version_scripts_nlu_pins() -> None:
    pinned = re.search(r"^RASA_VERSION=(\S+)$", (REPO / "scripts" / "nlu").read_text(), re.M)
    assert pinned
    build, runtime = read_dockerfile(NLU_DOCKERFILE)[0], read_dockerfile(NLU_DOCKERFILE)[-1]
    assert f"ARG RASA_VERSION={pinned[1]}" in [f"ARG {i.arguments}" for i in build.all("ARG")]
    assert "rasa train nlu --config config.yml --nlu data" in build.run_text()
    command = runtime.last("ENTRYPOINT").exec_form() + runtime.last("CMD").exec_form()
    assert command[:3] == ["rasa", "run", "--enable-api"]
    model = command[command.index("-m") + 1]
    assert any(i.arguments.endswith(f" {model}") for i in runtime.all("COPY")), "model copied"
    assert "/status" in " ".join(runtime.last("HEALTHCHECK").exec_form())


def test_the_nlu_image_never_trains_on_the_held_out_test_set() -> None:
    assert dockerignore_excludes(REPO / "nlu" / ".dockerignore", "tests/test_nlu.yml")
    assert not dockerignore_excludes(REPO / "nlu" / ".dockerignore", "data/nlu.yml")


@pytest.mark.parametrize("ignore_file", [REPO / ".dockerignore", REPO / "nlu" / ".dockerignore"])
def test_the_env_file_never_reaches_an_image_or_git(ignore_file: Path) -> None:
    assert dockerignore_excludes(ignore_file, ".env")
    ignored = subprocess.run(
        ["git", "check-ignore", "--quiet", ".env"], cwd=REPO, check=False
    ).returncode
    assert ignored == 0, ".env must be in .gitignore"


def test_the_bot_build_context_holds_what_the_dockerfile_copies_and_not_the_clutter() -> None:
    ignore_file = REPO / ".dockerignore"
    for stage in read_dockerfile(BOT_DOCKERFILE):
        for copy in stage.all("COPY"):
            if "--from=" in copy.arguments:
                continue
            *sources, _target = copy.arguments.split()
            for source in sources:
                assert not dockerignore_excludes(ignore_file, source), source
    for clutter in (".git/HEAD", ".venv/bin/python", "tests/test_store.py", "x/__pycache__/a"):
        assert dockerignore_excludes(ignore_file, clutter), clutter


@pytest.mark.slow
def test_the_installed_package_has_migrations_and_catalogs_and_uses_the_compiled_ones(
    tmp_path: Path,
) -> None:
    # The image installs Lotse as a package (not this checkout) and compiles the catalogs inside
    # it. Lay the package out as setuptools does, replay the compile step, and run from there.
    library = tmp_path / "lib"
    subprocess.run(
        [
            sys.executable,
            "-c",
            "from setuptools import setup; setup()",
            "--quiet",
            "egg_info",
            "--egg-base",
            str(tmp_path),
            "build_py",
            "--build-lib",
            str(library),
        ],
        cwd=REPO,
        check=True,
        capture_output=True,
    )
    locale_dir = library / "bot" / "i18n" / "locale"
    pybabel = Path(sys.executable).with_name("pybabel")
    subprocess.run(
        [str(pybabel), "compile", "--domain", "lotse", "--directory", str(locale_dir)],
        check=True,
        capture_output=True,
    )
    mo_file = locale_dir / "en" / "LC_MESSAGES" / "lotse.mo"
    po_file = mo_file.with_suffix(".po")
    assert mo_file.is_file()
    # Spoil the .po (keeping it older than the .mo): a translation still right proves the .mo
    # is what the bot reads.
    with po_file.open("rb") as handle:
        catalog = read_po(handle, locale="en", domain="lotse")
    message, english = next(
        (str(m.id), str(m.string)) for m in catalog if m.id and m.string and m.id != m.string
    )
    po_stat = po_file.stat()
    po_file.write_text('msgid ""\nmsgstr ""\n"Content-Type: text/plain; charset=UTF-8\\n"\n')
    os.utime(po_file, ns=(po_stat.st_atime_ns, mo_file.stat().st_mtime_ns - 1_000_000_000))

    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith("LOTSE_")},
        "PYTHONPATH": str(library),
        "LOTSE_DATABASE_URL": f"sqlite:///{tmp_path / 'lotse.sqlite3'}",
        "LOTSE_KNOWLEDGE_DIR": str(REPO / "knowledge"),  # as the image's ENV does
    }
    probe = (
        "import json, bot, bot.i18n; "
        f"print(json.dumps([bot.__file__, bot.i18n.translator('en').gettext({message!r})]))"
    )
    found = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path,
        env=environment,
        check=True,
        capture_output=True,
        text=True,
    )
    module_file, translated = json.loads(found.stdout)
    assert module_file.startswith(str(library))
    assert translated == english, "the English text comes from the compiled catalog"
    upgraded = subprocess.run(
        [
            sys.executable,
            "-c",
            "from bot.cli import main; raise SystemExit(main(['db', 'upgrade']))",
        ],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    assert upgraded.returncode == 0, upgraded.stdout + upgraded.stderr
    assert (tmp_path / "lotse.sqlite3").stat().st_size > 0
