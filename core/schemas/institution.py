"""Optional parts of a registry institution that only the statistics tables read: its data-centre rooms."""

from __future__ import annotations

from pydantic import Field

from core.schemas.base import Ident, Positive, Strict


class DataCentre(Strict):
    """The institution's data-centre rooms (数据中心机房), as the statistics system's
    data-centre table (公共机构数据中心机房能源消费状况) asks for them.

    `meters`: the electricity meters that measure the rooms' whole use (usually
    sub-meters of sub-item `special`); `it_meters`: those of the IT equipment alone,
    for the power usage effectiveness (PUE = whole use / IT use). Both are meters of
    the same institution; the registry loader checks that."""

    area_m2: Positive = Field(description="机房面积 (m2)")
    meters: tuple[Ident, ...] = Field(min_length=1, description="electricity meters of the rooms' whole use")
    it_meters: tuple[Ident, ...] = Field(default=(), description="electricity meters of the IT equipment")
