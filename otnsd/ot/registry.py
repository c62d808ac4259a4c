"""The loss registry: losses by name with checked parameters, weighted sums, and what each loss
declares about coupling the samples of a batch."""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

from ._checks import (COSTS, LEVELS, SOLVERS, _SOLVER_OPTIONS, _check_choice, _check_lam, _check_number,
                      _check_positive, _check_solver_options)
from .losses import huber_loss, infonce_loss, mse_loss, partial_ot_loss, trimmed_mse_loss
from .solvers import partial_plan


_UNDECLARED = object()


@dataclass(frozen=True)
class _Registered:
    fn: Callable[..., torch.Tensor]
    params: tuple[str, ...]  # the names a LossTerm may bind
    defaults: dict[str, Any]  # the signature's defaults, for a couples_samples function
    couples_samples: bool | Callable[[dict], bool]


_REGISTRY: dict[str, _Registered] = {}

# Checks by parameter name: a registered loss taking one of these names gets the same check.
_PARAM_CHECKS: dict[str, Callable[[Any], Any]] = {
    "lam": _check_lam,
    "temperature": lambda v: _check_positive("temperature", v),
    "level": lambda v: _check_choice("level", v, LEVELS),
    "cost": lambda v: _check_choice("cost", v, COSTS),
    "solver": lambda v: _check_choice("solver", v, SOLVERS),
}


def register_loss(name: str, *, couples_samples=_UNDECLARED, options: tuple[str, ...] = ()) -> Callable:
    """Decorator adding a loss ``f(x, y, **params) -> scalar tensor`` to :func:`get_loss`.

    Parameters
    ----------
    name : str
        The name :class:`LossTerm`, :func:`get_loss` and ``TrainConfig.loss`` know it by.
    couples_samples : bool or callable(params) -> bool
        Required. True when a sample's loss depends on the other samples of its batch (one plan
        or one softmax over the batch): data-parallel training then evaluates it on the batch
        gathered from every process. False when the loss is a mean of per-sample terms: each
        process then averages its own slice. A callable receives the loss's parameters (defaults
        filled in) and decides per configuration, as partial OT does by its ``level``.
    options : tuple of str
        Parameter names that ``f`` takes through ``**kwargs``.

    Notes
    -----
    A loss's parameters are the keyword arguments of ``f`` after ``x`` and ``y``, plus
    ``options``; :class:`LossTerm` refuses any other name.

    Examples
    --------
    >>> @register_loss("mae", couples_samples=False)
    ... def mae_loss(x, y):
    ...     return (x - y).abs().flatten(1).sum(1).mean()
    """
    if couples_samples is _UNDECLARED:
        raise TypeError(
            f"register_loss({name!r}) must declare couples_samples: True if a sample's loss depends on "
            "the other samples of its batch (data-parallel training then gathers the whole batch), "
            "False if the loss is a mean of per-sample terms, or a function of the loss's parameters "
            "returning one of these"
        )
    if not (isinstance(couples_samples, bool) or callable(couples_samples)):
        raise TypeError(f"couples_samples must be True, False or a function of the parameters; got {couples_samples!r}")

    def wrap(fn: Callable) -> Callable:
        if name in _REGISTRY:
            raise ValueError(f"a loss named {name!r} is already registered")
        params = list(inspect.signature(fn).parameters.values())[2:]
        named = [p for p in params if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]
        _REGISTRY[name] = _Registered(
            fn=fn,
            # return_plan changes what the call returns: not a parameter of a training loss
            params=tuple(p.name for p in named if p.name != "return_plan") + tuple(options),
            defaults={p.name: p.default for p in named if p.default is not p.empty},
            couples_samples=couples_samples,
        )
        return fn

    return wrap


# sample-level OT solves one plan across the batch; token-level OT one plan inside each sample
register_loss("mse", couples_samples=False)(mse_loss)
register_loss("ot", couples_samples=lambda p: p["level"] == "sample", options=_SOLVER_OPTIONS)(partial_ot_loss)
register_loss("infonce", couples_samples=True)(infonce_loss)
# the robust baselines of partial OT: trimming over the batch couples its samples, Huber does not
register_loss("trimmed_mse", couples_samples=lambda p: p["level"] == "sample")(trimmed_mse_loss)
register_loss("huber", couples_samples=False)(huber_loss)


