"""ROOT ``TF1`` functions of HAL responses (see :mod:`skyfit.io.hal`), evaluated from their ROOT 5 formula."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# ROOT 5 TFormula stores its expression in reverse Polish notation: fOper[i] = action << 23 | value
_TF_SHIFT = 23
_TF_MASK = (1 << _TF_SHIFT) - 1
_TF_UNARY = {
    10: np.cos, 11: np.sin, 12: np.tan, 13: np.arccos, 14: np.arcsin, 15: np.arctan, 21: np.square,
    22: np.sqrt, 30: np.log, 31: np.exp, 32: np.log10, 41: np.abs, 42: np.sign, 43: np.trunc,
    44: np.negative, 70: np.cosh, 71: np.sinh, 72: np.tanh, 73: np.arccosh, 74: np.arcsinh, 75: np.arctanh,
}  # fmt: skip
_TF_BINARY = {
    1: np.add, 2: np.subtract, 3: np.multiply, 4: np.divide, 5: np.fmod, 16: np.arctan2, 17: np.fmod,
    20: np.power, 24: np.minimum, 25: np.maximum,
}  # fmt: skip
_TF_PARAMETER, _TF_CONSTANT, _TF_VARIABLE, _TF_PI = 140, 141, 144, 40


class _TF1Unsupported(Exception):
    """The TF1's formula cannot be evaluated here."""


@dataclass(frozen=True)
class _TF1:
    """A 1D ROOT function: its parameters and, when readable, its ROOT 5 RPN formula."""

    name: str
    title: str
    params: np.ndarray
    param_names: tuple
    tokens: tuple = ()
    opers: tuple = ()
    consts: tuple = ()

    @classmethod
    def from_uproot(cls, obj) -> _TF1:
        members = obj.all_members

        def seq(key):
            value = members.get(key)
            return () if value is None else tuple(value)

        params = np.asarray(seq("fParams"), dtype=float)
        names = tuple(str(n) for n in seq("fNames"))
        tokens = tuple(str(t) for t in seq("fExpr"))
        opers = tuple(int(o) for o in seq("fOper"))
        consts = tuple(float(c) for c in seq("fConst"))
        return cls(str(members.get("fName", "")), str(members.get("fTitle", "")), params, names, tokens, opers, consts)

    @property
    def formula(self) -> str:
        """The formula in infix form (from the RPN tokens), or ``""`` when not stored."""
        if not self.opers:
            return ""
        stack = []
        try:
            for tok, op in zip(self.tokens, self.opers, strict=True):
                action = op >> _TF_SHIFT
                if action in _TF_BINARY:
                    b, a = stack.pop(), stack.pop()
                    stack.append(f"{tok}({a}, {b})" if tok.isalpha() else f"({a} {tok} {b})")
                elif action == 44:
                    stack.append(f"(-{stack.pop()})")
                elif action in _TF_UNARY:
                    stack.append(f"{tok}({stack.pop()})")
                else:
                    stack.append(tok)
            return stack[-1] if len(stack) == 1 else " ".join(self.tokens)
        except (IndexError, ValueError):
            return " ".join(self.tokens)

    def evaluate(self, x) -> np.ndarray:
        """Evaluate the stored RPN formula at ``x``; :class:`_TF1Unsupported` if it cannot be."""
        if not self.opers or len(self.opers) != len(self.tokens):
            raise _TF1Unsupported(f"TF1 {self.name!r} has no ROOT 5 formula (fOper) stored")
        x = np.asarray(x, dtype=float)
        stack: list = []
        for op in self.opers:
            action, value = op >> _TF_SHIFT, op & _TF_MASK
            if action == _TF_PARAMETER:
                if value >= len(self.params):
                    raise _TF1Unsupported(f"TF1 {self.name!r} uses parameter [{value}] of {len(self.params)}")
                stack.append(self.params[value])
            elif action == _TF_CONSTANT:
                if value >= len(self.consts):
                    raise _TF1Unsupported(f"TF1 {self.name!r} uses constant {value} of {len(self.consts)}")
                stack.append(self.consts[value])
            elif action == _TF_VARIABLE:
                if value != 0:
                    raise _TF1Unsupported(f"TF1 {self.name!r} uses variable {value} (only x is supported)")
                stack.append(x)
            elif action == _TF_PI:
                stack.append(np.pi)
            elif action in _TF_UNARY:
                stack.append(_TF_UNARY[action](stack.pop()))
            elif action in _TF_BINARY:
                b, a = stack.pop(), stack.pop()
                stack.append(_TF_BINARY[action](a, b))
            else:
                raise _TF1Unsupported(f"TF1 {self.name!r}: TFormula operation {action} is not supported")
        if len(stack) != 1:
            raise _TF1Unsupported(f"TF1 {self.name!r}: malformed formula (stack of {len(stack)})")
        return np.broadcast_to(np.asarray(stack[0], dtype=float), x.shape).copy()


def _hal_builtin_spectrum(tf1: _TF1, log10_e: np.ndarray) -> np.ndarray:
    """log10 of the simulated spectrum as hawc_hal evaluates it when it cannot read the formula."""
    p = tf1.params
    shape = tf1.title or tf1.name
    if shape == "SimplePowerLaw" and len(p) >= 2:
        return np.log10(p[0]) - p[1] * log10_e
    if shape == "CutOffPowerLaw" and len(p) >= 3:
        return np.log10(p[0]) - p[1] * log10_e - np.log10(np.e) * 10.0 ** (log10_e - np.log10(p[2]))
    raise _TF1Unsupported(f"unknown simulated spectrum shape {shape!r}")


def _hal_builtin_psf(params: np.ndarray, r: np.ndarray) -> np.ndarray:
    """hawc_hal's double-Gaussian PSF, ``dN/dr``, used when the TF1 formula cannot be read."""
    p = params
    return p[0] * r * (p[1] * np.exp(-r * r / (2 * p[2])) + (1 - p[1]) * np.exp(-r * r / (2 * p[3])))
