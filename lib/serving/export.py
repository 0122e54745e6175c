"""Export a saved run to ONNX or TorchScript with its whole preprocessing inside, and load such an export.

The exported graph is a :class:`WaveformClassifier`: mono waveforms at the run's sample rate in, class
probabilities out::

    waveform (batch, time) float32   # samples in [-1, 1] at labels.json's sample_rate; any time >= 1
      -> centre pad with silence or centre trim to n_samples   (lib.dsp.audio.center_pad_or_trim)
      -> FeatureExtractor of the run's FeatureConfig           (STFT, mel / MFCC / linear, dB, normalisation)
      -> the run's model, softmax
    probabilities (batch, n_classes) float32

Batch and length are dynamic in both formats; the model itself always sees one clip of ``n_samples`` (the
models are trained on that length), so a longer input is classified by its middle clip. Mixing channels,
resampling and cutting a long recording into windows stay outside (:class:`lib.serving.infer.Classifier` does them;
:class:`ExportedClassifier` does them around an export).

An export is a self-contained folder::

    model.onnx | model.torchscript.pt   the graph with its weights
    model.int8.onnx                     optional: the network's Conv and Gemm layers quantized to int8 (``--int8``)
    labels.json                         class names, sample rate, clip length, input/output, the export's check
    example.py                          classifies audio files (ONNX: onnxruntime, numpy, soundfile; no torch)

Every export is checked before it is written: the exported model, run by its own runtime, against
:meth:`lib.serving.infer.Classifier.predict_batch` on probe signals of three lengths (the largest absolute difference of
the probabilities must stay within :data:`TOLERANCE`).

Usage::

    python -m lib.serving.export RUN --format onnx|torchscript --out DIR [--int8] [--force]
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from lib.dsp.audio import center_pad_or_trim
from lib.dsp.features import FeatureConfig
from lib.serving.infer import Classifier
from lib.engine.runs import RunError, load_run, run_zip_bytes, write_json_atomic

__all__ = [
    "FORMATS", "MODEL_FILES", "INT8_FILE", "LABELS_FILE", "EXAMPLE_FILE", "TOLERANCE",
    "ExportError", "WaveformClassifier", "ExportedModel", "ExportedClassifier",
    "export_classifier", "export_run", "export_zip_bytes", "example_script", "probe_waveforms", "is_export", "main",
]

FORMATS = ("onnx", "torchscript")
MODEL_FILES = {"onnx": "model.onnx", "torchscript": "model.torchscript.pt"}
INT8_FILE = "model.int8.onnx"
LABELS_FILE = "labels.json"
EXAMPLE_FILE = "example.py"
TOLERANCE = 1e-4  # largest absolute difference of probabilities allowed between an export and lib.serving.infer
INPUT_NAME, OUTPUT_NAME = "waveform", "probabilities"
MAX_BATCH = 4096
_TEMPLATES = Path(__file__).resolve().parent / "export_templates"


class ExportError(ValueError):
    """A run cannot be exported, an export folder is unusable, or an export does not match the run."""


# ------------------------------------------------------------------------------------------------ graph
class WaveformClassifier(nn.Module):
    """A classifier's preprocessing and model as one module: ``(batch, time)`` waveforms to probabilities.

    Args:
        classifier: A loaded run (:meth:`lib.serving.infer.Classifier.from_run`); its model and feature extractor are
            shared, not copied, and must be on the CPU to be exported.
    """

    def __init__(self, classifier: Classifier) -> None:
        super().__init__()
        self.model = classifier.model          # registered here, so the export carries the weights
        self.extractor = classifier.extractor  # and the window, filterbank and DCT buffers
        self.n_samples = classifier.feature_config.n_samples
        self._classifier = classifier

    def forward(self, waveform: Tensor) -> Tensor:
        """Classifies mono waveforms.

        Args:
            waveform (Tensor): ``(batch, time)`` float32 at the run's sample rate, any ``time >= 1``.

        Returns:
            Tensor: ``(batch, n_classes)`` float32 probabilities.
        """
        clips = center_pad_or_trim(waveform, self.n_samples)[:, None]  # (batch, 1, n_samples)
        return self._classifier.clip_probabilities(clips)              # (batch, n_classes)


def probe_waveforms(feature_config: FeatureConfig, seed: int = 0) -> list[np.ndarray]:
    """Deterministic test signals for checking an export: tone bursts in noise, at three lengths.

    Args:
        feature_config: The run's preprocessing (sets the sample rate and clip length).
        seed: Seed of the noise.

    Returns:
        list[np.ndarray]: Three ``(2, time)`` float32 arrays with ``time`` one clip, about half a clip (padded
        inside the model) and one and a half clips (trimmed), the odd lengths testing the centring.
    """
    rate, n = feature_config.sample_rate, feature_config.n_samples
    generator = np.random.default_rng(seed)
    out = []
    for length in (n, n // 2 + 1, n + n // 2 + 1):
        t = np.arange(length) / rate
        tones = np.stack([0.3 * np.sin(2 * np.pi * 440 * t) * (t < t[-1] / 2),
                          0.2 * np.sin(2 * np.pi * (200 + 1500 * t / max(t[-1], 1e-9)) * t)])
        out.append((tones + 0.02 * generator.standard_normal((2, length))).astype(np.float32))
    return out


# ------------------------------------------------------------------------------------------------ writing
_EXAMPLE_RUNTIME = {
    "onnx": {
        "@RUNTIME@": "onnxruntime",
        "@INT8_USAGE@": "[--int8] ",
        "@IMPORT@": "import onnxruntime as ort",
        "@LOAD@": ('INT8 = "--int8" in sys.argv[1:] and LABELS.get("int8_file")\n'
                   'SESSION = ort.InferenceSession(str(HERE / (INT8 or LABELS["model_file"])), '
                   'providers=["CPUExecutionProvider"])'),
        "@RUN@": 'SESSION.run(None, {"waveform": waveform[None].astype(np.float32)})[0][0]',
    },
    "torchscript": {
        "@RUNTIME@": "torch",
        "@INT8_USAGE@": "",
        "@IMPORT@": "import torch",
        "@LOAD@": 'MODEL = torch.jit.load(str(HERE / LABELS["model_file"]), map_location="cpu").eval()',
        "@RUN@": "MODEL(torch.from_numpy(waveform[None].astype(np.float32)))[0].detach().numpy()",
    },
}


def example_script(format: str) -> str:
    """The ``example.py`` of an export: classifies audio files with the format's runtime, numpy and soundfile.

    Args:
        format: ``"onnx"`` (onnxruntime, no torch) or ``"torchscript"`` (torch).

    Returns:
        str: The script's source.
    """
    text = (_TEMPLATES / "example.py.in").read_text(encoding="utf-8")
    for marker, code in _EXAMPLE_RUNTIME[format].items():
        text = text.replace(marker, code)
    return text


def _export_onnx(module: WaveformClassifier, path: Path) -> None:
    """``torch.onnx.export`` (dynamo) with a dynamic batch and length; one self-contained file."""
    example = torch.zeros(2, module.n_samples + 1)
    dynamic = {0: torch.export.Dim("batch", min=1, max=MAX_BATCH), 1: torch.export.Dim("time", min=1)}
    program = torch.onnx.export(module, (example,), dynamo=True, input_names=[INPUT_NAME],
                                output_names=[OUTPUT_NAME], dynamic_shapes=({**dynamic},), verbose=False)
    program.save(str(path), external_data=False)


def _export_torchscript(module: WaveformClassifier, path: Path) -> None:
    """``torch.jit.trace``: the length arithmetic of the padding is traced, so any batch and length work."""
    with torch.no_grad():
        traced = torch.jit.trace(module, torch.zeros(2, module.n_samples + 1), check_trace=False)
    traced.save(str(path))


def _quantize_int8(source: Path, target: Path) -> None:
    """ONNX Runtime dynamic quantization of the network's Conv and Gemm layers (uint8 weights, activations
    quantized on the fly). The preprocessing stays float32: quantizing the mel filterbank's MatMul too turns the
    default model's 97% on 72 clips of three words into 33% (one class for everything)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model = onnx.load(str(source))
    del model.graph.value_info[:]  # the exporter's shape annotations trip the quantizer's shape inference
    with tempfile.TemporaryDirectory() as tmp:
        plain = Path(tmp) / "model.onnx"
        onnx.save(model, str(plain))
        quiet = logging.getLogger().level
        logging.getLogger().setLevel(logging.ERROR)  # its advice to pre-process is logged on the root logger
        try:
            quantize_dynamic(str(plain), str(target), op_types_to_quantize=["Conv", "Gemm"],
                             weight_type=QuantType.QUInt8)
        finally:
            logging.getLogger().setLevel(quiet)


