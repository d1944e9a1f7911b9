"""Neuron and synapse dynamics over time, in TensorFlow, exactly as NengoDL computes them.

Neuron updates
--------------
The spiking and rate updates are NengoDL's own step functions
(``nengo_dl.neuron_builders``: ``SpikingRectifiedLinearBuilder.step``,
``LIFBuilder.step``, ``RectifiedLinearBuilder.step``, ``SoftLIFRateBuilder.step``,
``LIFRateBuilder.step``), called with the same float32 constants NengoDL's
``build_pre`` makes (``alpha = amplitude / dt``, ``tau_rc``, ``tau_ref``,
``min_voltage``, ``sigma``, one, zero). For ``nengo.SpikingRectifiedLinear``::

    voltage += relu(J) * dt;  n = floor(voltage);  voltage -= n;  out = n * amplitude / dt

and for ``nengo.LIF`` NengoDL's variant of ``nengo.LIF.step`` (spike when
``voltage > 1``, refractory time from the exact spike time). nengo-loihi's models
of Loihi's neurons (``LoihiSpikingRectifiedLinear``, ``LoihiLIF``) use the steps of
the NengoDL builders nengo-loihi registers for them (nengo-extras'
``loihi_training``)::

    voltage = max(voltage + J * dt, 0);  spike where voltage > 1, then voltage = 0

Only the time loop around them is the engine's: a ``tf.while_loop`` over the steps of a whole
minibatch, carrying the state.

Synapse and its timing
----------------------
The converter puts ``nengo.Lowpass(tau)`` on every connection leaving neurons.
Nengo builds it *after* the connection's transform, in "update" mode: the
filter state ``y[t] = a y[t-1] + b x[t]`` is written at the end of step ``t``,
and the next layer reads it during step ``t + 1``. So a layer reading filtered
spikes at step ``t`` sees ``y[t-1]`` (``y[-1] = 0``): one step of delay per
synapse, none without a synapse. A probe with a synapse (the converter's output
probe when the output layer is made of neurons) is built the same way (filter in
"update" mode, then a copy into the probe), so it records ``y[t-1]`` too. The
engine applies the filter to the spikes *before* the next layer's weights (the
filter is linear and per element, so this is the same function; float32 rounding
may differ in the last bit) and reads it with the same one-step delay.

Training
--------
`hybrid_layer` gives NengoDL's hybrid neurons (``nengoseg.neurons``) and the
synapse in one piece: forward value exactly the spikes (and the filtered spikes,
from the same fused loop as inference), gradient the rate neuron's on the same
input current, passed back through the filter's exact transpose (a reverse-time
recurrence); the voltage carries across steps without gradient, as in NengoDL.
Because the rate does not depend on the state, its derivative is computed for
all steps at once in the backward pass. It computes the same gradient as
`hybrid` followed by `lowpass` (the unfused pieces, kept for rate neurons and
as the reference), with one loop over time forward and one backward instead of
three, and nothing kept for the backward pass but the currents.

`bptt_layer` trains through time instead (``cotrain.method: bptt``, the three-stage
paper's spike-based fine-tuning, eq. 4-5): the same spiking forward pass, written with
the kind's ``surrogate_step`` so that TensorFlow differentiates the whole loop, the
membrane voltage carried from step to step *with* its gradient, and the spike's
derivative replaced by the paper's triangle (`triangle_spike`).
"""

from types import SimpleNamespace

import tensorflow as tf

from nengoseg import neuron_kinds

FLOAT = tf.float32


def constants(spec, dt):
    """The float32 constants NengoDL's ``build_pre`` makes for ``spec``'s neurons."""
    dt_t = tf.constant(dt, FLOAT)
    amplitude = None if spec.amplitude == 1 else tf.constant(spec.amplitude, FLOAT)
    return SimpleNamespace(
        dt=dt_t,
        amplitude=amplitude,
        alpha=(1 if amplitude is None else amplitude) / dt_t,
        negative_slope=None,
        tau_rc=tf.constant(spec.tau_rc, FLOAT),
        tau_ref=tf.constant(spec.tau_ref, FLOAT),
        min_voltage=tf.constant(spec.min_voltage, FLOAT),
        sigma=tf.constant(spec.sigma, FLOAT),
        thresholds=tuple(tf.constant(t, FLOAT) for t in spec.thresholds),
        epsilon=tf.constant(1e-15, FLOAT),
        zero=tf.constant(0.0, FLOAT),
        one=tf.constant(1.0, FLOAT),
        zeros=None,
    )


