"""The item page and drawer: fields, criteria, blocks, send back, discard, comments, timeline."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from fastapi import APIRouter, Request
from sqlalchemy.orm import Session
from starlette.responses import Response

from app.db import queries
from app.db.board_queries import CardRow
from app.db.models import CLASSES_OF_SERVICE, Event, State, User
from app.deps import DbSession, commit
from app.flow import rules
from app.flow.errors import FlowError, InvalidInput, NotFound, VersionConflict
from app.services import blocks, items
from app.services.items import item_facts, state_facts
from app.web import actions
from app.web.board_view import Card, CardRules, action_form, filter_query
from app.web.boards import REFUSAL_HEADER, parse_filters
from app.web.common import header_summary, parse_date, parse_int, see_other
from app.web.deps import FormData, WebUser
from app.web.errors import note_refusal
from app.web.templating import duration, is_htmx, render

router = APIRouter()


@dataclass
class TimelineEntry:
    event: Event
    actor: str
    text: str
    after_previous: str


def describe(event: Event, states: dict[int, State], names: dict[int, str]) -> str:
    """An event in words, for the timeline."""
    data = event.data or {}

    def name(state_id: int | None) -> str:
        return states[state_id].name if state_id in states else "a removed state"

    text = {
        "created": f"created it in {name(event.to_state_id)}",
        "pulled": f"pulled it from {name(event.from_state_id)} into {name(event.to_state_id)}",
        "marked_ready": f"marked it ready in {name(event.to_state_id)}",
        "unready": f"took it back into Doing in {name(event.to_state_id)}",
        "completed": f"delivered it to {name(event.to_state_id)}",
        "sent_back": f"sent it back from {name(event.from_state_id)} to "
        f"{name(event.to_state_id)}: {data.get('reason', '')}",
        "blocked": f"blocked it: {data.get('reason', '')}"
        + (f" · waits on {data['waiting_on']}" if data.get("waiting_on") else ""),
        "unblocked": f"resolved the block ({data.get('reason', '')})"
        + (f": {data['resolution']}" if data.get("resolution") else ""),
        "criterion_met": f"checked “{data.get('text', '')}”",
        "criterion_unmet": f"unchecked “{data.get('text', '')}”",
        "edited": "edited " + ", ".join(sorted((data.get("changes") or {}).keys())),
        "assigned": "assigned it to "
        + (names.get(data["owner_id"], "someone") if data.get("owner_id") else "nobody"),
        "discarded": f"discarded it: {data.get('reason', '')}",
        "wip_override": (
            "went past "
            + (
                f"{names.get(data['owner_id'], 'the new owner')}'s personal WIP limit"
                if data.get("personal") and data.get("owner_id")
                else f"{name(event.to_state_id)}'s WIP limit"
            )
            + f" ({data.get('kind', '')}: {data.get('reason', '')})"
        ),
        "commented": "commented",
    }.get(event.type)
    return text or event.type.replace("_", " ")


def item_context(
    session: Session,
    user: User,
    item_id: int,
    *,
    alert: str | None = None,
    notice: str | None = None,
) -> dict[str, object]:
    detail = items.get_item(session=session, item_id=item_id, actor=user)
    item, board, role = detail.item, detail.board, detail.role
    states = queries.states_of(session, board.id)
    state_by_id = {s.id: s for s in states}
    reasons = queries.block_reasons(session, board.id)
    block = detail.open_block
    card = Card(
        row=CardRow(item, detail.owner_name, block, block.reason.name if block else None),
        age="",
    )
    CardRules(states, role, user.id, bool(reasons)).apply(card)
    may_discard = True
    try:
        rules.check_discard(
            item=item_facts(item, block.id if block else None),
            state=state_facts(state_by_id[item.state_id]),
            actor_role=role,
            reason="-",
        )
    except FlowError:
        may_discard = False
    events = list(queries.events_of_item(session, item.id, limit=1000, offset=0))
    people = {e.actor_id for e in events if e.actor_id} | {
        int(e.data["owner_id"]) for e in events if (e.data or {}).get("owner_id")
    }
    names = queries.user_names(session, people)
    timeline = []
    previous: datetime | None = None
    for event in events:
        gap = duration(event.at - previous) if previous else ""
        timeline.append(
            TimelineEntry(
                event,
                names.get(event.actor_id or 0, "someone"),
                describe(event, state_by_id, names),
                gap,
            )
        )
        previous = event.at
    members = [
        u for m, u in queries.members(session, board.id) if rules.role_at_least(m.role, "member")
    ]
    return {
        "detail": detail,
        "item": item,
        "board": board,
        "role": role,
        "state": state_by_id[item.state_id],
        "state_by_id": state_by_id,
        "card": card,
        "reasons": reasons,
        "members": members,
        "may_edit": rules.role_at_least(role, "member") and item.discarded_at is None,
        "may_discard": may_discard,
        "may_check": rules.role_at_least(role, "member") and item.done_at is None,
        "comments": queries.comments_of_item(session, item.id, limit=500, offset=0),
        "past_blocks": [b for b in queries.blocks_of_item(session, item.id) if b.resolved_at],
        "timeline": timeline,
        "alert": alert,
        "notice": notice,
        "now": queries.now(),
        "nav_board": board,
        "nav_current": "",
    }


def item_response(
    request: Request,
    session: Session,
    user: User,
    item_id: int,
    *,
    alert: str | None = None,
    status_code: int = 200,
) -> Response:
    context = item_context(session, user, item_id, alert=alert)
    if not is_htmx(request):
        context["summary"] = header_summary(session, user)
    headers = {REFUSAL_HEADER: "1"} if alert else None
    return render(
        request,
        "items/item.html",
        context,
        fragment="items/_detail.html",
        status_code=status_code,
        headers=headers,
    )


@router.get("/items/{item_id}")
def item_page(request: Request, item_id: int, session: DbSession, user: WebUser) -> Response:
    return item_response(request, session, user, item_id)


@router.get("/items/{item_id}/forms/block")
def block_page(request: Request, item_id: int, session: DbSession, user: WebUser) -> Response:
    """The board's Block dialog as a page: the card's link without JavaScript."""
    return _action_page(request, session, user, item_id, "block")


@router.get("/items/{item_id}/forms/send-back")
def send_back_page(request: Request, item_id: int, session: DbSession, user: WebUser) -> Response:
    """The board's Send back dialog as a page: the card's link without JavaScript."""
    return _action_page(request, session, user, item_id, "send-back")


def _action_page(
    request: Request, session: Session, user: User, item_id: int, action: str
) -> Response:
    query = filter_query(parse_filters(request))  # the board's filters, back after the post
    form = action_form(session, user=user, item_id=item_id, action=action, query=query)
    context = {
        "form": form,
        "query": query,
        "nav_board": form.board,
        "summary": header_summary(session, user),
    }
    status = form.refusal.status if form.refusal else 200
    return render(request, "boards/action.html", context, status_code=status)


def _done(request: Request, session: Session, user: User, item_id: int) -> Response:
    if is_htmx(request):
        return item_response(request, session, user, item_id)
    return see_other(f"/items/{item_id}")


def _refused(
    request: Request, session: Session, user: User, item_id: int, error: FlowError
) -> Response:
    if isinstance(error, NotFound):
        raise error  # before any rollback, which would expire the user the 404 page shows
    session.rollback()
    note_refusal(request, error)
    return item_response(
        request, session, user, item_id, alert=error.detail, status_code=error.status
    )


@router.post("/items/{item_id}/edit")
def edit(
    request: Request, item_id: int, session: DbSession, user: WebUser, form: FormData
) -> Response:
    """Fields change only from the version the form was rendered with (else 409, newer values)."""
    try:
        version = parse_int(form.get("version"), "version")
        if version is None:
            raise InvalidInput("The form lost its version; reload the item.")
        changes: dict[str, object] = {}
        for name in ("title", "description"):
            if name in form:
                changes[name] = form[name]
        if "class_of_service" in form:
            if form["class_of_service"] not in CLASSES_OF_SERVICE:
                raise InvalidInput("Choose a class of service from the list.")
            changes["class_of_service"] = form["class_of_service"]
        if "due_date" in form:
            changes["due_date"] = parse_date(form["due_date"])
        if "owner_id" in form:
            changes["owner_id"] = parse_int(form["owner_id"], "Owner")
        items.edit_item(
            session=session, item_id=item_id, actor=user, version=version, changes=changes
        )
        commit(session)
    except VersionConflict as error:
        return _refused(request, session, user, item_id, error)
    except FlowError as error:
        return _refused(request, session, user, item_id, error)
    return _done(request, session, user, item_id)


@router.post("/items/{item_id}/criteria/{criterion_id}")
def toggle_criterion(
    request: Request,
    item_id: int,
    criterion_id: int,
    session: DbSession,
    user: WebUser,
    form: FormData,
) -> Response:
    try:
        items.set_criterion(
            session=session,
            item_id=item_id,
            criterion_id=criterion_id,
            met=form.get("met") in ("1", "on", "true"),
            actor=user,
        )
        commit(session)
    except FlowError as error:
        return _refused(request, session, user, item_id, error)
    return _done(request, session, user, item_id)


@router.post("/items/{item_id}/comments")
def comment(
    request: Request, item_id: int, session: DbSession, user: WebUser, form: FormData
) -> Response:
    try:
        blocks.add_comment(session=session, item_id=item_id, actor=user, body=form.get("body", ""))
        commit(session)
    except FlowError as error:
        return _refused(request, session, user, item_id, error)
    return _done(request, session, user, item_id)


@router.post("/items/{item_id}/{action}")
def item_action(
    request: Request, item_id: int, action: str, session: DbSession, user: WebUser, form: FormData
) -> Response:
    """Block, unblock, send back, discard, pull, mark ready: the same services as the board."""
    try:
        actions.perform(session, user=user, item_id=item_id, action=action, form=form)
        commit(session)
    except FlowError as error:
        return _refused(request, session, user, item_id, error)
    return _done(request, session, user, item_id)
