"""The tables, engine and search helpers against a real Postgres + pgvector."""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlmodel import col, select

from mnemo.ids import new_id
from mnemo.store import search, vector
from mnemo.store.db import Database
from mnemo.store.tables import (
    AgentArchiveRow,
    AgentBlockRow,
    AgentRow,
    AgentToolRow,
    ArchiveRow,
    BlockHistoryRow,
    BlockRow,
    MessageRow,
    PassageRow,
    RunEventRow,
    RunRow,
    StepRow,
    ToolRow,
    messages_fts,
)


class _Explain(sa.sql.expression.Executable, sa.sql.expression.ClauseElement):
    """`EXPLAIN <stmt>` with the statement's own bound parameters and type processing."""

    inherit_cache = False

    def __init__(self, stmt: sa.ClauseElement) -> None:
        self.stmt = stmt


@compiles(_Explain)
def _compile_explain(element: _Explain, compiler: SQLCompiler, **kw: Any) -> str:
    return "EXPLAIN " + compiler.process(element.stmt, **kw)


async def _plan(db: Database, stmt: sa.ClauseElement, *, forbid_seqscan: bool = False) -> str:
    async with db.transaction() as s:
        if forbid_seqscan:
            # A tiny table is cheaper to scan than to search; with seq scans priced out the planner
            # picks the index whenever the query's shape lets it use it, and only then.
            await s.execute(sa.text("SET LOCAL enable_seqscan = off"))
        rows = (await s.execute(_Explain(stmt))).all()
    return "\n".join(r[0] for r in rows)


async def _agent(db: Database, **fields: Any) -> AgentRow:
    async with db.transaction() as s:
        agent = AgentRow(id=new_id("agent"), name=fields.pop("name", "a"), **fields)
        s.add(agent)
    return agent


def _unit(rng: random.Random, dim: int) -> list[float]:
    v = [rng.gauss(0.0, 1.0) for _ in range(dim)]
    norm = sum(x * x for x in v) ** 0.5
    return [x / norm for x in v]


