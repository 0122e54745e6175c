"""The live microphone: the browser's audio streamed to the server over WebRTC (``streamlit-webrtc``).

Browser and server meet on this machine's own network addresses (no STUN or TURN server: the app works offline and
sends nothing outside). The server receives the Opus stream with aiortc, decodes it with PyAV's bundled FFmpeg and
hands each audio frame to a sink on the media thread.
"""

from __future__ import annotations

from collections.abc import Callable

from streamlit_webrtc import WebRtcMode, webrtc_streamer
from streamlit_webrtc.sink import AudioSinkTrack

__all__ = ["NO_ICE_SERVERS", "audio_sink", "live_microphone"]

NO_ICE_SERVERS = {"iceServers": []}


def audio_sink(on_frame: Callable) -> AudioSinkTrack:
    """A sink that calls ``on_frame(frame)`` with every PyAV ``AudioFrame``, in order, on the media thread (keep
    it quick: hand the work to another thread)."""
    return AudioSinkTrack(on_frame)


def live_microphone(key: str, sink: AudioSinkTrack, start_label: str = "Start listening") -> bool:
    """The Start/Stop control that streams the microphone into ``sink``; True while it streams.

    Args:
        key: The widget's key.
        sink: From :func:`audio_sink`; keep the same one for the session (the stream binds to it at Start).
        start_label: The start button's text.
    """
    context = webrtc_streamer(key=key, mode=WebRtcMode.SENDONLY, rtc_configuration=NO_ICE_SERVERS,
                              media_stream_constraints={"audio": True, "video": False}, sink_audio_track=sink,
                              translations={"start": start_label, "stop": "Stop"})
    return bool(context.state.playing)
