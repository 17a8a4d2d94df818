"""Tool schemas from Python source: Letta's rules, read with `ast`, never executed."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from mnemo.tools.schema_gen import ToolSourceError, analyze_tool_source, generate_schema


def src(code: str) -> str:
    return textwrap.dedent(code).lstrip()


ROLL_DICE = src(
    '''
    def roll_dice() -> str:
        """
        Simulate the roll of a 20-sided die (d20).

        This function generates a random integer between 1 and 20, inclusive,
        which represents the outcome of a single roll of a d20.

        Returns:
            str: The result of the die roll.
        """
        import random
        return f"You rolled a {random.randint(1, 20)}"
    '''
)


def test_letta_example_tool_matches_letta_schema() -> None:
    assert generate_schema(ROLL_DICE) == {
        "name": "roll_dice",
        "description": "Simulate the roll of a 20-sided die (d20).\n\nThis function generates a random integer "
        "between 1 and 20, inclusive,\nwhich represents the outcome of a single roll of a d20.",
        "parameters": {"type": "object", "properties": {}, "required": []},
    }


def test_types_required_and_descriptions() -> None:
    schema = generate_schema(
        src(
            '''
            def search(query: str, limit: int = 5, threshold: float = 0.5, exact: bool = False) -> list:
                """Search the notes.

                Args:
                    query (str): What to look for.
                    limit: At most this many results.
                    threshold: Minimum score.
                    exact: Match whole words only.
                """
            '''
        )
    )
    assert schema["name"] == "search"
    assert schema["description"] == "Search the notes."
    assert schema["parameters"] == {
        "type": "object",
        "properties": {
            "query": {"type": "string", "description": "What to look for."},
            "limit": {"type": "integer", "description": "At most this many results."},
            "threshold": {"type": "number", "description": "Minimum score."},
            "exact": {"type": "boolean", "description": "Match whole words only."},
        },
        "required": ["query"],
    }


def test_containers_optional_literal_and_unions() -> None:
    sig = analyze_tool_source(
        src(
            '''
            from typing import Dict, List, Literal, Optional, Union

            def f(
                tags: list[str],
                ids: List[int],
                anything: list,
                meta: dict,
                counts: Dict[str, int],
                pair: tuple[int, str],
                many: tuple[float, ...],
                maybe: Optional[int],
                modern: str | None,
                mode: Literal["fast", "slow"],
                level: Literal[1, 2, 3],
                either: Union[int, str],
                forward: "list[bool]",
            ):
                """Do it."""
            '''
        )
    )
    props = sig.schema["parameters"]["properties"]
    assert props["tags"] == {"type": "array", "items": {"type": "string"}}
    assert props["ids"] == {"type": "array", "items": {"type": "integer"}}
    assert props["anything"] == {"type": "array", "items": {"type": "string"}}
    assert props["meta"] == {"type": "object"}
    assert props["counts"] == {"type": "object"}
    assert props["pair"] == {
        "type": "array",
        "prefixItems": [{"type": "integer"}, {"type": "string"}],
        "minItems": 2,
        "maxItems": 2,
    }
    assert props["many"] == {"type": "array", "items": {"type": "number"}}
    assert props["maybe"] == {"type": "integer"}
    assert props["modern"] == {"type": "string"}
    assert props["mode"] == {"type": "string", "enum": ["fast", "slow"]}
    assert props["level"] == {"type": "integer", "enum": [1, 2, 3]}
    assert props["either"] == {"anyOf": [{"type": "integer"}, {"type": "string"}]}
    assert props["forward"] == {"type": "array", "items": {"type": "boolean"}}
    # Optional parameters are not required even without a default (Letta's rule).
    assert "maybe" not in sig.schema["parameters"]["required"]
    assert "modern" not in sig.schema["parameters"]["required"]
    assert "tags" in sig.schema["parameters"]["required"]


def test_unknown_type_becomes_string_with_a_note() -> None:
    sig = analyze_tool_source(
        src(
            '''
            from pydantic import BaseModel

            class Step(BaseModel):
                name: str

            def plan(step: Step, when: "datetime.date") -> str:
                """Plan.

                Args:
                    step: The step.
                    when: The day.
                """
            '''
        )
    )
    props = sig.schema["parameters"]["properties"]
    assert props["step"] == {"type": "string", "description": "The step."}
    assert props["when"] == {"type": "string", "description": "The day."}
    assert any("`Step`" in n for n in sig.notes)
    assert any("`datetime.date`" in n for n in sig.notes)


def test_last_top_level_function_unless_named() -> None:
    code = src(
        '''
        def helper(x: int) -> int:
            """Helper."""
            return x

        class Tool:
            def method(self, y: str) -> str:
                """Not a candidate."""

        def main_tool(text: str) -> str:
            """The tool."""
            def inner(z: int) -> None:
                """Nested, not a candidate."""
            return helper(len(text))
        '''
    )
    assert generate_schema(code)["name"] == "main_tool"
    assert generate_schema(code, name="helper")["name"] == "helper"
    with pytest.raises(
        ToolSourceError, match=r"no top-level function named 'method' \(found: helper, main_tool\)"
    ):
        generate_schema(code, name="method")


def test_async_function_and_kw_only_params() -> None:
    sig = analyze_tool_source(
        src(
            '''
            async def fetch(url: str, *, retries: int = 3, verbose: bool) -> str:
                """Fetch a page."""
            '''
        )
    )
    assert sig.is_async
    assert sig.schema["parameters"]["required"] == ["url", "verbose"]
    assert set(sig.schema["parameters"]["properties"]) == {"url", "retries", "verbose"}


def test_self_agent_state_and_star_args_are_left_out() -> None:
    sig = analyze_tool_source(
        src(
            '''
            def remember(agent_state: "AgentState", note: str, *args, **kwargs) -> None:
                """Remember a note.

                Args:
                    note: The note.
                """
            '''
        )
    )
    assert sig.schema["parameters"] == {
        "type": "object",
        "properties": {"note": {"type": "string", "description": "The note."}},
        "required": ["note"],
    }
    assert any("agent_state" in n for n in sig.notes)
    assert any("`args`" in n for n in sig.notes) and any("`kwargs`" in n for n in sig.notes)


def test_missing_descriptions_are_allowed_with_notes() -> None:
    sig = analyze_tool_source("def f(a: int, b: str = 'x'):\n    pass\n")
    assert sig.schema["description"] == "No description available"
    assert sig.schema["parameters"]["properties"] == {"a": {"type": "integer"}, "b": {"type": "string"}}
    assert sum("no description" in n for n in sig.notes) == 2


def test_examples_section_is_kept_in_the_description() -> None:
    schema = generate_schema(
        src(
            '''
            def convert(amount: float, currency: str) -> str:
                """Convert money.

                Args:
                    amount: How much.
                    currency: ISO code.

                Examples:
                    convert(10, "EUR")
                    convert(2.5, "JPY")

                Returns:
                    str: The converted amount.
                """
            '''
        )
    )
    assert (
        schema["description"]
        == 'Convert money.\n\nExamples:\n    convert(10, "EUR")\n    convert(2.5, "JPY")'
    )


@pytest.mark.parametrize(
    ("code", "message"),
    [
        (
            "def f(x):\n    pass\n",
            r"Parameter 'x' of function 'f' has no type annotation; add one \(for example `x: str`\)",
        ),
        ("def f(x: int:\n    pass\n", r"not valid Python: .*\(line 1, column \d+\)"),
        ("x = 1\nclass A:\n    def m(self) -> None: ...\n", r"defines no top-level function"),
        ("def café(x: int) -> int:\n    return x\n", r"cannot be a tool name"),
    ],
)
def test_errors_say_what_to_fix(code: str, message: str) -> None:
    with pytest.raises(ToolSourceError, match=message):
        generate_schema(code)


def test_source_is_never_executed(tmp_path: Path) -> None:
    marker = tmp_path / "executed"
    code = src(
        f'''
        open({str(marker)!r}, "w").write("ran")

        def side_effect(n: int = {{}}.setdefault("k", __import__("os").system("touch {marker}.default"))) -> int:
            """Has module-level side effects."""
            return n
        '''
    )
    assert generate_schema(code)["name"] == "side_effect"
    assert not marker.exists()
    assert not Path(f"{marker}.default").exists()