def available_losses() -> tuple[str, ...]:
    return tuple(sorted(_REGISTRY))


@dataclass(frozen=True)
class LossTerm:
    """One term of a training loss: a registered loss, its weight and its parameters.

    Every check of a loss's configuration happens here, once: the name, the parameter names (with
    a suggestion for a misspelt one), their values and the weight.

    Parameters
    ----------
    name : str
        A registered loss (see :func:`available_losses`).
    weight : float
        Its factor in the sum of terms; finite. Kept as given, as the cache key records it.
    params : dict or sequence of (name, value) pairs
        The loss's keyword arguments; stored as sorted pairs (immutable), read with :attr:`kwargs`.

    Examples
    --------
    >>> LossTerm("ot", 0.5, {"lam": 0.3, "level": "token"})
    LossTerm('ot', weight=0.5, params={'lam': 0.3, 'level': 'token'})
    """

    name: str
    weight: float = 1.0
    params: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self):
        if self.name not in _REGISTRY:
            raise ValueError(f"unknown loss {self.name!r}; choose one of {', '.join(available_losses())}")
        try:
            params = dict(self.params)
        except (TypeError, ValueError):
            raise ValueError(f"the parameters of {self.name!r} must be a dict of keyword arguments; got {self.params!r}") from None
        allowed = _REGISTRY[self.name].params
        unknown = sorted(map(str, set(params) - set(allowed)))
        if unknown:
            import difflib

            hints = [m for u in unknown for m in difflib.get_close_matches(u, allowed, n=1)]
            raise ValueError(
                f"loss {self.name!r} takes no parameter {', '.join(map(repr, unknown))}"
                + (f" (did you mean {', '.join(map(repr, hints))}?)" if hints else "")
                + f"; its parameters are {', '.join(allowed) or 'none'}"
            )
        for key, value in params.items():
            if key in _PARAM_CHECKS:
                _PARAM_CHECKS[key](value)
        options = {k: params[k] for k in _SOLVER_OPTIONS if k in params}
        if options:
            defaults = inspect.signature(partial_plan).parameters
            _check_solver_options(**{**{k: defaults[k].default for k in _SOLVER_OPTIONS}, **options})
        if not math.isfinite(_check_number(f"the weight of {self.name!r}", self.weight)):
            raise ValueError(f"the weight of {self.name!r} must be finite; got {self.weight}")
        object.__setattr__(self, "params", tuple(sorted(params.items())))
        _ = self.couples_samples  # a declaration that fails should fail here, not in a training step

    @property
    def kwargs(self) -> dict[str, Any]:
        """The parameters as keyword arguments of the loss."""
        return dict(self.params)

    @property
    def couples_samples(self) -> bool:
        """Whether the loss couples the samples of a batch, as its registration declares."""
        entry = _REGISTRY[self.name]
        declared = entry.couples_samples
        if callable(declared):
            declared = declared({**entry.defaults, **self.kwargs})
        if not isinstance(declared, (bool, np.bool_)):
            raise TypeError(f"the couples_samples declaration of loss {self.name!r} returned {declared!r}, not True or False")
        return bool(declared)

    def __repr__(self) -> str:
        weight = f", weight={self.weight!r}" if self.weight != 1 else ""
        params = f", params={self.kwargs!r}" if self.params else ""
        return f"LossTerm({self.name!r}{weight}{params})"


