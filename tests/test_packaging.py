"""What ships: the sdist and wheel built from this checkout, installed into a fresh virtualenv beside another
distribution that owns a top-level `tools` package; the MCP registry's server.json; the paths the docs name.

The builds call setuptools' PEP 517 hooks directly (no build isolation, so no network): setuptools comes with
the test extra.
"""

from __future__ import annotations

import email
import hashlib
import json
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ROOT

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
NAME, VERSION = PYPROJECT["name"], PYPROJECT["version"]
SOURCE_JUNK = (".git", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", ".venv", "venv", "exports",
               "*.db", "*.db-*", "*.db.lock", "*.jsonl", ".curator-venv")
OTHER_TOOLS = '"""A top-level `tools` package owned by another distribution."""\nOWNER = "othertools"\n'


@dataclass
class Built:
    sdist: Path
    wheel: Path
    unpacked_sdist: Path


def pep517(hook: str, source: Path, out: Path) -> Path:
    """Run one setuptools build hook in `source`; returns the file it wrote."""
    code = f"import sys; from setuptools import build_meta; print(build_meta.{hook}(sys.argv[1]))"
    done = subprocess.run([sys.executable, "-c", code, str(out)], cwd=source, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return out / done.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """sdist from a copy of the checkout (builds write into their source tree), then the wheel from the sdist."""
    work = tmp_path_factory.mktemp("build")
    source = work / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(*SOURCE_JUNK))
    sdist = pep517("build_sdist", source, work / "dist")
    with tarfile.open(sdist) as archive:
        archive.extractall(work / "unpacked", filter="data")
    unpacked = work / "unpacked" / f"{NAME}-{VERSION}"
    wheel = pep517("build_wheel", unpacked, work / "dist")
    # The wheel's build leaves build/ and *.egg-info in the unpacked tree; the tests run there later.
    shutil.rmtree(unpacked / "build", ignore_errors=True)
    return Built(sdist, wheel, unpacked)


def test_the_wheel_installs_only_the_treedistill_package(built: Built):
    with zipfile.ZipFile(built.wheel) as wheel:
        names = wheel.namelist()
        metadata = email.message_from_bytes(wheel.read(f"{NAME}-{VERSION}.dist-info/METADATA"))
        entry_points = wheel.read(f"{NAME}-{VERSION}.dist-info/entry_points.txt").decode()
    assert {name.split("/")[0] for name in names} == {"treedistill", f"{NAME}-{VERSION}.dist-info"}
    for module in ("treedistill/__init__.py", "treedistill/__main__.py", "treedistill/server/cli/main.py",
                   "treedistill/server/text/prompts/zh.py", "treedistill/tools/projects.py",
                   # the review app and dashboard: package data, no build step
                   "treedistill/server/ui/__init__.py", "treedistill/server/ui/static/app.html",
                   "treedistill/server/ui/static/app.js", "treedistill/server/ui/static/app.css",
                   "treedistill/server/ui/static/report.js", "treedistill/server/ui/static/report.css",
                   "treedistill/server/ui/static/markdown.js",
                   # vendored, with their licences
                   "treedistill/server/ui/static/vendor/markdown-it.min.js",
                   "treedistill/server/ui/static/vendor/purify.min.js",
                   "treedistill/server/ui/static/vendor/LICENSE-markdown-it.txt",
                   "treedistill/server/ui/static/vendor/LICENSE-dompurify.txt",
                   "treedistill/server/ui/static/eval.js"):
        assert module in names, module
    assert f"{NAME}-{VERSION}.dist-info/licenses/LICENSE" in names
    assert "treedistill = treedistill.server.cli.main:main" in entry_points

    assert metadata["License-Expression"] == "MIT" and metadata["Requires-Python"] == ">=3.11"
    assert metadata["Author"] == "treedistill developers"
    classifiers = metadata.get_all("Classifier")
    assert {f"Programming Language :: Python :: 3.{minor}" for minor in (11, 12, 13)} <= set(classifiers)
    urls = dict(line.split(", ", 1) for line in metadata.get_all("Project-URL"))
    assert {"Homepage", "Repository", "Issues"} <= set(urls)
    assert all(url.startswith("https://") for url in urls.values())
    assert "MIT License" in (ROOT / "LICENSE").read_text() and "treedistill developers" in (ROOT / "LICENSE").read_text()