def _params(consts, J):
    return SimpleNamespace(**{**vars(consts), "zeros": tf.zeros_like(J)})


def spiking_step(spec, consts):
    """``step(J, state_list) -> (out, new_state_list)``: the spiking update of ``spec``'s
    neuron kind (its registry record's ``step``, NengoDL's own step function).

    (`simulate` runs the kinds with a ``relu_loop`` in `_simulate_relu`, the same
    operations with the state-free part taken out of the loop.)"""
    kind = neuron_kinds.named(spec.kind)
    if kind.step is None:
        raise ValueError(f"{spec.kind} neurons do not spike")
    return lambda J, state: kind.step(_params(consts, J), J, list(state))


def state_keys(spec):
    """The names of the neuron state of ``spec``'s kind, in order."""
    return neuron_kinds.named(spec.kind).state


def rate(spec, consts, J):
    """The rate neuron of ``spec`` on currents ``J``: the output of rate neurons, or the
    rate whose gradient hybrid neurons use (its registry record's ``rate``)."""
    return neuron_kinds.named(spec.kind).rate(_params(consts, J), J)


def _initial(spec, batch):
    return [
        tf.broadcast_to(tf.constant(spec.initial_state[key][None, :], FLOAT),
                        tf.stack([batch, spec.n_neurons]))
        for key in state_keys(spec)
    ]


def initial_state(spec, batch, synapse):
    """The state `simulate` starts from: nengo's initial neuron state (the same for every
    example, as in NengoDL), and a zero synapse (``y[-1] = 0``) when there is one."""
    state = _initial(spec, batch)
    if synapse is not None:
        state.append(tf.zeros(tf.stack([batch, spec.n_neurons]), FLOAT))
    return state


def simulate(spec, consts, J, n_steps, static, synapse=None, variants=("raw",), state=None,
             return_state=False):
    """Run spiking neurons over ``n_steps`` steps in one loop (no gradient).

    Parameters
    ----------
    J : tf.Tensor
        Input currents, ``(n_steps, batch, n)``, or ``(batch, n)`` when ``static``
        (the same current at every step).
    synapse : (a, b) or None
        Lowpass coefficients; the filter is fused into the loop.
    variants : collection of str
        The forms of the output to return, each ``(n_steps, batch, n)``: "raw" (the
        neuron output) and "delayed" (the filtered output as a connection or probe
        reads it, one step late).

    state : list of tf.Tensor or None
        Where to start (`initial_state`, or the ``state`` a run of the earlier steps
        returned): the neuron state, then the synapse's. None: `initial_state`.
    return_state : bool
        Also return the state after the last step (to go on from there).

    Returns
    -------
    outputs : dict of {str: tf.Tensor}
        One entry per variant.
    out_sum : tf.Tensor
        ``(batch, n)``: the sum over steps of the neuron output (``n_spikes * alpha``).
    state : list of tf.Tensor
        Only with ``return_state``.
    """
    variants = sorted(set(variants))
    if synapse is None and set(variants) - {"raw"}:
        raise ValueError(f"variants {variants} need a synapse")
    J = tf.stop_gradient(J)
    if neuron_kinds.named(spec.kind).relu_loop:
        return _simulate_relu(spec, consts, J, n_steps, static, synapse, variants, state,
                              return_state)
    if state is None:
        state = initial_state(spec, tf.shape(J)[-2], synapse)
    n_state = len(state_keys(spec))
    outputs, out_sum, final, y = _time_loop(
        spiking_step(spec, consts), J, n_steps, static, synapse, variants, spec.n_neurons,
        state[:n_state], state[n_state] if synapse is not None else None)
    if not return_state:
        return outputs, out_sum
    return outputs, out_sum, final + ([y] if synapse is not None else [])


