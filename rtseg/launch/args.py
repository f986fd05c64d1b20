"""Launch arguments, as ``ros2 launch`` has them: declared in the file, given on the
command line as ``NAME:=VALUE``, and put into the processes' strings by substitutions.

```toml
[arg]
source = "demo"                                   # NAME = DEFAULT
bind = { default = "tcp://127.0.0.1:5555", description = "where the node publishes" }
camera = { description = "a camera file" }        # no default: NAME:=VALUE is required
engine = { default = "auto", choices = ["auto", "onnx", "openvino"] }

[[process]]
command = ["rtseg", "run", "--source", "$(var source)", "--bind", "$(var bind)"]
if = "$(var record)"                              # started only when true (unless: false)
```

The substitutions are those of ROS 2's XML and YAML launch files: ``$(var NAME)`` a launch
argument, ``$(env NAME)`` / ``$(env NAME DEFAULT)`` an environment variable, ``$(dirname)``
the folder of the launch file; ``$$(`` is a literal ``$(`` (a shell's ``$$(date)``). Every
mistake is a ``ValueError`` of one line; the caller puts the file and line in front of it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

_ARG_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SUBSTITUTION = re.compile(r"\$\(([^()]*)\)")
_ARG_KEYS = ("default", "description", "choices")
_TRUE, _FALSE = ("true", "1"), ("false", "0")
_ESCAPE = "$$("


@dataclass(frozen=True)
class ArgSpec:
    """One declared launch argument (``default`` None: it must be given)."""

    name: str
    default: str | None = None
    description: str = ""
    choices: tuple[str, ...] = ()

    def show(self) -> str:
        """Its line for ``rtseg launch FILE --show-args`` (like ``ros2 launch -s``)."""
        parts = [self.description] if self.description else []
        if self.choices:
            parts.append(f"one of {', '.join(self.choices)}")
        parts.append("required: no default" if self.default is None
                     else f"default {self.default!r}")
        return f"  {self.name}: " + "; ".join(parts)


def declare(name: str, value: Any) -> ArgSpec:
    """``NAME = "DEFAULT"`` or ``NAME = { default, description, choices }`` as an ArgSpec.

    Raises:
        ValueError: a bad name, a value of another type, or an unknown key.
    """
    if not _ARG_NAME.fullmatch(name):
        raise ValueError(f"launch argument {name!r}: a name is letters, digits and '_'")
    if isinstance(value, str):
        return ArgSpec(name, default=value)
    if not isinstance(value, dict):
        raise ValueError(f'launch argument {name!r} must be a string (its default) or a '
                         f'table like {{ default = "x", description = "..." }}, not {value!r:.40}')
    unknown = sorted(set(value) - set(_ARG_KEYS))
    if unknown:
        raise ValueError(f"launch argument {name!r}: unknown key {unknown[0]!r}; known keys: "
                         + ", ".join(_ARG_KEYS))
    default, description = value.get("default"), value.get("description", "")
    choices = value.get("choices", [])
    if default is not None and not isinstance(default, str) or not isinstance(description, str):
        raise ValueError(f"launch argument {name!r}: default and description are strings")
    if not isinstance(choices, list) or not all(isinstance(c, str) for c in choices):
        raise ValueError(f"launch argument {name!r}: choices is an array of strings")
    return ArgSpec(name, default, description, tuple(choices))


def parse_given(items: Sequence[str]) -> dict[str, str]:
    """``["source:=camera0", ...]`` from the command line as ``{"source": "camera0"}``.

    Raises:
        ValueError: an item without ``:=``, or a name given twice.
    """
    given: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition(":=")
        if not sep or not _ARG_NAME.fullmatch(name):
            raise ValueError(f"launch arguments are NAME:=VALUE, e.g. source:=camera0; "
                             f"not {item!r}")
        if name in given:
            raise ValueError(f"launch argument {name!r} is given twice")
        given[name] = value
    return given


def include_args(value: Any) -> dict[str, str]:
    """An ``[[include]]``'s ``args``: a table of strings (numbers, true / false as text)."""
    if not isinstance(value, dict) or not all(isinstance(v, str | int | float)
                                              for v in value.values()):
        raise ValueError('must be a table of launch arguments, e.g. { source = "camera0" }')
    return {key: str(v).lower() if isinstance(v, bool) else str(v) for key, v in value.items()}


