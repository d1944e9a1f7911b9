"""Linear maps between neuron layers, and how each becomes a Nengo transform Loihi can run.

Between two neuron layers a Keras network may apply any number of linear steps:
average pooling, nearest upsampling, concatenation, flattening, dropout, a linear
(no activation) convolution, the convolution of the next layer itself. nengo-loihi
only accepts Neurons -> Neurons connections, so the whole chain must become the
transform of one connection. Each step is a `LinearOp` (defined in
`nengoseg.loihi.linear_ops` and re-exported here) on channels-last vectors
flattened in C order (the order of Keras tensors and of Nengo neurons), with an
exact sparse matrix (`LinearOp.matrix`). This module composes and simplifies
chains of them; `to_transform` turns a chain into the cheapest transform that
computes it exactly:

native ``nengo.Convolution`` / ``nengo.transforms.ConvolutionTranspose``
    when, after fusing, the chain is one convolution. Loihi shares convolution
    weights between positions (population axons: one axon per input pixel,
    weights stored once per border pattern), so this costs little synapse memory.
    Fusions that keep a chain convolutional:

    - identities (Flatten, Reshape, Dropout) are dropped;
    - a channel embedding (one input of a channel-axis Concatenate) followed by a
      convolution is the convolution with the kernel's input channels sliced: a
      convolution over concatenated inputs becomes one connection per input;
    - average pooling (pool size = stride ``p``, valid padding, height and width
      divisible by ``p``) followed by a stride-1 convolution with an odd kernel
      ``k`` ("same") or any kernel ("valid") is one convolution with kernel
      ``p*k`` and stride ``p``, whose taps are the kernel's taps divided by
      ``p**2`` (TensorFlow's "same" padding of the composite, ``p*(k-1)/2`` on each
      side, is exactly the pooled image's padding scaled by ``p``);
    - a per-channel or scalar scale (the negative half of a signed input) is
      folded into the kernel.

``nengo.Dense``
    a single Dense layer on a flat input.

``nengo.Sparse``
    anything else: the product of the steps' sparse matrices. Exact, but every
    presynaptic neuron then needs its own (discrete) axon and every weight is
    stored separately, so it costs far more input axons and synapse memory than a
    convolution; the block-shape search compensates with smaller tiles.
"""

import nengo
import numpy as np
import scipy.sparse
from nengo_loihi.conv import channel_idxs, conv2d_loihi_weights, pixel_idxs

from nengoseg.loihi.linear_ops import (AvgPool2D, Conv2D, Conv2DTranspose, Dense, Embed,
                                       GlobalAvgPool2D, Identity, LinearOp, Scale, Upsample2D,
                                       conv_matrix, flat_size, out_and_pad)

# ---------------------------------------------------------------- chains -> transforms


def compose(chain, shape):
    """The sparse matrix of ``chain`` (first step first) on inputs of ``shape``."""
    matrix = scipy.sparse.identity(flat_size(shape), format="csr")
    for op in chain:
        matrix = op.matrix() @ matrix
    return matrix.tocsr()


def simplify(chain):
    """Drop identities and fold scales, channel slices and pooling into convolutions.

    Returns an equivalent, usually shorter, chain (see the module docstring).
    """
    ops = [op for op in chain if not isinstance(op, Identity)]
    changed = True
    while changed:
        changed = False
        for i in range(len(ops) - 1):
            fused = _fuse(ops[i], ops[i + 1])
            if fused is not None:
                ops[i : i + 2] = [fused]
                changed = True
                break
    return ops


def _fuse(first, second):
    """One op equal to ``second`` after ``first``, or None."""
    if isinstance(first, Scale) and isinstance(first.factor, np.ndarray):
        if isinstance(second, Conv2D):
            kernel = second.kernel * np.asarray(first.factor)[..., None]
            return Conv2D(first.in_shape, kernel, second.strides, second.padding)
        if isinstance(second, Conv2DTranspose):
            kernel = second.kernel * np.asarray(first.factor)
            return Conv2DTranspose(
                first.in_shape, second.out_shape, kernel, second.strides, second.padding
            )
        if isinstance(second, Dense):
            return Dense(first.in_shape, second.kernel * np.asarray(first.factor)[..., None])
        if isinstance(second, Scale):
            factor = first.factor * second.factor
            return Scale(first.in_shape, factor)
    if isinstance(first, Embed) and first.on_channels and len(first.out_shape) == 3:
        lo, hi = first.offset, first.offset + first.in_shape[-1]
        if isinstance(second, Conv2D):
            return Conv2D(first.in_shape, second.kernel[:, :, lo:hi], second.strides,
                          second.padding)
        if isinstance(second, Conv2DTranspose):
            return Conv2DTranspose(first.in_shape, second.out_shape,
                                   second.kernel[:, :, :, lo:hi], second.strides,
                                   second.padding)
    if isinstance(first, Embed) and first.on_channels and isinstance(second, Dense):
        lo, hi = first.offset, first.offset + first.in_shape[-1]
        return Dense(first.in_shape, second.kernel[lo:hi])
    if isinstance(first, AvgPool2D) and isinstance(second, Conv2D) and first.fusable():
        return _fuse_pool_conv(first, second)
    return None


