"""Signal processing: decoding, fitting a clip to the model's input (channels, rate, length), resampling and
int16 conversion on waveforms (``audio``), and the features a model reads (``features``: FeatureConfig and
FeatureExtractor, mel / MFCC / linear spectrograms and their axes). Pure torch/torchaudio functions on
tensors whose last dimension is time; augmentation, the next stage, is the ``lib.augment`` package.
"""