def _time_loop(step, J, n_steps, static, synapse, variants, n, state, y0=None):
    """``step(J_t, state) -> (out, state)`` over ``n_steps`` steps in one ``tf.while_loop``,
    with the synapse fused in; ``(outputs {variant: (n_steps, batch, n)}, out_sum, final
    neuron state, final synapse state)``."""
    batch = tf.shape(J)[-2]
    zeros = tf.zeros(tf.stack([batch, n]), FLOAT)
    J_steps = None if static else tf.TensorArray(FLOAT, size=n_steps).unstack(J)
    arrays = tuple(
        tf.TensorArray(FLOAT, size=n_steps, element_shape=tf.TensorShape([None, n]))
        for _ in variants
    )
    a, b = (None, None) if synapse is None else (tf.constant(synapse[0]), tf.constant(synapse[1]))

    def body(t, out_sum, y, arrays, *state):
        out, state = step(J if static else J_steps.read(t), list(state))
        values = {"raw": out}
        if synapse is not None:
            values["delayed"] = y
            y = a * y + b * out
        arrays = tuple(array.write(t, values[v]) for array, v in zip(arrays, variants))
        return (t + 1, out_sum + out, y, arrays, *state)

    loop = tf.while_loop(
        lambda t, *_: t < n_steps,
        body,
        (tf.constant(0), zeros, zeros if y0 is None else y0, arrays, *state),
        parallel_iterations=1,
        maximum_iterations=n_steps,
    )
    outputs = {v: array.stack() for v, array in zip(variants, loop[3])}
    return outputs, loop[1], list(loop[4:]), loop[2]


def _simulate_relu(spec, consts, J, n_steps, static, synapse, variants, state, return_state):
    """`simulate` for ``nengo.SpikingRectifiedLinear`` and nengo-loihi's
    ``LoihiSpikingRectifiedLinear``, with the work that does not depend on the state
    taken out of the loop (the same float32 operations as the NengoDL steps:
    ``voltage += relu(J) * dt; n = floor(voltage); voltage -= n; out = n * alpha``, and
    for Loihi ``voltage += J * dt; n = voltage > 1; voltage = n ? 0 : max(voltage, 0)``)."""
    loihi = neuron_kinds.named(spec.kind).relu_loop == "reset"
    batch = tf.shape(J)[-2]
    if state is None:
        state = initial_state(spec, batch, synapse)
    voltage, y0 = state[0], (state[1] if synapse is not None else None)
    zeros = tf.zeros(tf.stack([batch, spec.n_neurons]), FLOAT)
    drive = (J if loihi else tf.nn.relu(J)) * consts.dt  # all steps at once
    drive_steps = None if static else tf.TensorArray(FLOAT, size=n_steps).unstack(drive)
    arrays = tuple(
        tf.TensorArray(FLOAT, size=n_steps, element_shape=tf.TensorShape([None, spec.n_neurons]))
        for _ in variants
    )
    alpha = consts.alpha
    a, b = (None, None) if synapse is None else (tf.constant(synapse[0]), tf.constant(synapse[1]))

    def body(t, count, y, arrays, voltage):
        voltage = voltage + (drive if static else drive_steps.read(t))
        if loihi:
            spiked = voltage > consts.one
            n = tf.cast(spiked, FLOAT)
            voltage = tf.where(spiked, tf.zeros_like(voltage), tf.maximum(voltage, 0))
        else:
            n = tf.floor(voltage)
            voltage = voltage - n
        values = {"raw": n}  # times alpha after the loop
        if synapse is not None:
            values["delayed"] = y
            y = a * y + b * (n * alpha)
        arrays = tuple(array.write(t, values[v]) for array, v in zip(arrays, variants))
        return t + 1, count + n, y, arrays, voltage

    loop = tf.while_loop(
        lambda t, *_: t < n_steps,
        body,
        (tf.constant(0), zeros, zeros if y0 is None else y0, arrays, voltage),
        parallel_iterations=1,
        maximum_iterations=n_steps,
    )
    count, y, arrays, voltage = loop[1], loop[2], loop[3], loop[4]
    outputs = {v: array.stack() for v, array in zip(variants, arrays)}
    if "raw" in outputs:
        outputs["raw"] = outputs["raw"] * alpha
    out_sum = count * alpha
    if not return_state:
        return outputs, out_sum
    return outputs, out_sum, [voltage] + ([y] if synapse is not None else [])


