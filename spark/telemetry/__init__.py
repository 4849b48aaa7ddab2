"""``spark.telemetry``: OpenTelemetry spans and metrics of model calls (docs/telemetry.md).

Each model call is one span (``chat {model}`` / ``embeddings {model}``) with the GenAI
conventions' ``gen_ai.*`` attributes and Spark's ``spark.cache.*`` / ``spark.cost.*``, and one
increment of the ``spark.cache.requests`` counter. It is on once an OpenTelemetry SDK is
configured in the process (install the ``otel`` extra), off for a model built with
``telemetry=False`` or from a profile with ``[telemetry] enabled = false``. Importing this
package does not import ``opentelemetry``.
"""

from __future__ import annotations

from spark.telemetry._record import COUNTER_NAME, PROVIDER_NAMES, SCOPE_NAME
from spark.telemetry._switch import set_providers

__all__ = ["COUNTER_NAME", "PROVIDER_NAMES", "SCOPE_NAME", "set_providers"]
