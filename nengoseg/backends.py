"""The backends a network runs on, under one set of names, and the one dispatch to them.

The same names are used everywhere: CLI flags (``--engine``), config values
(``evaluate.engine``, ``cotrain.engine``), reports and the marks of written masks.

========= ============================================================ ===== ======
name      what runs                                                    SNN   trains
========= ============================================================ ===== ======
ann       the Keras network (TensorFlow)                               no    --
engine    nengoseg's time-batched spiking simulation (TensorFlow)      yes   yes
nengo-dl  NengoDL's simulator, the reference                           yes   yes
loihi     nengo-loihi: its emulator, or the board when NxSDK is there  yes   no
========= ============================================================ ===== ======

``snn`` is not a backend but a request: the spiking network on the default spiking
simulator, `DEFAULT_SNN` (the engine, the fastest), or on the config's
``evaluate.engine`` where a command reads a config. `resolve` turns a request into a
backend name and refuses anything else with the allowed names; `simulate` runs a
converted network on the engine or NengoDL (the Loihi path needs a rewrite first:
`nengoseg.deploy`).
"""

import dataclasses

from nengoseg.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class Backend:
    name: str
    summary: str
    spiking: bool
    trains: bool


BACKENDS = {
    b.name: b
    for b in (
        Backend("ann", "the Keras network (TensorFlow)", spiking=False, trains=False),
        Backend("engine", "nengoseg's time-batched spiking simulation (TensorFlow)",
                spiking=True, trains=True),
        Backend("nengo-dl", "NengoDL's simulator (the reference)", spiking=True, trains=True),
        Backend("loihi", "nengo-loihi's emulator (the board when NxSDK is installed)",
                spiking=True, trains=False),
    )
}
SNN = "snn"
DEFAULT_SNN = "engine"
# every backend, and the request "snn"
CHOICES = (*BACKENDS, SNN)
# the spiking simulators in TensorFlow, which score and co-train converted networks
SIMULATORS = tuple(b.name for b in BACKENDS.values() if b.trains)


def resolve(name, allowed, what="--engine", default_snn=DEFAULT_SNN):
    """The backend ``name`` asks for, among ``allowed`` (names, possibly with ``snn``).

    ``snn`` becomes ``default_snn``. Anything else not allowed is a ConfigError naming
    ``what`` (the flag or config key) and the allowed names.
    """
    if name == SNN and SNN in allowed:
        name = default_snn
    if name not in allowed:
        raise ConfigError(f"{what}={name!r} is not allowed; allowed: "
                          f"{', '.join(map(repr, allowed))}")
    return name


def describe(name):
    """``"engine (nengoseg's time-batched spiking simulation (TensorFlow))"``."""
    return f"{name} ({BACKENDS[name].summary})"


def simulate(backend, converted, x, minibatch_size, n_steps=None, verbose=True):
    """Run ``converted`` (a `nengoseg.convert.ConvertedNetwork`) on ``x`` with a spiking
    simulator (`SIMULATORS`); both return a `nengoseg.convert.SNNResult`.

    "engine": `nengoseg.engine.run_engine`; "nengo-dl": `nengoseg.convert.run_snn`. Both
    code the inputs the same way, so with the same ``minibatch_size`` they see the same
    input spikes.
    """
    backend = resolve(backend, SIMULATORS, "evaluate.engine")
    if backend == "nengo-dl":
        from nengoseg.convert.simulate import run_snn

        return run_snn(converted, x, n_steps=n_steps, minibatch_size=minibatch_size,
                       progress=verbose)
    from nengoseg.engine.run import run_engine

    return run_engine(converted.keras_model, converted=converted, x=x,
                      minibatch_size=minibatch_size, n_steps=n_steps, progress=verbose)
