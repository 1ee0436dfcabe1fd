"""thermosgd: the thermodynamics of SGD on scale-invariant networks.

Temperature T (learning rate and gradient noise), pressure p (weight decay), volume
V = r^2/2 (half the squared norm of the scale-invariant weights), energy U (training loss)
and entropy S (spread of the stationary weight distribution), measured and predicted.
"""

__version__ = "0.1.0"
