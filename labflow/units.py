"""The one pint registry of labflow, and helpers to parse and convert quantities.

pint refuses arithmetic between quantities of different registries, so every part of
labflow (recipes, spaces, devices, provenance) uses ``ureg`` from here.
"""

from __future__ import annotations

import functools
import math
import re
import tokenize
from typing import Any

import pint

from labflow.errors import UnitError

ureg = pint.UnitRegistry(autoconvert_offset_to_baseunit=True)
Quantity = ureg.Quantity
pint.set_application_registry(ureg)

DIMENSIONLESS = ""


_NUMBER_THEN_UNIT = re.compile(r"^([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*([A-Za-z%\u00b0\u00b5].*)$")


def parse_unit(text: str | None) -> pint.Unit:
    """Parse a unit string ("degC", "min", "mL/min", "" or None for dimensionless)."""
    if isinstance(text, pint.Unit):
        return text
    return _parse_unit_cached(text)


@functools.lru_cache(maxsize=1024)
def _parse_unit_cached(text: str | None) -> pint.Unit:
    if text is None or str(text).strip() in ("", "1", "dimensionless"):
        return ureg.dimensionless
    try:
        return ureg.Unit(str(text).strip())
    except (pint.errors.UndefinedUnitError, pint.errors.DefinitionSyntaxError, ValueError, TypeError, AttributeError, SyntaxError, tokenize.TokenError) as exc:
        raise UnitError(f"unknown unit {text!r}", hint="use a pint unit such as 'degC', 'min', 'mL/min', 'percent'") from exc


def parse_quantity(value: Any, default_unit: str | pint.Unit | None = None) -> pint.Quantity:
    """Turn ``150``, ``"150 degC"`` or a Quantity into a Quantity.

    Plain numbers take ``default_unit``. Raises ``UnitError`` for unknown units or text that is not a quantity.
    """
    unit = parse_unit(default_unit) if not isinstance(default_unit, pint.Unit) else default_unit
    if isinstance(value, pint.Quantity):
        return value
    if isinstance(value, bool):
        raise UnitError(f"expected a number or a quantity such as '150 degC', got {value!r}")
    if isinstance(value, (int, float)):
        return Quantity(float(value), unit)
    if isinstance(value, str):
        text = value.strip()
        try:
            number = float(text)
        except ValueError:
            pass
        else:
            return Quantity(number, unit)
        m = _NUMBER_THEN_UNIT.match(text)
        if m:  # "60 minn": say which unit is unknown rather than that the text is not a quantity
            unit_text = m.group(2).strip()
            try:
                u = parse_unit(unit_text)
            except UnitError:
                raise UnitError(f"unknown unit {unit_text!r} in {value!r}", hint="use a pint unit such as 'degC', 'min', 'mL/min', 'percent'") from None
            return Quantity(float(m.group(1)), u)
        try:
            q = ureg.Quantity(text)
        except (pint.errors.UndefinedUnitError, pint.errors.DefinitionSyntaxError, ValueError, TypeError, AttributeError, AssertionError, SyntaxError, tokenize.TokenError) as exc:
            raise UnitError(f"cannot read {value!r} as a quantity", hint="write a number and a unit, e.g. '150 degC' or '30 min'") from exc
        if not isinstance(q, pint.Quantity):
            return Quantity(float(q), unit)
        return q
    raise UnitError(f"expected a number or a quantity such as '150 degC', got {type(value).__name__} {value!r}")


def convert(value: Any, to_unit: str | pint.Unit | None, *, from_unit: str | pint.Unit | None = None) -> float:
    """Convert ``value`` (number in ``from_unit``, text or Quantity) to a float in ``to_unit``.

    Raises ``UnitError`` naming both dimensions when they differ (a temperature given in metres).
    """
    target = parse_unit(to_unit) if not isinstance(to_unit, pint.Unit) else to_unit
    q = parse_quantity(value, from_unit if from_unit is not None else target)
    try:
        out = q.to(target).magnitude
    except pint.errors.DimensionalityError as exc:
        raise UnitError(
            f"{value!r} has dimension {dimension_name(q.units)}, expected {dimension_name(target)} ({target:~})",
            hint=f"give the value in a unit convertible to {target:~}",
        ) from exc
    return float(out)


def dimension_name(unit: pint.Unit) -> str:
    """A readable dimension, e.g. '[temperature]' or 'dimensionless'."""
    dim = ureg.get_dimensionality(unit)
    return str(dim) if dim else "dimensionless"


def check_dimension(unit: str | pint.Unit | None, expected: str | pint.Unit | None) -> None:
    """Raise ``UnitError`` unless ``unit`` is convertible to ``expected``."""
    u = parse_unit(unit) if not isinstance(unit, pint.Unit) else unit
    e = parse_unit(expected) if not isinstance(expected, pint.Unit) else expected
    if ureg.get_dimensionality(u) != ureg.get_dimensionality(e):
        raise UnitError(f"unit {u:~} has dimension {dimension_name(u)}, expected {dimension_name(e)}")


def is_finite(x: float) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)
