"""Keras layer kinds that several stages treat alike (converter, engine, Loihi rewrite)."""

import tensorflow as tf

# dropout and noise layers: at inference they pass their input through unchanged
DROPOUT_LAYERS = (
    tf.keras.layers.Dropout,
    tf.keras.layers.SpatialDropout1D,
    tf.keras.layers.SpatialDropout2D,
    tf.keras.layers.SpatialDropout3D,
    tf.keras.layers.AlphaDropout,
    tf.keras.layers.GaussianDropout,
    tf.keras.layers.GaussianNoise,
)