def loss_terms(spec) -> tuple[LossTerm, ...]:
    """The terms of a loss, however it is written.

    Parameters
    ----------
    spec : str, LossTerm, dict or list
        A name (``"mse"``), a :class:`LossTerm`, a dict ``{name: {"weight": w, **params}}``
        (weight 1 when absent), or a list or tuple of these. Each loss may appear once.

    Returns
    -------
    tuple of LossTerm, in the order given (the order in which the terms are summed)

    Examples
    --------
    >>> loss_terms({"mse": {}, "ot": {"weight": 0.5, "lam": 0.3}})
    (LossTerm('mse'), LossTerm('ot', weight=0.5, params={'lam': 0.3}))
    """
    if isinstance(spec, LossTerm):
        terms = (spec,)
    elif isinstance(spec, str):
        terms = (LossTerm(spec),)
    elif isinstance(spec, Mapping):
        terms = tuple(_dict_term(name, params) for name, params in spec.items())
    elif isinstance(spec, (list, tuple)):
        terms = tuple(t for part in spec for t in loss_terms(part))
    else:
        raise ValueError(f"a loss is a name, a LossTerm, a dict {{name: params}} or a list of them; got {spec!r}")
    if not terms:
        raise ValueError("a loss needs at least one term")
    names = [t.name for t in terms]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"loss {twice[0]!r} appears more than once; give each loss once (its weight scales it)")
    return terms


def _dict_term(name: str, params) -> LossTerm:
    if not isinstance(params, Mapping):
        raise ValueError(f"the parameters of {name!r} must be a dict, e.g. {{{name!r}: {{'weight': 1.0}}}}; got {params!r}")
    params = dict(params)
    return LossTerm(name, params.pop("weight", 1.0), params)


def loss_dict(spec) -> dict[str, dict[str, Any]]:
    """The dict form of a loss, ``{name: {"weight": w, **params}}``, what :func:`loss_terms`
    reads back; the weight is written only when it is not 1."""
    return {t.name: {**({"weight": t.weight} if t.weight != 1 else {}), **t.kwargs} for t in loss_terms(spec)}


class Loss:
    """A registered loss with its parameters bound: ``Loss("ot", lam=0.5)(x, y)``.

    Built from a name and parameters (checked by :class:`LossTerm`), or from a checked
    :class:`LossTerm`, whose weight it leaves to :class:`WeightedLoss`.
    """

    def __init__(self, name: str | LossTerm, **params):
        if isinstance(name, LossTerm):
            if params:
                raise ValueError("give the parameters inside the LossTerm")
            term = name
        else:
            term = LossTerm(name, params=params)
        self.name = term.name
        self.params = term.kwargs
        self._fn = _REGISTRY[term.name].fn
        #: True when a sample's loss depends on the other samples of the batch, so a distributed
        #: step must see the whole batch (see :func:`register_loss`)
        self.couples_samples: bool = term.couples_samples

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self._fn(x, y, **self.params)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in sorted(self.params.items()))
        return f"Loss({self.name!r}{', ' if args else ''}{args})"


class WeightedLoss:
    """Weighted sum of registered losses: ``sum_k weight_k * loss_k(x, y)``."""

    def __init__(self, terms: list[tuple[float, Loss]]):
        if not terms:
            raise ValueError("a weighted loss needs at least one term")
        self.terms = terms
        self.couples_samples: bool = any(loss.couples_samples for _, loss in terms)

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return sum(w * loss(x, y) for w, loss in self.terms)

    def __repr__(self) -> str:
        return " + ".join(f"{w:g} * {loss!r}" for w, loss in self.terms)


def get_loss(spec, **params):
    """The callable ``loss(pred, target) -> scalar`` of a loss: "mse", "ot" (partial OT),
    "infonce" or a registered one.

    A name with keyword parameters gives a :class:`Loss`; anything else that :func:`loss_terms`
    reads (a dict ``{name: {"weight": w, **params}}``, :class:`LossTerm` objects) gives the
    :class:`WeightedLoss` of its terms, already checked, so nothing is checked again here.

    >>> get_loss("ot", lam=0.5, level="token", cost="euclidean")
    Loss('ot', cost='euclidean', lam=0.5, level='token')
    >>> get_loss({"mse": {}, "ot": {"weight": 0.5, "lam": 0.3}})
    1 * Loss('mse') + 0.5 * Loss('ot', lam=0.3)
    """
    if isinstance(spec, str):
        return Loss(spec, **params)
    if params:
        raise ValueError("give the parameters of a weighted loss inside its terms")
    return WeightedLoss([(float(t.weight), Loss(t)) for t in loss_terms(spec)])
