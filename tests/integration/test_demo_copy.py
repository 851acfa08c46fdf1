"""After the demo (simulated aside and copied in on PostgreSQL), ordinary writes go on: every
id sequence is past the copied rows, and the copy is the whole demo, nothing less."""

from __future__ import annotations

from sqlalchemy import func, select

from app.db.models import Block, Board, Event, Item, User
from app.db.session import Database
from app.demo import load_demo
from app.services import blocks, items, users
from tests.integration.test_demo import NOW


def test_writes_after_the_demo_get_fresh_ids(database: Database) -> None:
    result = load_demo(database, now=NOW, months=1, seed=3)
    assert result is not None
    board_id = result.boards[0][0]
    with database.unit_of_work() as session:
        highest = {
            model: session.scalar(select(func.max(model.id))) or 0
            for model in (User, Board, Item, Block, Event)
        }
        assert all(highest.values())
        mia = session.scalar(select(User).where(User.name == "Mia"))
        assert mia is not None
        newcomer = users.create_user(
            session=session, email="new@example.com", name="New", password=result.password
        )
        created = items.create_item(
            session=session, board_id=board_id, actor=mia, title="After the demo"
        )
        reason = session.scalar(select(Block.reason_id).where(Block.board_id == board_id))
        assert reason is not None
        found = blocks.block_item(
            session=session, item_id=created.item.id, actor=mia, reason_id=reason, note=""
        )
        session.flush()
        assert newcomer.id > highest[User]
        assert created.item.id > highest[Item]
        assert found.id > highest[Block]
        latest = session.scalar(select(func.max(Event.id)))
        assert latest is not None and latest > highest[Event]
