"""An HTTP API that classifies audio files with a saved run or an export (FastAPI + uvicorn).

Usage::

    python -m lib.serving.serve RUN_OR_EXPORT [--host 127.0.0.1] [--port 8000] [--int8] [--max-file-mb 10]
                                      [--max-files 16] [--max-duration 60] [--threads N]

``RUN_OR_EXPORT`` is a run folder (or a run's name under ``models/``), served by :class:`lib.serving.infer.Classifier`
with PyTorch, or an export folder of :mod:`lib.serving.export` (it holds ``labels.json``), served by
:class:`lib.serving.export.ExportedClassifier` with ONNX Runtime or TorchScript (an ONNX export is several times faster
on a CPU). Either way each file gets exactly the preprocessing of :meth:`lib.serving.infer.Classifier.predict`: mixed
to mono, resampled to the run's rate, classified in one-clip windows (their probabilities averaged).

Routes (OpenAPI docs at ``/docs``):

* ``POST /predict``: multipart form with one or more ``files`` (WAV, FLAC, OGG or MP3, decoded by
  :func:`lib.dsp.audio.load_audio`); ``?top=3``. Returns each file's top classes with probabilities, its duration,
  windows and latency, and the request's latency.
* ``GET /health``: ``{"status": "ok"}`` once the model is loaded.
* ``GET /model``: the run, backend, class names, sample rate, clip length and the limits.

Limits give a 4xx with a JSON ``detail`` saying the limit: 413 for a request or file over the size limit or
too many files, 422 for a file that is not audio or lasts longer than the duration limit.

Example::

    curl -F files=@yes.wav -F files=@no.flac 'http://127.0.0.1:8000/predict?top=2'
"""

# No ``from __future__ import annotations``: FastAPI reads the routes' annotations, which use local values.
import argparse
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated

from fastapi import FastAPI, File, HTTPException, Query, Request, UploadFile
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from lib.dsp.audio import ACCEPTED_FORMATS, AudioDecodeError, load_audio
from lib.serving.export import ExportedClassifier, ExportError, is_export
from lib.serving.infer import Classifier
from lib.engine.runs import RunError

__all__ = ["ServeLimits", "load_classifier", "create_app", "main"]

_FORM_OVERHEAD_BYTES = 64 * 1024  # multipart boundaries and headers on top of the files themselves


