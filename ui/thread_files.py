"""Files in a consultation thread: a download button per file, and an upload form."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import streamlit as st

from cims.db import session_scope
from cims.engagement.consultation import MessageView
from cims.engagement.errors import InvalidEngagement
from cims.records.attachments import InvalidAttachment
from cims.security.rbac import Actor
from ui.downloads import deferred
from ui.i18n import tr

ACCEPTED = ["pdf", "png", "jpg", "jpeg", "txt"]


def file_button(
    actor: Actor, item: MessageView, thread_id: int, download: Callable[..., Any]
) -> None:
    """A message's file, decrypted and audited only when clicked."""
    if item.attachment_id is None:
        return
    st.download_button(
        item.attachment_name or "file",
        deferred(actor, download, thread_id=thread_id, attachment_id=item.attachment_id),
        file_name=item.attachment_name or "file",
        icon=":material/attach_file:",
        key=f"thread_file_{item.message_id}",
        on_click="ignore",
    )


def file_form(actor: Actor, thread_id: int, attach: Callable[..., Any]) -> bool:
    """Upload one file into the thread; True when it was added."""
    with st.form(f"thread_attach_{thread_id}", clear_on_submit=True):
        upload = st.file_uploader(tr("consult.attach"), type=ACCEPTED, key=f"upload_{thread_id}")
        sent = st.form_submit_button(tr("consult.attach_send"), icon=":material/upload_file:")
    if not sent or upload is None:
        return False
    try:
        with session_scope() as db:
            attach(
                session=db,
                actor=actor,
                thread_id=thread_id,
                filename=upload.name,
                content_type=upload.type or "",
                data=upload.getvalue(),
            )
    except (InvalidAttachment, InvalidEngagement) as refusal:
        for problem in refusal.problems:
            st.error(tr(problem))
        return False
    return True
