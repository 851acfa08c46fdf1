"""Board pages: the board, its columns' further pages, new items and card actions."""

from __future__ import annotations

from fastapi import APIRouter, Request
from sqlalchemy.orm import Session
from starlette.responses import HTMLResponse, Response

from app.db import board_queries as bq
from app.db import queries
from app.db.board_queries import BoardFilters, ColumnKey
from app.db.models import CLASSES_OF_SERVICE, User
from app.deps import DbSession, commit
from app.flow.errors import FlowError, NotFound
from app.inputs import parse_id
from app.services import idempotency, items
from app.services.access import visible_board
from app.web import actions
from app.web.board_delta import board_delta, render_cards, render_heads, wrap
from app.web.board_view import BoardView, Run, build_board, filter_query, make_cards
from app.web.common import header_summary, parse_date, parse_int, parse_text, see_other
from app.web.deps import FormData, WebUser
from app.web.errors import note_refusal
from app.web.templating import env, is_htmx, render

router = APIRouter()
REFUSAL_HEADER = "X-Flowboard-Refusal"
DELTA_HEADER = "X-Flowboard-Delta"  # the answer is a delta for board.js, not a board
# The New item form's fields that make two submissions "the same" for its Idempotency-Key.
NEW_ITEM_FIELDS = ("title", "class_of_service", "due_date")
SHOW_ALL_MAX = 5_000  # cards of one column's "Show all"


def parse_filters(request: Request) -> BoardFilters:
    params = request.query_params
    owner = params.get("owner") or ""
    cos = params.get("cos") or ""
    return BoardFilters(
        owner_id=parse_id(owner),
        class_of_service=cos if cos in CLASSES_OF_SERVICE else None,
        blocked_only=params.get("blocked") in ("1", "on", "true"),
        text=parse_text(params.get("q"), "search text"),
    )


@router.get("/")
def home(request: Request, session: DbSession, user: WebUser) -> Response:
    boards = bq.my_boards(session, user)
    if len(boards) == 1:
        return see_other(f"/boards/{boards[0][0].id}")
    return render(
        request, "home.html", {"boards": boards, "summary": header_summary(session, user)}
    )


def board_response(
    request: Request,
    session: Session,
    user: User,
    board_id: int,
    *,
    alert: str | None = None,
    alert_item_id: int | None = None,
    status_code: int = 200,
    new_item_key: bool = False,
) -> Response:
    """The board page (or #board for htmx). `new_item_key`: after a create, htmx also gets a
    fresh Idempotency-Key for the New item form (out of band), so the next item is new."""
    board, role = visible_board(session, board_id=board_id, actor=user)
    view = build_board(
        session,
        board=board,
        role=role,
        user_id=user.id,
        filters=parse_filters(request),
        now=queries.now(),
        alert=alert,
        alert_item_id=alert_item_id,
    )
    context: dict[str, object] = {
        "view": view,
        "nav_board": board,
        "nav_current": "board",
        "new_item_key": idempotency.new_key(),
        "new_item_key_oob": new_item_key and is_htmx(request),
    }
    if not is_htmx(request):
        context["summary"] = header_summary(session, user)
    headers = {REFUSAL_HEADER: "1"} if alert else None
    return render(
        request,
        "boards/board.html",
        context,
        fragment="boards/_board.html",
        status_code=status_code,
        headers=headers,
    )


@router.get("/boards/{board_id}")
def board_page(request: Request, board_id: int, session: DbSession, user: WebUser) -> Response:
    return board_response(request, session, user, board_id)


@router.get("/boards/{board_id}/states/{state_id}/cards")
def column_page(
    request: Request, board_id: int, state_id: int, session: DbSession, user: WebUser
) -> Response:
    """The next page of one column: cards plus the next "Show N more" (htmx) or a page."""
    board, role = visible_board(session, board_id=board_id, actor=user)
    states = queries.states_of(session, board.id)
    state = next((s for s in states if s.id == state_id), None)
    if state is None:
        raise NotFound("No such state on this board.")
    params = request.query_params
    stage = params.get("stage") or None
    if state.kind != "work" or stage not in ("doing", "ready"):
        stage = None
    key = ColumnKey(state.id, stage, params.get("lane") == "expedite")
    offset = parse_int(params.get("offset"), "offset") or 0
    # "Show all": every card of the run in one answer (bounded: a column is not a dump).
    per_column = SHOW_ALL_MAX if params.get("all") in ("1", "on", "true") else bq.PAGE
    filters = parse_filters(request)
    done = next((s for s in states if s.kind == "done"), None)
    newest = [s.id for s in states if s.kind in ("backlog", "done")]
    rows = bq.visible_cards(
        session,
        board.id,
        newest,
        done.id if done else None,
        filters,
        only=key,
        offset=offset,
        per_column=per_column,
    )
    total = bq.column_counts(session, board.id, done.id if done else None, filters, only=key).get(
        key, 0
    )
    reasons = queries.block_reasons(session, board.id)
    cards = make_cards(session, rows, states, role, user.id, bool(reasons), queries.now())
    run = Run(
        key=key,
        title={"doing": "Doing", "ready": "Ready"}.get(stage or "", state.name),
        cards=cards,
        total=total - offset,
    )
    view = BoardView(
        board=board,
        role=role,
        states=states,
        columns=[],
        lane=[],
        filters=filters,
        members=[],
        reasons=reasons,
        query=filter_query(filters),
        offset=offset,
    )
    context = {"view": view, "run": run, "state": state, "nav_board": board}
    return render(request, "boards/column.html", context, fragment="boards/_more.html")


