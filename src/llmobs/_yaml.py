"""The one YAML loader every llmobs file goes through: safe, and bounded in size, nesting and aliases.

Why one loader: configs, token files and the packaged data tables are all read from disk, sometimes from
a ConfigMap an operator typed by hand. PyYAML's pure-Python composer recurses once per nesting level (a
deeply nested document raised RecursionError, with a traceback, from a `--check-config`), and aliases
let a few hundred bytes expand into billions of nodes ("billion laughs"). Here, before anything is built,
one pass over the parser's event stream rejects aliases and keys given twice and caps nesting, and the
input is capped in bytes; every failure is a `YamlError` whose message names the file and fits on one line.

Anchors without aliases are harmless and allowed. libyaml's CSafeLoader is used when PyYAML was built
with it (it scans unclosed flow collections in linear time; the pure scanner is quadratic there, which
the size cap bounds).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

MAX_BYTES = 4 * 1024 * 1024
MAX_DEPTH = 64


class YamlError(ValueError):
    """A YAML document could not be read; the message names the file and fits on one line."""


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def _check_events(text: str, where: str, max_depth: int) -> None:
    """Reject aliases, nesting deeper than `max_depth` and a key given twice in one mapping, without
    building a single node.

    Why duplicate keys: PyYAML keeps the last one silently, so a second `targets:` list pasted below the
    first replaced it and `--check-config` said OK with half the fleet gone."""
    # per open collection: [is a mapping, the next node is a key, the keys seen]
    open_collections: list[tuple[bool, list[bool], set[str]]] = []
    for event in yaml.parse(text, Loader=_SAFE_LOADER):
        if isinstance(event, yaml.AliasEvent):
            raise YamlError(f"{where}: YAML aliases (*{event.anchor}) are not allowed")
        if isinstance(event, yaml.NodeEvent) and open_collections and open_collections[-1][0]:
            _, expecting_key, keys = open_collections[-1]
            if expecting_key[0] and isinstance(event, yaml.ScalarEvent):
                if event.value in keys:
                    line = event.start_mark.line + 1 if event.start_mark is not None else "?"
                    raise YamlError(f"{where}: key {event.value!r} appears twice in one mapping (line {line}); "
                                    "YAML would keep only the last")
                keys.add(event.value)
            expecting_key[0] = not expecting_key[0]
        if isinstance(event, yaml.CollectionStartEvent):
            if len(open_collections) >= max_depth:
                raise YamlError(f"{where}: nested more than {max_depth} levels deep")
            open_collections.append((isinstance(event, yaml.MappingStartEvent), [True], set()))
        elif isinstance(event, yaml.CollectionEndEvent):
            open_collections.pop()


def load_yaml_text(text: str | bytes, where: str = "<text>", *, max_bytes: int = MAX_BYTES,
                   max_depth: int = MAX_DEPTH) -> Any:
    """One YAML document as plain Python data (None when empty); raises `YamlError` naming `where`."""
    if not isinstance(text, str | bytes):
        raise TypeError(f"YAML text must be a str or bytes, not {type(text).__name__}")
    size = len(text.encode("utf-8") if isinstance(text, str) else text)
    if size > max_bytes:
        raise YamlError(f"{where}: {size} bytes is over the {max_bytes}-byte limit for a YAML file")
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise YamlError(f"{where}: not UTF-8 text") from None
    try:
        _check_events(text, where, max_depth)
        return yaml.load(text, Loader=_SAFE_LOADER)
    except yaml.YAMLError as exc:
        message = _one_line(exc).replace(' in "<unicode string>"', "")
        if "maximum nesting depth" in message:  # libyaml's scanner has its own cap, met before our check
            raise YamlError(f"{where}: nested too deeply ({message})") from None
        raise YamlError(f"{where}: not valid YAML: {message}") from None
    except RecursionError:  # belt and braces: the depth check runs first
        raise YamlError(f"{where}: nested too deeply") from None


def load_yaml_file(path: str | Path, what: str = "file", *, max_bytes: int = MAX_BYTES,
                   max_depth: int = MAX_DEPTH) -> Any:
    """Read and parse a YAML file with the same bounds; messages read `<what> <path>: ...`, and an
    unreadable file is a `YamlError` too (`cannot read <what> <path>: ...`)."""
    path = Path(path)
    where = f"{what} {path}"
    try:
        with path.open("rb") as f:
            data = f.read(max_bytes + 1)
    except OSError as exc:
        raise YamlError(f"cannot read {where}: {exc.strerror or exc}") from None
    if len(data) > max_bytes:
        raise YamlError(f"{where}: over the {max_bytes}-byte limit for a YAML file")
    return load_yaml_text(data, where, max_bytes=max_bytes, max_depth=max_depth)
