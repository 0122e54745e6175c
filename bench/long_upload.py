"""Peak memory of classifying the longest upload the server accepts (docs/reliability.md, "Bounded work").

A synthetic WAV just under the server's 200 MB upload limit (16-bit mono at 16 kHz: about 104 minutes, a 0.4 s
tone burst every 2 s so that every burst is a detection) is written in blocks, then classified the way the
Inference page does it: the upload's bytes in memory, :func:`lib.dsp.audio.load_audio`, then
:meth:`lib.serving.infer.Classifier.predict` with the shipped default model. The process's peak resident memory
(``ru_maxrss``, torch and the model included) is printed.

Usage::

    python bench/long_upload.py [--mb 199] [--run models/default] [--threads 1]
    python bench/long_upload.py --flac 20.8 --rate 48000 --channels 2   # the most the decode limit lets in
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def write_long_wav(path: Path, megabytes: float, sample_rate: int = 16000, channels: int = 1,
                   minutes: float | None = None) -> None:
    """A 16-bit file (WAV, or FLAC when ``path`` ends in .flac) of ``megabytes`` MB of samples (or ``minutes``
    long): quiet noise with a 0.4 s 440 Hz burst every 2 s, written in blocks."""
    n = int(minutes * 60 * sample_rate) if minutes else int(megabytes * 1e6 / 2 / channels)
    block = sample_rate * 60
    rng = np.random.default_rng(0)
    with sf.SoundFile(path, "w", samplerate=sample_rate, channels=channels, subtype="PCM_16") as out:
        for first in range(0, n, block):
            t = np.arange(first, min(first + block, n)) / sample_rate
            x = 0.001 * rng.standard_normal(len(t))
            burst = (t % 2.0) < 0.4
            x[burst] += 0.3 * np.sin(2 * np.pi * 440 * t[burst])
            out.write(np.repeat(x.astype(np.float32)[:, None], channels, axis=1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=199.0, help="size of the WAV in MB (default 199)")
    parser.add_argument("--run", default="models/default", help="run folder (default models/default)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--rate", type=int, default=16000, help="sample rate of the file (default 16000)")
    parser.add_argument("--channels", type=int, default=1, help="channels of the file (default 1)")
    parser.add_argument("--flac", type=float, default=None, metavar="MINUTES",
                        help="write a FLAC of this many minutes instead of a WAV of --mb MB")
    args = parser.parse_args()
    import torch

    from lib.dsp.audio import load_audio
    from lib.serving.infer import Classifier

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / ("long.flac" if args.flac else "long.wav")
        write_long_wav(path, args.mb, args.rate, args.channels, args.flac)
        classifier = Classifier.from_run(args.run)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        started = time.perf_counter()
        upload = path.read_bytes()  # what the server holds of an upload
        waveform, sample_rate = load_audio(upload)
        prediction = classifier.predict(waveform, sample_rate)
        seconds = time.perf_counter() - started
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"{len(upload) / 1e6:.0f} MB {path.suffix[1:].upper()} ({prediction.duration_sec / 60:.0f} min at "
              f"{sample_rate} Hz, {waveform.shape[0]} channel(s)): "
              f"{prediction.n_windows:,} timeline windows, {len(prediction.detections):,} detections, "
              f"classified in {seconds:.0f} s on {args.threads} thread(s); peak RSS {peak:,.0f} MB "
              f"({before:,.0f} MB with torch and the model loaded, before the upload)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
