"""Load test of the HTTP API (lib.serving.serve) on loopback: latency percentiles and throughput.

Data, not a test. For each model given (an export folder or a run folder) this script starts
``python -m lib.serving.serve MODEL --port PORT`` on 127.0.0.1 in a subprocess, waits for ``/health``, then sends
``POST /predict`` with one one-second WAV clip (a built-in eSpeak clip, 16 kHz mono PCM16):

1. one client, ``--sequential`` requests one after the other (the latency of an idle server);
2. ``--clients`` concurrent clients (threads, each on its own keep-alive connection), ``--requests`` requests
   in all (the latency under load, and the throughput).

Latency is measured by the client, from sending the request to reading the whole answer; the server's own
figure (``latency_ms`` of the answer, decoding and inference) is reported beside it. Clients use only the
standard library (``http.client``) and share the machine's cores with the server, as on a developer's machine.
Every request has a 60 s timeout and the server is stopped at the end, whatever happens.

Usage::

    python bench/serve_load.py bench/out/export-default/onnx models/default [--clients 16] [--requests 400]

(``python bench/export.py`` makes ``bench/out/export-default/onnx``.) The results replace the
``serve-benchmark`` section of ``--out`` (default ``docs/benchmarks.md``).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from bench.report import command_line, write_section  # noqa: E402

SECTION = "serve-benchmark"
HOST = "127.0.0.1"
BOUNDARY = "----audiowb-load-test"
TIMEOUT_S = 60.0


def one_second_clip() -> tuple[bytes, str]:
    """A one-second built-in eSpeak clip as WAV bytes, and its word."""
    from lib.dsp.audio import wav_bytes
    from lib.data.synth.builtin import BuiltinSpec
    from lib.data.sources import load_builtin

    dataset = load_builtin(BuiltinSpec(words=("yes", "no"), clips_per_word=2, n_speakers=2, seed=3),
                           ROOT / "data" / "builtin")
    return wav_bytes(dataset.waveforms[0], dataset.sample_rates[0]), dataset.class_names[dataset.labels[0]]


def multipart_body(wav: bytes) -> bytes:
    """A multipart form with one ``files`` field holding ``wav``."""
    head = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"clip.wav\"\r\n"
            "Content-Type: audio/wav\r\n\r\n").encode()
    return head + wav + f"\r\n--{BOUNDARY}--\r\n".encode()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class Server:
    """``python -m lib.serving.serve MODEL`` on 127.0.0.1, started and stopped as a context manager."""

    def __init__(self, model: str, extra: list[str]) -> None:
        self.model, self.extra, self.port = model, extra, _free_port()
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> Server:
        self.process = subprocess.Popen([sys.executable, "-m", "lib.serving.serve", self.model, "--host", HOST,
                                         "--port", str(self.port), *self.extra], cwd=ROOT,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server stopped: {self.process.stdout.read()}")
            try:
                connection = http.client.HTTPConnection(HOST, self.port, timeout=5)
                connection.request("GET", "/model")
                info = json.loads(connection.getresponse().read())
                connection.close()
                self.info = info
                return self
            except OSError:
                time.sleep(0.3)
        raise RuntimeError("the server did not answer within 180 s")

    def __exit__(self, *exc) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()


def _client(port: int, body: bytes, count: int, latencies: list, server_ms: list, errors: list) -> None:
    """Sends ``count`` requests on one keep-alive connection; appends client and server latencies (ms)."""
    connection = http.client.HTTPConnection(HOST, port, timeout=TIMEOUT_S)
    headers = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
    try:
        for _ in range(count):
            started = time.perf_counter()
            try:
                connection.request("POST", "/predict", body=body, headers=headers)
                response = connection.getresponse()
                answer = response.read()
            except (OSError, http.client.HTTPException) as error:
                errors.append(repr(error))
                connection.close()
                connection = http.client.HTTPConnection(HOST, port, timeout=TIMEOUT_S)
                continue
            elapsed = (time.perf_counter() - started) * 1000.0
            if response.status != 200:
                errors.append(f"{response.status}: {answer[:200]!r}")
                continue
            latencies.append(elapsed)
            server_ms.append(json.loads(answer)["latency_ms"])
    finally:
        connection.close()


def load(port: int, body: bytes, clients: int, requests: int) -> dict:
    """``requests`` requests from ``clients`` concurrent clients; percentiles (ms) and throughput (requests/s)."""
    latencies: list[float] = []
    server_ms: list[float] = []
    errors: list[str] = []
    shares = [requests // clients + (i < requests % clients) for i in range(clients)]
    threads = [threading.Thread(target=_client, args=(port, body, share, latencies, server_ms, errors))
               for share in shares]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    return {"clients": clients, "requests": requests, "ok": len(latencies), "errors": errors[:5],
            "n_errors": len(errors), "p50_ms": float(np.percentile(latencies, 50)),
            "p99_ms": float(np.percentile(latencies, 99)), "server_p50_ms": float(np.percentile(server_ms, 50)),
            "throughput": len(latencies) / wall, "wall_s": wall}


def report(results: list[dict], word: str, args: argparse.Namespace, command: str, load_avg: tuple) -> str:
    """The markdown section."""
    date = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"## Serving: HTTP latency and throughput on loopback ({date})",
        "",
        f"`python -m lib.serving.serve MODEL` on 127.0.0.1 (uvicorn, one process), `POST /predict` with one one-second "
        f"16 kHz WAV clip (eSpeak saying \"{word}\", 32 kB) in a multipart form. Client-side latency, from sending "
        "the request to reading the whole answer; \"server\" is the answer's own `latency_ms` (decoding, "
        "preprocessing and model).",
        "",
        "| model | backend | clients | requests | p50 | p99 | server p50 | throughput | errors |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for result in results:
        for phase in result["phases"]:
            lines.append(f"| `{result['model']}` | {result['backend']} | {phase['clients']} | {phase['ok']} | "
                         f"{phase['p50_ms']:.1f} ms | {phase['p99_ms']:.1f} ms | {phase['server_p50_ms']:.1f} ms | "
                         f"{phase['throughput']:.0f} req/s | {phase['n_errors']} |")
    load_text = ", ".join(f"{x:.1f}" for x in load_avg)
    verdicts = "; ".join(
        f"{result['backend']} {'yes' if result['phases'][0]['p50_ms'] < 20 else 'no'} "
        f"({result['phases'][0]['p50_ms']:.1f} ms)" for result in results)
    lines += [
        "",
        f"Conditions: {os.cpu_count()} CPU cores shared by the server, the {args.clients} client threads (Python, "
        f"standard library) and other engineers' jobs (load average {load_text} at the start), no GPU. "
        "With 16 clients and one server process the latency is mostly waiting in line: two cores serve "
        "the throughput shown, so each request waits for the ones ahead of it.",
        "",
        f"Target \"endpoint p50 under 20 ms for a one-second clip\" (one client at a time): {verdicts}.",
        "",
        f"Made by `{command}` (after `python bench/export.py`, which writes the ONNX export it serves).",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+", help="export folders or run folders to serve, one after the other")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients (default 16)")
    parser.add_argument("--requests", type=int, default=400, help="requests of the concurrent phase (default 400)")
    parser.add_argument("--sequential", type=int, default=100, help="requests of the one-client phase (default 100)")
    parser.add_argument("--threads", type=int, default=None, help="passed to lib.serving.serve --threads (exports)")
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"), help="markdown file to update")
    args = parser.parse_args(argv)
    if args.clients < 1 or args.requests < args.clients or args.sequential < 1:
        parser.error("need --clients >= 1, --requests >= --clients and --sequential >= 1")
    wav, word = one_second_clip()
    body = multipart_body(wav)
    load_avg = os.getloadavg()
    results = []
    for model in args.models:
        extra = ["--threads", str(args.threads)] if args.threads else []
        with Server(model, extra) as server:
            load(server.port, body, 1, 20)  # warm-up
            phases = [load(server.port, body, 1, args.sequential),
                      load(server.port, body, args.clients, args.requests)]
            results.append({"model": os.path.relpath(model, ROOT), "backend": server.info["backend"],
                            "phases": phases})
            print(json.dumps(results[-1]), flush=True)
    write_section(args.out, SECTION, report(results, word, args, command_line("serve_load.py", argv), load_avg))
    print(f"wrote section {SECTION} of {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
