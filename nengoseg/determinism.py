"""Same config and seed, same weights and scores (on the same machine and stack)."""

import tensorflow as tf


def seed_everything(seed):
    """Seed Python, NumPy and TensorFlow, and ask TensorFlow for deterministic ops."""
    tf.keras.utils.set_random_seed(int(seed))
    tf.config.experimental.enable_op_determinism()
