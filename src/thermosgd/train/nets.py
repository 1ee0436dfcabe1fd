"""The networks of a training run: data and model of a `TrainConfig`, and the two adapters the
engine steps, one model (`SingleNet`, G = 1) or G configs batched (`BatchedNet`: G BN-MLPs as
one `BatchedBNMLP`, or G ConvNets / ResNets as one `thermosgd.nn.batched_convnet.BatchedConvNet`).

Both adapters expose the same methods, each returning per-config values with a leading axis
of length G: ``train_step`` (loss, radius before the step, pre-projection norm, Q = r^2
||g_B||^2), ``evaluate`` (whole-set loss and accuracy), ``grads``/``weights`` (flattened, in the
single model's parameter order), ``radius``, ``buffers``, the checkpoint states of config g
(``model_state``, ``opt_state``), ``si_distance`` and ``freeze``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from thermosgd.nn.batched import BUFFERS, BatchedProtocol
from thermosgd.nn.batched_convnet import BatchedConvNet
from thermosgd.nn.conv_models import convnet, preact_resnet18
from thermosgd.nn.data import (
    FASHION_MNIST_DIR,
    Dataset,
    load_cifar10,
    load_cifar100,
    load_digits,
    load_fashion_mnist,
    make_teacher_student,
)
from thermosgd.nn.models import BatchedBNMLP, batched_cross_entropy, variant_mlp
from thermosgd.nn.optim import make_optimizer
from thermosgd.nn.scale_invariance import (
    SIDistance,
    batched_group_radius,
    check_scale_invariance,
    group_radius,
    si_distance,
)
from thermosgd.train.config import DEVICES, TrainConfig

__all__ = [
    "BatchedNet",
    "SingleNet",
    "build_model",
    "load_data",
    "opt_args",
    "probe_seed",
    "resolve_device",
    "si_params",
    "single_layout",
    "verify_si",
]


def resolve_device(device: str) -> torch.device:
    """ "auto" -> cuda when available, else cpu; "cuda" without CUDA is a ValueError."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but CUDA is not available (use auto or cpu)")
    if device not in DEVICES:
        raise ValueError(f"device == {device!r}, must be one of {', '.join(DEVICES)}")
    return torch.device(device)


def load_data(c: TrainConfig, device: str | torch.device = "cpu") -> Dataset:
    """The training data of ``c`` on ``device`` (vectors for the mlp, images otherwise)."""
    images = c.model != "mlp"
    kw = {"label_noise": c.label_noise, "seed": c.data_seed, "device": device}
    if c.data == "digits":
        ds = load_digits(as_images=images, test_fraction=c.test_fraction, **kw)
    elif c.data == "fashion-mnist":
        ds = load_fashion_mnist(c.data_dir or FASHION_MNIST_DIR, flatten=not images, **kw)
    elif c.data == "cifar10":
        ds = load_cifar10(c.data_dir, **kw)
    elif c.data == "cifar100":
        ds = load_cifar100(c.data_dir, **kw)
    else:
        ds = make_teacher_student(**kw)
    if not images and len(ds.input_shape) > 1:
        ds = ds.flatten()
    return ds


def build_model(c: TrainConfig, ds: Dataset) -> nn.Module:
    """The model of ``c`` for the data ``ds`` (init seed ``c.init_seed``): SI with a frozen head,
    or the mlp ``variant``."""
    shape = ds.input_shape
    if c.model == "mlp":
        return variant_mlp(
            c.variant, int(np.prod(shape)), c.hidden, ds.num_classes, init_seed=c.init_seed
        )
    if len(shape) != 3:
        raise ValueError(f"model {c.model!r} needs images (C, H, W), the data have shape {shape}")
    if c.model == "convnet":
        return convnet(
            c.model_width,
            shape[0],
            ds.num_classes,
            input_size=shape[1:],
            init_seed=c.init_seed,
            variant=c.variant,
            memory_format=c.memory_format,
        )
    return preact_resnet18(
        c.model_width,
        shape[0],
        ds.num_classes,
        input_size=shape[1:],
        init_seed=c.init_seed,
        memory_format=c.memory_format,
    )


def si_params(model: nn.Module) -> list[nn.Parameter]:
    """The model's ``si_parameters()``, else every trainable parameter."""
    fn = getattr(model, "si_parameters", None)
    if callable(fn):
        return list(fn())
    return [p for p in model.parameters() if p.requires_grad]


def opt_args(c: TrainConfig) -> dict[str, Any]:
    """The optimizer arguments of `make_optimizer` / `ThermoMonitor` (none for SGD)."""
    return {} if c.optimizer == "sgd" else c.optimizer_kwargs


def probe_seed(seed: int) -> int:
    """Seed of the noise-probe generator, derived from the training seed (a different stream)."""
    return int(np.random.SeedSequence([int(seed), 0x7E57]).generate_state(1)[0])