def _cosine_distance(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return 1.0 - dot / ((sum(x * x for x in a) ** 0.5) * (sum(y * y for y in b) ** 0.5))


async def test_agent_roundtrip_with_server_defaults(db: Database) -> None:
    agent = await _agent(
        db,
        name="helper",
        system="You are helpful.",
        llm_config={"model": "gpt-4o-mini", "context_window": 128000},
        tool_rules=[{"type": "exit_loop", "tool_name": "send_message"}],
        message_ids=["message-1", "message-2"],
        tags=["prod", "support"],
        metadata_={"team": "x"},
    )
    # Filled by the server and returned on insert: no lazy load needed.
    assert agent.created_at.utcoffset() == timedelta(0)
    assert agent.updated_at == agent.created_at

    async with db.session() as s:
        loaded = await s.get(AgentRow, agent.id)
        assert loaded is not None
        assert loaded.agent_type == "letta_v1_agent"
        assert loaded.timezone == "UTC"
        assert loaded.enable_sleeptime is False
        assert loaded.llm_config == {"model": "gpt-4o-mini", "context_window": 128000}
        assert loaded.tool_rules == [{"type": "exit_loop", "tool_name": "send_message"}]
        assert loaded.message_ids == ["message-1", "message-2"]
        assert loaded.tags == ["prod", "support"]
        assert loaded.metadata_ == {"team": "x"}
        loaded.message_ids = [*loaded.message_ids, "message-3"]
        await s.commit()
        assert loaded.updated_at >= agent.updated_at

    async with db.session() as s:
        tagged = (await s.exec(select(AgentRow).where(col(AgentRow.tags).contains(["support"])))).all()
        assert [a.message_ids for a in tagged] == [["message-1", "message-2", "message-3"]]
        # Raw SQL inserts get the same defaults as the ORM.
        await s.execute(sa.text("INSERT INTO agents (id, name) VALUES ('agent-raw', 'raw')"))
        raw = (
            await s.execute(
                sa.text("SELECT agent_type, message_ids, tags FROM agents WHERE id = 'agent-raw'")
            )
        ).one()
        assert tuple(raw) == ("letta_v1_agent", [], [])


async def test_blocks_are_linked_with_one_label_per_agent(db: Database) -> None:
    agent, other = await _agent(db, name="a"), await _agent(db, name="b")
    persona = BlockRow(id=new_id("block"), label="persona", value="I am a", limit=5000)
    human = BlockRow(id=new_id("block"), label="human", value="")
    second_persona = BlockRow(id=new_id("block"), label="persona", value="another")
    async with db.transaction() as s:
        s.add_all([persona, human, second_persona])
    async with db.transaction() as s:
        s.add_all(
            [
                AgentBlockRow(agent_id=agent.id, block_id=persona.id, block_label="persona"),
                AgentBlockRow(agent_id=agent.id, block_id=human.id, block_label="human"),
                # A block can be shared between agents.
                AgentBlockRow(agent_id=other.id, block_id=human.id, block_label="human"),
            ]
        )

    with pytest.raises(IntegrityError, match="uq_agents_blocks_agent_label"):
        async with db.transaction() as s:
            s.add(AgentBlockRow(agent_id=agent.id, block_id=second_persona.id, block_label="persona"))

    # The link's label must be the block's label.
    with pytest.raises(IntegrityError, match="fk_agents_blocks_block"):
        async with db.transaction() as s:
            s.add(AgentBlockRow(agent_id=other.id, block_id=second_persona.id, block_label="notes"))

    # Relabelling a block follows into its links, and is refused where it would clash.
    async with db.transaction() as s:
        await s.execute(sa.update(BlockRow).where(col(BlockRow.id) == human.id).values(label="user"))
    async with db.session() as s:
        links = (await s.exec(select(AgentBlockRow).where(AgentBlockRow.block_id == human.id))).all()
        assert {link.block_label for link in links} == {"user"}
    with pytest.raises(IntegrityError, match="uq_agents_blocks_agent_label"):
        async with db.transaction() as s:
            await s.execute(sa.update(BlockRow).where(col(BlockRow.id) == human.id).values(label="persona"))

    async with db.session() as s:
        stmt = (
            select(BlockRow)
            .join(AgentBlockRow, col(AgentBlockRow.block_id) == BlockRow.id)
            .where(AgentBlockRow.agent_id == agent.id)
            .order_by(col(BlockRow.label))
        )
        blocks = (await s.exec(stmt)).all()
        assert [(b.label, b.value, b.limit, b.version) for b in blocks] == [
            ("persona", "I am a", 5000, 1),
            ("user", "", 20000, 1),
        ]


async def test_block_history_one_row_per_version(db: Database) -> None:
    block = BlockRow(id=new_id("block"), label="persona", value="v1")
    async with db.transaction() as s:
        s.add(block)
    async with db.transaction() as s:
        row = await s.get(BlockRow, block.id, with_for_update=True)
        assert row is not None
        row.value, row.version = "v2", row.version + 1
        s.add(
            BlockHistoryRow(
                block_id=block.id,
                version=row.version,
                label=row.label,
                value=row.value,
                limit=row.limit,
                actor_type="agent",
                actor_id="agent-x",
                tool_call_id="call_1",
            )
        )
    with pytest.raises(IntegrityError, match="uq_block_history_block_version"):
        async with db.transaction() as s:
            s.add(
                BlockHistoryRow(
                    block_id=block.id, version=2, label="persona", value="x", limit=1, actor_type="user"
                )
            )
    with pytest.raises(IntegrityError, match="ck_block_history_actor_type"):
        async with db.transaction() as s:
            s.add(
                BlockHistoryRow(
                    block_id=block.id, version=3, label="persona", value="x", limit=1, actor_type="bot"
                )
            )
    async with db.session() as s:
        history = (await s.exec(select(BlockHistoryRow).where(BlockHistoryRow.block_id == block.id))).all()
        assert [(h.version, h.value, h.actor_type) for h in history] == [(2, "v2", "agent")]
        assert isinstance(history[0].id, int)


async def test_messages_are_ordered_and_full_text_searchable(db: Database) -> None:
    agent = await _agent(db)
    texts = [
        "The dogs were running in the park.",
        "I prefer tea over coffee.",
        "My dog runs every morning.",
        None,
    ]
    async with db.transaction() as s:
        for text in texts:
            content = [{"type": "text", "text": text}] if text else []
            s.add(
                MessageRow(id=new_id("message"), agent_id=agent.id, role="user", content=content, text=text)
            )

    async with db.session() as s:
        ordered = (await s.exec(select(MessageRow).order_by(col(MessageRow.seq)))).all()
        assert [m.text for m in ordered] == texts
        seqs = [m.seq for m in ordered]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)

        # Stemming: "running dog" matches "dogs were running" and "dog runs"; all words must match.
        stmt = (
            select(MessageRow)
            .where(MessageRow.agent_id == agent.id, search.fts_match(messages_fts, "running dog"))
            .order_by(search.fts_rank(messages_fts, "running dog").desc(), col(MessageRow.seq))
        )
        found = (await s.exec(stmt)).all()
        assert {m.text for m in found} == {texts[0], texts[2]}
        assert (
            await s.exec(select(MessageRow).where(search.fts_match(messages_fts, "coffee dog")))
        ).all() == []

    plan = await _plan(
        db, select(MessageRow.id).where(search.fts_match(messages_fts, "dog")), forbid_seqscan=True
    )
    assert "ix_messages_fts" in plan

    with pytest.raises(IntegrityError, match="ck_messages_role"):
        async with db.transaction() as s:
            s.add(MessageRow(id=new_id("message"), agent_id=agent.id, role="robot"))


