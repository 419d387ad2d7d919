"""Every service that takes user text, fed the hostile corpus directly (no browser).

Each surface gets a spread of the fixed corpus (every category, overlong values included)
and a few hypothesis examples with a fixed seed. A case passes when it ends stored (and
reads back as typed, or stripped) or refused with a translated message and no row changed.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from sqlalchemy.orm import Session

from hostile.corpus import AMOUNTS, OVERLONG, hostile_amount, hostile_text, sample
from hostile.harness import LEDGER, assert_clean, attempt
from hostile.surfaces import AMOUNT_SURFACES, TEXT_SURFACES, Surface
from hostile.world import World

FIXED_PER_CATEGORY = 1
HYPOTHESIS = settings(
    max_examples=4,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)


def _push(session: Session, world: World, name: str, surface: Surface, value: str) -> str:
    call, check = surface(session, world, value)
    return attempt(session, name, value, call, check)


@pytest.mark.parametrize("name", sorted(TEXT_SURFACES))
def test_text_surface(name: str, hostile: tuple[Session, World]) -> None:
    session, world = hostile
    surface = TEXT_SURFACES[name]
    values = [h.value for h in sample(FIXED_PER_CATEGORY, seed=len(name))]
    values += [OVERLONG[len(name) % len(OVERLONG)].value, OVERLONG[-1].value]
    for value in values:
        _push(session, world, name, surface, value)

    @HYPOTHESIS
    @given(value=hostile_text)
    def generated(value: str) -> None:
        _push(session, world, name, surface, value)

    generated()
    assert_clean(f"{name}:")


@pytest.mark.parametrize("name", sorted(AMOUNT_SURFACES))
def test_amount_surface(name: str, hostile: tuple[Session, World]) -> None:
    session, world = hostile
    surface = AMOUNT_SURFACES[name]
    for value in AMOUNTS:
        _push(session, world, name, surface, value)

    @HYPOTHESIS
    @given(value=hostile_amount)
    def generated(value: str) -> None:
        _push(session, world, name, surface, value)

    generated()
    assert_clean(f"{name}:")
    assert LEDGER.by_surface[name]


@pytest.mark.parametrize(
    "value", ["a\x00b", "\x00", "  名字\x00  "], ids=["inside", "alone", "padded"]
)
def test_a_nul_character_is_refused_by_every_surface_or_stored_encrypted(
    value: str, hostile: tuple[Session, World]
) -> None:
    """PostgreSQL text cannot hold NUL: no surface may turn it into a database error."""
    session, world = hostile
    outcomes = {
        name: _push(session, world, f"nul.{name}", surface, value)
        for name, surface in TEXT_SURFACES.items()
    }
    assert_clean("nul.")
    # Plain-text columns refuse it with the message; encrypted bodies keep it intact.
    assert outcomes["note_title"] == outcomes["thread_subject"] == "refused:common.text_nul"
    assert outcomes["note_section"] == outcomes["thread_body"] == "stored"
    # The sign-in screen (outside any page's error handling) answers "no match", not an error.
    assert outcomes["sign_in"] == outcomes["portal_signup"] == outcomes["password_reset"]
    assert outcomes["sign_in"] == "stored"
