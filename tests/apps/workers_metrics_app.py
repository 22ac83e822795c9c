"""workers_app with health and metrics on: for ``websuckets run --workers`` with /healthz, /readyz, /metrics."""

from workers_app import app

from websuckets.health import Health
from websuckets.metrics import Metrics

app.add_instrument(Health())
app.add_instrument(Metrics())
