"""One row per optimizer: lamina constructor, an independent reference of its update rule, and
the torch optimizer it must match where the formulas agree.

The references are written from the formulas (the sheet's, and Keras's for the optimizers the
sheet does not give), in float64 NumPy on the flattened variables, not from lamina's code.
The problem is a fixed quadratic `f(x) = 0.5 * x^T A x - b^T x` with gradient `A x - b`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

import lamina.optimizers as optimizers

SHAPES = [(3,), (2, 2)]
SIZE = sum(int(np.prod(shape)) for shape in SHAPES)
STEPS = 6


def _problem() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    m = rng.normal(size=(SIZE, SIZE))
    a = m @ m.T / SIZE + np.eye(SIZE)
    return a, rng.normal(size=SIZE), rng.normal(size=SIZE)


A, B, X0 = _problem()


def gradient(x: np.ndarray) -> np.ndarray:
    return A @ x - B


def make_variables() -> list[torch.nn.Parameter]:
    """The two variables (a vector and a matrix) whose concatenation is `X0`, in float64."""
    variables, offset = [], 0
    for shape in SHAPES:
        count = int(np.prod(shape))
        values = torch.tensor(X0[offset : offset + count].reshape(shape), dtype=torch.float64)
        variables.append(torch.nn.Parameter(values))
        offset += count
    return variables


def flatten(variables: list[torch.Tensor]) -> np.ndarray:
    return torch.cat([v.detach().reshape(-1) for v in variables]).numpy()


def loss(variables: list[torch.Tensor]) -> torch.Tensor:
    x = torch.cat([v.reshape(-1) for v in variables])
    a = torch.as_tensor(A)
    return 0.5 * x @ a @ x - torch.as_tensor(B) @ x


def run(optimizer: Any, steps: int = STEPS) -> list[np.ndarray]:
    """Drive an optimizer through `loss.backward(); step()`; the iterates after each step."""
    variables = make_variables()
    optimizer.build(variables)
    iterates = []
    for _ in range(steps):
        loss(variables).backward()
        optimizer.step()
        iterates.append(flatten(variables))
    return iterates


def run_torch(make: Callable[[list[torch.Tensor]], torch.optim.Optimizer]) -> list[np.ndarray]:
    variables = make_variables()
    optimizer = make(variables)
    iterates = []
    for _ in range(STEPS):
        optimizer.zero_grad()
        loss(variables).backward()
        optimizer.step()
        iterates.append(flatten(variables))
    return iterates


# ----------------------------------------------------------------------------- reference rules
# Each takes a learning-rate sequence `lrs(t)` (t counts from 0) and returns the iterates.


def gradient_descent(lrs, steps=STEPS):
    x, out = X0.copy(), []
    for t in range(steps):
        x = x - lrs(t) * gradient(x)
        out.append(x)
    return out


def sheet_momentum(lrs, momentum, steps=STEPS):
    # v = momentum * v + gradient; W = W - learning_rate * v
    x, v, out = X0.copy(), np.zeros(SIZE), []
    for t in range(steps):
        v = momentum * v + gradient(x)
        x = x - lrs(t) * v
        out.append(x)
    return out


def sheet_nesterov(lrs, momentum, steps=STEPS):
    """The sheet's NAG, reported at the look-ahead point `x - momentum * v` that Keras tracks."""
    x, v, out = X0.copy(), np.zeros(SIZE), []
    for t in range(steps):
        v = momentum * v + lrs(t) * gradient(x - momentum * v)
        x = x - v
        out.append(x - momentum * v)
    return out


def keras_sgd(lrs, momentum, nesterov=False, weight_decay=0.0, steps=STEPS):
    x, m, out = X0.copy(), np.zeros(SIZE), []
    for t in range(steps):
        g = gradient(x)
        x = x - lrs(t) * weight_decay * x
        m = momentum * m - lrs(t) * g
        x = x + (momentum * m - lrs(t) * g if nesterov else m)
        out.append(x)
    return out


def sheet_adagrad(lrs, epsilon, steps=STEPS):
    # G = G + gradient^2; W = W - learning_rate * gradient / (sqrt(G) + eps)
    x, acc, out = X0.copy(), np.zeros(SIZE), []
    for t in range(steps):
        g = gradient(x)
        acc = acc + g**2
        x = x - lrs(t) * g / (np.sqrt(acc) + epsilon)
        out.append(x)
    return out