def triangle_spike(alpha=1.0):
    """``spike(x)`` for ``x = voltage - threshold`` (the voltage in units of the threshold):
    forward ``1.0 where x > 0 else 0.0``, derivative ``alpha * max(0, 1 - |x|)``.

    The surrogate gradient of the three-stage paper (eq. 5, after Bellec et al. 2018:
    ``do/du = alpha max{0, 1 - |u - V|}``), with the voltage measured in thresholds so
    that the triangle spans one threshold either side of it.
    """
    alpha = tf.constant(alpha, FLOAT)

    @tf.custom_gradient
    def spike(x):
        def grad(upstream):
            return upstream * alpha * tf.maximum(0.0, 1.0 - tf.abs(x))

        return tf.cast(x > 0, FLOAT), grad

    return spike


def bptt_layer(spec, consts, J, n_steps, static, synapse=None, variants=("raw",),
               surrogate_alpha=1.0):
    """Spiking neurons over ``n_steps`` steps, differentiable through time (BPTT).

    The forward pass equals `simulate`'s (the kind's ``surrogate_step`` computes what its
    ``step`` does); the gradient flows back through every step: through the spikes by
    the triangle surrogate (`triangle_spike`), through the voltage carried from step to
    step (not under ``stop_gradient``), through the reset, and through the synapse.
    Arguments and return value as `hybrid_layer`'s.
    """
    kind = neuron_kinds.named(spec.kind)
    if kind.surrogate_step is None:
        raise ValueError(
            f"{spec.kind} neurons have no surrogate step, so they cannot be fine-tuned through "
            f"time; kinds that can: {', '.join(neuron_kinds.surrogate_kinds())}"
        )
    variants = sorted(set(variants))
    if synapse is None and set(variants) - {"raw"}:
        raise ValueError(f"variants {variants} need a synapse")
    spike = triangle_spike(surrogate_alpha)
    batch = tf.shape(J)[-2]
    state = initial_state(spec, batch, synapse)
    n_state = len(kind.state)
    params = _params(consts, tf.zeros(tf.stack([batch, spec.n_neurons]), FLOAT))
    outputs, out_sum, _, _ = _time_loop(
        lambda J_t, state: kind.surrogate_step(params, J_t, state, spike), J, n_steps, static,
        synapse, variants, spec.n_neurons, state[:n_state],
        state[n_state] if synapse is not None else None)
    return outputs, out_sum / tf.cast(n_steps, FLOAT)


def hybrid(spec, consts, J, spikes, static):
    """Forward value ``spikes`` exactly; gradient that of the rate neuron at ``J``."""
    r = rate(spec, consts, J)
    surrogate = r - tf.stop_gradient(r)  # exactly 0 forward
    if static:
        surrogate = surrogate[None]
    return tf.stop_gradient(spikes) + surrogate


def lowpass(x, synapse, delay=True):
    """Lowpass filter ``x`` ``(n_steps, batch, ...)`` along time, with a gradient.

    ``y[t] = a y[t-1] + b x[t]`` (``y[-1] = 0``); returns ``y`` read one step late
    (``delay=True``: ``[0, y[0], ..., y[T-2]]``, what nengo's connections and probes
    read) or ``y`` itself.
    """
    a = tf.constant(synapse[0], FLOAT)
    b = tf.constant(synapse[1], FLOAT)

    @tf.custom_gradient
    def apply(x):
        zeros = tf.zeros_like(x[0])
        y = tf.scan(lambda y, x_t: a * y + b * x_t, x, initializer=zeros,
                    parallel_iterations=1)
        out = tf.concat([zeros[None], y[:-1]], axis=0) if delay else y

        def grad(g):
            # the transpose of x -> out: r[s] = sum_{t>=s(+1)} a^(t-s(-1)) g[t]
            g = tf.concat([g[1:], zeros[None]], axis=0) if delay else g
            r = tf.scan(lambda r, g_t: g_t + a * r, g, initializer=zeros, reverse=True,
                        parallel_iterations=1)
            return b * r

        return out, grad

    return apply(x)


