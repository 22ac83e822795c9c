"""``validate_payload``: the payload, validated against the handler's model."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic_core import ValidationError

from ..context import CallNext, Context
from ..exc import PayloadInvalid
from ..wire import MISSING

if TYPE_CHECKING:  # pydantic's BaseModel is imported by the apps that define models (see websuckets.handlers)
    from pydantic import BaseModel


async def validate_payload(ctx: Context, call_next: CallNext) -> None:
    """Validate ``ctx.payload`` against the handler's model into ``ctx.model``.

    It ``fuses_into_endpoint`` as `parse_payload`: the app runs that in the handler's step
    instead (see `websuckets.middleware.chain`).
    """
    model = ctx.command.model
    if model is not None:
        ctx.model = parse_payload(model, ctx.payload)
    await call_next(ctx)


def parse_payload(model: type[BaseModel], payload: object) -> BaseModel:
    """Validate a payload, raising `PayloadInvalid` with pydantic's errors.

    The details name each failing field under ``payload`` and never echo the input. The model's
    validator is called directly, as pydantic validates a nested model: everything the model
    declares runs (fields, validators, its configuration), not an override of ``model_validate``.
    """
    if payload is MISSING:
        raise PayloadInvalid([{"loc": ["payload"], "msg": "Field required", "type": "missing"}])
    try:
        return model.__pydantic_validator__.validate_python(payload)  # type: ignore[no-any-return]
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False, include_context=False)
        details = [{"loc": ["payload", *error["loc"]], "msg": error["msg"], "type": error["type"]} for error in errors]
        raise PayloadInvalid(details) from None


validate_payload.fuses_into_endpoint = parse_payload  # type: ignore[attr-defined]  # see websuckets.middleware.chain
