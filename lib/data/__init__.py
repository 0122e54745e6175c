"""Datasets: what a dataset is (the ``ClipDataset`` protocol, in-memory ``AudioDataset``), opening one from a
folder, a CSV manifest, the built-in set or a run's record (``sources``), the catalog of real datasets and
their loaders (``catalog``), resumable checked downloads (``download``), large sets decoded once into an
int16 cache on disk (``cache``), the label names keyword sets share (``labels``) and the synthetic built-in
set (``synth``). The first stage of the pipeline: everything after it reads clips from here.

Kept empty on purpose: the built-in set's generator workers import ``synth.builtin`` in a fresh process
that must start without torch.
"""