async def test_message_vector_search_at_384_dims_uses_the_index(db: Database) -> None:
    agent = await _agent(db)
    rng = random.Random(7)
    embeddings = {new_id("message"): _unit(rng, 384) for _ in range(60)}
    async with db.transaction() as s:
        for message_id, emb in embeddings.items():
            s.add(MessageRow(id=message_id, agent_id=agent.id, role="user", text="x", embedding=emb))
        # Other models' embeddings and unembedded messages are never compared with a 384-d query.
        s.add(MessageRow(id=new_id("message"), agent_id=agent.id, role="user", embedding=_unit(rng, 1536)))
        s.add(MessageRow(id=new_id("message"), agent_id=agent.id, role="user"))

    query = _unit(rng, 384)
    stmt = vector.nearest(
        select(
            MessageRow.id, vector.cosine_distance(col(MessageRow.embedding), query).label("distance")
        ).where(MessageRow.agent_id == agent.id),
        embedding=col(MessageRow.embedding),
        embedding_dim=col(MessageRow.embedding_dim),
        query=query,
        limit=5,
    )
    async with db.transaction() as s:
        await vector.set_ef_search(s, 200)  # ≥ the row count: the HNSW search is then exhaustive
        rows = (await s.execute(stmt)).all()
    expected = sorted(embeddings, key=lambda mid: _cosine_distance(embeddings[mid], query))[:5]
    assert [r.id for r in rows] == expected
    for r in rows:
        assert r.distance == pytest.approx(_cosine_distance(embeddings[r.id], query), abs=1e-5)

    async with db.session() as s:
        dims = (await s.exec(select(MessageRow.embedding_dim).order_by(col(MessageRow.seq)))).all()
        assert dims == [384] * 60 + [1536, None]
        stored = await s.get(MessageRow, expected[0])
        assert stored is not None and stored.embedding == pytest.approx(embeddings[expected[0]], abs=1e-6)

    assert vector.index_name("messages", 384) in await _plan(db, stmt, forbid_seqscan=True)
    plan_1536 = await _plan(
        db,
        vector.nearest(
            select(MessageRow.id),
            embedding=col(MessageRow.embedding),
            embedding_dim=col(MessageRow.embedding_dim),
            query=_unit(rng, 1536),
            limit=3,
        ),
        forbid_seqscan=True,
    )
    assert vector.index_name("messages", 1536) in plan_1536


