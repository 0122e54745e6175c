"""A saved run at work: classifying clips and long recordings with the run's exact preprocessing
(``infer``, where the sounds are: ``detect``, "nothing heard": ``background``), the ``predict`` command
line, continuous keyword spotting (``stream``) and live listening (``listen``), ONNX / TorchScript export
with the preprocessing inside (``export``, ``export_templates/``) and the HTTP API (``serve``).
"""
