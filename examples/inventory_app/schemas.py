"""Request and response bodies (pydantic v2; unknown fields are rejected).

Request models derive from :class:`tenantkit.http.RequestModel`: a NUL byte or
an unpaired surrogate in any string and any number out of range are a 422
naming the field. Every constraint a validator enforces is in the JSON schema
the OpenAPI document is generated from, so the document states what is accepted.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    create_model,
    field_validator,
)

from tenantkit.http import RequestModel, absent_not_null, check_text
from tenantkit.pagination import CursorParam

__all__ = [
    "AdjustmentIn",
    "AdjustmentOut",
    "FileOut",
    "FileUploadIn",
    "FileUploadOut",
    "InventoryItem",
    "InventoryList",
    "ListQuery",
    "OrderIn",
    "OrderItemOut",
    "OrderLineIn",
    "OrderList",
    "OrderOut",
    "PresignedUploadOut",
    "ProductIn",
    "ProductList",
    "ProductOut",
    "ProductPatch",
    "file_upload_body",
]

MAX_LIMIT = 100
#: The largest price and order total the ``Numeric(12, 2)`` columns hold.
MAX_MONEY = Decimal("9999999999.99")


def _no_bool(value: object) -> object:
    """Reject JSON booleans where a number is expected (pydantic would take ``true`` as 1)."""
    if isinstance(value, bool):
        raise ValueError("Input should be a number or a decimal string")
    return value


def _integral(value: object) -> object:
    """JSON integers, and numbers with no fraction (``278671.0``, an integer in JSON Schema)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("Input should be an integer")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError("Input should be an integer")
        return int(value)
    return value


#: A JSON integer or an integral number; strings and booleans are refused.
_INTEGRAL = BeforeValidator(_integral)
_STORABLE = AfterValidator(check_text)


#: Documented as it is validated: the pattern admits no leading/trailing spaces,
#: so what the schema calls valid is stored as sent.
_WORDS = r"^\S(.*\S)?$"
Sku = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=_WORDS), _STORABLE]
Name = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=_WORDS), _STORABLE]
Description = Annotated[str, StringConstraints(max_length=2000), _STORABLE]
#: A JSON number or a decimal string with at most two decimals, from 0 to 9999999999.99.
Price = Annotated[
    Decimal,
    Field(
        ge=0,
        le=MAX_MONEY,
        max_digits=12,
        decimal_places=2,
        allow_inf_nan=False,
        examples=["19.99"],
        json_schema_extra={
            "anyOf": [
                {"type": "number", "minimum": 0, "maximum": 9999999999.99, "multipleOf": 0.01},
                {"type": "string", "pattern": r"^(0|[1-9][0-9]{0,9})(\.[0-9]{1,2})?$"},
            ]
        },
    ),
    BeforeValidator(_no_bool),
]
Threshold = Annotated[int, Field(ge=0, le=1_000_000), _INTEGRAL]


class _In(RequestModel):
    pass


class ProductIn(_In):
    """``POST /products``. ``price`` is a decimal string (``"19.99"``) or a number."""

    sku: Sku
    name: Name
    price: Price
    description: Description = ""
    low_stock_threshold: Threshold = 5
    stock: Annotated[
        int, Field(ge=0, le=1_000_000, description="initial stock, recorded in the ledger"), _INTEGRAL
    ] = 0


class ProductPatch(_In):
    """``PATCH /products/{id}``: any subset of the writable fields (stock changes through adjustments)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=absent_not_null)

    sku: Sku | None = None
    name: Name | None = None
    price: Price | None = None
    description: Description | None = None
    low_stock_threshold: Threshold | None = None


class ProductOut(BaseModel):
    """A product; ``price`` is a decimal string."""

    id: uuid.UUID
    sku: str
    name: str
    description: str
    price: str = Field(examples=["19.99"])
    stock: int
    low_stock_threshold: int
    created_at: datetime
    updated_at: datetime


class ProductList(BaseModel):
    """A page of products."""

    items: list[ProductOut]
    next_cursor: str | None


class ListQuery(RequestModel):
    """Query parameters of the list endpoints (an unknown parameter is a 422)."""

    limit: int = Field(default=20, ge=1, le=MAX_LIMIT)
    cursor: CursorParam | None = None
    q: (
        Annotated[
            str,
            StringConstraints(max_length=200),
            _STORABLE,
            Field(json_schema_extra={"pattern": "^[^\\x00]*$"}),
        ]
        | None
    ) = Field(default=None, description="case-insensitive search in name and sku")


class InventoryItem(BaseModel):
    """Stock of one product."""

    product_id: uuid.UUID
    sku: str
    name: str
    stock: int
    low_stock_threshold: int
    low_stock: bool


class InventoryList(BaseModel):
    """A page of stock levels."""

    items: list[InventoryItem]
    next_cursor: str | None


class AdjustmentIn(_In):
    """``POST /inventory/{product_id}/adjustments``: a non-zero ``delta`` and why."""

    delta: Annotated[
        int, Field(ge=-1_000_000, le=1_000_000, json_schema_extra={"not": {"const": 0}}), _INTEGRAL
    ]
    reason: Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=_WORDS), _STORABLE]

    @field_validator("delta")
    @classmethod
    def _non_zero(cls, value: int) -> int:
        if value == 0:
            raise ValueError("delta must not be zero")
        return value


class AdjustmentOut(BaseModel):
    """The ledger row written, with the product's new stock."""

    id: uuid.UUID
    product_id: uuid.UUID
    delta: int
    reason: str
    stock: int
    order_id: uuid.UUID | None
    created_at: datetime