def _fuse_pool_conv(pool, conv):
    """Average pooling then a stride-1 convolution, as one strided convolution (or None)."""
    kh, kw, cin, cout = conv.kernel.shape
    if conv.strides != (1, 1):
        return None
    if conv.padding == "same" and (kh % 2 == 0 or kw % 2 == 0):
        return None
    ph, pw = pool.pool_size
    kernel = np.repeat(np.repeat(conv.kernel, ph, axis=0), pw, axis=1) / (ph * pw)
    fused = Conv2D(pool.in_shape, kernel, (ph, pw), conv.padding)
    assert fused.out_shape == conv.out_shape
    return fused


def loihi_agrees(op):
    """Whether nengo-loihi's weight layout for ``op``'s native transform is exact.

    nengo-loihi (``nengo_loihi.conv.conv2d_loihi_weights``) places convolution
    weights with its own padding rule. For forward convolutions it matches
    TensorFlow; for ``ConvolutionTranspose`` with "same" padding and stride > 1
    (e.g. Keras' 3x3 stride-2 upsampling layers) nengo-loihi 1.1 shifts the output
    by a pixel, although the reference Nengo simulator and NengoDL match Keras.
    The geometry is checked with a random one-channel kernel on the real spatial
    shape, against the exact matrix.
    """
    rng = np.random.default_rng(0)
    kernel = rng.uniform(0.5, 1.5, op.kernel.shape[:2] + (1, 1))
    if isinstance(op, Conv2D):
        probe = Conv2D(op.in_shape[:2] + (1,), kernel, op.strides, op.padding)
    else:
        probe = Conv2DTranspose(op.in_shape[:2] + (1,), op.out_shape[:2] + (1,), kernel,
                                op.strides, op.padding)
    return np.allclose(loihi_matrix(probe.transform()), probe.matrix().toarray())


def loihi_matrix(transform):
    """Dense matrix of the weights nengo-loihi puts on chip for a convolution transform."""
    weights, indices, axon_to_weight, offsets = conv2d_loihi_weights(transform)
    shape = transform.input_shape
    matrix = np.zeros((transform.output_shape.size, shape.size))
    for k, (pixel, channel) in enumerate(zip(pixel_idxs(shape), channel_idxs(shape))):
        if offsets[pixel] < 0:
            continue
        w = axon_to_weight[pixel]
        np.add.at(matrix[:, k], offsets[pixel] + indices[w][channel], weights[w][channel])
    return matrix


def loihi_layout(op, max_shift=None):
    """``op`` with its kernel laid out so that nengo-loihi places it exactly, or None.

    nengo-loihi 1.1 places a strided "same" ``ConvolutionTranspose`` one pixel
    off (see `loihi_agrees`). Its padding rule depends on the kernel size, so
    prepending ``(pi, pj)`` zero rows / columns to the kernel shifts the taps back;
    the shifts are searched (up to ``2 * kernel``) and a candidate is kept only if
    nengo-loihi's weight matrix equals ``op``'s TensorFlow matrix on a random
    one-channel probe of the real spatial shape. The zero taps cost synapse
    memory but keep the connection convolutional (shared weights, one axon per
    pixel), far cheaper than a Sparse matrix.

    The returned op is only for nengo-loihi: other simulators (NengoDL, the
    reference simulator) place the padded kernel the TensorFlow way, so networks
    for them keep ``op`` itself (see ``layout`` in `to_transform`).
    """
    if loihi_agrees(op):
        return op
    kh, kw = op.kernel.shape[:2]
    rng = np.random.default_rng(1)
    kernel = rng.uniform(0.5, 1.5, (kh, kw, 1, 1))
    if isinstance(op, Conv2D):
        probe = Conv2D(op.in_shape[:2] + (1,), kernel, op.strides, op.padding)
    else:
        probe = Conv2DTranspose(op.in_shape[:2] + (1,), op.out_shape[:2] + (1,), kernel,
                                op.strides, op.padding)
    want = probe.matrix().toarray()
    limit = 2 * max(kh, kw) if max_shift is None else max_shift
    for total in range(1, 2 * limit + 1):
        for pi in range(max(0, total - limit), min(total, limit) + 1):
            pj = total - pi
            shifted = _padded(probe, pi, pj)
            if shifted is not None and np.allclose(loihi_matrix(shifted.transform()), want):
                return _padded(op, pi, pj)
    return None


def _padded(op, pi, pj):
    """``op`` with ``pi`` zero kernel rows and ``pj`` zero columns prepended."""
    kh, kw = op.kernel.shape[:2]
    kernel = np.zeros((kh + pi, kw + pj) + op.kernel.shape[2:])
    kernel[pi:, pj:] = op.kernel
    if isinstance(op, Conv2D):
        padded = Conv2D(op.in_shape, kernel, op.strides, op.padding)
        return padded if padded.out_shape == op.out_shape else None
    return Conv2DTranspose(op.in_shape, op.out_shape, kernel, op.strides, op.padding)


