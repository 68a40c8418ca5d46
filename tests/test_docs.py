"""The documentation: a strict, offline site with the whole API, and clean links.

The site is built once for the module (`mkdocs build --strict`, a few seconds)
from the checkout as it is, without any copy step, into a temporary directory.
"""

import html
import html.parser
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.public_api import api_modules, public_objects

ROOT = Path(__file__).parent.parent

# Links that never load anything: the pages themselves, in-page anchors,
# mail and data URIs; everything a page loads must come from the site.
RESOURCE_ATTRIBUTES = {
    "script": "src",
    "img": "src",
    "iframe": "src",
    "source": "src",
    "audio": "src",
    "video": "src",
    "embed": "src",
}
EXTERNAL = re.compile(r"^(https?:)?//", re.IGNORECASE)
CSS_URL = re.compile(r"url\(\s*['\"]?([^'\")]+)")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    directory = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(directory)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return directory


def test_the_site_builds_strictly(site):
    assert (site / "index.html").is_file()
    assert (site / "api" / "layers.html").is_file()


def test_every_public_module_has_an_api_page_in_the_nav():
    config = (ROOT / "mkdocs.yml").read_text()
    home = (ROOT / "docs" / "index.md").read_text()
    for module in api_modules():
        page = ROOT / "docs" / "api" / f"{module}.md"
        fix = (
            f"add docs/api/{module}.md holding `::: keras_tricks.{module}` and "
            f"the line `- keras_tricks.{module}: api/{module}.md` under "
            "`API reference` in mkdocs.yml, and a link to it in docs/index.md"
        )
        assert page.is_file(), fix
        assert f"::: keras_tricks.{module}" in page.read_text(), fix
        nav_line = rf"^\s+- keras_tricks\.{module}: api/{module}\.md$"
        assert re.search(nav_line, config, re.MULTILINE), fix
        assert f"(api/{module}.md)" in home, fix


def test_every_public_name_is_in_the_api_reference(site):
    missing = []
    for module, objects in public_objects().items():
        page = (site / "api" / f"{module}.html").read_text()
        missing += [
            f"keras_tricks.{module}.{name}"
            for name in objects
            if f'id="keras_tricks.{module}.{name}"' not in page
        ]
    assert not missing, (
        "not in the API reference (a public name needs a docstring; a constant "
        f"takes one as a string on the line after it): {missing}"
    )


class _Resources(html.parser.HTMLParser):
    """Collects the URLs a page loads: scripts, styles, images, frames."""

    def __init__(self):
        super().__init__()
        self.urls = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "link" and "stylesheet" in (attrs.get("rel") or "").split():
            self.urls.append(attrs.get("href") or "")
        elif tag in RESOURCE_ATTRIBUTES:
            self.urls.append(attrs.get(RESOURCE_ATTRIBUTES[tag]) or "")


def test_the_site_loads_nothing_from_the_network(site):
    external = []
    for page in site.rglob("*.html"):
        parser = _Resources()
        parser.feed(page.read_text())
        external += [f"{page.relative_to(site)}: {url}" for url in parser.urls]
    for sheet in site.rglob("*.css"):
        external += [
            f"{sheet.relative_to(site)}: {url}"
            for url in CSS_URL.findall(sheet.read_text())
        ]
    external = [entry for entry in external if EXTERNAL.match(entry.split(": ")[1])]
    assert not external, external


def test_the_results_page_shows_the_benchmark_results(site):
    lines = (ROOT / "benchmarks" / "RESULTS.md").read_text().splitlines()
    separator = next(i for i, line in enumerate(lines) if line.startswith("|---"))
    first_cell = lines[separator + 1].split("|")[1].strip().replace("`", "")
    page = (site / "results.html").read_text()
    assert "Benchmark results" in page
    assert html.escape(first_cell, quote=False) in page


def test_doctest_examples_render_as_code(site):
    page = (site / "api" / "callbacks.html").read_text()
    assert "&gt;&gt;&gt;" in page  # the examples are there ...
    assert "<blockquote>\n<blockquote>" not in page  # ... not as nested quotes


def _load_extension():
    path = ROOT / "docs" / "api" / "doctest_blocks.py"
    spec = importlib.util.spec_from_file_location("doctest_blocks", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_doctest_blocks_are_fenced():
    fence_doctests = _load_extension().fence_doctests
    text = (
        "Summary.\n\nExample:\n\n"
        ">>> x = 1  # doctest: +SKIP\n... y = 2\n>>> [x]\n[1]\n\nProse after.\n\n"
        "```python\n>>> inside an existing fence\n```\n\n"
        "    >>> indented\n    2"
    )
    assert fence_doctests(text) == (
        "Summary.\n\nExample:\n\n"
        "```pycon\n>>> x = 1\n... y = 2\n>>> [x]\n[1]\n```\n\nProse after.\n\n"
        "```python\n>>> inside an existing fence\n```\n\n"
        "    ```pycon\n    >>> indented\n    2\n    ```"
    )


MARKDOWN_LINK = re.compile(r"\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#+\s+(.*)$", re.MULTILINE)


def _anchor(heading):
    """The id Python-Markdown's toc gives a heading."""
    text = re.sub(r"[^\w\s-]", "", heading.replace("`", "")).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


@pytest.mark.parametrize("document", ["README.md", "CHANGELOG.md"])
def test_links_resolve_inside_the_repository(document):
    broken = []
    for target in MARKDOWN_LINK.findall((ROOT / document).read_text()):
        if re.match(r"^[a-z]+:", target):  # https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        resolved = (ROOT / path).resolve()
        if not resolved.is_relative_to(ROOT.resolve()) or not resolved.exists():
            broken.append(target)
        elif anchor:
            headings = HEADING.findall(resolved.read_text())
            if anchor not in {_anchor(heading) for heading in headings}:
                broken.append(target)
    assert not broken, f"{document} links outside the repository or nowhere: {broken}"


# Developer-only sources stay out of what users read.
PRIVATE_REFERENCE = re.compile(
    r"\.\./shared|/work/shared|\b(?-i:TRICKS|STYLE)\.md\b|\bthe material\b|"
    r"\blectures?\b",
    re.IGNORECASE,
)


def test_user_facing_text_cites_no_private_material():
    files = [ROOT / "README.md", ROOT / "CHANGELOG.md"]
    for pattern in ("docs/**/*.md", "keras_tricks/**/*.py", "examples/*.py"):
        files += sorted(ROOT.glob(pattern))
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in files
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if PRIVATE_REFERENCE.search(line)
    ]
    assert not found, "cite the paper or a docs/ page instead:\n" + "\n".join(found)