class OrderLineIn(_In):
    """One line of a new order."""

    product_id: uuid.UUID
    quantity: Annotated[int, Field(ge=1, le=10_000), _INTEGRAL]


class OrderIn(_In):
    """``POST /orders``: lines naming the same product are merged."""

    items: Annotated[list[OrderLineIn], Field(min_length=1, max_length=100)]


class OrderItemOut(BaseModel):
    """An order line with the unit price at order time."""

    product_id: uuid.UUID
    sku: str
    name: str
    quantity: int
    unit_price: str = Field(examples=["19.99"])
    line_total: str = Field(examples=["39.98"])


class OrderOut(BaseModel):
    """An order."""

    id: uuid.UUID
    status: str
    items: list[OrderItemOut]
    total: str = Field(examples=["39.98"])
    user_id: uuid.UUID | None
    created_at: datetime


class OrderList(BaseModel):
    """A page of orders, newest first."""

    items: list[OrderOut]
    next_cursor: str | None


#: A file name whose last path segment (what is kept for display) has a character that
#: survives the service's clean-up (no control or format character, no space): printable
#: ASCII, Latin letters, CJK ideographs or Hangul. Anything else would be an empty name.
#: No NUL anywhere (a database cannot store it).
FILENAME_PATTERN = (
    r"^(?:[^/\\\x00]*[/\\])*[^/\\\x00]*"
    r"[!-.0-\[\]-~\u00a1-\u00ac\u00ae-\u024f\u4e00-\u9fff\uac00-\ud7a3][^/\\\x00]*$"
)


class FileUploadIn(_In):
    """``POST /files/uploads``: what the client is about to upload."""

    filename: Annotated[
        str, StringConstraints(min_length=1, max_length=255, pattern=FILENAME_PATTERN), _STORABLE
    ]
    content_type: Annotated[str, StringConstraints(min_length=1, max_length=127), _STORABLE]
    size: Annotated[int, Field(ge=1, le=2**53), _INTEGRAL]
    visibility: Literal["private", "public"] = "private"


def file_upload_body(allowed_types: Iterable[str], max_size: int) -> type[FileUploadIn]:
    """``FileUploadIn`` for one file service: its allowed content types and its size limit.

    The allow-list and the size limit are the service's (settings), so the model,
    and the document built from it, is made when the routes are.
    """
    types = tuple(sorted(allowed_types))
    fields: dict[str, Any] = {
        "content_type": (Literal[types], ...),  # type: ignore[valid-type]
        "size": (Annotated[int, Field(ge=1, le=max_size), _INTEGRAL], ...),
    }
    model = create_model("FileUploadIn", __base__=FileUploadIn, __doc__=FileUploadIn.__doc__, **fields)
    return model


class PresignedUploadOut(BaseModel):
    """Where and how to send the bytes."""

    url: str
    method: Literal["PUT", "POST"]
    headers: dict[str, str]
    fields: dict[str, str]


class FileOut(BaseModel):
    """File metadata; ``download_url`` (private) or ``url`` (public) once uploaded."""

    id: uuid.UUID
    filename: str
    content_type: str
    size: int
    visibility: str
    status: str
    sha256: str | None = None
    created_at: datetime
    uploaded_at: datetime | None = None
    download_url: str | None = None
    url: str | None = None


class FileUploadOut(BaseModel):
    """A pending file and its presigned upload."""

    id: uuid.UUID
    filename: str
    content_type: str
    size: int
    visibility: str
    status: str
    upload: PresignedUploadOut