def keras_adagrad(lrs, initial_accumulator_value, epsilon, steps=STEPS):
    x, acc, out = X0.copy(), np.full(SIZE, initial_accumulator_value), []
    for t in range(steps):
        g = gradient(x)
        acc = acc + g**2
        x = x - lrs(t) * g / np.sqrt(acc + epsilon)
        out.append(x)
    return out


def sheet_rmsprop(lrs, rho, epsilon, steps=STEPS):
    # G = decay_rate * G + (1 - decay_rate) * gradient^2; W -= lr * gradient / (sqrt(G) + eps)
    x, acc, out = X0.copy(), np.zeros(SIZE), []
    for t in range(steps):
        g = gradient(x)
        acc = rho * acc + (1 - rho) * g**2
        x = x - lrs(t) * g / (np.sqrt(acc) + epsilon)
        out.append(x)
    return out


def keras_rmsprop(lrs, rho, momentum, epsilon, centered, steps=STEPS):
    x, v, avg, m, out = X0.copy(), np.zeros(SIZE), np.zeros(SIZE), np.zeros(SIZE), []
    for t in range(steps):
        g = gradient(x)
        v = rho * v + (1 - rho) * g**2
        if centered:
            avg = rho * avg + (1 - rho) * g
            increment = lrs(t) * g / np.sqrt(v - avg**2 + epsilon)
        else:
            increment = lrs(t) * g / np.sqrt(v + epsilon)
        if momentum > 0:
            m = momentum * m + increment
            x = x - m
        else:
            x = x - increment
        out.append(x)
    return out


def sheet_adam(lrs, beta_1, beta_2, epsilon, steps=STEPS):
    x, m, v, out = X0.copy(), np.zeros(SIZE), np.zeros(SIZE), []
    for t in range(1, steps + 1):
        g = gradient(x)
        m = beta_1 * m + (1 - beta_1) * g
        v = beta_2 * v + (1 - beta_2) * g**2
        m_hat = m / (1 - beta_1**t)
        v_hat = v / (1 - beta_2**t)
        x = x - lrs(t - 1) * m_hat / (np.sqrt(v_hat) + epsilon)
        out.append(x)
    return out


def keras_adam(lrs, beta_1, beta_2, epsilon, amsgrad=False, weight_decay=0.0, steps=STEPS):
    x, m, v, v_max, out = X0.copy(), np.zeros(SIZE), np.zeros(SIZE), np.zeros(SIZE), []
    for t in range(1, steps + 1):
        g = gradient(x)
        lr = lrs(t - 1)
        x = x - lr * weight_decay * x
        alpha = lr * np.sqrt(1 - beta_2**t) / (1 - beta_1**t)
        m = m + (g - m) * (1 - beta_1)
        v = v + (g**2 - v) * (1 - beta_2)
        if amsgrad:
            v_max = np.maximum(v_max, v)
        x = x - m * alpha / (np.sqrt(v_max if amsgrad else v) + epsilon)
        out.append(x)
    return out


def keras_adadelta(lrs, rho, epsilon, steps=STEPS):
    x, acc_g, acc_d, out = X0.copy(), np.zeros(SIZE), np.zeros(SIZE), []
    for t in range(steps):
        g = gradient(x)
        acc_g = rho * acc_g + (1 - rho) * g**2
        delta = -np.sqrt(acc_d + epsilon) * g / np.sqrt(acc_g + epsilon)
        acc_d = rho * acc_d + (1 - rho) * delta**2
        x = x + lrs(t) * delta
        out.append(x)
    return out


def keras_adamax(lrs, beta_1, beta_2, epsilon, steps=STEPS):
    x, m, u, out = X0.copy(), np.zeros(SIZE), np.zeros(SIZE), []
    for t in range(1, steps + 1):
        g = gradient(x)
        m = beta_1 * m + (1 - beta_1) * g
        u = np.maximum(beta_2 * u, np.abs(g))
        x = x - lrs(t - 1) / (1 - beta_1**t) * m / (u + epsilon)
        out.append(x)
    return out