def test_the_sdist_carries_a_runnable_test_suite(built: Built):
    with tarfile.open(built.sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    for needed in ("pyproject.toml", "README.md", "LICENSE", "server.json", "tests/conftest.py",
                   "tests/standin_llm.py", "tests/test_cli.py", "client_examples/README.md",
                   "docs/architecture.md", "benchmarks/__init__.py", "server/cli/main.py", "tools/projects.py",
                   "server/ui/static/app.js", "server/ui/static/vendor/purify.min.js",
                   "server/ui/static/vendor/LICENSE-dompurify.txt", "tests/ui_host.html"):
        assert needed in names, needed
    assert not [name for name in names if "__pycache__" in name or name.endswith((".pyc", ".db"))]


def site_packages(python: Path) -> Path:
    return Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                               capture_output=True, text=True, check=True).stdout.strip())


def pip(python: Path, *args: str) -> subprocess.CompletedProcess:
    """This interpreter's pip, acting on another environment (no pip inside it: faster, and offline)."""
    done = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "--disable-pip-version-check",
                           *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done


def tree_digest(folder: Path) -> dict[str, str]:
    return {str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.rglob("*")) if path.is_file() and "__pycache__" not in path.parts}


def test_installs_beside_another_top_level_tools_package_and_uninstalls_cleanly(built: Built, tmp_path: Path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    python = venv / "bin" / "python"
    packages = site_packages(python)
    # The dependencies (mcp, openai, ...) come from this test environment, appended after the venv's own
    # site-packages; that folder's .pth files (an editable treedistill) are not run, so the wheel is what loads.
    (packages / "test-dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")

    other = tmp_path / "othertools"
    (other / "tools").mkdir(parents=True)
    (other / "tools" / "__init__.py").write_text(OTHER_TOOLS)
    (other / "pyproject.toml").write_text('[build-system]\nrequires = ["setuptools>=77"]\n'
                                          'build-backend = "setuptools.build_meta"\n[project]\nname = "othertools"\n'
                                          'version = "1.0"\n[tool.setuptools]\npackages = ["tools"]\n')
    pip(python, "install", "--no-deps", "--no-index", "--no-build-isolation", str(other))
    before = tree_digest(packages / "tools")

    pip(python, "install", "--no-deps", "--no-index", str(built.wheel))
    assert tree_digest(packages / "tools") == before
    probe = ("import tools, treedistill, treedistill.tools.projects, treedistill.server.cli.main; "
             "from treedistill.server.ui import app_html; assert 'treedistill' in app_html('review'); "
             "print(tools.OWNER, treedistill.__version__, treedistill.__file__, treedistill.tools.__file__)")
    shown = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    owner, version, package_file, tools_file = shown.stdout.split()
    assert (owner, version) == ("othertools", VERSION)
    assert package_file.startswith(str(packages)) and tools_file.startswith(str(packages / "treedistill"))
    command = subprocess.run([str(venv / "bin" / "treedistill"), "--version"], capture_output=True, text=True,
                             timeout=120)
    assert command.stdout.strip() == f"treedistill {VERSION}", command.stderr

    # The test suite, run from the unpacked sdist against the installed wheel (a quick file of it).
    suite = subprocess.run([str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_docs.py"],
                           cwd=built.unpacked_sdist, capture_output=True, text=True, timeout=180)
    assert suite.returncode == 0, suite.stdout[-3000:] + suite.stderr[-3000:]

    pip(python, "uninstall", "--yes", NAME)
    assert tree_digest(packages / "tools") == before
    assert not (packages / "treedistill").exists() and not (venv / "bin" / "treedistill").exists()
    left = subprocess.run([str(python), "-c", "import tools; print(tools.OWNER)"], capture_output=True, text=True,
                          cwd=tmp_path)
    assert left.stdout.strip() == "othertools", left.stderr


# -- the MCP registry's server.json --------------------------------------------------------------

def test_server_json_describes_the_pypi_package_for_the_mcp_registry():
    from treedistill.server.cli.parser import ENVIRONMENT

    server = json.loads((ROOT / "server.json").read_text())
    assert server["$schema"] == "https://static.modelcontextprotocol.io/schemas/2025-12-11/server.schema.json"
    assert re.fullmatch(r"[a-zA-Z0-9.-]+/[a-zA-Z0-9._-]+", server["name"])
    assert 1 <= len(server["description"]) <= 100 and server["version"] == VERSION
    # PyPI ownership proof: the registry looks for the server name in the package's README (its PyPI page).
    assert f"mcp-name: {server['name']}" in (ROOT / "README.md").read_text()
    (package,) = server["packages"]
    assert (package["registryType"], package["registryBaseUrl"], package["identifier"], package["version"]) == (
        "pypi", "https://pypi.org", NAME, VERSION)
    assert package["transport"] == {"type": "stdio"} and package["runtimeHint"] == "uvx"
    assert [argument["value"] for argument in package["packageArguments"]] == ["serve"]
    variables = {variable["name"]: variable for variable in package["environmentVariables"]}
    assert {"OPENAI_BASE_URL", "OPENAI_API_KEY", "TREEDISTILL_MODEL", "TREEDISTILL_ANSWER_MODEL",
            "ANTHROPIC_API_KEY", "TREEDISTILL_DB"} <= set(variables)
    assert {name for name, variable in variables.items() if variable.get("isSecret")} == {"OPENAI_API_KEY",
                                                                                          "ANTHROPIC_API_KEY"}
    readme = (ROOT / "README.md").read_text()
    for name, variable in variables.items():
        assert variable["description"] and f"`{name}`" in readme and name in ENVIRONMENT, name


# -- the paths the docs name ---------------------------------------------------------------------

DOCUMENTED = ("README.md", "docs/architecture.md")
TOP = r"(?:server|tools|tests|client_examples|benchmarks|docs)/"
PROSE_PATH = re.compile(rf"(?<![\w./-])({TOP}(?:[\w-]+/)*(?:[\w-]+\.(?:py|md|json|sh|toml)\b)?)")
TREE = re.compile(r"^```text\n(.*?)^```", re.MULTILINE | re.DOTALL)


def tree_paths(tree: str) -> set[str]:
    """The paths of a layout tree: one name (or 'a.py, b.py') per line, indented under its folder."""
    paths: set[str] = set()
    folders: list[tuple[int, str]] = []
    for line in tree.splitlines():
        entry = re.match(r"( *)([^\s,]+(?:, [^\s,]+)*)", line)
        if not entry:
            continue
        indent, names = len(entry.group(1)), entry.group(2)
        folders = [(depth, folder) for depth, folder in folders if depth < indent]
        parent = folders[-1][1] if folders else ""
        paths.update(parent + name for name in names.split(", "))
        if names.endswith("/"):
            folders.append((indent, parent + names))
    return paths


def named_paths(text: str) -> set[str]:
    """Repository paths a document names: every path in its ```text layout trees, and paths in its prose."""
    paths = {path for path in PROSE_PATH.findall(text)}
    for tree in TREE.findall(text):
        paths |= tree_paths(tree)
    return paths


def test_every_path_the_docs_name_exists():
    for document in DOCUMENTED:
        paths = named_paths((ROOT / document).read_text())
        assert len(paths) >= 20, (document, sorted(paths))
        missing = sorted(path for path in paths if not (ROOT / path).exists())
        assert not missing, f"{document} names paths that do not exist: {missing}"
