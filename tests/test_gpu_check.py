"""bench/gpu_check.py on a machine without a GPU: it says so, measures the CPU with its short checks, exits 0."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import gpu_check  # noqa: E402


@pytest.mark.slow
def test_cpu_run_says_no_gpu_and_reports_cpu_figures(tmp_path, capsys, app_env):  # app_env: the "default" run
    out = tmp_path / "gpu.md"
    code = gpu_check.main(["--device", "cpu", "--out", str(out), "--data-dir", str(tmp_path / "builtin"),
                           "--backbones", "run_embedding"])
    assert code == 0
    text = out.read_text()
    assert gpu_check.NO_GPU in text
    assert "<!-- gpu-check:start -->" in text and "<!-- gpu-check:end -->" in text
    # Every training row has a number for samples/s, and no check failed or errored.
    rows = [line for line in text.splitlines() if line.startswith("| float32") or line.startswith("| bf16")]
    assert len(rows) == 4, rows
    for row in rows:
        assert float(row.split("|")[2]) > 0, row
    assert "FAIL" not in text and "error" not in text
    assert "| live events during a run" in text and "| pass |" in text
    assert "skipped | no GPU" in text
    assert "| kws_resnet | fp32 |" in text
    # A backbone trains through the engine and its run is saved (the GPU comparison is skipped on a CPU).
    assert "| run_embedding | last | pretrained |" in text


def test_unknown_check_is_refused_before_any_work(tmp_path, capsys):
    assert gpu_check.main(["--device", "cpu", "--checks", "training,bogus", "--out", str(tmp_path / "gpu.md")]) == 2
    assert "bogus" in capsys.readouterr().err
    assert not (tmp_path / "gpu.md").exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_inference_check_passes(tmp_path):  # pragma: no cover - runs on a GPU machine only
    assert gpu_check.main(["--out", str(tmp_path / "gpu.md"), "--data-dir", str(tmp_path / "builtin"),
                           "--no-compile"]) == 0