def _library_versions() -> dict[str, str]:
    versions = {"torch": torch.__version__}
    for name in ("onnx", "onnxruntime", "onnxscript"):
        try:
            versions[name] = __import__(name).__version__
        except ImportError:
            pass
    return versions


def export_classifier(classifier: Classifier, out: str | Path, format: str = "onnx", int8: bool = False,
                      overwrite: bool = False, model_name: str | None = None) -> Path:
    """Exports a classifier into a self-contained folder and checks it against the classifier.

    The folder is built in a hidden temporary folder beside ``out`` and renamed into place, so a failed export
    leaves nothing behind.

    Args:
        classifier: The loaded run (any device; it is moved to the CPU).
        out: The export folder to create.
        format: ``"onnx"`` or ``"torchscript"``.
        int8: ONNX only: also write ``model.int8.onnx`` (dynamic quantization; its difference to the float
            model is recorded in labels.json, not held to :data:`TOLERANCE`).
        overwrite: Replace an existing ``out``.
        model_name: The run's model (:attr:`lib.engine.runs.RunRecord.model`), for labels.json.

    Returns:
        Path: The export folder.

    Raises:
        ExportError: If the format is unknown, ``int8`` is asked of TorchScript, ``out`` exists and
            ``overwrite`` is false, the exporter fails, or the export differs from the classifier by more
            than :data:`TOLERANCE`.
    """
    out = Path(out)
    _check_request(format, int8, out, overwrite)
    classifier.model.to("cpu")
    classifier.extractor.to("cpu")
    classifier.device = torch.device("cpu")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{out.name}-", dir=out.parent))
    try:
        model_file = tmp / MODEL_FILES[format]
        export_seconds = _write_model(classifier, format, model_file)
        labels = _labels(classifier, format, model_file.name, model_name, export_seconds)
        write_json_atomic(tmp / LABELS_FILE, labels)
        (tmp / EXAMPLE_FILE).write_text(example_script(format), encoding="utf-8")
        _check_export(tmp, classifier, labels, int8)
        write_json_atomic(tmp / LABELS_FILE, labels)
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _check_request(format: str, int8: bool, out: Path, overwrite: bool) -> None:
    """Raises :class:`ExportError` for an unknown format, ``int8`` asked of TorchScript, or an existing ``out``
    that may not be overwritten (the arguments of :func:`export_classifier`)."""
    if format not in FORMATS:
        raise ExportError(f"unknown export format {format!r}: choose one of {', '.join(FORMATS)}")
    if int8 and format != "onnx":
        raise ExportError("int8 quantization is for ONNX exports only: use --format onnx")
    if out.exists() and not overwrite:
        raise ExportError(f"{out} already exists: choose another folder or overwrite it (--force)")