LAYOUTS = ("loihi", "nengo")


def to_transform(chain, shape, layout="loihi"):
    """A Nengo transform computing ``chain`` on neurons of ``shape``, and its kind.

    Returns ``(transform, kind)``; kind is "convolution", "convolution_transpose",
    "dense" or "sparse" (see the module docstring for which is chosen when).
    ``layout="loihi"``: convolutions are laid out for nengo-loihi (`loihi_layout`);
    one that cannot be made exact there becomes "sparse". ``layout="nengo"``:
    native transforms as NengoDL and the reference simulator compute them (for
    the exactness check with rate neurons, which cannot run on nengo-loihi).
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout={layout!r}; allowed: {', '.join(LAYOUTS)}")
    ops = simplify(chain)
    if not ops:
        return _identity(shape)
    if len(ops) == 1:
        op = ops[0]
        if isinstance(op, (Conv2D, Conv2DTranspose)):
            placed = op if layout == "nengo" else loihi_layout(op)
            if placed is not None:
                kind = "convolution" if isinstance(op, Conv2D) else "convolution_transpose"
                return placed.transform(), kind
        if isinstance(op, Dense) and len(op.in_shape) == 1:
            return nengo.Dense(op.kernel.shape[::-1], init=op.kernel.T), "dense"
        if isinstance(op, Scale) and len(shape) == 3 and op.factor.ndim == 0:
            identity, _ = _identity(shape, float(op.factor))
            return identity, "convolution"
    matrix = compose(ops, shape)
    matrix.eliminate_zeros()
    return nengo.Sparse(matrix.shape, init=matrix), "sparse"


def _identity(shape, factor=1.0):
    """One-to-one connection: a 1x1 convolution for images (shared weights), else sparse."""
    if len(shape) == 3:
        channels = shape[-1]
        kernel = factor * np.eye(channels)[None, None]
        return Conv2D(shape, kernel).transform(), "convolution"
    n = flat_size(shape)
    return nengo.Sparse((n, n), init=scipy.sparse.identity(n, format="csr") * factor), "sparse"


def chain_fan_out(chain, shape):
    """Synapses each presynaptic neuron of ``shape`` drives through ``chain`` (float array).

    Counted on the exact (TensorFlow) map, one synaptic operation per nonzero
    weight: a convolution's count comes from a one-channel probe of its spatial
    geometry times its filters (no full matrix is built); other chains from
    their sparse matrix.
    """
    ops = simplify(chain)
    if len(ops) == 1 and isinstance(ops[0], (Conv2D, Conv2DTranspose)):
        op = ops[0]
        ones = np.ones(op.kernel.shape[:2] + (1, 1))
        if isinstance(op, Conv2D):
            probe = Conv2D(op.in_shape[:2] + (1,), ones, op.strides, op.padding)
            filters = op.kernel.shape[3]
        else:
            probe = Conv2DTranspose(op.in_shape[:2] + (1,), op.out_shape[:2] + (1,), ones,
                                    op.strides, op.padding)
            filters = op.kernel.shape[2]
        per_pixel = np.asarray((probe.matrix() != 0).sum(axis=0), np.float64).ravel()
        return np.repeat(per_pixel * filters, op.in_shape[-1])
    matrix = compose(ops, shape) if ops else scipy.sparse.identity(flat_size(shape), format="csr")
    return np.asarray((matrix != 0).sum(axis=0), np.float64).ravel()


def fan_out(transform):
    """Nonzero weights per presynaptic neuron of a Nengo transform (a float array)."""
    if isinstance(transform, nengo.Convolution):
        op = Conv2D(transform.input_shape.shape, transform.init, transform.strides,
                    transform.padding)
        matrix = op.matrix()
    elif isinstance(transform, nengo.transforms.ConvolutionTranspose):
        op = Conv2DTranspose(transform.input_shape.shape, transform.output_shape.shape,
                             np.transpose(transform.init, (0, 1, 3, 2)), transform.strides,
                             transform.padding)
        matrix = op.matrix()
    elif isinstance(transform, nengo.Sparse):
        matrix = scipy.sparse.csr_matrix(transform.init)
    else:
        matrix = scipy.sparse.csr_matrix(np.asarray(transform.init))
    return np.asarray((matrix != 0).sum(axis=0), np.float64).ravel()


__all__ = [
    "AvgPool2D",
    "Conv2D",
    "Conv2DTranspose",
    "Dense",
    "Embed",
    "GlobalAvgPool2D",
    "Identity",
    "LinearOp",
    "Scale",
    "Upsample2D",
    "compose",
    "conv_matrix",
    "chain_fan_out",
    "fan_out",
    "loihi_layout",
    "out_and_pad",
    "simplify",
    "to_transform",
]