async def test_passages_filter_by_tags_any_and_all(db: Database) -> None:
    archive = ArchiveRow(id=new_id("archive"), name="notes")
    async with db.transaction() as s:
        s.add(archive)
    tagged = {"ab": ["a", "b"], "a": ["a"], "bc": ["b", "c"], "none": []}
    ids = {key: new_id("passage") for key in tagged}
    async with db.transaction() as s:
        for key, tags in tagged.items():
            s.add(PassageRow(id=ids[key], archive_id=archive.id, text=f"passage {key}", tags=tags))

    async def matching(wanted: list[str], mode: search.TagMatchMode) -> set[str]:
        async with db.session() as s:
            stmt = select(PassageRow.id).where(search.tags_match(col(PassageRow.tags), wanted, mode))
            found = set((await s.exec(stmt)).all())
        return {key for key, pid in ids.items() if pid in found}

    assert await matching(["a", "c"], "any") == {"ab", "a", "bc"}
    assert await matching(["a", "b"], "all") == {"ab"}
    assert await matching(["b"], "all") == {"ab", "bc"}
    assert await matching(["z"], "any") == set()
    assert "&&" in str(search.tags_match(col(PassageRow.tags), ["a"], "any"))
    assert "@>" in str(search.tags_match(col(PassageRow.tags), ["a"], "all"))
    with pytest.raises(ValueError):
        search.tags_match(col(PassageRow.tags), ["a"], "some")  # type: ignore[arg-type]

    plan = await _plan(
        db,
        select(PassageRow.id).where(search.tags_match(col(PassageRow.tags), ["a"], "any")),
        forbid_seqscan=True,
    )
    assert "ix_passages_tags" in plan


async def test_passage_vector_search_uses_the_passages_index(db: Database) -> None:
    archive = ArchiveRow(id=new_id("archive"), name="notes")
    rng = random.Random(11)
    async with db.transaction() as s:
        s.add(archive)
        for i in range(10):
            s.add(
                PassageRow(
                    id=new_id("passage"), archive_id=archive.id, text=f"p{i}", embedding=_unit(rng, 384)
                )
            )
    stmt = vector.nearest(
        select(PassageRow.id).where(PassageRow.archive_id == archive.id),
        embedding=col(PassageRow.embedding),
        embedding_dim=col(PassageRow.embedding_dim),
        query=_unit(rng, 384),
        limit=3,
    )
    async with db.session() as s:
        assert len((await s.execute(stmt)).all()) == 3
    assert vector.index_name("passages", 384) in await _plan(db, stmt, forbid_seqscan=True)


async def test_run_events_replay_in_seq_order(db: Database) -> None:
    agent = await _agent(db)
    run = RunRow(id=new_id("run"), agent_id=agent.id, background=True)
    async with db.transaction() as s:
        s.add(run)
    async with db.transaction() as s:
        for seq_id in (3, 1, 2):
            s.add(RunEventRow(run_id=run.id, seq_id=seq_id, event={"message_type": "ping", "n": seq_id}))

    async with db.session() as s:
        after_one = (
            await s.exec(
                select(RunEventRow)
                .where(RunEventRow.run_id == run.id, col(RunEventRow.seq_id) > 1)
                .order_by(col(RunEventRow.seq_id))
            )
        ).all()
        assert [e.event["n"] for e in after_one] == [2, 3]
        loaded = await s.get(RunRow, run.id)
        assert loaded is not None and loaded.status == "created" and loaded.background is True

    with pytest.raises(IntegrityError):
        async with db.transaction() as s:
            s.add(RunEventRow(run_id=run.id, seq_id=2, event={}))
    with pytest.raises(IntegrityError, match="ck_runs_status"):
        async with db.transaction() as s:
            await s.execute(sa.update(RunRow).where(col(RunRow.id) == run.id).values(status="paused"))


