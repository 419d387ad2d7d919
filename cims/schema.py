"""Imports every domain's tables so ``Base.metadata`` holds the whole schema."""

from sqlalchemy import BigInteger, Column, Index, text

from cims.appointments import models as appointments
from cims.base import Base
from cims.billing import models as billing
from cims.engagement import models as engagement
from cims.governance import models as governance
from cims.org import models as org
from cims.patients import models as patients
from cims.records import models as records
from cims.security import models as security

metadata = Base.metadata

# Tables whose rows carry ``row_xid``, the transaction that last wrote them (migration
# 0008; the analytics snapshot reads only rows written since its last refresh). The
# database fills it: the column is in the schema, not on the mapped classes, so the ORM
# never reads or writes it.
CHANGE_STAMPED = (
    "encounters",
    "appointments",
    "diagnoses",
    "charges",
    "invoices",
    "payments",
    "surveys",
)
for _name in CHANGE_STAMPED:
    _table = metadata.tables[_name]
    _table.append_column(
        Column("row_xid", BigInteger, server_default=text("(pg_current_xact_id())::text::bigint"))
    )
    Index(f"ix_{_name}_row_xid", _table.c.row_xid, postgresql_where=text("row_xid IS NOT NULL"))

__all__ = [
    "CHANGE_STAMPED",
    "appointments",
    "billing",
    "engagement",
    "governance",
    "metadata",
    "org",
    "patients",
    "records",
    "security",
]
