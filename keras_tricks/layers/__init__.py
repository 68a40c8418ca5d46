"""Normalisation and dropout layers Keras lacks, and BN recalibration."""

from keras_tricks.layers.drop_connect import DropConnectDense
from keras_tricks.layers.drop_path import DropPath
from keras_tricks.layers.dropout import ClassicDropout, MCDropout, mc_predict
from keras_tricks.layers.ghost_batch_norm import GhostBatchNormalization
from keras_tricks.layers.recalibrate import recalibrate_batch_norm

__all__ = [
    "ClassicDropout",
    "DropConnectDense",
    "DropPath",
    "GhostBatchNormalization",
    "MCDropout",
    "mc_predict",
    "recalibrate_batch_norm",
]
