"""Hostile inputs, confined paths: every path a page accepts (or reads from a run file, or finds in a CSV manifest)
resolves inside the allowed folders, else a clear refusal that names them; no message quotes a file's text; nothing
is read or written outside. Through lib (lib.paths, lib.data.sources), the command line and the Dataset and Evaluate pages.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from lib.data.sources import OUTSIDE, DatasetError, load_csv, load_folder, load_source
from lib.paths import PathNotAllowed, confine, is_inside
from tests.hostile_common import SECRET, class_folder, plant_secret, report, save_untrained_run, snapshot, texts

PAGES = Path(__file__).resolve().parents[1] / "app_pages"


@pytest.fixture
def tree(tmp_path):
    """``allowed/`` (the only allowed folder of the lib tests) with a tiny dataset, ``outside/`` with a secret."""
    allowed, outside = tmp_path / "allowed", plant_secret(tmp_path / "outside")
    class_folder(allowed / "set")
    return {"allowed": allowed, "outside": outside, "roots": (allowed,)}


# ------------------------------------------------------------------------------------------- lib.paths.confine
def _hostile_paths(t):
    allowed, outside = t["allowed"], t["outside"]
    os.symlink(outside, allowed / "link-out")
    os.symlink(allowed / "loop-a", allowed / "loop-b")
    os.symlink(allowed / "loop-b", allowed / "loop-a")
    (t["allowed"].parent / "allowed-evil").mkdir()
    return {
        "etc-passwd": "/etc/passwd",
        "filesystem-root": "/",
        "dot-dot-relative": "../../../../../../etc/passwd",
        "dot-dot-inside-absolute": f"{allowed}/set/../../outside/secret.txt",
        "symlink-inside-to-outside": str(allowed / "link-out" / "secret.txt"),
        "symlinked-folder-itself": str(allowed / "link-out"),
        "home-tilde": "~",
        "empty": "   ",
        "nul-byte": f"{allowed}/set\0/etc",
        "link-loop": str(allowed / "loop-a" / "x"),
        "very-long": "../" * 3000 + "etc/passwd",
        "sibling-with-root-prefix": str(allowed.parent / "allowed-evil"),
        "proc-self": "/proc/self/environ",
    }


HOSTILE = ["etc-passwd", "filesystem-root", "dot-dot-relative", "dot-dot-inside-absolute",
           "symlink-inside-to-outside", "symlinked-folder-itself", "home-tilde", "empty", "nul-byte", "link-loop",
           "very-long", "sibling-with-root-prefix", "proc-self"]


@pytest.mark.parametrize("case", HOSTILE)
def test_confine_refuses_paths_outside_the_allowed_folders(tree, case):
    path = _hostile_paths(tree)[case]
    with pytest.raises(PathNotAllowed, match="Allowed folders") as caught:
        confine(path, tree["roots"])
    assert isinstance(caught.value, ValueError) and str(tree["allowed"]) in str(caught.value)
    assert len(str(caught.value)) < 1000  # a long input is not echoed whole


@pytest.mark.parametrize("case", ["folder", "relative", "missing-file", "link-inside", "dot-dot-staying-inside"])
def test_confine_accepts_paths_inside(tree, case):
    allowed = tree["allowed"]
    os.symlink(allowed / "set" / "low", allowed / "alias")
    path, expected = {"folder": (str(allowed / "set"), allowed / "set"),
                      "relative": ("set/low", allowed / "set" / "low"),
                      "missing-file": (str(allowed / "new.csv"), allowed / "new.csv"),
                      "link-inside": (str(allowed / "alias"), allowed / "set" / "low"),
                      "dot-dot-staying-inside": (f"{allowed}/set/low/../high", allowed / "set" / "high")}[case]
    assert confine(path, tree["roots"]) == expected.resolve()


# ------------------------------------------------------------------------------------------- lib.data.sources with roots
def test_folder_outside_is_refused_before_anything_is_read(tree):
    with pytest.raises(PathNotAllowed):
        load_folder(tree["outside"], roots=tree["roots"])


def test_folder_with_a_class_linked_to_outside_never_reads_it(tree):
    os.symlink(tree["outside"], tree["allowed"] / "set" / "zz-linked")
    dataset = load_folder(tree["allowed"] / "set", roots=tree["roots"])
    assert dataset.class_names == ["high", "low"] and len(dataset) == 6
    assert [(Path(p).name, reason) for p, reason in dataset.failed] == [("private.wav", OUTSIDE)]


@pytest.mark.parametrize("row", ["absolute", "dot-dot", "symlink"])
def test_csv_rows_naming_files_outside_are_never_read(tree, row):
    allowed = tree["allowed"]
    os.symlink(tree["outside"] / "private.wav", allowed / "set" / "alias.wav")
    target = {"absolute": str(tree["outside"] / "private.wav"), "dot-dot": "../outside/private.wav",
              "symlink": "set/alias.wav"}[row]
    manifest = allowed / "m.csv"
    manifest.write_text(f"path,label\nset/low/low0.wav,low\nset/high/high0.wav,high\n{target},high\n")
    dataset = load_csv(manifest, roots=tree["roots"])
    assert len(dataset) == 2 and [reason for _, reason in dataset.failed] == [OUTSIDE]


@pytest.mark.parametrize("which", ["manifest", "root"])
def test_csv_manifest_or_root_outside_is_refused(tree, which):
    manifest = tree["allowed"] / "m.csv"
    manifest.write_text("path,label\nset/low/low0.wav,low\n")
    with pytest.raises(PathNotAllowed):
        if which == "manifest":
            load_csv(tree["outside"] / "secret.txt", roots=tree["roots"])
        else:
            load_csv(manifest, root=tree["outside"], roots=tree["roots"])


def test_a_real_dataset_root_outside_is_refused(tree):
    with pytest.raises(PathNotAllowed):
        load_source({"kind": "catalog", "key": "esc50", "root": str(tree["outside"])}, tree["allowed"],
                    roots=tree["roots"])


@pytest.mark.parametrize("content", ["passwd", "binary", "nul-bytes", "header-only", "empty"])
def test_csv_errors_never_quote_the_file(tree, content):
    path = tree["allowed"] / "not-a-manifest.csv"
    data = {"passwd": (SECRET + "\nbin:x:1:1\n").encode(), "binary": b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4,
            "nul-bytes": b"path,label\nSECRET\0x,y\n", "header-only": SECRET.encode() + b"\n",
            "empty": b""}[content]
    path.write_bytes(data)
    with pytest.raises(DatasetError) as caught:
        load_csv(path, roots=tree["roots"])
    message = str(caught.value)
    assert "SECRET" not in message and "root:x" not in message and "PNG" not in message
    assert "path" in message or "CSV" in message or "usable" in message


def test_conflicting_labels_are_an_error_naming_the_rows(tree):
    manifest = tree["allowed"] / "m.csv"
    manifest.write_text("path,label\nset/low/low0.wav,low\nset/high/high0.wav,high\nset/low/low0.wav,high\n")
    with pytest.raises(DatasetError, match=r"line 2 .* line 4"):
        load_csv(manifest, roots=tree["roots"])


# ------------------------------------------------------------------------------------------- the command line
def test_command_line_csv_error_does_not_quote_a_file(tree, capsys):
    from lib.engine.cli import main

    code = main(["--dataset", str(tree["outside"] / "secret.csv"), "--out", str(tree["allowed"] / "runs")])
    assert code == 2 and "not found" in capsys.readouterr().err
    (tree["outside"] / "secret.csv").write_text(SECRET + "\n")
    code = main(["--dataset", str(tree["outside"] / "secret.csv"), "--out", str(tree["allowed"] / "runs")])
    err = capsys.readouterr().err
    assert code == 2 and "lacks the column" in err and "SECRET" not in err
    assert not (tree["allowed"] / "runs").exists()  # refused before anything was written


# ------------------------------------------------------------------------------------------- pages
@pytest.fixture
def app(tmp_path):
    """The app's allowed folders: its data and runs folders and ``tmp_path/allowed`` (AUDIOWB_ALLOWED_DIRS); a
    secret in ``tmp_path/outside``; a tiny folder dataset in ``allowed/set``."""
    from lib.settings import reload_settings

    allowed, outside = tmp_path / "allowed", plant_secret(tmp_path / "outside")
    class_folder(allowed / "set")
    before = os.environ.get("AUDIOWB_ALLOWED_DIRS")
    os.environ["AUDIOWB_ALLOWED_DIRS"] = str(allowed)
    reload_settings()
    yield {"allowed": allowed, "outside": outside, "tiny": {"kind": "folder", "path": str(allowed / "set")}}
    os.environ.pop("AUDIOWB_ALLOWED_DIRS", None) if before is None else os.environ.update(
        AUDIOWB_ALLOWED_DIRS=before)
    reload_settings()


def _dataset_page(app) -> AppTest:
    at = AppTest.from_file(str(PAGES / "dataset.py"), default_timeout=60)
    at.session_state["dataset_source"] = app["tiny"]
    at.session_state["ds_map_what"] = "features"
    return at.run()


def _typed(app, case: str) -> str:
    outside = app["outside"]
    if case == "link-inside":
        os.symlink(outside, app["allowed"] / "innocent")
        return str(app["allowed"] / "innocent")
    return {"etc": "/etc", "root": "/", "dot-dot": f"{app['allowed']}/../outside", "outside": str(outside),
            "home": "~", "passwd": "/etc/passwd", "secret-csv": str(outside / "secret.txt")}[case]


@pytest.mark.parametrize("kind,case", [("folder", "etc"), ("folder", "root"), ("folder", "dot-dot"),
                                       ("folder", "outside"), ("folder", "link-inside"), ("folder", "home"),
                                       ("csv", "passwd"), ("csv", "secret-csv"), ("csv", "link-inside")])
def test_dataset_page_refuses_paths_outside(app, kind, case):
    at = _dataset_page(app)
    before = snapshot(app["outside"])
    at.segmented_control(key="ds_kind").set_value(kind).run()
    at.text_input(key=f"ds_{kind}").set_value(_typed(app, case))
    at.button(key=f"ds_open_{kind}").click().run()
    assert not at.exception, at.exception
    shown = texts(at)
    assert any("Allowed folders" in e.value and str(app["allowed"]) in e.value for e in at.error), shown
    assert "SECRET" not in shown and "root:x" not in shown
    assert at.session_state["dataset_source"] == app["tiny"]  # the previous dataset stays active
    assert snapshot(app["outside"]) == before


def test_dataset_page_refuses_a_csv_root_outside(app):
    manifest = app["allowed"] / "m.csv"
    manifest.write_text("path,label\nset/low/low0.wav,low\nset/high/high0.wav,high\n")
    at = _dataset_page(app)
    at.segmented_control(key="ds_kind").set_value("csv").run()
    at.text_input(key="ds_csv").set_value(str(manifest))
    at.text_input(key="ds_csv_root").set_value(str(app["outside"]))
    at.button(key="ds_open_csv").click().run()
    assert not at.exception and any("root folder" in e.value for e in at.error)
    assert at.session_state["dataset_source"] == app["tiny"]


def test_dataset_page_opens_a_manifest_inside_but_not_its_rows_outside(app):
    manifest = app["allowed"] / "m.csv"
    manifest.write_text(f"path,label\nset/low/low0.wav,low\nset/high/high0.wav,high\nset/low/low1.wav,low\n"
                        f"set/high/high1.wav,high\n{app['outside'] / 'private.wav'},high\n")
    at = _dataset_page(app)
    at.segmented_control(key="ds_kind").set_value("csv").run()
    at.text_input(key="ds_csv").set_value(str(manifest))
    at.button(key="ds_open_csv").click().run()
    assert not at.exception, at.exception
    assert next(m.value for m in at.metric if m.label == "Failed files") == "1"
    assert next(m.value for m in at.metric if m.label == "Clips") == "4"


@pytest.mark.parametrize("tab", ["existing", "archive"])
def test_dataset_page_refuses_real_dataset_paths_outside(app, tab):
    at = _dataset_page(app)
    at.segmented_control(key="ds_kind").set_value("catalog").run()
    at.text_input(key=f"ds_cat_{tab}").set_value(str(app["outside"]))
    at.button(key={"existing": "ds_cat_use_existing", "archive": "ds_cat_use_archive"}[tab]).click().run()
    assert not at.exception, at.exception
    assert any("Allowed folders" in e.value for e in at.error), texts(at)


def test_session_source_outside_from_an_old_session_is_refused(app):
    """A dataset source outside (an old session's state) is refused when loaded, never read."""
    at = AppTest.from_file(str(PAGES / "dataset.py"), default_timeout=60)
    at.session_state["dataset_source"] = {"kind": "folder", "path": str(app["outside"])}
    at.run()
    assert not at.exception and any("Allowed folders" in e.value for e in at.error), texts(at)


# -- Evaluate
@pytest.fixture
def evaluate_run(app):
    """A run in the app's runs folder (untrained weights) whose files name things outside; removed afterwards."""
    from lib.settings import settings

    run_id = "hostile-eval"
    names = ("low", "high")
    predictions = [{"index": 0, "path": str(app["outside"] / "private.wav"), "true": 0, "pred": 1, "confidence": 0.9},
                   {"index": 1, "path": "/etc/passwd", "true": 1, "pred": 0, "confidence": 0.8},
                   {"index": 2, "path": str(app["allowed"] / "set" / "low" / "low0.wav"), "true": 0, "pred": 0,
                    "confidence": 0.7}]
    metrics = {"test": report(names, predictions), "validation": report(names, predictions), "history": []}
    config = {"dataset": {"name": "elsewhere", "source": {"kind": "folder", "path": "/"}}}
    path = save_untrained_run(settings().runs_dir, run_id, config=config, metrics=metrics, class_names=names)
    yield run_id
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def _evaluate_page(app, run_id) -> AppTest:
    at = AppTest.from_file(str(PAGES / "evaluate.py"), default_timeout=60)
    at.session_state["dataset_source"] = app["tiny"]
    at.session_state["run_id"] = run_id
    at.session_state["eval_map_what"] = "features"
    return at.run()


def test_evaluate_never_plays_clips_named_outside_by_metrics_json(app, evaluate_run):
    at = _evaluate_page(app, evaluate_run)
    assert not at.exception, at.exception
    warnings = [w.value for w in at.warning if "Not played" in w.value]
    assert len(warnings) == 2, texts(at)  # the secret WAV and /etc/passwd
    assert len(at.get("audio")) == 0 and "SECRET" not in texts(at)


def test_evaluate_refuses_to_map_a_dataset_recorded_outside(app, evaluate_run):
    at = _evaluate_page(app, evaluate_run)
    assert any("outside the folders this app may read" in i.value for i in at.info), texts(at)


@pytest.mark.parametrize("kind,case", [("folder", "etc"), ("folder", "dot-dot"), ("folder", "link-inside"),
                                       ("csv", "passwd"), ("csv", "secret-csv")])
def test_evaluate_cross_dataset_refuses_paths_outside(app, evaluate_run, kind, case):
    at = _evaluate_page(app, evaluate_run)
    at.radio(key="eval_cross_kind").set_value(kind).run()
    at.text_input(key=f"eval_cross_{kind}").input(_typed(app, case)).run()
    assert not at.exception, at.exception
    assert any("Allowed folders" in e.value for e in at.error), texts(at)
    assert at.button(key="eval_cross_go").disabled
    assert "SECRET" not in texts(at)


def test_evaluate_cross_dataset_inside_still_works(app, evaluate_run):
    at = _evaluate_page(app, evaluate_run)
    at.radio(key="eval_cross_kind").set_value("folder").run()
    at.text_input(key="eval_cross_folder").input(str(app["allowed"] / "set")).run()
    at.button(key="eval_cross_go").click().run()
    assert not at.exception, at.exception
    assert not [e.value for e in at.error if "Allowed" in e.value]
    assert any("6 clips of 2 classes" in m.value for m in at.markdown), texts(at)


def test_is_inside_never_raises(tree):
    assert is_inside(tree["allowed"] / "set", tree["roots"])
    assert not is_inside("/etc", tree["roots"]) and not is_inside("a\0b", tree["roots"])
