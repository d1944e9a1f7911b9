"""Loihi 1 hardware limits and published energy figures, in one place.

The per-core limits are those nengo-loihi 1.1 validates and splits by
(``nengo_loihi.block``, used by ``nengo_loihi.builder.validate`` and
``split_blocks``), the weight width its widest ``SynapseConfig``, the cores per
chip its allocators' limit, and one spike per step what its Loihi neuron models
emit. Energy figures are the ones KerasSpiking's ``ModelEnergy`` uses for its
"loihi" device, and a 45 nm multiply-accumulate for the ANN (``shared/DESIGN.md``).
``tests/test_loihi_limits.py`` checks each of these against nengo-loihi and
KerasSpiking.
"""

# ---- one neuron core
MAX_COMPARTMENTS = 1024  # neurons (compartments) per core
MAX_IN_AXONS = 4096  # input axons per core
MAX_OUT_AXONS = 4096  # output axon slots per core (a population-32 axon takes 2)
MAX_SYNAPSE_BITS = 16384 * 64  # synapse memory per core: 1,048,576 bits
WEIGHT_BITS = 8  # weight mantissa bits (a shared exponent per synapse group)

# ---- one chip
CORES_PER_CHIP = 128

# ---- neurons
MAX_SPIKES_PER_STEP = 1  # a compartment (or an input axon) spikes at most once per step

# ---- energy (joules)
# Davies et al. 2018 (IEEE Micro 38(1)), as used by KerasSpiking's ModelEnergy "loihi":
# a synaptic operation is 23.6 pJ (synaptic spike op) + 3.5 pJ (within-tile spike
# energy); a neuron update is 81 pJ (52 pJ active + 29 pJ inactive update, rounded).
LOIHI_ENERGY_PER_SYNOP = (23.6 + 3.5) * 1e-12
LOIHI_ENERGY_PER_NEURON_UPDATE = 81e-12
# Horowitz 2014 (ISSCC, 45 nm): a 32-bit float multiply-accumulate (3.7 pJ multiply +
# 0.9 pJ add), as used for the ANN by the Spiking-UNet paper.
ANN_ENERGY_PER_MAC = 4.6e-12
# ... and a 32-bit float accumulate (AC), what a spike costs each synapse it reaches in
# the Spiking-UNet paper's 45 nm comparison (SNN: synaptic operations x AC)
ENERGY_PER_AC_45NM = 0.9e-12

LIMITS = {
    "compartments": MAX_COMPARTMENTS,
    "in_axons": MAX_IN_AXONS,
    "out_axons": MAX_OUT_AXONS,
    "synapse_bits": MAX_SYNAPSE_BITS,
}
