"""The support range: declared once, checked at import, held to the packaging."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from keras_tricks import _versions

ROOT = Path(__file__).parent.parent
OLDEST = ROOT / "constraints-oldest.txt"

INSIDE = {"keras": "3.12.1", "tensorflow": "2.20.0", "jax": "0.7.2"}


def _pins(path):
    lines = path.read_text().splitlines()
    pins = (line.split("#")[0].strip() for line in lines)
    return dict(pin.split("==") for pin in pins if pin)


def _floors():
    """`{name: floor}` of every `>=` requirement of pyproject.toml."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11 and newer
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = [*project["dependencies"]]
    for extra in project["optional-dependencies"].values():
        lines += extra
    floors = {}
    for line in lines:
        requirement = Requirement(line)
        for specifier in requirement.specifier:
            if specifier.operator == ">=":
                floors[requirement.name] = specifier.version
    return floors


@pytest.mark.compat
@pytest.mark.jax
@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ("3.10.0", (3, 10)),
        ("3.12.0rc1", (3, 12)),
        ("0.6", (0, 6)),
        ("2.21.0.dev2026", (2, 21)),
    ],
)
def test_series_is_major_minor(version, expected):
    assert _versions.series(version) == expected


@pytest.mark.compat
@pytest.mark.jax
def test_series_of_a_non_version_names_it():
    with pytest.raises(ValueError, match=r"major\.minor.*Received: version='nightly'"):
        _versions.series("nightly")


@pytest.mark.compat
@pytest.mark.jax
def test_keras_older_than_the_minimum_fails_naming_it():
    with pytest.raises(
        ImportError, match=r"needs Keras 3\.10 or newer; Keras 3\.9\.2 "
    ):
        _versions.check({**INSIDE, "keras": "3.9.2"})


@pytest.mark.compat
@pytest.mark.jax
@pytest.mark.parametrize(
    ("package", "version"),
    [
        ("keras", "3.16.0"),
        ("keras", "4.0.0"),
        ("tensorflow", "2.17.1"),
        ("jax", "0.13.0"),
        ("jax", "0.5.3"),
    ],
)
def test_outside_the_tested_range_warns_naming_both(package, version):
    oldest, newest = _versions.TESTED[package]
    with pytest.warns(UserWarning) as caught:
        messages = _versions.check({**INSIDE, package: version})
    assert len(caught) == len(messages) == 1
    message = str(caught[0].message)
    assert f"tested with {package} {oldest} to {newest}" in message
    assert f"{package} {version} is installed" in message


@pytest.mark.compat
@pytest.mark.jax
def test_inside_the_range_or_not_installed_is_silent(recwarn):
    assert _versions.check(INSIDE) == []
    assert _versions.check({**INSIDE, "tensorflow": None, "jax": None}) == []
    assert len(recwarn) == 0


def test_the_pinned_versions_are_inside_the_tested_range():
    pins = _pins(ROOT / "constraints.txt")
    versions = {package: pins[package] for package in _versions.TESTED}
    assert _versions.check(versions) == []


def test_the_oldest_versions_are_the_floors_everywhere():
    """pyproject.toml's floors, constraints-oldest.txt and `TESTED` agree."""
    pins, floors = _pins(OLDEST), _floors()
    for name, floor in floors.items():
        if name in pins:
            assert pins[name] == floor or pins[name] == f"{floor}.0", name
    for package, (oldest, _) in _versions.TESTED.items():
        assert _versions.series(pins[package]) == _versions.series(oldest), package
        assert _versions.series(floors[package]) == _versions.series(oldest), package
    assert floors["keras"] == _versions.MINIMUM_KERAS


def test_the_readme_states_the_range():
    readme = (ROOT / "README.md").read_text()
    for package, (oldest, newest) in _versions.TESTED.items():
        name = {"keras": "Keras", "tensorflow": "TensorFlow", "jax": "JAX"}[package]
        assert re.search(
            rf"{name}\s+{re.escape(oldest)}\s+to\s+{re.escape(newest)}\b", readme
        )


# Not `compat`: the newest environment installs whatever the registry serves,
# and a release newer than the tested range is meant to warn there.
@pytest.mark.jax
def test_import_with_the_installed_versions_is_silent():
    code = (
        "import warnings\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    import keras_tricks\n"
        "print([str(w.message) for w in caught if 'is tested with' in str(w.message)])"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=True,
    )
    assert result.stdout.strip().splitlines()[-1] == "[]"