def resolve(declared: Sequence[ArgSpec], given: Mapping[str, str], folder: str) -> dict[str, str]:
    """Each declared argument's value: the given one, else its default (which may use
    ``$(env ...)`` and ``$(dirname)``).

    Raises:
        ValueError: an argument given but not declared, a required one missing, or a value
            outside its choices; each names the argument and what to do.
    """
    names = [arg.name for arg in declared]
    for name in given:
        if name not in names:
            raise ValueError(f"no launch argument {name!r} in this file; it declares "
                             + (", ".join(names) if names else "none (add an [arg] table)"))
    values: dict[str, str] = {}
    for arg in declared:
        if arg.name in given:
            value = given[arg.name]
        elif arg.default is None:
            raise ValueError(f"launch argument {arg.name!r} has no default: give it, "
                             f"e.g. {arg.name}:=VALUE"
                             + (f" ({arg.description})" if arg.description else ""))
        else:
            value = substitute(arg.default, {}, folder)
        if arg.choices and value not in arg.choices:
            raise ValueError(f"launch argument {arg.name!r} is {value!r}; it must be one of "
                             + ", ".join(arg.choices))
        values[arg.name] = value
    return values


def substitute(text: str, values: Mapping[str, str], folder: str) -> str:
    """`text` with every ``$(var NAME)``, ``$(env NAME [DEFAULT])`` and ``$(dirname)``
    replaced.

    Raises:
        ValueError: an unknown substitution, an undeclared argument, an unset environment
            variable without a default, or an unclosed ``$(``.
    """
    def one(match: re.Match) -> str:
        kind, *words = match.group(1).split()
        if kind == "var" and len(words) == 1:
            if words[0] not in values:
                raise ValueError(f"$(var {words[0]}): no launch argument {words[0]!r}; "
                                 "declare it in the [arg] table")
            return values[words[0]]
        if kind == "env" and len(words) in (1, 2):
            value = os.environ.get(words[0], words[1] if len(words) == 2 else None)
            if value is None:
                raise ValueError(f"$(env {words[0]}): the environment variable is not set; "
                                 f"set it or give a default, $(env {words[0]} DEFAULT)")
            return value
        if kind == "dirname" and not words:
            return folder
        raise ValueError(f"unknown substitution {match.group(0)!r}; known: $(var NAME), "
                         "$(env NAME [DEFAULT]), $(dirname)")

    parts = text.split(_ESCAPE)  # `$$(` is a literal `$(`, e.g. for a shell's $(date)
    for part in parts:
        if "$(" in _SUBSTITUTION.sub("", part):
            raise ValueError(f"unclosed or nested substitution in {text!r}: write $(var "
                             "NAME), or $$( for a literal $(")
    return "$(".join(_SUBSTITUTION.sub(one, part) for part in parts)


def substitute_all(value: Any, values: Mapping[str, str], folder: str) -> Any:
    """`value` (a TOML value) with `substitute` applied to every string in it."""
    if isinstance(value, str):
        return substitute(value, values, folder)
    if isinstance(value, list):
        return [substitute_all(item, values, folder) for item in value]
    if isinstance(value, dict):
        return {key: substitute_all(item, values, folder) for key, item in value.items()}
    return value


def condition(value: Any) -> bool:
    """An ``if`` / ``unless`` value: true / false (TOML), or "true" / "false" / "1" / "0"
    in any case after substitution, as ROS 2's IfCondition reads them."""
    if isinstance(value, bool):
        return value
    word = value.strip().lower() if isinstance(value, str) else None
    if word in _TRUE + _FALSE:
        return word in _TRUE
    raise ValueError('must be true or false (or "$(var NAME)" giving true, false, 1 or 0)')
