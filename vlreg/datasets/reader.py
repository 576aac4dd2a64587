"""The one reader of vlreg's JSON and JSON-lines files, with one error path.

Every dataset, the Karpathy reader and the converters of ``tools/prepare_data.py`` read their
annotation files here, so a missing, non-UTF-8, malformed or truncated file gives the same message
everywhere: the file, and where in it (byte offset for bad encoding; line and column for bad JSON,
saying when the file ends before the JSON does).

A file is read as JSON lines (one document per line) when its name ends in ``.jsonl``, or when it
holds several documents one after another (the official NLVR2 files are JSON lines named
``.json``); otherwise as one JSON document.
"""

from __future__ import annotations

import json
import os
from typing import Any

__all__ = [
    'malformed_json_error',
    'parse_document',
    'read_annotation_file',
    'read_document',
    'read_json',
    'read_records',
    'read_text',
]


def read_text(path: str, what: str = 'annotation file') -> str:
    """The text of ``path``, decoded as UTF-8 (a leading byte-order mark is dropped).

    Raises:
        FileNotFoundError: ``path`` is not a file (the message says ``what`` it should be).
        ValueError: the bytes are not UTF-8; the message names the file, the byte offset and line.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f'{what} {path!r} not found')
    with open(path, 'rb') as f:
        data = f.read()
    try:
        return data.decode('utf-8-sig')
    except UnicodeDecodeError as err:
        line = data.count(b'\n', 0, err.start) + 1
        raise ValueError(
            f'{path!r} is not UTF-8 text: byte 0x{data[err.start]:02x} at byte '
            f'offset {err.start} (line {line}) cannot be decoded ({err.reason}); '
            're-encode the file as UTF-8'
        ) from err


def malformed_json_error(
    path: str, err: json.JSONDecodeError, text: str, line: int | None = None
) -> ValueError:
    """The error for malformed JSON in ``path`` (``line``: the line of a JSON-lines file).

    Names the line and column, and says so when the JSON stops because the text does (a file cut
    off while it was written or copied), rather than letting a later check misdescribe it.
    """
    truncated = err.msg.startswith('Unterminated string') or err.pos >= len(text.rstrip())
    hint = ': the text ends before the JSON is complete (truncated file?)' if truncated else ''
    if line is not None:
        return ValueError(
            f'{path!r}: line {line}: malformed JSON ({err.msg}, column {err.colno}){hint}'
        )
    return ValueError(
        f'{path!r}: malformed JSON at line {err.lineno}, column {err.colno}: {err.msg}{hint}'
    )


def _json_lines(path: str, text: str, skip_bad_lines: bool) -> tuple[list[Any], list[str]]:
    entries: list[Any] = []
    problems: list[str] = []
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError as err:
            error = malformed_json_error(path, err, line, line=line_no)
            if not skip_bad_lines:
                raise error from err
            problems.append(str(error))
    return entries, problems


def parse_document(
    path: str, text: str, skip_bad_lines: bool = False, json_lines: bool | None = None
) -> tuple[Any, list[str]]:
    """Parse ``text`` (the content of ``path``); see :func:`read_document`."""
    if json_lines is None and path.endswith('.jsonl'):
        json_lines = True
    if json_lines:
        return _json_lines(path, text, skip_bad_lines)
    try:
        return json.loads(text), []
    except json.JSONDecodeError as err:
        several = err.msg == 'Extra data' or (
            err.lineno == 1 and text.lstrip().startswith('{') and '\n' in text.strip()
        )
        if json_lines is None and several:  # one document per line
            return _json_lines(path, text, skip_bad_lines)
        raise malformed_json_error(path, err, text) from err


def read_document(
    path: str,
    skip_bad_lines: bool = False,
    json_lines: bool | None = None,
    what: str = 'annotation file',
) -> tuple[Any, list[str]]:
    """The content of a JSON or JSON-lines file.

    Args:
        path: the file.
        skip_bad_lines: in a JSON-lines file, drop malformed lines (one message each) instead of
            raising.
        json_lines: True: one document per line; False: one document; None: JSON lines when the
            name ends in ``.jsonl`` or the file holds several documents.
        what: what the file is, for the not-found message.

    Returns:
        The document (for JSON lines: the list of line documents) and the dropped lines' messages.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not UTF-8, or malformed / truncated JSON, naming the file and where.
    """
    return parse_document(path, read_text(path, what), skip_bad_lines, json_lines)


def read_json(path: str, what: str = 'file') -> Any:
    """One JSON document (see :func:`read_document` for the errors)."""
    return read_document(path, json_lines=False, what=what)[0]


def read_annotation_file(path: str, skip_bad_lines: bool = False) -> tuple[list[Any], list[str]]:
    """The entries of a JSON list or of a JSON-lines file.

    Returns:
        The entries, and (with ``skip_bad_lines``) one message per malformed line dropped.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: not UTF-8, malformed JSON (naming the line and the column), or a document that
            is not a list.
    """
    data, problems = read_document(path, skip_bad_lines)
    if not isinstance(data, list):
        got = (
            f'an object with keys {sorted(data)[:8]}'
            if isinstance(data, dict)
            else type(data).__name__
        )
        raise ValueError(
            f'{path!r}: expected a JSON list of annotation entries (or one entry '
            f'per line), got {got}'
        )
    return data, problems


def read_records(path: str, skip_bad_lines: bool = False) -> tuple[list[Any], list[str]]:
    """Like :func:`read_annotation_file`, but a file of one object is a one-line JSON-lines file.

    The official NLVR2 / SNLI-VE files are JSON lines, whatever their extension.
    """
    data, problems = read_document(path, skip_bad_lines)
    if isinstance(data, dict):
        return [data], problems
    if not isinstance(data, list):
        raise ValueError(
            f'{path!r}: expected a JSON list or JSON lines of entries, got {type(data).__name__}'
        )
    return data, problems
