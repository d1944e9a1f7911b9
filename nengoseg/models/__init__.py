"""Keras model zoo, shaped for conversion to spiking networks.

Every builder makes a functional Keras model from layers that the NengoDL Converter
(with nengoseg's own layer converters) can turn into a spiking network: Conv2D,
Conv2DTranspose, AveragePooling2D, nearest UpSampling2D, Concatenate, Dropout, Dense,
Flatten and ReLU activations; no max pooling, no batch normalisation. Output layers
are linear (logits): sigmoid and softmax belong to the loss. Layers have readable
names (``enc1_conv1``, ``pool1``, ``dec1_concat``, ``out``) and seeded initialisers,
so the same ``seed`` builds the same weights.
"""

import inspect

from nengoseg.errors import ConfigError
from nengoseg.models.cae import build_cae
from nengoseg.models.locnet import build_locnet
from nengoseg.models.unet import build_unet

MODEL_BUILDERS = {"cae": build_cae, "unet": build_unet, "locnet": build_locnet}


def model_options(kind):
    """The option names ``build_model`` accepts for ``kind`` (its builder's parameters)."""
    parameters = inspect.signature(MODEL_BUILDERS[kind]).parameters
    return [name for name in parameters if name != "input_shape"]


def build_model(kind, input_shape, **options):
    """Build the model ``kind`` (one of :data:`MODEL_BUILDERS`) for ``input_shape``.

    ``options`` are the builder's keyword arguments; an unknown kind or option raises
    ConfigError naming it and what is allowed.
    """
    if kind not in MODEL_BUILDERS:
        raise ConfigError(f"unknown model kind {kind!r} (allowed: {', '.join(MODEL_BUILDERS)})")
    allowed = model_options(kind)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ConfigError(
            f"unknown option {unknown[0]!r} for model {kind!r} (allowed: {', '.join(allowed)})"
        )
    return MODEL_BUILDERS[kind](input_shape, **options)


__all__ = [
    "MODEL_BUILDERS", "build_cae", "build_locnet", "build_model", "build_unet", "model_options"
]
