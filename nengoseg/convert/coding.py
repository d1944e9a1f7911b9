"""Input coding: images -> the ``(batch, n_steps, H*W*C)`` arrays NengoDL feeds its input node.

NengoDL presents an input node's value anew at every time step, flattened in the
Keras (channels-last, C) order. Two codings:

``"constant"``
    The image is the input current at every step (the NengoDL default, and the
    co-training paper's setting).

``"poisson"``
    Rate coding (three-stage paper, section 3.3). With ``r = input_rate_hz`` and
    step ``dt``, a pixel ``x`` in [-1, 1] emits a spike at each step with
    probability ``p = |x| r dt`` (a uniform draw compared with ``p``), and the spike
    takes the sign of ``x``. Pixels of a [0, 1] image give binary spikes {0, A};
    a zero-mean [-1, 1] image gives ternary spikes {-A, 0, A}.

    Spike height: the network was trained on the pixel value, so the *expected*
    input per step must equal it: ``E = p * A * sign(x) = x r dt A``, hence
    ``A = 1 / (r dt)``. At the defaults (``r = 1000`` Hz, ``dt = 0.001`` s) ``A = 1``
    and ``p = |x|``: exactly the paper's "compare a uniform sample with the target
    value". In Nengo's convention a spike is ``amplitude / dt`` high; here that is
    ``amplitude = A dt = 1 / r``, i.e. a spike carries ``1 / r`` seconds' worth of
    the pixel's value.
"""

import numpy as np

from nengoseg.errors import DataError
from nengoseg.convert.settings import INPUT_CODINGS


def encode_inputs(x, n_steps, coding="constant", dt=0.001, rate_hz=1000.0, rng=None):
    """Turn images ``(batch, H, W, C)`` into NengoDL input ``(batch, n_steps, H*W*C)``.

    Parameters
    ----------
    x : array_like
        The images (any shape ``(batch, ...)``; flattened per example).
    n_steps : int
        Time steps each image is presented for.
    coding : "constant" or "poisson"
        See the module docstring.
    dt : float
        Simulation step in seconds.
    rate_hz : float
        Poisson coding only: the rate of a pixel of magnitude 1 (``rate_hz * dt <= 1``).
    rng : numpy.random.Generator or int or None
        Poisson coding only: the random generator, or a seed for one.

    Returns
    -------
    numpy.ndarray
        float32 array of shape ``(batch, n_steps, prod(x.shape[1:]))``.
    """
    x = np.asarray(x, dtype=np.float32)
    flat = x.reshape((x.shape[0], 1, -1))
    if coding == "constant":
        return np.repeat(flat, n_steps, axis=1)
    if coding == "poisson":
        return poisson_spikes(flat, n_steps, dt, rate_hz, np.random.default_rng(rng))
    raise ValueError(f"coding={coding!r}; allowed: {', '.join(INPUT_CODINGS)}")


def spike_height(rate_hz, dt):
    """The input spike value ``1 / (rate_hz * dt)`` that makes the mean input equal the pixel."""
    return 1.0 / (rate_hz * dt)


def poisson_spikes(flat, n_steps, dt, rate_hz, rng):
    """Signed Bernoulli spikes of height `spike_height` for ``flat`` of shape ``(batch, 1, n)``."""
    largest = float(np.max(np.abs(flat))) if flat.size else 0.0
    if largest > 1:
        raise DataError(
            f"poisson input coding needs pixel values in [-1, 1], but the largest magnitude "
            f"is {largest:g}; normalise the images to [0, 1] or [-1, 1] first"
        )
    probability = np.abs(flat) * (rate_hz * dt)
    fires = rng.random((flat.shape[0], n_steps, flat.shape[2]), dtype=np.float32) < probability
    return (fires * np.sign(flat) * spike_height(rate_hz, dt)).astype(np.float32)
