"""Spiking-flow fine-tuning (Spiking-UNet section 3.4, after ASF-BP): ``method="spiking_flow"``.

The forward pass is the spiking network itself, run for all T steps without a
gradient (the inference engine: every layer's spikes, the readout). The gradient is
then computed once, not through time, from the accumulated spiking flow: with each
layer's input flow ``I_in = W I_out^{l-1} + b`` (its mean input current, from the
previous layer's measured mean output) and output flow ``I_out`` (its measured mean
output, the threshold-weighted spikes), the paper's eq. 9-10, a neuron layer's output
is passed on as::

    out = I_out + rate(I_in) - stop_gradient(rate(I_in))

whose value is the measured spiking output and whose gradient is the rate neuron's
(for rectified linear rates, 1 where the accumulated input is positive: the paper's
``p = [I_in > 0]``; its code writes the same ``out - out.detach() + measured``). The
readout likewise has the spiking readout's value and the flow network's gradient, so
the loss is the spiking network's own loss. One static pass of the layers (an ANN's
cost) replaces the T steps of the backward pass of hybrid training or BPTT, and
nothing of the T steps is kept for it.

Approximations, as in the paper: the mean input is taken as the linear map of the
previous layer's mean output, which ignores a synapse's filtering and the one-step
delay at the ends of the run (exact without a synapse and for the steps in between).
The readout's window may be shorter than the run; the flow uses means over all steps.
"""

import tensorflow as tf

from nengoseg.engine import dynamics


def flow_call(engine, x):
    """The training output of ``engine`` (a `nengoseg.engine.model.SpikingEngine` with
    ``method="spiking_flow"``) on coded inputs ``x``: as its hybrid training output
    (the readout, and with ``rate_outputs`` each layer's rate in Hz), with the values of
    the spiking run and the gradient of the flow pass."""
    plan = engine.plan
    measured = tf.nest.map_structure(tf.stop_gradient, engine.spiking_pass(x))
    values, rates = {}, {}
    for node in plan.nodes:
        if node.name == plan.input_name:
            values[node.name] = {"raw": _mean_input(engine, x)}
            continue
        if node.pass_through:
            values[node.name] = engine._pass_through(node, values)
            continue
        tensor, _ = engine._linear(node, engine._node_inputs(node, values))
        if node.neurons is None:
            values[node.name] = {"raw": (tensor, False)}
            continue
        spec = node.neurons
        consts = dynamics.constants(spec, plan.settings.dt)
        amplitude = tf.constant(spec.amplitude, tf.float32)
        J = tf.constant(spec.gain, tf.float32) * tf.reshape(tensor, (-1, spec.n_neurons))
        rate = dynamics.rate(spec, consts, J)  # amplitude * rate(J): Keras units
        if spec.spiking:
            rate = measured[f"rate_{node.name}"] * amplitude + rate - tf.stop_gradient(rate)
        rates[f"rate_{node.name}"] = rate / amplitude
        value = (tf.reshape(rate, (-1,) + spec.shape), False)
        values[node.name] = {variant: value for variant in plan.variants(node.name) | {"raw"}}
    output = values[plan.output_name][plan.reads.get((None, plan.output_name), "raw")][0]
    readout = measured["readout"] + output - tf.stop_gradient(output)
    return {"readout": readout, **rates} if engine.rate_outputs else readout


def _mean_input(engine, x):
    """The input layer's mean over the steps, ``(tensor, False)``."""
    tensor, temporal = engine._input(x)
    if not temporal:
        return tensor, False
    steps = tf.reshape(tensor, tf.concat([[engine._steps, -1], tf.shape(tensor)[1:]], 0))
    return tf.reduce_mean(steps, axis=0), False
