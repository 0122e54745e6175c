"""The router's two guards: the class password (when the operator sets one) and the page edge.

The password follows Streamlit's documented pattern for a shared password without SSO: the typed password is
compared with ``hmac.compare_digest`` before the navigation runs, and a session that has not typed it sees nothing
else. The password comes from the ``AUDIOWB_PASSWORD`` environment variable or, failing that, ``password`` in
``.streamlit/secrets.toml``; with neither set there is no password (the default: ``make run`` listens on
localhost only).

The page edge turns any unexpected exception of a page into an ``st.error`` that says what to do, and logs the
traceback on the server (with a reference the error shows, so the operator can find it). Streamlit's control flow
(``st.rerun``, ``st.stop``, ``st.switch_page``: ``BaseException`` subclasses) and a fragment's error it already
handled pass through.
"""

from __future__ import annotations

import hmac
import os
import uuid

import streamlit as st
from streamlit.errors import FragmentHandledException, FragmentStorageKeyError
from streamlit.logger import get_logger

__all__ = ["PASSWORD_ENV", "configured_password", "require_password", "run_page"]

PASSWORD_ENV = "AUDIOWB_PASSWORD"
LOGGER = get_logger("audiowb.pages")
_PASS_THROUGH = (FragmentHandledException, FragmentStorageKeyError)


def configured_password() -> str | None:
    """The class password: ``AUDIOWB_PASSWORD``, else ``password`` in Streamlit's secrets, else None (no login)."""
    password = os.environ.get(PASSWORD_ENV)
    if password:
        return password
    if not st.secrets.load_if_toml_exists():  # no secrets.toml: no password (never an error on the page)
        return None
    password = st.secrets.get("password")
    return str(password) if password else None


def _check_typed_password(password: str) -> None:
    typed = str(st.session_state.get("password_typed", ""))
    st.session_state["password_correct"] = hmac.compare_digest(typed.encode(), password.encode())
    st.session_state.pop("password_typed", None)  # the password itself is never kept in the session


def require_password() -> None:
    """Stop the script run here until this session has typed the class password (nothing when none is set)."""
    password = configured_password()
    if password is None or st.session_state.get("password_correct", False):
        return
    st.title("Audio classification workbench")
    st.text_input("Class password", type="password", key="password_typed", on_change=_check_typed_password,
                  args=(password,), help="Your teacher gives it out; it is the same for the whole class.")
    if st.session_state.get("password_correct") is False:
        st.error("That password is not right: check it with your teacher and type it again.")
    st.stop()


def run_page(page) -> None:
    """Run ``page`` (an ``st.Page``); an unexpected exception becomes an ``st.error`` and a logged traceback."""
    try:
        page.run()
    except _PASS_THROUGH:
        raise
    except Exception as error:  # noqa: BLE001: the page edge; Streamlit's control flow is a BaseException
        reference = uuid.uuid4().hex[:8]
        LOGGER.exception("Page %r failed (reference %s)", getattr(page, "title", page), reference)
        st.error(f"Something went wrong on this page ({type(error).__name__}). Reload the page or go back a step "
                 f"and try again with other settings or another file; if it happens again, tell whoever runs this "
                 f"server and give them the reference **{reference}** (the details are in the server's log).",
                 icon=":material/error:")
