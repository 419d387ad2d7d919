"""One seeded demo hospital for the risk-model tests, with both models trained once."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

import pytest
from risk_helpers import FAST, demo_actor
from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import Session


@pytest.fixture(scope="session")
def risk_url(
    seeded_app_database: Callable[..., AbstractContextManager[str]],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    """A demo hospital of 1,500 patients (about 600 discharges, 5,500 appointments)."""
    import os

    os.environ["CIMS_MODEL_DIR"] = str(tmp_path_factory.mktemp("models"))
    with seeded_app_database("risk_models", patients=1500, seed=7) as url:
        yield url


@pytest.fixture(scope="session")
def risk_engine(risk_url: str) -> Iterator[Engine]:
    eng = create_engine(risk_url)
    yield eng
    eng.dispose()


@pytest.fixture(scope="session")
def trained(risk_engine: Engine) -> dict[str, int]:
    """Both models trained (LR for readmission, HGB for no-show) and promoted; ids."""
    from models.registry import promote, train_model

    ids: dict[str, int] = {}
    with Session(risk_engine) as session:
        analyst = demo_actor(session, "analyst")
        for name, kind in (("readmission_30d", "lr"), ("no_show", "hgb")):
            version = train_model(
                session=session, actor=analyst, model_name=name, kind=kind, settings=FAST
            )
            promote(session=session, actor=analyst, version_id=version.id)
            ids[name] = version.id
        session.commit()
    return ids