def _write_model(classifier: Classifier, format: str, model_file: Path) -> float:
    """Writes ``classifier`` (on the CPU) as one :class:`WaveformClassifier` file; returns the seconds it took.

    Raises:
        ExportError: If the exporter fails (its first line, with the run's name).
    """
    module = WaveformClassifier(classifier).eval()
    started = time.perf_counter()
    try:
        (_export_onnx if format == "onnx" else _export_torchscript)(module, model_file)
    except Exception as error:  # noqa: BLE001 - any exporter failure is reported with the run's name
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ExportError(f"{format} export of run '{classifier.run_id}' failed: {first}") from error
    return time.perf_counter() - started


def _labels(classifier: Classifier, format: str, model_file: str, model_name: str | None,
            export_seconds: float) -> dict:
    """labels.json of an export, before its check: the classes, the input and output, the feature settings."""
    fc = classifier.feature_config
    return {
        "format": format,
        "model_file": model_file,
        "int8_file": None,
        "run_id": classifier.run_id,
        "model": model_name,
        "class_names": list(classifier.class_names),
        "sample_rate": fc.sample_rate,
        "clip_seconds": fc.clip_seconds,
        "n_samples": fc.n_samples,
        "input": {"name": INPUT_NAME, "shape": ["batch", "time"], "dtype": "float32",
                  "meaning": f"mono samples in [-1, 1] at {fc.sample_rate} Hz; any length: centre padded "
                             f"with silence or centre trimmed to {fc.n_samples} samples inside the model"},
        "output": {"name": OUTPUT_NAME, "shape": ["batch", len(classifier.class_names)], "dtype": "float32",
                   "meaning": "class probabilities, in the order of class_names"},
        "feature_config": fc.to_dict(),
        "exported_with": _library_versions(),
        "export_seconds": round(export_seconds, 2),
    }