async def test_deleting_an_agent_cascades_to_what_it_owns(db: Database) -> None:
    agent, other = await _agent(db, name="doomed"), await _agent(db, name="survivor")
    block = BlockRow(id=new_id("block"), label="human", value="shared")
    tool = ToolRow(id=new_id("tool"), name="lookup", source_code="def lookup(): ...")
    archive = ArchiveRow(id=new_id("archive"), name="facts")
    run = RunRow(id=new_id("run"), agent_id=agent.id)
    async with db.transaction() as s:
        s.add_all([block, tool, archive, run])
    async with db.transaction() as s:
        s.add_all(
            [
                AgentBlockRow(agent_id=agent.id, block_id=block.id, block_label="human"),
                AgentBlockRow(agent_id=other.id, block_id=block.id, block_label="human"),
                AgentToolRow(agent_id=agent.id, tool_id=tool.id),
                AgentArchiveRow(agent_id=agent.id, archive_id=archive.id, is_default=True),
                MessageRow(id=new_id("message"), agent_id=agent.id, role="user", text="hi"),
                MessageRow(id=new_id("message"), agent_id=other.id, role="user", text="hello"),
                StepRow(id=new_id("step"), run_id=run.id, agent_id=agent.id, step_index=0),
                RunEventRow(run_id=run.id, seq_id=1, event={"message_type": "ping"}),
                PassageRow(id=new_id("passage"), archive_id=archive.id, text="a fact"),
            ]
        )

    async with db.transaction() as s:
        doomed = await s.get(AgentRow, agent.id)
        assert doomed is not None
        await s.delete(doomed)

    async def count(table: str, where: str = "true") -> int:
        async with db.session() as s:
            return int((await s.execute(sa.text(f"SELECT count(*) FROM {table} WHERE {where}"))).scalar_one())

    for table in ("agents_blocks", "agents_tools", "agents_archives", "messages", "runs"):
        assert await count(table, f"agent_id = '{agent.id}'") == 0, table
    assert await count("steps") == 0
    assert await count("run_events") == 0
    # Shared objects stay: the block still serves the other agent; tools and archives are reusable.
    assert await count("blocks") == 1
    assert await count("agents_blocks", f"agent_id = '{other.id}'") == 1
    assert await count("tools") == 1
    assert await count("passages") == 1
    assert await count("messages", f"agent_id = '{other.id}'") == 1


async def test_one_default_archive_per_agent(db: Database) -> None:
    agent = await _agent(db)
    first, second = ArchiveRow(id=new_id("archive"), name="one"), ArchiveRow(id=new_id("archive"), name="two")
    async with db.transaction() as s:
        s.add_all([first, second])
    async with db.transaction() as s:
        s.add(AgentArchiveRow(agent_id=agent.id, archive_id=first.id, is_default=True))
    with pytest.raises(IntegrityError, match="uq_agents_archives_one_default"):
        async with db.transaction() as s:
            s.add(AgentArchiveRow(agent_id=agent.id, archive_id=second.id, is_default=True))


async def test_tool_names_are_unique(db: Database) -> None:
    async with db.transaction() as s:
        s.add(ToolRow(id=new_id("tool"), name="search"))
    with pytest.raises(IntegrityError, match="uq_tools_name"):
        async with db.transaction() as s:
            s.add(ToolRow(id=new_id("tool"), name="search"))
    async with db.session() as s:
        tool = (await s.exec(select(ToolRow))).one()
        assert (tool.return_char_limit, tool.source_type, tool.tool_type) == (50000, "python", "custom")
