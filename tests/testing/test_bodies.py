"""Example bodies generated from request models validate against those models."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Annotated, Literal

import pytest
from pydantic import BaseModel, EmailStr, Field

from inventory_app.schemas import AdjustmentIn, FileUploadIn, OrderIn, ProductIn
from tenantkit.rbac.schemas import RoleIn
from tenantkit.tenancy.schemas import InvitationIn
from tenantkit.testing import example_body
from tenantkit.testing.plugin import load_factory


class Line(BaseModel):
    product_id: uuid.UUID
    quantity: Annotated[int, Field(ge=1, le=5)]


class Everything(BaseModel):
    code: Annotated[str, Field(pattern=r"^[A-Z][A-Z0-9_]*$", max_length=8)]
    email: EmailStr
    kind: Literal["x", "y"]
    price: Decimal = Field(gt=0)
    lines: Annotated[list[Line], Field(min_length=2)]
    note: str | None = None


@pytest.mark.parametrize(
    "model", [ProductIn, AdjustmentIn, OrderIn, FileUploadIn, RoleIn, InvitationIn, Everything]
)
def test_the_generated_body_is_valid(model: type[BaseModel]) -> None:
    body = example_body(model, marker="tkb1234", ids=lambda name: None)

    model.model_validate(body)


def test_strings_carry_the_marker_and_ids_come_from_the_provider() -> None:
    product = str(uuid.uuid4())

    body = example_body(
        Everything, marker="tkb1234", ids=lambda name: product if name == "product_id" else None
    )

    assert body["email"].startswith("tkb1234")
    assert body["code"].startswith("TKB1234")
    assert [line["product_id"] for line in body["lines"]] == [product, product]
    assert "note" not in body


def test_a_malformed_factory_name_is_a_usage_error() -> None:
    with pytest.raises(pytest.UsageError, match="package.module:create_app"):
        load_factory("inventory_app.app")
    assert callable(load_factory("inventory_app.app:create_app"))
