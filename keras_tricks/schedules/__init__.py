"""Learning-rate schedules (`keras.optimizers.schedules.LearningRateSchedule`).

`OneCycle`: Smith's one-cycle policy with PyTorch's `OneCycleLR` arguments;
`OneCycle.momentum(step)` gives the matching momentum cycle.
"""

from keras_tricks.schedules.one_cycle import OneCycle

__all__ = ["OneCycle"]
