"""Runs: every saved run in one table; rename, delete, download or make one the active run."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from lib.export import FORMATS, ExportError, export_zip_bytes
from lib.runs import RunError, RunInfo, delete_run, rename_run, run_zip_bytes
from lib.settings import settings
from ui.common import active_run, page_header, runs

RUNS_DIR = settings().runs_dir  # the operator's (lib.settings), read on every run of the page


# ----------------------------------------------------------------------------------------------- helpers
def number(value, kind=float):
    try:
        return kind(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def row(run: RunInfo) -> dict:
    record = run.record
    train = record.train_config
    return {"Run": run.run_id, "Model": record.model, "Parameters": record.n_parameters,
            "Epochs": train.epochs if train else None, "Batch": train.batch_size if train else None,
            "Learning rate": train.learning_rate if train else None, "Optimizer": train.optimizer if train else None,
            "Mel bins": record.feature_config.n_mels,
            "Augmentation": train.augment.summary(detailed=False) if train else "?",
            "Device": record.device, "Duration (s)": record.duration_sec,
            "Status": record.status, "Val accuracy": number(run.val_accuracy),
            "Test accuracy": number(run.test_accuracy), "Macro F1": number(run.macro_f1), "Created": record.created}


def say(kind: str, message: str) -> None:
    st.session_state["runs_message"] = (kind, message)


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

st.caption(f"{len(all_runs)} run(s) in `{RUNS_DIR}`, newest first. Click a column header to sort.")
if usable:
    table = pd.DataFrame([row(r) for r in usable])
    st.dataframe(table, hide_index=True, key="runs_table", column_config={
        "Run": st.column_config.TextColumn(pinned=True),
        "Parameters": st.column_config.NumberColumn(format="localized"),
        "Learning rate": st.column_config.NumberColumn(format="%g"),
        "Duration (s)": st.column_config.NumberColumn(format="%.1f"),
        "Val accuracy": st.column_config.NumberColumn(format="percent"),
        "Test accuracy": st.column_config.NumberColumn(format="percent"),
        "Macro F1": st.column_config.NumberColumn(format="%.3f"),
    })
if broken:
    st.warning(f"{len(broken)} run folder(s) are malformed and cannot be used:\n\n"
               + "\n".join(f"- **{r.run_id}**: {r.error}" for r in broken)
               + "\n\nDelete them below, or fix the files.", icon=":material/warning:")

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
           "onnxruntime, numpy and soundfile only). Serve it with `python -m lib.serve FOLDER`.")
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