def lowpass_static(x, n_steps, synapse, delay=True):
    """`lowpass` of a current that is the same at every step: ``x`` is ``(batch, ...)``."""
    return lowpass(tf.broadcast_to(x[None], tf.concat([[n_steps], tf.shape(x)], 0)),
                   synapse, delay)



def _reverse_lowpass(g, synapse, delay, zeros):
    """The transpose of `lowpass` (``delay`` as there) applied to ``g`` ``(n_steps, batch, n)``."""
    a = tf.constant(synapse[0], FLOAT)
    b = tf.constant(synapse[1], FLOAT)
    if delay:
        g = tf.concat([g[1:], zeros[None]], axis=0)
    r = tf.scan(lambda r, g_t: g_t + a * r, g, initializer=zeros, reverse=True,
                parallel_iterations=1)
    return b * r


def _backward_filter(g_delayed, g_raw, synapse, static):
    """The gradient of the neuron output per step, ``(n_steps, batch, n)``, or its sum over
    steps (``static``), from the gradients of the delayed filtered output and of the raw one.

    One reverse-time loop: with ``acc`` the filter's transposed state, the delayed
    output's gradient reaches step ``t`` as ``b * sum_{s > t} a^(s-t-1) g[s]``.
    """
    a = tf.constant(synapse[0], FLOAT)
    b = tf.constant(synapse[1], FLOAT)
    n_steps = tf.shape(g_delayed)[0]
    g_steps = tf.TensorArray(FLOAT, size=n_steps).unstack(g_delayed)
    raw_steps = None if g_raw is None else tf.TensorArray(FLOAT, size=n_steps).unstack(g_raw)
    zeros = tf.zeros_like(g_delayed[0])
    out = None if static else tf.TensorArray(FLOAT, size=n_steps)

    def body(t, acc, total, out):
        value = b * acc
        if raw_steps is not None:
            value = value + raw_steps.read(t)
        if static:
            total = total + value
        else:
            out = out.write(t, value)
        return t - 1, a * acc + g_steps.read(t), total, out

    loop = tf.while_loop(
        lambda t, *_: t >= 0, body,
        (n_steps - 1, zeros, zeros, zeros if static else out),
        parallel_iterations=1,
    )
    return loop[2] if static else loop[3].stack()


def hybrid_layer(spec, consts, J, n_steps, static, synapse=None, variants=("raw",)):
    """Hybrid spiking neurons over ``n_steps`` steps, for training, in one fused loop.

    The forward pass is `simulate` (the spikes, and the filtered spikes as the next
    layers read them, computed in the same loop). The gradient is that of
    `hybrid` followed by `lowpass`: the transposed filter (a reverse-time
    recurrence) of the gradients of the filtered outputs, plus the gradients of
    the raw outputs and of the mean, times the derivative of the rate neuron at
    ``J``. Nothing but ``J`` is kept for the backward pass.

    Returns ``(outputs, out_mean)`` as `simulate` (``out_mean`` = ``out_sum / n_steps``).
    """
    variants = sorted(set(variants))

    @tf.custom_gradient
    def apply(J):
        outputs, out_sum = simulate(spec, consts, J, n_steps, static, synapse, variants)
        steps = tf.cast(n_steps, FLOAT)
        values = [outputs[v] for v in variants] + [out_sum / steps]

        def grad(*upstream):
            grads = dict(zip(variants, upstream[:-1]))
            g_raw, g_delayed, g_mean = grads.get("raw"), grads.get("delayed"), upstream[-1]
            # the derivative of the rate neuron (elementwise) at every current
            with tf.GradientTape() as tape:
                tape.watch(J)
                r = rate(spec, consts, J)
            slope = tape.gradient(r, J, output_gradients=tf.ones_like(r))
            if g_delayed is None:
                total = 0.0 if g_raw is None else (
                    tf.reduce_sum(g_raw, axis=0) if static else g_raw)
            else:
                total = _backward_filter(g_delayed, g_raw, synapse, static)
            if g_mean is not None:
                total = total + (g_mean if static else g_mean[None] / steps)
            return tf.broadcast_to(total, tf.shape(J)) * slope

        return values, grad

    values = apply(J)
    return dict(zip(variants, values[:-1])), values[-1]
