"""Runs: every saved run in one table; filter, pick several to compare, rename, delete, download or make one
the active run."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import streamlit as st

from lib.engine.compare import MAX_COMPARED, matches, run_row
from lib.serving.export import FORMATS, ExportError, export_zip_bytes
from lib.engine.runs import RunError, RunInfo, delete_run, rename_run, run_zip_bytes
from lib.settings import settings
from ui.common import active_run, page_header, runs
from ui.compare import COLUMNS, show_compare

RUNS_DIR = settings().runs_dir  # the operator's (lib.settings), read on every run of the page


# ----------------------------------------------------------------------------------------------- helpers
def say(kind: str, message: str) -> None:
    st.session_state["runs_message"] = (kind, message)


def chosen_ids() -> list[str]:
    """The runs ticked for comparison, in the order they were ticked (kept while a filter hides them)."""
    return list(st.session_state.get("runs_chosen", []))


def filtered_rows(usable: list[RunInfo]) -> list[dict]:
    """The search box and status filter, then :func:`lib.engine.compare.run_row` of each run they let through."""
    search_col, status_col = st.columns([3, 2], gap="large", vertical_alignment="bottom")
    text = search_col.text_input("Search", key="runs_search", placeholder="name, dataset, model or sweep",
                                 help="Rows holding every word typed (in the name, dataset, model or sweep).")
    statuses = sorted({r.status or "unknown" for r in usable})
    shown = status_col.pills("Status", statuses, selection_mode="multi", default=statuses, key="runs_status",
                             help="finished: all its epochs; stopped: ended early, what it had learned was saved.")
    rows = [run_row(r) for r in usable if (r.status or "unknown") in shown]
    return [row for row in rows if matches(row, text)]


def runs_table(rows: list[dict]) -> None:
    """The runs table with a tick box per row. The runs ticked for comparison go to ``runs_chosen`` (those hidden
    by the filter stay ticked); a newly ticked run also becomes the one managed below."""
    ids = [row["Run"] for row in rows]
    remembered = chosen_ids()
    # A table's ticks are row positions: its key changes with its rows (filtered, renamed, deleted), and the new
    # table starts with the remembered runs ticked.
    digest = hashlib.sha1("\0".join(ids).encode()).hexdigest()[:10]
    key = f"runs_table_{digest}_{st.session_state.get('runs_table_generation', 0)}"
    ticked = [ids.index(r) for r in remembered if r in ids]
    event = st.dataframe(pd.DataFrame(rows), hide_index=True, key=key, column_config=COLUMNS, on_select="rerun",
                         selection_mode="multi-row",
                         selection_default={"selection": {"rows": ticked}} if ticked else None)
    visible = [ids[i] for i in event.selection.rows if 0 <= i < len(ids)]
    kept = [r for r in remembered if r in visible or r not in ids]
    new = [r for r in visible if r not in remembered]
    if new:
        st.session_state["runs_selected"] = new[-1]
    st.session_state["runs_chosen"] = kept + new


def clear_choice() -> None:
    st.session_state["runs_chosen"] = []
    st.session_state["runs_table_generation"] = st.session_state.get("runs_table_generation", 0) + 1


# ---------------------------------------------------------------------------------------------- compare
def draw_choice(usable: list[RunInfo], shown: set[str]) -> None:
    """What is ticked (and how to untick it), then the comparison of the ticked runs."""
    by_id = {r.run_id: r for r in usable}
    chosen = [by_id[r] for r in chosen_ids() if r in by_id]
    if chosen:
        hidden = sum(r.run_id not in shown for r in chosen)
        note, clear = st.columns([5, 1], vertical_alignment="center")
        note.caption(f"{len(chosen)} run(s) ticked" + (f", {hidden} hidden by the filter" if hidden else "")
                     + ": " + ", ".join(r.run_id for r in chosen) + ".")
        clear.button("Untick all", key="runs_clear", on_click=clear_choice, icon=":material/deselect:")
    if 2 <= len(chosen) <= MAX_COMPARED:
        show_compare(chosen)
    elif len(chosen) > MAX_COMPARED:
        st.warning(f"{len(chosen)} runs are ticked: compare at most {MAX_COMPARED} at a time (untick some).")
    else:
        st.caption(f"Tick 2 to {MAX_COMPARED} runs in the table to compare their curves, scores and settings.")


# --------------------------------------------------------------------------------------------- callbacks
def rename(old: str) -> None:
    new = (st.session_state.get("runs_new_name") or "").strip()
    if not new or new == old:
        say("error", "Type a new name first.")
        return
    try:
        rename_run(RUNS_DIR, old, new)
    except FileExistsError as error:
        say("error", f"{error}.")
        return
    except (ValueError, OSError) as error:  # an invalid name, or RunError: the run is gone
        say("error", f"Cannot rename '{old}': {error}")
        return
    if st.session_state.get("run_id") == old:
        st.session_state["run_id"] = new
    st.session_state["runs_selected"] = new
    st.session_state["runs_chosen"] = [new if r == old else r for r in chosen_ids()]
    st.session_state["runs_new_name"] = ""
    say("success", f"Renamed '{old}' to '{new}'.")


def delete(run_id: str) -> None:
    if not st.session_state.get("runs_confirm"):
        say("error", "Tick “I understand” first to delete the run.")
        return
    try:
        delete_run(RUNS_DIR, run_id)
    except (ValueError, OSError) as error:
        say("error", f"Cannot delete '{run_id}': {error}")
        return
    if st.session_state.get("run_id") == run_id:
        st.session_state["run_id"] = None
    st.session_state["runs_confirm"] = False
    st.session_state.pop("runs_selected", None)
    st.session_state["runs_chosen"] = [r for r in chosen_ids() if r != run_id]
    say("success", f"Deleted run '{run_id}'.")


def make_active(run_id: str) -> None:
    st.session_state["run_id"] = run_id
    say("success", f"'{run_id}' is now the active run: Evaluate, Inference and Record use it.")


# ------------------------------------------------------------------------------------------------- page
page_header("Runs", "Every saved training run with its settings and scores: sort, compare, rename, delete or "
                    "download them.")
all_runs = runs()
usable = [r for r in all_runs if r.error is None]
broken = [r for r in all_runs if r.error]

if not all_runs:
    st.info(f"No saved run yet in {RUNS_DIR}: train one on the Train page.")
    st.stop()

st.caption(f"{len(all_runs)} run(s) in `{RUNS_DIR}`, newest first. Click a column header to sort; tick rows "
           f"to compare them (2 to {MAX_COMPARED}) or to manage one below.")
if usable:
    rows = filtered_rows(usable)
    if rows:
        runs_table(rows)
    else:
        st.info("No run matches the search and status filter: change or clear them.")
if broken:
    st.warning(f"{len(broken)} run folder(s) are malformed and cannot be used:\n\n"
               + "\n".join(f"- **{r.run_id}**: {r.error}" for r in broken)
               + "\n\nDelete them below, or fix the files.", icon=":material/warning:")
if usable:
    draw_choice(usable, {row["Run"] for row in rows})

st.subheader("Manage a run")
ids = [r.run_id for r in all_runs]
current = active_run()
if st.session_state.get("runs_selected") not in ids:
    st.session_state["runs_selected"] = current.run_id if current and current.run_id in ids else ids[0]
selected_id = st.selectbox("Run", ids, key="runs_selected",
                           format_func=lambda rid: rid + ("  (malformed)" if any(r.run_id == rid for r in broken)
                                                          else "  (active)" if current and rid == current.run_id
                                                          else ""))
selected = next(r for r in all_runs if r.run_id == selected_id)

message = st.session_state.pop("runs_message", None)
if message:
    getattr(st, message[0])(message[1])

rename_col, delete_col, other_col = st.columns(3, gap="large")
with rename_col:
    st.markdown("**Rename**")
    st.text_input("New name", key="runs_new_name", placeholder=selected_id, max_chars=128,
                  help="Letters, digits, '-', '_' and '.' (not first).")
    st.button("Rename", key="runs_rename", on_click=rename, args=(selected_id,), icon=":material/edit:")
with delete_col:
    st.markdown("**Delete**")
    st.checkbox("I understand: this cannot be undone", key="runs_confirm",
                help=f"Deletes the folder of '{selected_id}' with its weights and metrics.")
    st.button("Delete", key="runs_delete", on_click=delete, args=(selected_id,), type="primary",
              disabled=not st.session_state.get("runs_confirm"), icon=":material/delete:")
with other_col:
    st.markdown("**Use**")
    is_active = current is not None and current.run_id == selected_id
    st.button("Make active", key="runs_activate", on_click=make_active, args=(selected_id,),
              disabled=selected.error is not None or is_active, icon=":material/check_circle:",
              help="Already the active run." if is_active else
                   "A malformed run cannot be used." if selected.error else
                   "Use this run on the Evaluate, Inference and Record pages.")
    path = Path(selected.path)
    st.download_button("Download as zip", data=lambda: run_zip_bytes(path),  # packed only when clicked
                       file_name=f"{selected_id}.zip", mime="application/zip", key="runs_download",
                       icon=":material/download:", on_click="ignore",
                       help="config.json, model.pt and metrics.json; unzip it into a runs folder to restore it.")

st.subheader("Export for deployment")
st.caption("The model with its whole preprocessing in one file: a mono waveform at the run's sample rate in "
           "(any length; centre padded or trimmed to one clip inside), class probabilities out. The zip also "
           "holds labels.json and an example.py that classifies audio files without this project (ONNX: "
           "onnxruntime, numpy and soundfile only). Serve it with `python -m lib.serving.serve FOLDER`.")
FORMAT_LABELS = {"onnx": "ONNX", "torchscript": "TorchScript"}
format_col, int8_col, build_col = st.columns(3, gap="large")
with format_col:
    export_format = st.radio("Format", FORMATS, format_func=FORMAT_LABELS.get, key="runs_export_format",
                             horizontal=True)
with int8_col:
    int8 = st.checkbox("Also an int8 model", key="runs_export_int8", disabled=export_format != "onnx",
                       help="ONNX Runtime dynamic quantization of the network's Conv and Gemm layers: a smaller "
                            "file; see docs/benchmarks.md for its accuracy and speed.")
with build_col:
    build = st.button("Build export", key="runs_export_build", icon=":material/deployed_code:",
                      disabled=selected.error is not None,
                      help="A malformed run cannot be exported." if selected.error else
                           "Exports the run and checks it against the app's own inference (takes a few seconds).")
if build:
    with st.spinner(f"Exporting '{selected_id}' to {FORMAT_LABELS[export_format]}..."):
        try:
            archive = export_zip_bytes(path, export_format, int8=int8 and export_format == "onnx")
        except (RunError, ExportError) as error:
            st.session_state.pop("runs_export", None)
            st.error(f"Cannot export '{selected_id}': {error}", icon=":material/error:")
        else:
            st.session_state["runs_export"] = (selected_id, export_format, archive)
export = st.session_state.get("runs_export")
if export and export[0] == selected_id:
    _, built_format, archive = export
    st.download_button(f"Download the {FORMAT_LABELS[built_format]} export ({len(archive) / 1e6:.1f} MB zip)",
                       data=archive, file_name=f"{selected_id}-{built_format}.zip", mime="application/zip",
                       key="runs_export_download", icon=":material/download:", on_click="ignore")
