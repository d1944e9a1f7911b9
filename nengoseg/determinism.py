"""Same config and seed, same weights and scores (on the same machine and stack).

`seed_everything` seeds Python's ``random``, NumPy's global generator and
TensorFlow (``tf.keras.utils.set_random_seed``: weight initialisation, dropout,
Keras' shuffling) and turns on TensorFlow's deterministic ops
(``tf.config.experimental.enable_op_determinism``: ops either run
deterministically or raise). nengoseg's own random draws (splits, Poisson input
spikes, co-training batches) use NumPy generators seeded from the config, so
they do not depend on this. The ANN stage and co-training call it first.

What was checked (``tests/test_determinism.py``, CPU): training the ANN twice, in
one process and in a fresh one, gives bit-identical weights, histories and
scores; co-training twice with either engine (``engine``, ``nengo-dl``) gives the
same weights, rates and scores. No op that nengoseg runs on the CPU (Keras
layers, NengoDL's builders including its sparse matmuls, the engine's loops,
nengo-loihi) raises under op determinism, so nothing needs handling there.

Limits:

- Op determinism cannot be turned off again in a process (TensorFlow has no
  ``disable``): everything after the first call runs with it.
- On a GPU, TensorFlow raises ``UnimplementedError`` for ops without a
  deterministic GPU kernel, among them ``tf.sparse.sparse_dense_matmul``, which
  NengoDL uses for sparse transforms (untested here: no GPU).
- Identical results need the same machine and stack: other CPUs (instruction
  sets) or TensorFlow / oneDNN builds pick other kernels and summation orders
  (with ``TF_ENABLE_ONEDNN_OPTS=0`` the ANN's weights and Dice already differ in
  the last digits), and so may other thread counts.
"""

import tensorflow as tf


def seed_everything(seed):
    """Seed Python, NumPy and TensorFlow, and ask TensorFlow for deterministic ops."""
    tf.keras.utils.set_random_seed(int(seed))
    tf.config.experimental.enable_op_determinism()
