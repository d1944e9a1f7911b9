"""Training: the ANN stage (Keras, `nengoseg.train.ann`) and the co-training of the
converted SNN (`nengoseg.train.cotrain`: the pipeline's stage; `cotrain_network`
builds the trainable network, `cotrain_fit` compiles and fits it, with hybrid or
surrogate-gradient through-time methods). ``SpikingModel.fit`` (`nengoseg.spiking_model`)
is the same fit for arrays in Python.
"""

from nengoseg.train.ann import train_ann

__all__ = ["train_ann"]
