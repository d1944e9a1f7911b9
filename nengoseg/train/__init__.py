"""Training: the ANN stage (Keras) and, later, hybrid co-training of the SNN."""

from nengoseg.train.ann import train_ann

__all__ = ["train_ann"]
