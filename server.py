"""What ``make run`` serves: the Streamlit app (app.py) plus HTTP routes beside it.

The routes are for machines, not people: a payment provider's signed callback, and a plain
health check for a load balancer. Everything else is the Streamlit app.
"""

from typing import Final

import streamlit as st
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from cims.billing.online import CallbackResult, handle_callback
from cims.billing.sandbox import SIGNATURE_HEADER
from cims.db import session_scope

MAX_CALLBACK_BYTES: Final = 64 * 1024


async def sandbox_callback(request: Request) -> JSONResponse:
    """A sandbox payment callback: verified, recorded and applied once."""
    body = await request.body()
    if len(body) > MAX_CALLBACK_BYTES:
        return JSONResponse({"outcome": "too_large"}, status_code=413)
    signature = request.headers.get(SIGNATURE_HEADER, "")

    def apply() -> CallbackResult:
        with session_scope() as db:
            return handle_callback(db, provider_name="sandbox", body=body, signature=signature)

    result = await run_in_threadpool(apply)
    return JSONResponse({"outcome": result.outcome}, status_code=result.http_status)


async def health(_request: Request) -> JSONResponse:
    """Up and able to reach the database."""
    from sqlalchemy import text

    def check() -> bool:
        with session_scope() as db:
            return db.scalar(text("SELECT 1")) == 1

    ok = await run_in_threadpool(check)
    return JSONResponse({"status": "ok" if ok else "degraded"}, status_code=200 if ok else 503)


app = st.App(
    "app.py",
    routes=[
        Route("/cims/pay/callback/sandbox", sandbox_callback, methods=["POST"]),
        Route("/cims/health", health, methods=["GET"]),
    ],
)
