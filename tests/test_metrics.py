"""lib.engine.metrics: hand-computed metrics agree with the function and with sklearn's classification_report."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from sklearn.metrics import classification_report

from lib.engine.metrics import classification_metrics, normalize_confusion

NAMES = ["yes", "no", "up"]
Y_TRUE = [0, 0, 1, 1, 2, 2]
Y_PRED = [0, 1, 1, 1, 2, 0]

# By hand.  Confusion (rows true, columns predicted):
#   yes: [1, 1, 0]   no: [0, 2, 0]   up: [1, 0, 1]
# yes: predicted twice (1 right) -> P = 1/2, true twice (1 found) -> R = 1/2, F1 = 1/2
# no:  predicted 3 times (2 right) -> P = 2/3, R = 2/2 = 1, F1 = 2 * (2/3 * 1) / (2/3 + 1) = 4/5
# up:  predicted once (1 right) -> P = 1, R = 1/2, F1 = 2 * (1 * 1/2) / (3/2) = 2/3
# accuracy = 4/6; every support is 2, so weighted averages equal the macro ones.
HAND_CM = [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
HAND = {"yes": (1 / 2, 1 / 2, 1 / 2), "no": (2 / 3, 1.0, 4 / 5), "up": (1.0, 1 / 2, 2 / 3)}
HAND_MACRO = tuple(np.mean([HAND[n][i] for n in NAMES]) for i in range(3))


def test_hand_example_matches_hand_computation():
    m = classification_metrics(Y_TRUE, Y_PRED, NAMES)
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["confusion_matrix"] == HAND_CM
    assert m["class_names"] == NAMES
    assert m["n"] == 6
    for row in m["per_class"]:
        p, r, f = HAND[row["class"]]
        assert (row["precision"], row["recall"], row["f1"]) == pytest.approx((p, r, f))
        assert row["support"] == 2
    for avg in ("macro", "weighted"):
        got = m[avg]
        assert (got["precision"], got["recall"], got["f1"]) == pytest.approx(HAND_MACRO)


def test_matches_sklearn_classification_report():
    m = classification_metrics(Y_TRUE, Y_PRED, NAMES)
    report = classification_report(Y_TRUE, Y_PRED, labels=[0, 1, 2], target_names=NAMES,
                                   output_dict=True, zero_division=0)
    for row in m["per_class"]:
        ref = report[row["class"]]
        assert row["precision"] == pytest.approx(ref["precision"])
        assert row["recall"] == pytest.approx(ref["recall"])
        assert row["f1"] == pytest.approx(ref["f1-score"])
        assert row["support"] == ref["support"]
    for ours, theirs in (("macro", "macro avg"), ("weighted", "weighted avg")):
        for key, ref_key in (("precision", "precision"), ("recall", "recall"), ("f1", "f1-score")):
            assert m[ours][key] == pytest.approx(report[theirs][ref_key])
    assert m["accuracy"] == pytest.approx(report["accuracy"])


def test_never_predicted_class_has_zero_precision_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # "up" (2) is never predicted, and a 4th class never occurs at all
        m = classification_metrics([0, 1, 2, 2], [0, 1, 0, 1], NAMES + ["down"])
    up = m["per_class"][2]
    assert (up["precision"], up["recall"], up["f1"], up["support"]) == (0.0, 0.0, 0.0, 2)
    down = m["per_class"][3]
    assert (down["precision"], down["recall"], down["support"]) == (0.0, 0.0, 0)
    assert m["confusion_matrix"][3] == [0, 0, 0, 0]


def test_json_serialisable_plain_types():
    m = classification_metrics(np.array(Y_TRUE), np.array(Y_PRED), tuple(NAMES))
    assert json.loads(json.dumps(m)) == m
    assert type(m["accuracy"]) is float and type(m["n"]) is int
    assert all(type(v) is int for row in m["confusion_matrix"] for v in row)


def test_normalize_confusion_rows_sum_to_one_and_zero_rows_stay_zero():
    cm = np.array([[1, 1, 0], [0, 2, 0], [0, 0, 0]])
    norm = normalize_confusion(cm)
    np.testing.assert_allclose(norm.sum(axis=1), [1.0, 1.0, 0.0])
    np.testing.assert_allclose(norm[0], [0.5, 0.5, 0.0])
    np.testing.assert_allclose(normalize_confusion(HAND_CM).sum(axis=1), 1.0)


def test_bad_input_rejected():
    with pytest.raises(ValueError):
        classification_metrics([0, 1], [0], NAMES)
    with pytest.raises(ValueError):
        classification_metrics([], [], NAMES)
    with pytest.raises(ValueError):
        classification_metrics([0, 3], [0, 1], NAMES)


def test_macro_over_present_classes_is_what_a_subset_test_should_report():
    """Two of ten classes tested, all right: plain macro scores read 20%, over the present classes 100%."""
    from lib.engine.metrics import classification_metrics, macro_over_present

    names = [f"c{i}" for i in range(10)]
    report = classification_metrics([0, 0, 8, 8, 8], [0, 0, 8, 8, 8], names)
    assert report["accuracy"] == 1.0 and abs(report["macro"]["f1"] - 0.2) < 1e-9
    present = macro_over_present(report["confusion_matrix"], names)
    assert present["classes"] == ["c0", "c8"]
    assert present["macro"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0}


def test_macro_over_present_counts_predictions_of_absent_classes_as_misses():
    from lib.engine.metrics import classification_metrics, macro_over_present

    names = ["a", "b", "c"]
    y_true, y_pred = [0, 0, 1, 1], [0, 2, 1, 1]  # one "a" heard as the absent "c"
    present = macro_over_present(classification_metrics(y_true, y_pred, names)["confusion_matrix"], names)
    assert present["classes"] == ["a", "b"]
    assert abs(present["macro"]["recall"] - 0.75) < 1e-9 and abs(present["macro"]["precision"] - 1.0) < 1e-9


def test_macro_over_present_is_none_when_every_class_occurs():
    from lib.engine.metrics import macro_over_present

    assert macro_over_present([[2, 0], [1, 1]], ["a", "b"]) is None
