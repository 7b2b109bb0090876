"""Annotated field types shared by every config section."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BeforeValidator

from agent.units import parse_duration, parse_listen, parse_size

Duration = Annotated[float, BeforeValidator(parse_duration)]
Size = Annotated[int, BeforeValidator(parse_size)]


def _check_listen(v: str) -> str:
    parse_listen(v)
    return v


ListenAddress = Annotated[str, AfterValidator(_check_listen)]