def verify_si(model: nn.Module, params, ds: Dataset, batch_size: int) -> None:
    """check_scale_invariance on one batch drawn by a private generator (seed 0)."""
    gen = torch.Generator(device=ds.device).manual_seed(0)
    idx = torch.randint(0, ds.n_train, (batch_size,), generator=gen, device=ds.device)
    try:
        check_scale_invariance(
            model, F.cross_entropy, (ds.x_train[idx], ds.y_train[idx]), params, name="SI weights"
        )
    except ValueError as e:
        raise ValueError(f"the model is not scale-invariant, refusing to train it: {e}") from None


def _flat(tensors: Sequence[Tensor]) -> Tensor:
    return torch.cat([t.reshape(-1) for t in tensors])


def single_layout(model: nn.Module, t: Tensor) -> Tensor:
    """A stacked (G, ...) parameter-shaped tensor of a batched ``model`` with each config's
    slice in its single model's layout: a `BatchedBNMLP` stores config g's Linear weight
    transposed, (G, in, out) -> (G, out, in) (a view); a `BatchedConvNet` stores it as it is."""
    return t.transpose(-2, -1) if isinstance(model, BatchedBNMLP) else t


@torch.no_grad()
def _evaluate(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    as_batched: Callable[[Tensor], Tensor],
    chunk: int = 2048,
) -> tuple[np.ndarray, np.ndarray]:
    """Mean cross-entropy and accuracy per config over (x, y), BN in eval mode (running
    statistics), in chunks of ``chunk`` samples; ``as_batched`` maps logits to (G, B, K)."""
    was_training = model.training
    model.eval()
    try:
        loss = correct = None
        for i in range(0, x.shape[0], chunk):
            logits = as_batched(model(x[i : i + chunk])).double()
            t = y[i : i + chunk]
            lk = F.cross_entropy(
                logits.transpose(1, 2), t.expand(logits.shape[0], -1), reduction="none"
            ).sum(dim=1)
            ck = (logits.argmax(dim=2) == t).sum(dim=1, dtype=torch.float64)
            loss = lk if loss is None else loss + lk
            correct = ck if correct is None else correct + ck
    finally:
        model.train(was_training)
    n = x.shape[0]
    return (loss / n).cpu().numpy(), (correct / n).cpu().numpy()


def _si_distance64(model: nn.Module, params, x: Tensor, y: Tensor) -> SIDistance:
    """`si_distance` of a float64 copy of ``model`` (the group ``params`` mapped by name): the
    loss change of an SI model under scaling is O(normalization eps) ~ 1e-4, which float32
    round-off of the forward pass (~1e-7 of the loss, kernel-choice dependent) would blur."""
    names = {id(p): n for n, p in model.named_parameters()}
    m64 = copy.deepcopy(model).double()
    by_name = dict(m64.named_parameters())
    group = [by_name[names[id(p)]] for p in params]
    return si_distance(m64, F.cross_entropy, (x.double(), y), group)


class SingleNet:
    """One model + one protocol optimizer, seen as G = 1 configs."""

    G = 1

    def __init__(self, model: nn.Module, params: list[nn.Parameter], opt) -> None:
        self.model, self.params, self.opt = model, params, opt

    def train_step(self, x: Tensor, y: Tensor):
        """One optimizer step: (loss, r before the step, pre-projection norm or None, Q)."""
        self.opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(self.model(x), y)
        loss.backward()
        self.opt.step()
        g = self.opt.param_groups[0]
        pre = g["last_norm"]
        r = g["last_radius"].reshape(1)
        gn2 = sum(
            torch.linalg.vector_norm(p.grad, dtype=torch.float64).square()
            for p in self.params
            if p.grad is not None
        )
        return (
            loss.detach().reshape(1),
            r,
            (None if pre is None else pre.reshape(1)),
            r.square() * gn2,
        )

    def set_hyperparameter(self, g: int, name: str, value: float) -> None:
        """Set the protocol hyperparameter ``name`` (lr, elr or wd) for the next step."""
        self.opt.param_groups[0][name] = value

    def evaluate(self, x: Tensor, y: Tensor) -> tuple[np.ndarray, np.ndarray]:
        """(G,) mean cross-entropy and accuracy over (x, y), BN in eval mode."""
        return _evaluate(self.model, x, y, lambda logits: logits.unsqueeze(0))

    def grads(self, x: Tensor, y: Tensor) -> Tensor:
        """(G, d) minibatch gradient of the trained group, flattened."""
        loss = F.cross_entropy(self.model(x), y)
        return _flat(torch.autograd.grad(loss, self.params)).unsqueeze(0)

    def weights(self) -> Tensor:
        """(G, d) weights of the trained group, flattened."""
        return _flat([p.detach() for p in self.params]).unsqueeze(0)

    def radius(self) -> Tensor:
        """(G,) float64 radius ||w|| of the trained group."""
        return torch.tensor([group_radius(self.params)], dtype=torch.float64)

    def buffers(self) -> list[Tensor]:
        return list(self.model.buffers())

    def model_state(self, g: int) -> dict:
        return self.model.state_dict()

    def si_distance(self, g: int, x: Tensor, y: Tensor) -> SIDistance:
        return _si_distance64(self.model, self.params, x, y)

    def opt_state(self, g: int) -> dict:
        return self.opt.state_dict()

    def freeze(self, g: int) -> None:  # a single run stops instead
        pass


