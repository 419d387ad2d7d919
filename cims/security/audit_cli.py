"""``cims audit ...``: verify the hash chain, seal now, anchor the head outside the database."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy import Engine, create_engine

from cims.security import audit_chain

audit_app = typer.Typer(help="Tamper-evident audit trail.", no_args_is_help=True)

AnchorDir = Annotated[
    Path | None,
    typer.Option(help="Anchor folder (default: <data dir>/audit-anchors)."),
]


def _engine() -> Engine:
    from cims.db import database_url

    return create_engine(database_url(), connect_args={"options": "-c timezone=UTC"})


@audit_app.command("verify")
def verify(
    anchor_dir: AnchorDir = None,
    no_anchors: Annotated[
        bool, typer.Option("--no-anchors", help="Check the chain only, not the anchors.")
    ] = False,
    unsealed_warn_seconds: Annotated[
        float, typer.Option(help="Warn about rows left unsealed longer than this.")
    ] = 60.0,
) -> None:
    """Walk the chain; print the first broken row and exit 1 when it is broken."""
    engine = _engine()
    folder = None if no_anchors else (anchor_dir or audit_chain.default_anchor_dir(engine))
    try:
        result = audit_chain.verify_chain(
            engine, anchor_dir=folder, unsealed_warn_seconds=unsealed_warn_seconds
        )
    finally:
        engine.dispose()
    for note in result.notes:
        typer.echo(f"note: {note}")
    for warning in result.warnings:
        typer.echo(f"warning: {warning}", err=True)
    if not result.ok:
        typer.echo(
            f"BROKEN at seq {result.first_broken_seq} (audit id {result.first_broken_audit_id}):"
            f" {result.reason} — {result.detail}; {result.problems} problem(s) in all",
            err=True,
        )
        raise typer.Exit(code=1)
    typer.echo(
        f"audit chain intact: {result.rows_checked} sealed row(s), head seq {result.head_seq} "
        f"{result.head_hash.hex()}, {result.anchors_checked} anchor(s) checked, "
        f"{result.unsealed_rows} row(s) awaiting sealing"
    )


@audit_app.command("seal")
def seal() -> None:
    """Seal every committed, unsealed audit row now (full sweep); print how many."""
    engine = _engine()
    try:
        count = audit_chain.seal_pending(engine)
    finally:
        engine.dispose()
    typer.echo(f"sealed {count} row(s)")


@audit_app.command("anchor")
def anchor(
    reason: Annotated[
        str, typer.Option(help="Why: manual, daily, backup, restore (restore explains a reset).")
    ] = "manual",
    anchor_dir: AnchorDir = None,
) -> None:
    """Append the sealed chain head to today's anchor file."""
    engine = _engine()
    try:
        written = audit_chain.anchor_head(engine, anchor_dir, reason)
    finally:
        engine.dispose()
    typer.echo(f"anchored seq {written.seq} {written.head_hash_hex} ({reason})")