def _check_export(folder: Path, classifier: Classifier, labels: dict, int8: bool) -> None:
    """Compares the export in ``folder`` with ``classifier`` on :func:`probe_waveforms` and records the check in
    ``labels`` (``labels["check"]``); with ``int8``, also writes the quantized model and records its difference.

    Raises:
        ExportError: If the float export differs by more than :data:`TOLERANCE` (or by NaN).
    """
    format = labels["format"]
    probes = probe_waveforms(classifier.feature_config)
    difference = _max_difference(ExportedModel(folder), classifier, probes)
    if not difference <= TOLERANCE:  # also catches NaN
        raise ExportError(f"the {format} export of run '{classifier.run_id}' differs from lib.serving.infer by "
                          f"{difference:.2g} (allowed: {TOLERANCE:g}): not written")
    labels["check"] = {"max_abs_difference": difference, "tolerance": TOLERANCE,
                       "signals": "tone bursts in noise, 2 clips each of 1, 0.5 and 1.5 clip lengths",
                       "against": "lib.serving.infer.Classifier.predict_batch"}
    if int8:
        _quantize_int8(folder / labels["model_file"], folder / INT8_FILE)
        labels["int8_file"] = INT8_FILE
        write_json_atomic(folder / LABELS_FILE, labels)
        labels["check"]["int8_max_abs_difference"] = _max_difference(ExportedModel(folder, int8=True),
                                                                     classifier, probes)


def _max_difference(exported: ExportedModel, classifier: Classifier, waveforms: list[np.ndarray]) -> float:
    """Largest absolute difference of probabilities between an export and ``classifier`` over ``waveforms``."""
    worst = 0.0
    for batch in waveforms:
        expected = classifier.predict_batch(torch.from_numpy(batch)).numpy()  # (batch, n_classes)
        worst = max(worst, float(np.abs(exported(batch) - expected).max()))
    return worst


def export_run(run: str | Path, out: str | Path, format: str = "onnx", int8: bool = False,
               overwrite: bool = False) -> Path:
    """Loads a saved run and exports it (see :func:`export_classifier`).

    Args:
        run: The run folder.
        out, format, int8, overwrite: As in :func:`export_classifier`.

    Returns:
        Path: The export folder.

    Raises:
        RunError: If the run cannot be loaded.
        ExportError: As :func:`export_classifier`.
    """
    classifier = Classifier.from_run(run, device="cpu")
    return export_classifier(classifier, out, format=format, int8=int8, overwrite=overwrite,
                             model_name=load_run(run).record.model)