class BatchedNet:
    """G configs as one batched model (`BatchedBNMLP` or `BatchedConvNet`: SI parameters with a
    leading config axis, ``to_model(g)``) stepped by `BatchedProtocol`."""

    def __init__(self, model: BatchedBNMLP | BatchedConvNet, opt: BatchedProtocol,
                 configs) -> None:
        self.model, self.opt, self.configs = model, opt, configs
        self.G = model.num_configs
        self.params = model.si_parameters()
        self._finite = [w.detach().clone() for w in self.params]

    def train_step(self, x: Tensor, y: Tensor):
        """One step of every config: per-config (loss, r before, pre-projection norm, Q)."""
        self.opt.zero_grad(set_to_none=True)
        losses = batched_cross_entropy(self.model(x), y)
        losses.sum().backward()
        self.opt.step()
        g = self.opt.param_groups[0]
        r = g["last_radius"]
        gn2 = sum(
            torch.linalg.vector_norm(p.grad.reshape(self.G, -1), dim=1).double().square()
            for p in self.params
        )
        return losses.detach(), r, g["last_norm"], r.square() * gn2

    @torch.no_grad()
    def set_hyperparameter(self, g: int, name: str, value: float) -> None:
        """Set config g's protocol hyperparameter ``name`` (lr, elr or wd) for the next step."""
        self.opt.param_groups[0][name][g] = value

    def evaluate(self, x: Tensor, y: Tensor) -> tuple[np.ndarray, np.ndarray]:
        """(G,) mean cross-entropy and accuracy over (x, y), BN in eval mode."""
        return _evaluate(self.model, x, y, lambda logits: logits)

    def grads(self, x: Tensor, y: Tensor) -> Tensor:
        """(G, d) minibatch gradients, each config's in its single model's order."""
        losses = batched_cross_entropy(self.model(x), y)
        gs = torch.autograd.grad(losses.sum(), self.params)
        # config g's gradient in its single model's order (a BNMLP: each (out, in) flattened)
        return torch.cat([single_layout(self.model, t).reshape(self.G, -1) for t in gs], dim=1)

    def weights(self) -> Tensor:
        """(G, d) weights, each config's in its single model's order."""
        return torch.cat(
            [single_layout(self.model, w.detach()).reshape(self.G, -1) for w in self.params],
            dim=1,
        )

    def radius(self) -> Tensor:
        """(G,) float64 radius ||w|| of every config's group."""
        return batched_group_radius(self.params).cpu()

    def buffers(self) -> list[Tensor]:
        return list(self.model.buffers())

    def model_state(self, g: int) -> dict:
        return self.model.to_model(g).state_dict()

    def si_distance(self, g: int, x: Tensor, y: Tensor) -> SIDistance:
        m = self.model.to_model(g)
        return _si_distance64(m, m.si_parameters(), x, y)

    def opt_state(self, g: int) -> dict:
        """Config g's optimizer as the state_dict of a single model's protocol optimizer."""
        c = self.configs[g]
        m = self.model.to_model(g)
        opt = make_optimizer(
            c.protocol, m.si_parameters(), **c.hyperparameters, **opt_args(c)
        )
        group = self.opt.param_groups[0]
        for key in ("last_radius", "last_norm"):
            if group[key] is not None:
                opt.param_groups[0][key] = group[key][g].clone()
        names = BUFFERS[self.opt.optimizer]
        started = group["last_radius"] is not None  # torch makes buffers at the first step
        for p, q in zip(self.params, m.si_parameters(), strict=True):
            if started and names:  # config g's buffers in the single model's layout
                st = {n: single_layout(self.model, self.opt.state[p][n])[g].contiguous()
                      for n in names}
                if self.opt.optimizer == "adamw":
                    st["step"] = torch.tensor(float(group["step"]), dtype=torch.float32)
                opt.state[q] = st
        return opt.state_dict()

    @torch.no_grad()
    def freeze(self, g: int) -> None:
        """Stop config g: rate 0 (no update) and finite weights, so it cannot disturb others."""
        group = self.opt.param_groups[0]
        for key in ("lr", "elr"):
            if key in group:
                group[key][g] = 0.0
        for w, w0 in zip(self.params, self._finite, strict=True):
            w[g] = w0[g]
            for name in BUFFERS[self.opt.optimizer]:  # lr 0 times a NaN buffer is NaN
                self.opt.state[w][name][g] = 0.0