@router.post("/boards/{board_id}/items")
def create_item(
    request: Request, board_id: int, session: DbSession, user: WebUser, form: FormData
) -> Response:
    cos = form.get("class_of_service") or "standard"
    # The form's hidden key (one per render) or a script's header: a resent form creates once.
    key = request.headers.get(idempotency.HEADER) or form.get(idempotency.FORM_FIELD) or None
    try:
        key_row = None
        if key is not None:
            claimed = idempotency.claim(
                session,
                user_id=user.id,
                scope=f"POST /boards/{board_id}/items",
                key=key,
                request_hash=idempotency.fingerprint(
                    {name: form.get(name, "") for name in NEW_ITEM_FIELDS}
                ),
            )
            if isinstance(claimed, idempotency.Answer):  # already created: show the board
                return _after_action(request, session, user, board_id, new_item_key=True)
            key_row = claimed
        detail = items.create_item(
            session=session,
            board_id=board_id,
            actor=user,
            title=form.get("title", ""),
            class_of_service=cos if cos in CLASSES_OF_SERVICE else "standard",
            due_date=parse_date(form.get("due_date")),
        )
        if key_row is not None:
            idempotency.remember(
                session,
                key_row,
                status_code=303,
                body={"item_id": detail.item.id},
                location=f"/boards/{board_id}",
            )
        commit(session)
    except NotFound:
        # Re-raised before any rollback: a rollback would expire the signed-in user that the
        # 404 page still shows; closing the request's session discards the work anyway.
        raise
    except FlowError as error:
        session.rollback()
        note_refusal(request, error)
        return board_response(
            request, session, user, board_id, alert=error.detail, status_code=error.status
        )
    return _after_action(request, session, user, board_id, new_item_key=True)


def _after_action(
    request: Request, session: Session, user: User, board_id: int, *, new_item_key: bool = False
) -> Response:
    if is_htmx(request):
        return board_response(request, session, user, board_id, new_item_key=new_item_key)
    query = request.url.query
    return see_other(f"/boards/{board_id}" + (f"?{query}" if query else ""))


@router.post("/boards/{board_id}/items/{item_id}/{action}")
def card_action(
    request: Request,
    board_id: int,
    item_id: int,
    action: str,
    session: DbSession,
    user: WebUser,
    form: FormData,
) -> Response:
    """Pull, mark ready, block... through the services; a refusal re-renders the board
    unchanged with the rule's sentence above the card (409/422/403)."""
    try:
        actions.perform(
            session, user=user, item_id=item_id, action=action, form=form, board_id=board_id
        )
        commit(session)
    except NotFound:
        # Re-raised before any rollback: a rollback would expire the signed-in user that the
        # 404 page still shows; closing the request's session discards the work anyway.
        raise
    except FlowError as error:
        session.rollback()
        note_refusal(request, error)
        return board_response(
            request,
            session,
            user,
            board_id,
            alert=error.detail,
            alert_item_id=item_id,
            status_code=error.status,
        )
    if is_htmx(request):
        return delta_response(request, session, user, board_id, item_id)
    return _after_action(request, session, user, board_id)


def delta_response(
    request: Request, session: Session, user: User, board_id: int, item_id: int
) -> Response:
    """An action's answer for htmx: only the acted-on card (where it now sits), every column's
    head and the header counts; board.js patches them in (`X-Flowboard-Delta`). HX-Reswap
    none: an htmx without board.js leaves the board as it is rather than replace it."""
    board, role = visible_board(session, board_id=board_id, actor=user)
    delta = board_delta(
        session,
        board=board,
        role=role,
        user_id=user.id,
        filters=parse_filters(request),
        now=queries.now(),
        item_ids=[item_id],
    )
    inner = render_heads(delta.view) + render_cards(delta.view, delta.placements)
    summary = env.get_template("_summary.html").render(summary=header_summary(session, user))
    return HTMLResponse(
        wrap(delta.view, inner + summary),
        headers={DELTA_HEADER: "1", "HX-Reswap": "none", "Vary": "HX-Request"},
    )
