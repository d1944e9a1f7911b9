"""`DeploySettings`: the config's ``loihi:`` section, checked.

Unknown keys and bad values raise `nengoseg.errors.ConfigError` naming
``loihi.KEY`` and what is allowed, like every other config section.
"""

import dataclasses
from typing import Optional

from nengoseg.errors import ConfigError

TARGETS = ("sim", "loihi")
EMULATORS = ("batched", "nengo-loihi")


@dataclasses.dataclass
class DeploySettings:
    """How `nengoseg.deploy.deploy_stage` runs a conversion on nengo-loihi.

    enabled
        Whether `nengoseg run` deploys (``nengoseg deploy`` always does).
    target
        "sim": the nengo-loihi emulator (default); "loihi": the board (needs NxSDK;
        without it the run stops with `LoihiUnavailable`, never falls back).
    n_images
        Evaluation examples run on Loihi (and in NengoDL for the comparison): whole
        subjects when they fit, else the first ``n_images`` slices. None: all.
    n_steps
        Steps per image; None: the conversion's ``n_steps``.
    settle_steps
        Board only: blank steps between images (the emulator is reset instead).
    max_evaluations
        Block-shape candidates tried per layer before giving up.
    pop_type
        Axon type of convolutional connections: 32 (nengo-loihi default) or 16.
    emulator
        How target "sim" runs: "batched" (default; `nengoseg.loihi.batched`, many images
        at once through nengo-loihi's built model, the same spikes as its emulator,
        faster; what it cannot reproduce stops with `BatchedEmulatorUnsupported`) or
        "nengo-loihi" (nengo-loihi's own emulator, one image after another).
    chunk_images
        Images the batched emulator runs at once; None: as many as keep its arrays
        near 1 GiB (at most 32).
    """

    enabled: bool = True
    target: str = "sim"
    n_images: Optional[int] = 16
    n_steps: Optional[int] = None
    settle_steps: int = 50
    max_evaluations: int = 400
    pop_type: int = 32
    emulator: str = "batched"
    chunk_images: Optional[int] = None

    def __post_init__(self):
        self.validate()

    def validate(self):
        if not isinstance(self.enabled, bool):
            _bad("enabled", self.enabled, "true or false")
        if self.target not in TARGETS:
            _bad("target", self.target, "'sim' (the nengo-loihi emulator) or 'loihi' (the board)")
        if self.emulator not in EMULATORS:
            _bad("emulator", self.emulator, "'batched' (many images at once) or 'nengo-loihi' "
                 "(nengo-loihi's emulator, one image at a time)")
        for key, low, optional in (("n_images", 1, True), ("n_steps", 1, True),
                                   ("settle_steps", 0, False), ("max_evaluations", 1, False),
                                   ("chunk_images", 1, True)):
            value = getattr(self, key)
            if optional and value is None:
                continue
            if not (isinstance(value, int) and not isinstance(value, bool) and value >= low):
                _bad(key, value, ("null or " if optional else "") + f"an integer >= {low}")
        if self.pop_type not in (16, 32):
            _bad("pop_type", self.pop_type, "16 or 32")

    @classmethod
    def from_config(cls, section):
        """Settings from the config's ``loihi`` mapping (None: defaults)."""
        section = dict(section or {})
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(section) - set(known))
        if unknown:
            raise ConfigError(f"loihi.{unknown[0]} is not a known key; allowed: {', '.join(known)}")
        return cls(**section)

    def to_dict(self):
        return dataclasses.asdict(self)


def _bad(key, value, allowed):
    raise ConfigError(f"loihi.{key}={value!r} is not allowed; allowed: {allowed}")
