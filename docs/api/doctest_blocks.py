"""Griffe extension for the API reference: doctest examples become code blocks.

keras_tricks writes examples the way Keras does: `Example:` followed by
`>>>` lines at the docstring's own indentation. Griffe's Google parser reads
only an indented block as a section, so Markdown would show those lines as
nested quotes (and read `[...]` in their output as links). Before the
docstrings are parsed, this wraps each run of doctest lines, from a `>>>`
line to the next blank line, in a `pycon` fence, and drops doctest
directives (`# doctest: +SKIP`), which are for the test runner, not readers.
"""

import re

import griffe

_DIRECTIVE = re.compile(r"\s*#\s*doctest:.*$")


def fence_doctests(text: str) -> str:
    """Returns `text` with every doctest block inside a ```` ```pycon ```` fence."""
    lines: list[str] = []
    in_fence = in_doctest = False
    fence_indent = ""
    for line in text.split("\n"):
        stripped = line.lstrip()
        indent = line[: len(line) - len(stripped)]
        if in_doctest and not stripped:
            lines.append(f"{fence_indent}```")
            in_doctest = False
        elif not in_doctest and stripped.startswith("```"):
            in_fence = not in_fence
        elif not (in_doctest or in_fence) and stripped.startswith(">>>"):
            fence_indent = indent
            lines.append(f"{indent}```pycon")
            in_doctest = True
        lines.append(_DIRECTIVE.sub("", line) if in_doctest else line)
    if in_doctest:
        lines.append(f"{fence_indent}```")
    return "\n".join(lines)


class DoctestBlocks(griffe.Extension):
    """Fences the doctest examples of every docstring (see the module doc)."""

    def on_object(self, *, obj: griffe.Object, **kwargs: object) -> None:
        if obj.docstring is not None:
            obj.docstring.value = fence_doctests(obj.docstring.value)
