"""OpenAI function schemas for custom tools, read from their Python source without running it.

The server never executes tool source: the signature comes from `ast`, the descriptions from the
Google-style docstring (`docstring_parser`). Behaviour follows Letta's generator where it is sound
(tool name = function name; the last top-level function unless a name is given; `self` and
`agent_state` skipped; a parameter is required when it has no default and is not Optional; a type
annotation is required; description = short + long description, plus an `Examples:` section) and is
more lenient where Letta is strict for no benefit to the model: a parameter without a docstring
description is accepted, `X | Y` unions become `anyOf`, and a type with no JSON equivalent becomes a
string with a note instead of an error.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from typing import Any

import docstring_parser

# OpenAI's limit on function names; Python also allows non-ASCII identifiers, which providers reject.
TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_SKIPPED_PARAMS = frozenset({"self", "agent_state"})
_SCALARS = {"str": "string", "int": "integer", "float": "number", "bool": "boolean"}
_ARRAYS = frozenset(
    {
        "list",
        "List",
        "Sequence",
        "MutableSequence",
        "Iterable",
        "Collection",
        "set",
        "Set",
        "frozenset",
        "FrozenSet",
    }
)
_OBJECTS = frozenset({"dict", "Dict", "Mapping", "MutableMapping"})
_TUPLES = frozenset({"tuple", "Tuple"})


class ToolSourceError(ValueError):
    """The tool source cannot become a tool; the message says what to change."""


@dataclass(frozen=True)
class ToolSignature:
    name: str
    is_async: bool
    schema: dict[str, Any]
    # Things the author may want to fix (lossy types, missing descriptions); safe to show to a user.
    notes: tuple[str, ...] = field(default_factory=tuple)


def given_or_generated(
    source_code: str, source_type: str, json_schema: dict[str, Any] | None, name: str | None = None
) -> dict[str, Any]:
    """A tool's JSON schema: the one given, checked (a valid function name, `name` if one is expected,
    parameters of type object), else generated from its Python source. Raises `ToolSourceError`."""
    if json_schema is None:
        if source_type != "python":
            raise ToolSourceError(
                f"json_schema is required for {source_type} tools: only Python source is read for one"
            )
        try:
            return generate_schema(source_code, name)
        except ToolSourceError as exc:
            raise ToolSourceError(f"source_code: {exc}") from exc
    given = json_schema.get("name")
    if not isinstance(given, str) or not TOOL_NAME.match(given):
        raise ToolSourceError(
            "json_schema.name must be the tool's name: 1-64 ASCII letters, digits, '_' or '-'"
        )
    if name is not None and given != name:
        raise ToolSourceError(f"json_schema.name is {given!r}, not the tool's name {name!r}")
    params = json_schema.get("parameters", {"type": "object", "properties": {}})
    if not isinstance(params, dict) or params.get("type", "object") != "object":
        raise ToolSourceError("json_schema.parameters must be a JSON schema of type 'object'")
    return {**json_schema, "parameters": params}


def generate_schema(source_code: str, name: str | None = None) -> dict[str, Any]:
    """`{name, description, parameters: {type: object, properties, required}}` for the tool's function."""
    return analyze_tool_source(source_code, name).schema


def analyze_tool_source(source_code: str, name: str | None = None) -> ToolSignature:
    """Pick the tool's function in `source_code` (by `name`, else the last top-level one) and describe it."""
    try:
        tree = ast.parse(source_code)
    except SyntaxError as exc:
        where = f" (line {exc.lineno}, column {exc.offset})" if exc.lineno else ""
        raise ToolSourceError(f"The tool source is not valid Python: {exc.msg}{where}.") from None
    fn = _pick_function(tree, name)
    if not TOOL_NAME.match(fn.name):
        raise ToolSourceError(
            f"Function name {fn.name!r} cannot be a tool name: use 1-64 ASCII letters, digits, '_' or '-'."
        )
    notes: list[str] = []
    doc = docstring_parser.parse(ast.get_docstring(fn) or "")
    param_docs = {p.arg_name: p.description for p in doc.params}
    properties: dict[str, Any] = {}
    required: list[str] = []
    for arg, default in _params(fn, notes):
        if arg.arg in _SKIPPED_PARAMS:
            if arg.arg == "agent_state":
                notes.append("`agent_state` is not injected by Mnemo's sandboxes; give it a default of None.")
            continue
        if arg.annotation is None:
            raise ToolSourceError(
                f"Parameter '{arg.arg}' of function '{fn.name}' has no type annotation; add one "
                f"(for example `{arg.arg}: str`) so the model knows what to pass."
            )
        prop, optional = _annotation_schema(arg.annotation, f"parameter '{arg.arg}'", notes)
        description = param_docs.get(arg.arg)
        if description:
            prop["description"] = description
        else:
            notes.append(f"parameter '{arg.arg}' has no description in the docstring's Args: section.")
        properties[arg.arg] = prop
        if default is None and not optional:
            required.append(arg.arg)
    schema = {
        "name": fn.name,
        "description": _description(doc, ast.get_docstring(fn)),
        "parameters": {"type": "object", "properties": properties, "required": required},
    }
    return ToolSignature(
        name=fn.name, is_async=isinstance(fn, ast.AsyncFunctionDef), schema=schema, notes=tuple(notes)
    )


