"""Files that cannot be configs (not text, not UTF-8, broken YAML) are refused naming the file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from sweeps.config.files import ConfigError, read_yaml


def refused(path: Path) -> str:
    with pytest.raises(ConfigError) as caught:
        read_yaml(path)
    return str(caught.value)


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "not UTF-8"),
        ("study:\n  name: caf\xe9\n".encode("latin-1"), "not UTF-8"),
        (b"study:\n  name: x\x00\n", "NUL"),
    ],
    ids=["binary", "latin-1", "nul-bytes"],
)
def test_a_file_that_is_not_utf8_text_is_refused_naming_it(
    tmp_path: Path, content: bytes, fragment: str
) -> None:
    path = tmp_path / "spec.yaml"
    path.write_bytes(content)

    message = refused(path)

    assert message.startswith(str(path)) and fragment in message


def test_a_yaml_syntax_error_names_the_file_and_the_line(tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text("study:\n  name: x\nsearch:\n  lr: {low: 1, high: 2\n  optimizer: adam\n")

    message = refused(path)

    assert message.startswith(f"{path}:5:")
    assert "not valid YAML" in message and "\n" not in message
