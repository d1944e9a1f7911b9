"""Exact linear steps between neuron layers (`LinearOp` and its kinds) and their geometry.

Each step maps channels-last vectors flattened in C order (the order of Keras
tensors and of Nengo neurons) from ``in_shape`` to ``out_shape`` and has an exact
sparse matrix (`LinearOp.matrix`); convolutions also have their native Nengo
transform. `conv_matrix` and `out_and_pad` reproduce TensorFlow's convolution
geometry. `nengoseg.loihi.linear` composes chains of these steps into transforms
(and re-exports them).
"""

import nengo
import numpy as np
import scipy.sparse

# ---------------------------------------------------------------- geometry helpers


def out_and_pad(size, kernel, stride, padding):
    """Output length and leading pad of a TensorFlow convolution along one axis.

    "same": ``ceil(size / stride)`` outputs, total padding
    ``max((out - 1) * stride + kernel - size, 0)`` with the smaller half first;
    "valid": ``(size - kernel) // stride + 1`` outputs, no padding.
    """
    if padding == "same":
        out = -(-size // stride)
        total = max((out - 1) * stride + kernel - size, 0)
        return out, total // 2
    if padding == "valid":
        return (size - kernel) // stride + 1, 0
    raise ValueError(f"padding={padding!r}; allowed: 'same', 'valid'")


def flat_size(shape):
    """Number of elements of ``shape`` (1 for ``()``)."""
    return int(np.prod(shape, dtype=np.int64))


def _pixel_pairs(in_hw, out_hw, a, b, strides, pads):
    """Flat (output pixel, input pixel) index pairs that kernel tap (a, b) connects."""
    (h, w), (ho, wo) = in_hw, out_hw
    ii = np.arange(ho) * strides[0] + a - pads[0]
    jj = np.arange(wo) * strides[1] + b - pads[1]
    vi = np.nonzero((ii >= 0) & (ii < h))[0]
    vj = np.nonzero((jj >= 0) & (jj < w))[0]
    out_pix = (vi[:, None] * wo + vj[None, :]).ravel()
    in_pix = (ii[vi][:, None] * w + jj[vj][None, :]).ravel()
    return out_pix, in_pix


def conv_matrix(in_shape, kernel, strides, padding):
    """Sparse matrix of a TensorFlow 2D convolution (channels last, no bias).

    ``kernel`` has Keras' Conv2D layout ``(kh, kw, in_channels, filters)``; rows
    index the output ``(Ho, Wo, filters)``, columns the input ``(H, W, C)``.
    """
    h, w, c = in_shape
    kh, kw, cin, cout = kernel.shape
    assert cin == c, (kernel.shape, in_shape)
    ho, pad_h = out_and_pad(h, kh, strides[0], padding)
    wo, pad_w = out_and_pad(w, kw, strides[1], padding)
    rows, cols, vals = [], [], []
    ci = np.arange(cin)[:, None]
    co = np.arange(cout)[None, :]
    for a in range(kh):
        for b in range(kw):
            out_pix, in_pix = _pixel_pairs((h, w), (ho, wo), a, b, strides, (pad_h, pad_w))
            if out_pix.size == 0:
                continue
            rows.append((out_pix[:, None, None] * cout + co[None]).repeat(cin, axis=1).ravel())
            cols.append((in_pix[:, None, None] * cin + ci[None]).repeat(cout, axis=2).ravel())
            vals.append(np.broadcast_to(kernel[a, b][None], (out_pix.size, cin, cout)).ravel())
    shape = (ho * wo * cout, h * w * c)
    return _coo(rows, cols, vals, shape)


def _coo(rows, cols, vals, shape):
    if not rows:
        return scipy.sparse.csr_matrix(shape, dtype=np.float64)
    matrix = scipy.sparse.coo_matrix(
        (np.concatenate(vals).astype(np.float64), (np.concatenate(rows), np.concatenate(cols))),
        shape=shape,
    ).tocsr()
    matrix.eliminate_zeros()
    return matrix


# ---------------------------------------------------------------- linear steps


class LinearOp:
    """One exact linear step from ``in_shape`` to ``out_shape`` (channels last)."""

    in_shape = ()
    out_shape = ()

    def matrix(self):
        """``scipy.sparse.csr_matrix`` of shape ``(size(out_shape), size(in_shape))``."""
        raise NotImplementedError

    def apply(self, x):
        """The map applied to a flat vector (used to carry constants through)."""
        return np.asarray(self.matrix() @ np.asarray(x, np.float64)).ravel()

    def __repr__(self):
        return f"{type(self).__name__}({self.in_shape} -> {self.out_shape})"


class Identity(LinearOp):
    """Flatten, Reshape, Dropout: the same flat vector under another shape."""

    def __init__(self, in_shape, out_shape=None):
        self.in_shape = tuple(in_shape)
        self.out_shape = tuple(in_shape if out_shape is None else out_shape)
        assert flat_size(self.in_shape) == flat_size(self.out_shape)

    def matrix(self):
        return scipy.sparse.identity(flat_size(self.in_shape), format="csr")

    def apply(self, x):
        return np.asarray(x, np.float64)


class Scale(LinearOp):
    """Multiply by a scalar, or by one factor per channel (last axis)."""

    def __init__(self, shape, factor):
        self.in_shape = self.out_shape = tuple(shape)
        self.factor = np.asarray(factor, np.float64)
        assert self.factor.ndim == 0 or self.factor.shape == (shape[-1],)

    def diagonal(self):
        return np.broadcast_to(self.factor, self.in_shape).ravel()

    def matrix(self):
        return scipy.sparse.diags(self.diagonal(), format="csr")


class Conv2D(LinearOp):
    """A Keras Conv2D without bias: kernel ``(kh, kw, in_channels, filters)``."""

    def __init__(self, in_shape, kernel, strides=(1, 1), padding="same"):
        self.in_shape = tuple(in_shape)
        self.kernel = np.asarray(kernel, np.float64)
        self.strides = tuple(strides)
        self.padding = padding
        h, w, _ = self.in_shape
        kh, kw, _, filters = self.kernel.shape
        ho, _ = out_and_pad(h, kh, self.strides[0], padding)
        wo, _ = out_and_pad(w, kw, self.strides[1], padding)
        self.out_shape = (ho, wo, filters)

    def matrix(self):
        return conv_matrix(self.in_shape, self.kernel, self.strides, self.padding)

    def transform(self):
        return nengo.Convolution(
            n_filters=self.kernel.shape[3],
            input_shape=self.in_shape,
            kernel_size=self.kernel.shape[:2],
            strides=self.strides,
            padding=self.padding,
            channels_last=True,
            init=self.kernel,
        )


class Conv2DTranspose(LinearOp):
    """A Keras Conv2DTranspose without bias: kernel ``(kh, kw, filters, in_channels)``.

    Its matrix is the transpose of the forward convolution over the output shape
    with the same kernel, strides and padding (``tf.nn.conv2d_transpose`` is the
    gradient of ``tf.nn.conv2d``), which reproduces TensorFlow's placement of
    the padding exactly.
    """

    def __init__(self, in_shape, out_shape, kernel, strides=(1, 1), padding="same"):
        self.in_shape = tuple(in_shape)
        self.out_shape = tuple(out_shape)
        self.kernel = np.asarray(kernel, np.float64)
        self.strides = tuple(strides)
        self.padding = padding

    def matrix(self):
        return conv_matrix(self.out_shape, self.kernel, self.strides, self.padding).T.tocsr()

    def transform(self):
        return nengo.transforms.ConvolutionTranspose(
            n_filters=self.kernel.shape[2],
            input_shape=self.in_shape,
            output_shape=self.out_shape,
            kernel_size=self.kernel.shape[:2],
            strides=self.strides,
            padding=self.padding,
            channels_last=True,
            init=np.transpose(self.kernel, (0, 1, 3, 2)),
        )


class AvgPool2D(LinearOp):
    """Keras AveragePooling2D; with "same" padding the padded cells are not counted."""

    def __init__(self, in_shape, pool_size, strides, padding="valid"):
        self.in_shape = tuple(in_shape)
        self.pool_size = tuple(pool_size)
        self.strides = tuple(strides)
        self.padding = padding
        h, w, c = self.in_shape
        ho, _ = out_and_pad(h, self.pool_size[0], self.strides[0], padding)
        wo, _ = out_and_pad(w, self.pool_size[1], self.strides[1], padding)
        self.out_shape = (ho, wo, c)

    def matrix(self):
        (h, w, c), (ho, wo, _) = self.in_shape, self.out_shape
        pads = (
            out_and_pad(h, self.pool_size[0], self.strides[0], self.padding)[1],
            out_and_pad(w, self.pool_size[1], self.strides[1], self.padding)[1],
        )
        pairs = [
            _pixel_pairs((h, w), (ho, wo), a, b, self.strides, pads)
            for a in range(self.pool_size[0])
            for b in range(self.pool_size[1])
        ]
        out_pix = np.concatenate([p[0] for p in pairs])
        in_pix = np.concatenate([p[1] for p in pairs])
        counts = np.bincount(out_pix, minlength=ho * wo)
        channels = np.arange(c)
        rows = (out_pix[:, None] * c + channels).ravel()
        cols = (in_pix[:, None] * c + channels).ravel()
        vals = np.repeat(1.0 / counts[out_pix], c)
        return _coo([rows], [cols], [vals], (ho * wo * c, h * w * c))

    def fusable(self):
        """Valid pooling with stride = pool size over a height and width it divides."""
        h, w, _ = self.in_shape
        p = self.pool_size
        return (
            self.padding == "valid"
            and self.strides == p
            and h % p[0] == 0
            and w % p[1] == 0
        )


class GlobalAvgPool2D(LinearOp):
    """Keras GlobalAveragePooling2D (keepdims=False): ``(H, W, C) -> (C,)``."""

    def __init__(self, in_shape):
        self.in_shape = tuple(in_shape)
        self.out_shape = (in_shape[-1],)

    def matrix(self):
        h, w, c = self.in_shape
        cols = np.arange(h * w * c)
        return _coo([cols % c], [cols], [np.full(cols.size, 1.0 / (h * w))], (c, h * w * c))


class Upsample2D(LinearOp):
    """Keras UpSampling2D with nearest interpolation: ``out[i, j] = in[i // sh, j // sw]``."""

    def __init__(self, in_shape, size):
        self.in_shape = tuple(in_shape)
        self.size = tuple(size)
        h, w, c = self.in_shape
        self.out_shape = (h * self.size[0], w * self.size[1], c)

    def matrix(self):
        (h, w, c), (ho, wo, _) = self.in_shape, self.out_shape
        i, j, k = np.meshgrid(np.arange(ho), np.arange(wo), np.arange(c), indexing="ij")
        cols = ((i // self.size[0]) * w + j // self.size[1]) * c + k
        return _coo([np.arange(ho * wo * c)], [cols.ravel()], [np.ones(ho * wo * c)],
                    (ho * wo * c, h * w * c))


class Embed(LinearOp):
    """One input of a Concatenate: place ``in_shape`` at ``offset`` along ``axis`` of ``out_shape``."""

    def __init__(self, in_shape, out_shape, axis, offset):
        self.in_shape = tuple(in_shape)
        self.out_shape = tuple(out_shape)
        self.axis = axis % len(out_shape)
        self.offset = offset

    def matrix(self):
        index = np.arange(flat_size(self.out_shape)).reshape(self.out_shape)
        where = [slice(None)] * len(self.out_shape)
        where[self.axis] = slice(self.offset, self.offset + self.in_shape[self.axis])
        rows = index[tuple(where)].ravel()
        n = flat_size(self.in_shape)
        return _coo([rows], [np.arange(n)], [np.ones(n)], (flat_size(self.out_shape), n))

    @property
    def on_channels(self):
        return self.axis == len(self.out_shape) - 1


class Dense(LinearOp):
    """A Keras Dense layer without bias, kernel ``(in, out)``, applied along the last axis."""

    def __init__(self, in_shape, kernel):
        self.in_shape = tuple(in_shape)
        self.kernel = np.asarray(kernel, np.float64)
        self.out_shape = self.in_shape[:-1] + (self.kernel.shape[1],)

    def matrix(self):
        positions = flat_size(self.in_shape[:-1])
        block = scipy.sparse.csr_matrix(self.kernel.T)
        if positions == 1:
            block.eliminate_zeros()
            return block
        return scipy.sparse.kron(scipy.sparse.identity(positions), block, format="csr")