def _pick_function(tree: ast.Module, name: str | None) -> ast.FunctionDef | ast.AsyncFunctionDef:
    functions = [n for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    if not functions:
        raise ToolSourceError(
            "The tool source defines no top-level function. A tool is a Python function with typed "
            "parameters and a Google-style docstring, e.g. `def roll(sides: int) -> int:`."
        )
    if name is None:
        return functions[-1]
    matching = [f for f in functions if f.name == name]
    if not matching:
        found = ", ".join(sorted({f.name for f in functions}))
        raise ToolSourceError(
            f"The tool source defines no top-level function named {name!r} (found: {found})."
        )
    return matching[-1]


def _params(
    fn: ast.FunctionDef | ast.AsyncFunctionDef, notes: list[str]
) -> list[tuple[ast.arg, ast.expr | None]]:
    a = fn.args
    positional = [*a.posonlyargs, *a.args]
    pos_defaults: list[ast.expr | None] = [None] * (len(positional) - len(a.defaults)) + list(a.defaults)
    out = list(zip(positional, pos_defaults, strict=True))
    out += list(zip(a.kwonlyargs, a.kw_defaults, strict=True))
    for star in (a.vararg, a.kwarg):
        if star is not None:
            notes.append(f"`{star.arg}` (*args/**kwargs) cannot be described to the model and is left out.")
    return out


def _description(doc: docstring_parser.Docstring, raw: str | None) -> str:
    short, long = doc.short_description, doc.long_description
    if short and long:
        text = f"{short}\n\n{long}"
    else:
        text = short or long or "No description available"
    examples = _examples_section(raw)
    if examples and "Examples:" not in text:
        text = f"{text}\n\n{examples}"
    return text


def _examples_section(raw: str | None) -> str | None:
    # Models learn a lot from examples; docstring_parser files them under meta, so take the raw text.
    if not raw or "Examples:" not in raw:
        return None
    lines: list[str] = []
    for line in raw.splitlines():
        stripped = line.strip()
        if not lines:
            if stripped.startswith("Examples:"):
                lines.append(line)
            continue
        if stripped and not line.startswith((" ", "\t")) and stripped.endswith(":"):
            break  # the next section header
        lines.append(line)
    return "\n".join(lines).strip() or None


def _base_name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):  # typing.List, t.Optional
        return node.attr
    return None


def _annotation_schema(node: ast.expr, where: str, notes: list[str]) -> tuple[dict[str, Any], bool]:
    """(JSON schema, is Optional) of an annotation expression."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        try:  # a forward reference: "list[str]"
            inner = ast.parse(node.value, mode="eval").body
        except SyntaxError:
            return _unknown(node.value, where, notes), False
        return _annotation_schema(inner, where, notes)
    if isinstance(node, ast.Constant) and node.value is None:
        return {"type": "null"}, True
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return _union([*_flatten_or(node)], where, notes)
    if isinstance(node, ast.Subscript):
        return _generic(node, where, notes)
    base = _base_name(node)
    if base in _SCALARS:
        return {"type": _SCALARS[base]}, False
    if base in _ARRAYS:
        return {"type": "array", "items": {"type": "string"}}, False
    if base in _OBJECTS:
        return {"type": "object"}, False
    if base in _TUPLES:
        return {"type": "array"}, False
    if base == "NoneType":
        return {"type": "null"}, True
    return _unknown(ast.unparse(node), where, notes), False


def _flatten_or(node: ast.expr) -> list[ast.expr]:
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return [*_flatten_or(node.left), *_flatten_or(node.right)]
    return [node]


def _union(members: list[ast.expr], where: str, notes: list[str]) -> tuple[dict[str, Any], bool]:
    optional = False
    schemas: list[dict[str, Any]] = []
    for member in members:
        schema, member_optional = _annotation_schema(member, where, notes)
        if schema.get("type") == "null":
            optional = True
            continue
        optional = optional or member_optional
        if schema not in schemas:
            schemas.append(schema)
    if not schemas:
        return {"type": "null"}, True
    if len(schemas) == 1:
        return schemas[0], optional
    return {"anyOf": schemas}, optional


def _generic(node: ast.Subscript, where: str, notes: list[str]) -> tuple[dict[str, Any], bool]:
    base = _base_name(node.value)
    args = list(node.slice.elts) if isinstance(node.slice, ast.Tuple) else [node.slice]
    if base == "Optional":
        schema, _ = _annotation_schema(args[0], where, notes)
        return schema, True
    if base == "Union":
        return _union(args, where, notes)
    if base == "Annotated":
        return _annotation_schema(args[0], where, notes)
    if base == "Literal":
        return _literal(node, args, where, notes), False
    if base in _ARRAYS:
        items, _ = _annotation_schema(args[0], where, notes)
        return {"type": "array", "items": items}, False
    if base in _OBJECTS:
        return {"type": "object"}, False
    if base in _TUPLES:
        if len(args) == 2 and isinstance(args[1], ast.Constant) and args[1].value is Ellipsis:
            items, _ = _annotation_schema(args[0], where, notes)
            return {"type": "array", "items": items}, False
        prefix = [_annotation_schema(a, where, notes)[0] for a in args]
        return {
            "type": "array",
            "prefixItems": prefix,
            "minItems": len(prefix),
            "maxItems": len(prefix),
        }, False
    return _unknown(ast.unparse(node), where, notes), False


def _literal(node: ast.Subscript, args: list[ast.expr], where: str, notes: list[str]) -> dict[str, Any]:
    try:
        values = [ast.literal_eval(a) for a in args]
    except ValueError:
        return _unknown(ast.unparse(node), where, notes)
    kinds = {_json_type(v) for v in values}
    schema: dict[str, Any] = {"enum": values}
    if len(kinds) == 1:
        schema = {"type": kinds.pop(), "enum": values}
    elif kinds <= {"integer", "number"}:
        schema = {"type": "number", "enum": values}
    return schema


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if value is None:
        return "null"
    return "string"


def _unknown(text: str, where: str, notes: list[str]) -> dict[str, Any]:
    notes.append(f"{where}: type `{text}` has no JSON schema equivalent here; the model will pass a string.")
    return {"type": "string"}
