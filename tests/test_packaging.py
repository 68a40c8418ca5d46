"""The wheel and the sdist: licence, contents, dependencies, metadata.

Both are built once for the module with `python -m build --no-isolation` (the
backend comes from the `dev` extra, so no network; about 2 s) from a copy of
the files git knows, so the checkout gets no build/ or egg-info and the
archives hold what a fresh clone would give.
"""

import email.parser
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

import keras_tricks

ROOT = Path(__file__).parent.parent
PYPROJECT = (ROOT / "pyproject.toml").read_text()
HARD_DEPENDENCIES = {"keras", "numpy", "scipy"}
NOT_IN_SDIST = {".gitignore", ".ci/run"}  # the CI entry point and git's own file
SDIST_EXTRAS = re.compile(r"^(PKG-INFO|setup\.cfg|keras_tricks\.egg-info/.*)$")


def _checkout_files():
    """Tracked plus new (not ignored) files, as a fresh clone would hold them."""
    try:
        listing = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        ).stdout.decode()
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("the packaging tests need a git checkout")
    return sorted({name for name in listing.split("\0") if (ROOT / name).is_file()})


@pytest.fixture(scope="module")
def checkout_files():
    return _checkout_files()


@pytest.fixture(scope="module")
def dist(tmp_path_factory, checkout_files):
    """`(wheel, sdist)` paths, built from a clean copy of the checkout."""
    source = tmp_path_factory.mktemp("source")
    for name in checkout_files:
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, source / name)
    out = tmp_path_factory.mktemp("dist")
    result = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out)],
        cwd=source,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (wheel,) = out.glob("*.whl")
    (sdist,) = out.glob("*.tar.gz")
    return wheel, sdist


@pytest.fixture(scope="module")
def wheel_files(dist):
    with zipfile.ZipFile(dist[0]) as wheel:
        return {name: wheel.read(name) for name in wheel.namelist()}


@pytest.fixture(scope="module")
def metadata(wheel_files):
    (name,) = [name for name in wheel_files if name.endswith(".dist-info/METADATA")]
    return email.parser.BytesParser().parsebytes(wheel_files[name])


@pytest.fixture(scope="module")
def sdist_files(dist):
    with tarfile.open(dist[1]) as sdist:
        names = [member.name for member in sdist.getmembers() if member.isfile()]
    # Every member sits under keras_tricks-<version>/.
    return {name.split("/", 1)[1] for name in names}


def test_the_licence_is_the_apache_2_text_pyproject_declares():
    text = (ROOT / "LICENSE").read_text()
    assert re.search(r'^license = "Apache-2.0"$', PYPROJECT, re.MULTILINE)
    assert text.split()[:3] == ["Apache", "License", "Version"]
    assert "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text
    assert len(text.split()) > 1500  # the full text, not a pointer to it


def test_the_wheel_ships_the_licence_and_the_typed_marker(wheel_files, metadata):
    licences = [name for name in wheel_files if name.endswith("/licenses/LICENSE")]
    assert len(licences) == 1
    assert wheel_files[licences[0]] == (ROOT / "LICENSE").read_bytes()
    assert "keras_tricks/py.typed" in wheel_files
    assert metadata["License-Expression"] == "Apache-2.0"


def test_the_wheel_holds_the_package_and_nothing_else(wheel_files, checkout_files):
    package = {name for name in checkout_files if name.startswith("keras_tricks/")}
    shipped = {name for name in wheel_files if ".dist-info/" not in name}
    assert shipped == package


def test_the_sdist_is_the_checkout_without_ci(sdist_files, checkout_files):
    expected = set(checkout_files) - NOT_IN_SDIST
    assert expected - sdist_files == set()
    unexpected = sdist_files - expected
    assert {name for name in unexpected if not SDIST_EXTRAS.match(name)} == set()
    # What the tests, the docs build and the examples need is therefore inside.
    for needed in ("LICENSE", "conftest.py", "tests/conftest.py", "tests/helpers.py"):
        assert needed in sdist_files
    for folder in ("docs/", "examples/", "tests/scripts/", "benchmarks/"):
        assert any(name.startswith(folder) for name in sdist_files), folder


def _requirements(metadata):
    return [Requirement(line) for line in metadata.get_all("Requires-Dist")]


def test_hard_dependencies_are_what_every_user_needs(metadata):
    hard = {req.name for req in _requirements(metadata) if req.marker is None}
    assert hard == HARD_DEPENDENCIES


def _extra_requirements(metadata, extra):
    """Names of the packages `keras-tricks[extra]` installs, extras followed."""
    names = set()
    for requirement in _requirements(metadata):
        if requirement.marker is None or not requirement.marker.evaluate(
            {"extra": extra}
        ):
            continue
        if requirement.name == "keras-tricks":
            for nested in requirement.extras:
                names |= _extra_requirements(metadata, nested)
        else:
            names.add(requirement.name)
    return names


def test_extras_backends_lab_tuner_and_all(metadata):
    extras = set(metadata.get_all("Provides-Extra"))
    assert {"tensorflow", "jax", "lab", "tuner", "dev", "all"} <= extras
    assert _extra_requirements(metadata, "tensorflow") == {"tensorflow"}
    assert _extra_requirements(metadata, "lab") == {"scikit-learn", "matplotlib"}
    assert "keras-tuner" in _extra_requirements(metadata, "tuner")
    assert _extra_requirements(metadata, "jax") == {"jax"}
    others = [_extra_requirements(metadata, extra) for extra in extras - {"all"}]
    assert _extra_requirements(metadata, "all") == set().union(*others)


def test_the_metadata_names_versions_urls_and_the_command(metadata, wheel_files):
    assert metadata["Version"] == keras_tricks.__version__
    urls = dict(line.split(", ", 1) for line in metadata.get_all("Project-URL"))
    assert {"Documentation", "Source", "Changelog"} <= set(urls)
    assert all(url.startswith("https://") for url in urls.values())
    supported = SpecifierSet(metadata["Requires-Python"])
    classified = {
        line.rsplit(" :: ", 1)[1]
        for line in metadata.get_all("Classifier")
        if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", line)
    }
    versions = {f"3.{minor}" for minor in range(20)}
    assert classified == {version for version in versions if version in supported}
    (scripts,) = [name for name in wheel_files if name.endswith("entry_points.txt")]
    assert "keras-tricks = keras_tricks.cli:main" in wheel_files[scripts].decode()


def test_the_version_is_set_in_one_place():
    assert re.search(r'^dynamic = \["version"\]$', PYPROJECT, re.MULTILINE)
    assert 'version = { attr = "keras_tricks.__version__" }' in PYPROJECT
    assert not re.search(r"^version\s*=\s*\"", PYPROJECT, re.MULTILINE)


def test_the_changelog_opens_with_this_version():
    changelog = (ROOT / "CHANGELOG.md").read_text()
    releases = re.findall(r"^## (\S+)", changelog, re.MULTILINE)
    assert releases[0] == keras_tricks.__version__
