"""The five board templates of PRODUCT.md: states, limits, pull roles and readiness criteria."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class StateTemplate:
    name: str
    kind: str
    wip_limit: int | None = None
    pull_role: str = "member"
    entry: tuple[str, ...] = ()
    exit: tuple[str, ...] = ()


@dataclass(frozen=True)
class BoardTemplate:
    slug: str
    name: str
    key: str
    purpose: str
    states: tuple[StateTemplate, ...] = field(default_factory=tuple)


DEFAULT_BLOCK_REASONS = (
    "Waiting for information",
    "Waiting for decision",
    "Waiting on external party",
    "Dependency",
    "Resource unavailable",
    "Rework needed",
)

TEMPLATES: dict[str, BoardTemplate] = {
    t.slug: t
    for t in (
        BoardTemplate(
            slug="document-review",
            name="Document reviews",
            key="DOC",
            purpose="Documents are drafted, reviewed and approved when reviewers have capacity.",
            states=(
                StateTemplate("Backlog", "backlog", 20),
                StateTemplate(
                    "Drafting",
                    "work",
                    3,
                    entry=("Owner and audience named",),
                    exit=("Draft complete", "Sources cited"),
                ),
                StateTemplate(
                    "Review",
                    "work",
                    2,
                    "reviewer",
                    entry=("Self-check done",),
                    exit=("Review comments resolved",),
                ),
                StateTemplate("Approval", "work", 2, "reviewer", exit=("Approver signed off",)),
                StateTemplate("Published", "done"),
            ),
        ),
        BoardTemplate(
            slug="audit-preparation",
            name="Audit preparation",
            key="AUD",
            purpose="Evidence is gathered, checked and findings followed up before the audit.",
            states=(
                StateTemplate("Requests", "backlog"),
                StateTemplate(
                    "Gather evidence",
                    "work",
                    4,
                    entry=("Evidence owner agreed",),
                    exit=("Evidence uploaded",),
                ),
                StateTemplate(
                    "Quality check", "work", 2, "reviewer", exit=("Evidence matches the control",)
                ),
                StateTemplate(
                    "Follow-up",
                    "work",
                    3,
                    exit=("Finding closed or accepted",),
                ),
                StateTemplate("Closed", "done"),
            ),
        ),
        BoardTemplate(
            slug="risk-treatment",
            name="Risk treatment",
            key="RSK",
            purpose="Actions start when resources are committed, not when the risk is logged.",
            states=(
                StateTemplate("Risk register", "backlog"),
                StateTemplate(
                    "Plan treatment",
                    "work",
                    3,
                    entry=("Resources committed",),
                    exit=("Treatment plan agreed", "Risk owner named"),
                ),
                StateTemplate("Implement", "work", 3, exit=("Controls in place",)),
                StateTemplate("Verify", "work", 2, "reviewer", exit=("Residual risk assessed",)),
                StateTemplate("Treated", "done"),
            ),
        ),
        BoardTemplate(
            slug="change-implementation",
            name="Change implementation",
            key="CHG",
            purpose="A change is activated when downstream processes are prepared.",
            states=(
                StateTemplate("Proposed", "backlog"),
                StateTemplate(
                    "Assess",
                    "work",
                    3,
                    exit=("Impact assessed", "Rollback plan written"),
                ),
                StateTemplate("Approve", "work", 2, "reviewer", exit=("Change approved",)),
                StateTemplate(
                    "Implement",
                    "work",
                    3,
                    entry=("Downstream processes prepared",),
                    exit=("Change deployed",),
                ),
                StateTemplate("Verify", "work", 2, "reviewer", exit=("Outcome verified",)),
                StateTemplate("Done", "done"),
            ),
        ),
        BoardTemplate(
            slug="management-decisions",
            name="Management decisions",
            key="DEC",
            purpose="Information is assembled when decisions can be made.",
            states=(
                StateTemplate("Questions", "backlog"),
                StateTemplate(
                    "Assemble information",
                    "work",
                    4,
                    exit=("Options and costs written up",),
                ),
                StateTemplate(
                    "Decide",
                    "work",
                    2,
                    "reviewer",
                    entry=("Decision makers available",),
                    exit=("Decision recorded",),
                ),
                StateTemplate("Communicate", "work", 3, exit=("Decision communicated",)),
                StateTemplate("Decided", "done"),
            ),
        ),
    )
}