def keras_nadam(lrs, beta_1, beta_2, epsilon, steps=STEPS):
    x, m, v, product, out = X0.copy(), np.zeros(SIZE), np.zeros(SIZE), 1.0, []
    for t in range(1, steps + 1):
        g = gradient(x)
        u_t = beta_1 * (1 - 0.5 * 0.96**t)
        u_next = beta_1 * (1 - 0.5 * 0.96 ** (t + 1))
        product = product * u_t
        m = beta_1 * m + (1 - beta_1) * g
        v = beta_2 * v + (1 - beta_2) * g**2
        m_hat = u_next * m / (1 - product * u_next) + (1 - u_t) * g / (1 - product)
        v_hat = v / (1 - beta_2**t)
        x = x - lrs(t - 1) * m_hat / (np.sqrt(v_hat) + epsilon)
        out.append(x)
    return out


def keras_lion(lrs, beta_1, beta_2, weight_decay=0.0, steps=STEPS):
    x, m, out = X0.copy(), np.zeros(SIZE), []
    for t in range(steps):
        g = gradient(x)
        x = x - lrs(t) * weight_decay * x
        x = x - lrs(t) * np.sign(beta_1 * m + (1 - beta_1) * g)
        m = beta_2 * m + (1 - beta_2) * g
        out.append(x)
    return out


def constant(value: float) -> Callable[[int], float]:
    return lambda step: value


@dataclass
class Case:
    """A lamina optimizer and what its iterates must equal."""

    id: str
    make: Callable[[], optimizers.Optimizer]
    reference: Callable[[], list[np.ndarray]]
    # The torch optimizer whose formula agrees for these arguments, if any.
    torch_reference: Callable[[list[torch.Tensor]], torch.optim.Optimizer] | None = None
    tolerance: float = 1e-12
    notes: dict[str, Any] = field(default_factory=dict)


LR = 0.05
CASES = [
    Case(
        "sgd",
        lambda: optimizers.SGD(LR),
        lambda: gradient_descent(constant(LR)),
        lambda p: torch.optim.SGD(p, lr=LR),
    ),
    Case(
        "sgd-momentum",
        lambda: optimizers.SGD(LR, momentum=0.9),
        lambda: sheet_momentum(constant(LR), 0.9),
        lambda p: torch.optim.SGD(p, lr=LR, momentum=0.9),
    ),
    Case(
        "sgd-nesterov",
        lambda: optimizers.SGD(LR, momentum=0.9, nesterov=True),
        lambda: sheet_nesterov(constant(LR), 0.9),
        lambda p: torch.optim.SGD(p, lr=LR, momentum=0.9, nesterov=True),
    ),
    Case(
        "sgd-weight-decay",
        lambda: optimizers.SGD(LR, momentum=0.5, weight_decay=0.1),
        lambda: keras_sgd(constant(LR), 0.5, weight_decay=0.1),
    ),
    Case(
        "adagrad-sheet",
        lambda: optimizers.Adagrad(0.3, initial_accumulator_value=0.0, epsilon=0.0),
        lambda: sheet_adagrad(constant(0.3), epsilon=0.0),
        lambda p: torch.optim.Adagrad(p, lr=0.3, eps=0.0),
    ),
    Case(
        "adagrad-keras",
        lambda: optimizers.Adagrad(0.3, epsilon=0.5),
        lambda: keras_adagrad(constant(0.3), 0.1, 0.5),
    ),
    Case(
        "rmsprop-sheet",
        lambda: optimizers.RMSprop(LR, rho=0.8, epsilon=0.0),
        lambda: sheet_rmsprop(constant(LR), 0.8, 0.0),
        lambda p: torch.optim.RMSprop(p, lr=LR, alpha=0.8, eps=0.0),
    ),
    Case(
        "rmsprop-keras",
        lambda: optimizers.RMSprop(LR, epsilon=0.5),
        lambda: keras_rmsprop(constant(LR), 0.9, 0.0, 0.5, False),
    ),
    Case(
        "rmsprop-momentum-centered",
        lambda: optimizers.RMSprop(LR, rho=0.8, momentum=0.7, epsilon=0.1, centered=True),
        lambda: keras_rmsprop(constant(LR), 0.8, 0.7, 0.1, True),
    ),
    Case(
        "rmsprop-momentum-centered-torch",
        lambda: optimizers.RMSprop(LR, rho=0.8, momentum=0.7, epsilon=0.0, centered=True),
        lambda: keras_rmsprop(constant(LR), 0.8, 0.7, 0.0, True),
        lambda p: torch.optim.RMSprop(p, lr=LR, alpha=0.8, eps=0.0, momentum=0.7, centered=True),
    ),
    Case(
        "adam-sheet",
        lambda: optimizers.Adam(LR, epsilon=0.0),
        lambda: sheet_adam(constant(LR), 0.9, 0.999, 0.0),
        lambda p: torch.optim.Adam(p, lr=LR, eps=0.0),
    ),
    Case(
        "adam-keras",
        lambda: optimizers.Adam(LR, beta_1=0.8, beta_2=0.9, epsilon=0.5),
        lambda: keras_adam(constant(LR), 0.8, 0.9, 0.5),
    ),
    Case(
        "adam-amsgrad",
        lambda: optimizers.Adam(LR, beta_2=0.5, epsilon=0.1, amsgrad=True),
        lambda: keras_adam(constant(LR), 0.9, 0.5, 0.1, amsgrad=True),
    ),
    Case(
        "adamw",
        lambda: optimizers.AdamW(LR, weight_decay=0.5, epsilon=0.0),
        lambda: keras_adam(constant(LR), 0.9, 0.999, 0.0, weight_decay=0.5),
        lambda p: torch.optim.AdamW(p, lr=LR, weight_decay=0.5, eps=0.0),
    ),
    Case(
        "adamw-keras-epsilon",
        lambda: optimizers.AdamW(LR, weight_decay=0.5, epsilon=0.5),
        lambda: keras_adam(constant(LR), 0.9, 0.999, 0.5, weight_decay=0.5),
    ),
    Case(
        "adadelta",
        lambda: optimizers.Adadelta(1.0, rho=0.9, epsilon=1e-3),
        lambda: keras_adadelta(constant(1.0), 0.9, 1e-3),
        lambda p: torch.optim.Adadelta(p, lr=1.0, rho=0.9, eps=1e-3),
    ),
    Case(
        "adamax",
        lambda: optimizers.Adamax(LR, epsilon=0.5),
        lambda: keras_adamax(constant(LR), 0.9, 0.999, 0.5),
    ),
    Case(
        "adamax-torch",
        lambda: optimizers.Adamax(LR, epsilon=0.0),
        lambda: keras_adamax(constant(LR), 0.9, 0.999, 0.0),
        lambda p: torch.optim.Adamax(p, lr=LR, eps=0.0),
    ),
    Case(
        "nadam",
        lambda: optimizers.Nadam(LR, epsilon=0.5),
        lambda: keras_nadam(constant(LR), 0.9, 0.999, 0.5),
        lambda p: torch.optim.NAdam(p, lr=LR, eps=0.5, momentum_decay=1.0),
        # torch keeps the momentum-schedule product as a float32 scalar even for float64
        # variables, so the float64 iterates agree to float32 precision only.
        tolerance=1e-7,
    ),
    Case(
        "lion",
        lambda: optimizers.Lion(LR, beta_1=0.5),
        lambda: keras_lion(constant(LR), 0.5, 0.99),
    ),
    Case(
        "lion-weight-decay",
        lambda: optimizers.Lion(LR, weight_decay=2.0),
        lambda: keras_lion(constant(LR), 0.9, 0.99, weight_decay=2.0),
    ),
]