def export_zip_bytes(run: str | Path, format: str = "onnx", int8: bool = False) -> bytes:
    """Exports a run into a temporary folder and returns it as a zip archive (for a download button).

    Args:
        run: The run folder.
        format, int8: As in :func:`export_classifier`.

    Returns:
        bytes: A zip holding ``<run_id>-<format>/`` with the model, labels.json and example.py.

    Raises:
        RunError: If the run cannot be loaded.
        ExportError: As :func:`export_classifier`.
    """
    with tempfile.TemporaryDirectory(prefix="export-") as tmp:
        out = export_run(run, Path(tmp) / f"{Path(run).name}-{format}", format=format, int8=int8)
        return run_zip_bytes(out, files=sorted(file.name for file in out.iterdir()))


# ------------------------------------------------------------------------------------------------ loading
def is_export(path: str | Path) -> bool:
    """Whether ``path`` is an export folder (it holds ``labels.json``) rather than a run folder."""
    return (Path(path) / LABELS_FILE).is_file()


class ExportedModel:
    """An export folder loaded with its runtime (ONNX Runtime or ``torch.jit``), called on NumPy waveforms.

    Args:
        path: The export folder.
        int8: Load ``model.int8.onnx`` instead of the float model.
        threads: Intra-op threads of ONNX Runtime; ``None`` keeps its default (TorchScript uses torch's setting).

    Attributes:
        labels (dict): The contents of labels.json.
        path (Path): The folder.

    Raises:
        ExportError: If labels.json is missing or malformed, the model file is missing, or ``int8`` is asked
            of an export without an int8 model.
    """

    def __init__(self, path: str | Path, int8: bool = False, threads: int | None = None) -> None:
        self.path = Path(path)
        try:
            self.labels = json.loads((self.path / LABELS_FILE).read_text(encoding="utf-8"))
            format, model_file = str(self.labels["format"]), str(self.labels["model_file"])
            if not self.labels["class_names"] or int(self.labels["sample_rate"]) <= 0:
                raise ValueError("no class names, or a sample rate that is not positive")
        except FileNotFoundError as error:
            raise ExportError(f"{self.path} is not an export folder: {LABELS_FILE} is missing. "
                              "Make one with python -m lib.serving.export RUN --out DIR.") from error
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise ExportError(f"{self.path / LABELS_FILE} is malformed ({error!r}): export the run again") from error
        if int8:
            model_file = self.labels.get("int8_file")
            if not model_file:
                raise ExportError(f"the export {self.path} has no int8 model: export it again with --int8")
        model_path = self.path / model_file
        if not model_path.is_file():
            raise ExportError(f"{model_path} is missing: export the run again")
        self.format, self.int8 = format, bool(int8)
        if format == "onnx":
            import onnxruntime as ort

            options = ort.SessionOptions()
            if threads:
                options.intra_op_num_threads = int(threads)
            self._session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
        elif format == "torchscript":
            self._module = torch.jit.load(str(model_path), map_location="cpu").eval()
        else:
            raise ExportError(f"{self.path / LABELS_FILE} names an unknown format {format!r}")

    @property
    def class_names(self) -> list[str]:
        """The model's outputs, in order."""
        return [str(c) for c in self.labels["class_names"]]

    def __call__(self, waveform: np.ndarray) -> np.ndarray:
        """Runs the exported graph.

        Args:
            waveform (np.ndarray): ``(batch, time)`` float32 mono samples at ``labels["sample_rate"]``.

        Returns:
            np.ndarray: ``(batch, n_classes)`` float32 probabilities.
        """
        waveform = np.ascontiguousarray(waveform, dtype=np.float32)
        if self.format == "onnx":
            return self._session.run(None, {INPUT_NAME: waveform})[0]
        with torch.inference_mode():
            return self._module(torch.from_numpy(waveform)).numpy()


