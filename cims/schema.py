"""Imports every domain's tables so ``Base.metadata`` holds the whole schema."""

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

__all__ = [
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