# One default-constructed instance of every optimizer class, for the generic tests.
DEFAULTS = [
    optimizers.SGD,
    optimizers.RMSprop,
    optimizers.Adagrad,
    optimizers.Adadelta,
    optimizers.Adam,
    optimizers.AdamW,
    optimizers.Adamax,
    optimizers.Nadam,
    optimizers.Lion,
]

# Keras's documented defaults: (learning_rate, {other arguments}).
KERAS_DEFAULTS = {
    optimizers.SGD: (0.01, {"momentum": 0.0, "nesterov": False, "name": "SGD"}),
    optimizers.RMSprop: (
        0.001,
        {"rho": 0.9, "momentum": 0.0, "epsilon": 1e-7, "centered": False, "name": "rmsprop"},
    ),
    optimizers.Adagrad: (0.001, {"initial_accumulator_value": 0.1, "epsilon": 1e-7}),
    optimizers.Adadelta: (0.001, {"rho": 0.95, "epsilon": 1e-7, "name": "adadelta"}),
    optimizers.Adam: (
        0.001,
        {"beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7, "amsgrad": False, "name": "adam"},
    ),
    optimizers.AdamW: (0.001, {"weight_decay": 0.004, "epsilon": 1e-7, "name": "adamw"}),
    optimizers.Adamax: (0.001, {"beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7}),
    optimizers.Nadam: (0.001, {"beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7}),
    optimizers.Lion: (0.001, {"beta_1": 0.9, "beta_2": 0.99, "name": "lion"}),
}