class ExportedClassifier(Classifier):
    """:class:`lib.serving.infer.Classifier` whose model is an export: the same mixing, resampling and windows.

    Only :meth:`clip_probabilities` differs: clips are mixed to mono and handed to the exported graph, on the
    CPU. ``model`` and ``extractor`` are ``None``.

    Args:
        exported: A loaded export.
    """

    def __init__(self, exported: ExportedModel) -> None:  # noqa: D107 - no torch model to build
        labels = exported.labels
        try:
            feature_config = FeatureConfig.from_dict(labels["feature_config"])
        except (KeyError, TypeError, ValueError) as error:
            raise ExportError(f"{exported.path / LABELS_FILE} has no valid feature_config: export the run again") \
                from error
        self.exported = exported
        self.device = torch.device("cpu")
        self.feature_config = feature_config
        self.class_names = exported.class_names
        self.run_id = labels.get("run_id")
        self.model = None
        self.extractor = None

    @classmethod
    def from_export(cls, path: str | Path, int8: bool = False, threads: int | None = None) -> ExportedClassifier:
        """Loads an export folder (see :class:`ExportedModel`)."""
        return cls(ExportedModel(path, int8=int8, threads=threads))

    def __repr__(self) -> str:
        return (f"ExportedClassifier(run_id={self.run_id!r}, format={self.exported.format!r}, "
                f"int8={self.exported.int8}, classes={self.class_names})")

    def clip_probabilities(self, clips: Tensor) -> Tensor:
        """``(batch, channels, n_samples)`` clips -> ``(batch, n_classes)`` float32 probabilities."""
        mono = clips.float().mean(dim=1).cpu().numpy()  # (batch, n_samples)
        return torch.from_numpy(self.exported(mono))


# ------------------------------------------------------------------------------------------------ command line
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m lib.serving.export",
                                description="Export a saved run (preprocessing included) to ONNX or TorchScript.")
    p.add_argument("run", help="a run folder, or the name of a run under models/")
    p.add_argument("--format", choices=FORMATS, default="onnx", help="onnx (default) or torchscript")
    p.add_argument("--out", required=True, help="the export folder to create")
    p.add_argument("--int8", action="store_true", help="ONNX only: also write an int8 (dynamic quantization) model")
    p.add_argument("--force", action="store_true", help="replace the export folder if it exists")
    return p


def main(argv: list[str] | None = None) -> int:
    """Runs the command line.

    Returns:
        0 when the export was written and checked, 2 when the run cannot be loaded or exported.
    """
    from lib.serving.predict import resolve_run_path

    args = _parser().parse_args(argv)
    try:
        out = export_run(resolve_run_path(args.run), args.out, format=args.format, int8=args.int8,
                         overwrite=args.force)
    except (RunError, ExportError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    labels = json.loads((out / LABELS_FILE).read_text(encoding="utf-8"))
    check = labels["check"]
    print(f"exported run '{labels['run_id']}' to {out} ({labels['format']}, {labels['export_seconds']:.1f} s)")
    for name in sorted(p.name for p in out.iterdir()):
        print(f"  {name:24s} {(out / name).stat().st_size / 1e6:8.3f} MB")
    print(f"input (batch, time) float32 at {labels['sample_rate']} Hz, padded/trimmed to {labels['n_samples']} "
          f"samples inside; output (batch, {len(labels['class_names'])}) probabilities")
    print(f"max abs difference vs lib.serving.infer: {check['max_abs_difference']:.2g} (allowed {check['tolerance']:g})"
          + (f"; int8: {check['int8_max_abs_difference']:.2g}" if "int8_max_abs_difference" in check else ""))
    print(f"try it: python {out / EXAMPLE_FILE} clip.wav")
    return 0


if __name__ == "__main__":
    sys.exit(main())
