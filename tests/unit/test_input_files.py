"""Files a manifest names are read as regular files only, bounded: a FIFO, a device or an oversized file planted
in a manifest repository is refused with one clear message instead of hanging, streaming forever or exhausting
memory (the class: every manifest-named file goes through fileio.read_input)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from toolhive_apply.errors import ManifestError
from toolhive_apply.fileio import InputFileError, read_input
from toolhive_apply.manifest import load_manifest
from toolhive_apply.manifest.auth_files import read_jwks
from toolhive_apply.manifest.collector_ca import read_collector_ca


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "jwks.json"
    os.mkfifo(fifo)  # no writer: a blocking open would hang the run for ever
    with pytest.raises(InputFileError, match="not a regular file"):
        read_input(fifo, 1024)
    doc, problem = read_jwks(fifo)
    assert doc is None and problem is not None and "not a regular file" in problem
    text, problem = read_collector_ca(fifo)
    assert text is None and problem is not None and "not a regular file" in problem


def test_a_device_is_refused(tmp_path: Path) -> None:
    link = tmp_path / "ca.pem"
    link.symlink_to("/dev/zero")  # followed, as the consumer would: and then judged for what it is
    with pytest.raises(InputFileError, match="not a regular file"):
        read_input(link, 1024)


def test_an_oversized_file_is_refused_after_reading_only_one_byte_more_than_the_limit(tmp_path: Path) -> None:
    big = tmp_path / "policy.yaml"
    big.write_bytes(b"x" * 2048)
    with pytest.raises(InputFileError, match="larger than 1 KiB"):
        read_input(big, 1024)
    assert read_input(big, 2048) == b"x" * 2048


def test_a_manifest_that_is_a_fifo_is_one_error_naming_the_file(tmp_path: Path) -> None:
    fifo = tmp_path / "stack.yaml"
    os.mkfifo(fifo)
    with pytest.raises(ManifestError) as caught:
        load_manifest([fifo])
    text = str(caught.value)
    assert str(fifo) in text and "not a regular file" in text
