"""The interface every co-training engine implements (NengoDL's, nengoseg's engine).

Kept apart from the co-training stage so that the engines can implement it
without importing the stage (which imports them).
"""

import abc

import numpy as np


class TrainableSNN(abc.ABC):
    """A converted spiking network made trainable by one engine.

    Attributes an engine sets: ``name`` (the ``cotrain.engine`` value),
    ``converted`` (the `nengoseg.convert.ConvertedNetwork` with hybrid neurons),
    ``minibatch_size`` (every batch has exactly this many examples),
    ``output_name`` (the Keras output / loss key of the network output) and
    ``rate_names`` (``{keras_layer_name: output key}`` of each neuron layer, in
    the order of ``converted.neuron_probes``). Outputs are ``(batch, n_steps, ...)``:
    the network output in its own units, neuron outputs as NengoDL probes them
    (``amplitude / dt`` at a spike).
    """

    name = ""

    @property
    @abc.abstractmethod
    def keras_model(self):
        """The `tf.keras.Model` that ``fit`` trains and the checkpoints save."""

    @abc.abstractmethod
    def model_inputs(self, coded):
        """The model's input for coded inputs ``(batch, n_steps, n_in)`` (`encode_inputs`)."""

    @abc.abstractmethod
    def predict(self, coded):
        """Network output ``(batch, n_steps, ...)`` for coded inputs, without training."""

    @abc.abstractmethod
    def trained_weights(self):
        """``{layer_name: [arrays]}``: trained values in the layout of ``converted.keras_model``.

        Every trainable parameter must be included; layers left out keep their weights.
        """

    @property
    def trainer(self):
        """What ``compile`` and ``fit`` call: the Keras model (NengoDL: its Simulator)."""
        return self.keras_model

    def compile(self, optimizer, loss, metrics, loss_weights):
        self.trainer.compile(
            optimizer=optimizer, loss=loss, metrics=metrics, loss_weights=loss_weights
        )

    def fit(self, train, validation, epochs, initial_epoch, callbacks):
        """Keras ``fit`` on `Batches` generators (``validation`` may be None).

        Before a fresh fit (``initial_epoch`` 0) with validation data, the callbacks
        whose ``wants_baseline`` is true get, through ``set_baseline(logs, model)``, the
        validation scores of the starting network (``val_loss``, ...), so that a
        fine-tuning that never beats the network it started from keeps it.
        """
        hooks = [cb for cb in callbacks if getattr(cb, "wants_baseline", False)]
        if hooks and validation is not None and initial_epoch == 0:
            scores = self.trainer.evaluate(iter(validation), steps=len(validation), verbose=0)
            if not isinstance(scores, dict):  # Keras: a list, or the loss alone; NengoDL: a dict
                scores = dict(zip(self.keras_model.metrics_names, np.atleast_1d(scores)))
            logs = {f"val_{key}": float(np.asarray(value)) for key, value in scores.items()}
            for cb in hooks:
                cb.set_baseline(logs, self.keras_model)
        return self.trainer.fit(
            iter(train),
            steps_per_epoch=len(train),
            epochs=epochs,
            initial_epoch=initial_epoch,
            validation_data=iter(validation) if validation is not None else None,
            validation_steps=len(validation) if validation is not None else None,
            callbacks=callbacks,
            verbose=0,
        )

    def close(self):
        """Release the engine's resources."""
