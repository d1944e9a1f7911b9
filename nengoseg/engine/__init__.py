"""Time-batched simulation and co-training of converted spiking networks.

NengoDL simulates a converted network one time step after the other, every layer
at every step. In a feed-forward network only the neurons and synapses have to
go step by step; the linear layers can process all steps at once. The engine
does exactly that: a Keras model (`SpikingEngine`) that folds time into the
batch for the Keras layers of the original model (the same layer objects, so
training the engine trains the model) and loops over time only for the neuron
and synapse updates. It reproduces NengoDL's simulation of the same conversion
(same neurons and update equations, initial voltages, gains and amplitudes from
``scale_firing_rates``, Lowpass synapse and its one-step delay, dt, input
coding); see `nengoseg.engine.plan` and `nengoseg.engine.dynamics` for how.

Most users reach it through the Python API (``snn.predict(x)``, ``snn.fit(x, y)``:
`nengoseg.spiking_model`, where it is the default backend) or ``--engine engine``
on the CLI. Directly::

    from nengoseg.engine import run_engine, engine_training_model

    snn = run_engine(keras_model, settings, images)        # like convert.run_snn
    model = engine_training_model(keras_model, settings)   # images -> readout logits
    model.compile(tf.keras.optimizers.Adam(1e-4), loss=my_loss)
    model.fit(images, masks, batch_size=16, epochs=5)      # trains keras_model's weights
    # keras_model now holds the trained weights: convert(keras_model, settings) again

Inference runs the steps in chunks of about ``CHUNK_IMAGES`` images (steps x
batch) through the whole network, carrying neuron and synapse state from chunk to
chunk, so memory does not grow with ``n_steps``; training folds all steps at once
(`nengoseg.engine.dynamics.hybrid_layer`: one loop forward, one backward), or
trains through time (`nengoseg.engine.dynamics.bptt_layer`, ``cotrain.method: bptt``).

NengoDL (`nengoseg.convert.run_snn`) remains the reference; the engine is the
fast path.
"""

from nengoseg.engine.model import SpikingEngine
from nengoseg.engine.plan import EnginePlan, NeuronLayer, make_plan
from nengoseg.engine.run import build_engine, engine_training_model, run_engine


def trainable_snn(converted, minibatch_size, method="hybrid", surrogate_alpha=1.0):
    """The engine's ``TrainableSNN`` for ``cotrain`` (see `nengoseg.engine.trainable`):
    ``method`` "hybrid" (rate gradients) or "bptt" (through time, triangle surrogate)."""
    from nengoseg.engine.trainable import trainable_snn as make

    return make(converted, minibatch_size, method, surrogate_alpha)


__all__ = [
    "EnginePlan",
    "NeuronLayer",
    "SpikingEngine",
    "build_engine",
    "engine_training_model",
    "make_plan",
    "run_engine",
    "trainable_snn",
]
