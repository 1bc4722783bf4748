"""Video prediction with convolutional state space models: ConvS5 (and the ConvLSTM baseline).

The pieces, from the bottom up: ``hippo`` (initialisation and discretisation of the diagonal SSM),
``blocks`` (norms, activations, the ResNet encoder/decoder and the layer's output blocks), ``convs5`` (one
ConvS5 layer, parallel and step mode, on :func:`vssm.kernels.complex_scan`), ``convlstm`` (the baseline
cell), ``sequence`` (sequence layer and the stack of layers), ``predictor`` (the frame-prediction model)
and ``flax_convert`` (loading parameters of the JAX reference implementation).
"""

from .convlstm import ConvLSTMCell
from .convs5 import ConvS5SSM
from .predictor import VideoPredictor
from .sequence import SequenceLayer, SequenceStack

__all__ = ["ConvLSTMCell", "ConvS5SSM", "SequenceLayer", "SequenceStack", "VideoPredictor"]
