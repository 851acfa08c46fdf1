"""The demo data: five template boards with a month of history made by the real services."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

from sqlalchemy import func, select

from app.db.models import Block, Board, Event, Item, Membership, State, User
from app.db.session import Database
from app.demo import DOMAIN, load_demo
from app.services import users
from app.services.board_templates import TEMPLATES
from tests.conftest import empty_all_tables

# A Wednesday afternoon, so the last simulated working hours fall just before it.
NOW = datetime(2026, 6, 3, 15, 30, tzinfo=UTC)


def _fingerprint(database: Database) -> Counter[tuple[str, str, str | None, bool, bool]]:
    """(board, state, stage, done, discarded) -> item count: the shape of a demo run."""
    with database.session(write=False) as session:
        rows = session.execute(
            select(Board.name, State.name, Item.stage, Item.done_at, Item.discarded_at)
            .join(State, State.id == Item.state_id)
            .join(Board, Board.id == Item.board_id)
        )
        return Counter(
            (board, state, stage, done is not None, discarded is not None)
            for board, state, stage, done, discarded in rows
        )


def test_demo_fills_an_empty_database_once(database: Database) -> None:
    result = load_demo(database, now=NOW, months=1)

    assert result is not None
    assert len(result.password) >= 16
    assert [name for _, name in result.boards] == [t.name for t in TEMPLATES.values()]
    assert {(name, email) for name, email, _ in result.users} >= {
        ("Mia", f"mia@{DOMAIN}"),
        ("Sam", f"sam@{DOMAIN}"),
        ("Ann", f"ann@{DOMAIN}"),
        ("Rex", f"rex@{DOMAIN}"),
    }
    with database.unit_of_work() as session:
        # The one generated password opens every demo account; nothing else does.
        for _, email, _ in result.users:
            assert users.authenticate(session=session, email=email, password=result.password)
        people = {u.name: u for u in session.scalars(select(User))}
        assert people["Mia"].is_admin
        assert not any(u.is_admin for name, u in people.items() if name != "Mia")
        roles = Counter(
            (people_name, role)
            for people_name, role in session.execute(
                select(User.name, Membership.role).join(Membership, Membership.user_id == User.id)
            )
        )
        assert roles[("Mia", "manager")] == 5
        assert roles[("Sam", "member")] == roles[("Ann", "member")] == 5
        assert roles[("Rex", "reviewer")] == 5

        for board_id, name in result.boards:
            states = session.scalars(
                select(State).where(State.board_id == board_id).order_by(State.position)
            ).all()
            for state in states:
                open_or_done = session.scalar(
                    select(func.count())
                    .select_from(Item)
                    .where(Item.state_id == state.id, Item.discarded_at.is_(None))
                )
                assert open_or_done, f"{name}: {state.name} is empty"
            done = session.scalar(
                select(func.count())
                .select_from(Item)
                .where(Item.board_id == board_id, Item.done_at.is_not(None))
            )
            assert done, f"{name} has no completed items"

        open_blocks = session.scalars(select(Block).where(Block.resolved_at.is_(None))).all()
        assert open_blocks
        assert all(b.reason_id and b.waiting_on for b in open_blocks)
        assert (session.scalar(select(func.count()).select_from(Block)) or 0) > len(open_blocks)
        waiting = session.scalar(
            select(func.count()).select_from(Item).where(Item.stage == "ready")
        )
        assert waiting

        overrides = session.scalars(select(Event).where(Event.type == "wip_override")).all()
        by_manager = [e for e in overrides if e.data["kind"] == "manager"]
        assert len(by_manager) == 1
        assert by_manager[0].actor_id == people["Mia"].id
        assert by_manager[0].data["reason"]
        # ... and it is the only state over its limit now.
        over = []
        for state in session.scalars(select(State).where(State.wip_limit.is_not(None))):
            wip = session.scalar(
                select(func.count())
                .select_from(Item)
                .where(
                    Item.state_id == state.id,
                    Item.done_at.is_(None),
                    Item.discarded_at.is_(None),
                )
            )
            if state.wip_limit is not None and (wip or 0) > state.wip_limit:
                over.append(state.id)
        assert over == [by_manager[0].to_state_id]

        classes = set(
            session.scalars(
                select(Item.class_of_service).where(
                    Item.done_at.is_(None), Item.discarded_at.is_(None)
                )
            )
        )
        assert {"expedite", "fixed_date", "standard"} <= classes

        # History runs forward in working hours and ends before `now`. (member_changed is
        # left out: boards.set_member takes no `now` and stamps the wall clock.)
        times = session.scalars(
            select(Event.at).where(Event.type != "member_changed").order_by(Event.id)
        ).all()
        assert times == sorted(times)
        assert times[-1] < NOW
        assert all(t.weekday() < 5 and 9 <= t.hour < 17 for t in times)
        kinds = set(session.scalars(select(Event.type)))
        assert {"created", "pulled", "marked_ready", "completed", "blocked", "unblocked"} <= kinds
        assert {"criterion_met", "sent_back", "wip_override"} <= kinds

    # A second run finds users and leaves everything alone.
    before = _fingerprint(database)
    assert load_demo(database, now=NOW, months=1) is None
    assert _fingerprint(database) == before


def test_demo_with_the_same_seed_is_the_same(database: Database) -> None:
    load_demo(database, now=NOW, months=1, seed=11)
    first = _fingerprint(database)
    empty_all_tables(database)
    load_demo(database, now=NOW, months=1, seed=11)
    assert _fingerprint(database) == first
    assert sum(first.values()) > 40