@dataclass(frozen=True)
class ServeLimits:
    """What one request may send.

    Attributes:
        max_file_mb: Largest file, megabytes (10**6 bytes).
        max_files: Most files in one request.
        max_duration_sec: Longest recording, seconds.

    Raises:
        ValueError: If a limit is not a positive finite number (``max_files``: a positive int).
    """

    max_file_mb: float = 10.0
    max_files: int = 16
    max_duration_sec: float = 60.0

    def __post_init__(self) -> None:
        for name in ("max_file_mb", "max_duration_sec"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or value <= 0:
                raise ValueError(f"ServeLimits.{name} must be a positive number, got {value!r}")
        if isinstance(self.max_files, bool) or not isinstance(self.max_files, int) or self.max_files < 1:
            raise ValueError(f"ServeLimits.max_files must be a positive int, got {self.max_files!r}")

    @property
    def max_file_bytes(self) -> int:
        """``max_file_mb`` in bytes."""
        return int(self.max_file_mb * 1_000_000)

    @property
    def max_request_bytes(self) -> int:
        """The largest request body: every file at its limit, plus the form's overhead."""
        return self.max_files * self.max_file_bytes + _FORM_OVERHEAD_BYTES


def load_classifier(path: str | Path, int8: bool = False, threads: int | None = None) -> Classifier:
    """The classifier of a run folder or of an export folder.

    Args:
        path: A run folder (served with PyTorch on the CPU) or an export folder (it holds ``labels.json``).
        int8: For an ONNX export with an int8 model: serve that one.
        threads: Intra-op threads of an export's runtime; ``None`` keeps its default. Ignored for a run.

    Returns:
        Classifier: A :class:`lib.serving.infer.Classifier`, or an :class:`lib.serving.export.ExportedClassifier`.

    Raises:
        RunError: If the run cannot be loaded.
        ExportError: If the export cannot be loaded, or ``int8`` is asked of a run or of an export without one.
    """
    if is_export(path):
        return ExportedClassifier.from_export(path, int8=int8, threads=threads)
    if int8:
        raise ExportError(f"{path} is a run, not an export: int8 needs an ONNX export made with --int8 "
                          "(python -m lib.serving.export RUN --out DIR --int8)")
    return Classifier.from_run(path, device="cpu")


def _backend(classifier: Classifier) -> str:
    """``"torch"``, ``"onnx"``, ``"onnx-int8"`` or ``"torchscript"``."""
    if isinstance(classifier, ExportedClassifier):
        return classifier.exported.format + ("-int8" if classifier.exported.int8 else "")
    return "torch"


# ------------------------------------------------------------------------------------------------ schemas
class ClassProbability(BaseModel):
    """One class and its probability."""

    class_name: str
    probability: float


class FileResult(BaseModel):
    """The classification of one uploaded file."""

    file: str = Field(description="the uploaded file's name")
    top: list[ClassProbability] = Field(description="the most probable classes, most probable first")
    duration_sec: float = Field(description="the recording's duration, seconds")
    n_windows: int = Field(description="one-clip windows classified (their probabilities are averaged)")
    latency_ms: float = Field(description="preprocessing and model, milliseconds (decoding excluded)")


class PredictResponse(BaseModel):
    """The answer to ``POST /predict``."""

    results: list[FileResult]
    latency_ms: float = Field(description="the whole request on the server (decoding included), milliseconds")


class Limits(BaseModel):
    """What one request may send."""

    max_file_mb: float
    max_files: int
    max_duration_sec: float


class ModelInfo(BaseModel):
    """The served model."""

    run_id: str | None
    backend: str = Field(description="torch (a run), onnx, onnx-int8 or torchscript (an export)")
    class_names: list[str]
    sample_rate: int = Field(description="the model's sample rate, Hz (uploads of any rate are resampled)")
    clip_seconds: float = Field(description="the model's window; longer recordings are classified window by window")
    accepted_formats: list[str]
    limits: Limits


# ------------------------------------------------------------------------------------------------ app
def create_app(classifier: Classifier, limits: ServeLimits = ServeLimits(), top_default: int = 3) -> FastAPI:
    """The API around one loaded classifier.

    Args:
        classifier: What classifies (see :func:`load_classifier`).
        limits: Upload limits.
        top_default: Classes returned per file when the request does not say ``top``.

    Returns:
        FastAPI: The application (serve it with uvicorn, or test it with ``fastapi.testclient.TestClient``).
    """
    n_classes = len(classifier.class_names)
    app = FastAPI(title="Audio classification workbench",
                  summary=f"Classifies audio files with run '{classifier.run_id}' ({_backend(classifier)}).",
                  version="1")
    app.state.classifier = classifier
    app.state.limits = limits

    @app.middleware("http")
    async def refuse_large_bodies(request: Request, call_next):
        """413 before the body is read, when its declared length is over the limit."""
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > limits.max_request_bytes:
            return JSONResponse(status_code=413, content={"detail": (
                f"the request is {int(length) / 1e6:.1f} MB; the limit is {limits.max_files} files of at most "
                f"{limits.max_file_mb:g} MB each: send smaller or fewer files")})
        return await call_next(request)

    @app.get("/health", summary="Liveness: the model is loaded")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/model", response_model=ModelInfo, summary="The served model and the upload limits")
    def model_info() -> ModelInfo:
        return ModelInfo(run_id=classifier.run_id, backend=_backend(classifier),
                         class_names=list(classifier.class_names),
                         sample_rate=classifier.feature_config.sample_rate,
                         clip_seconds=classifier.feature_config.clip_seconds,
                         accepted_formats=list(ACCEPTED_FORMATS), limits=Limits(**asdict(limits)))

    @app.post("/predict", response_model=PredictResponse, summary="Classify one or more audio files",
              responses={413: {"description": "a file or the request is over the size limit, or too many files"},
                         422: {"description": "a file is not audio, or lasts longer than the duration limit"}})
    def predict(files: Annotated[list[UploadFile], File(description=f"audio files ({', '.join(ACCEPTED_FORMATS)})")],
                top: Annotated[int, Query(ge=1, le=n_classes, description="classes per file")] = top_default,
                ) -> PredictResponse:
        started = time.perf_counter()
        if len(files) > limits.max_files:
            raise HTTPException(413, f"{len(files)} files in one request; the limit is {limits.max_files}: "
                                     "send them in several requests")
        decoded = []
        for upload in files:
            name = upload.filename or "upload"
            data = upload.file.read(limits.max_file_bytes + 1)
            if len(data) > limits.max_file_bytes:
                raise HTTPException(413, f"'{name}' is larger than the limit of {limits.max_file_mb:g} MB: "
                                         "send a shorter recording or a compressed one (FLAC, OGG, MP3)")
            try:
                waveform, sample_rate = load_audio(data)
            except AudioDecodeError as error:
                raise HTTPException(422, f"'{name}': {error}") from error
            duration = waveform.shape[-1] / sample_rate
            if duration > limits.max_duration_sec:
                raise HTTPException(422, f"'{name}' lasts {duration:.1f} s; the limit is "
                                         f"{limits.max_duration_sec:g} s: trim it or split it into shorter files")
            decoded.append((name, waveform, sample_rate))
        results = []
        for name, waveform, sample_rate in decoded:
            try:
                prediction = classifier.predict(waveform, sample_rate)
            except ValueError as error:  # e.g. non-finite samples
                raise HTTPException(422, f"'{name}': {error}") from error
            results.append(FileResult(
                file=name, top=[ClassProbability(class_name=c, probability=p) for c, p in prediction.top(top)],
                duration_sec=prediction.duration_sec, n_windows=prediction.n_windows,
                latency_ms=prediction.latency_ms))
        return PredictResponse(results=results, latency_ms=(time.perf_counter() - started) * 1000.0)

    return app


# ------------------------------------------------------------------------------------------------ command line
def _parser() -> argparse.ArgumentParser:
    defaults = ServeLimits()
    p = argparse.ArgumentParser(prog="python -m lib.serving.serve",
                                description="Serve a run or an export as an HTTP API (docs at /docs).")
    p.add_argument("model", metavar="RUN_OR_EXPORT",
                   help="a run folder, a run's name under models/, or an export folder of python -m lib.serving.export")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--int8", action="store_true", help="serve an ONNX export's int8 model")
    p.add_argument("--threads", type=int, default=None, help="intra-op threads of an export's runtime")
    p.add_argument("--top", type=int, default=3, help="classes per file when a request does not say (default 3)")
    p.add_argument("--max-file-mb", type=float, default=defaults.max_file_mb, help="largest file, MB")
    p.add_argument("--max-files", type=int, default=defaults.max_files, help="most files in one request")
    p.add_argument("--max-duration", type=float, default=defaults.max_duration_sec, help="longest recording, s")
    p.add_argument("--access-log", action="store_true", help="log every request")
    return p


def main(argv: list[str] | None = None) -> int:
    """Runs the server until interrupted.

    Returns:
        0 after a clean shutdown; 2 when the model or a limit is unusable.
    """
    import uvicorn

    from lib.serving.predict import resolve_run_path

    args = _parser().parse_args(argv)
    try:
        limits = ServeLimits(args.max_file_mb, args.max_files, args.max_duration)
        classifier = load_classifier(resolve_run_path(args.model), int8=args.int8, threads=args.threads)
        if not 1 <= args.top <= len(classifier.class_names):
            raise ValueError(f"--top must be between 1 and {len(classifier.class_names)}, got {args.top}")
    except (RunError, ExportError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    app = create_app(classifier, limits, top_default=args.top)
    print(f"serving run '{classifier.run_id}' ({_backend(classifier)}) on http://{args.host}:{args.port} "
          f"(API docs: http://{args.host}:{args.port}/docs)", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, access_log=args.access_log, log_level="warning")
    return 0


if __name__ == "__main__":
    sys.exit(main())
