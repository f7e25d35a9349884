"""The route calculation: a distance on the map, slowed down by traffic.

It stands in for real routing work, which is CPU-bound and takes a while; the
manual span around it is what a trace shows as the route service's own time.
"""


from opentelemetry import trace

from services.common import config, delay
from services.common.randomness import rng

tracer = trace.get_tracer(__name__)

SECONDS_PER_UNIT = 1.5  # driving time per map unit on an empty road
PICKUP_SECONDS = 60  # parking, finding the customer


def compute_eta(pickup, dropoff, calc_delay=config.default("route-calc-delay")):
    """Return the estimated seconds from `pickup` to `dropoff` (both Locations).

    `calc_delay` is how long the calculation takes (``--route-calc-delay``).
    """
    attributes = {"route.pickup": str(pickup), "route.dropoff": str(dropoff)}
    with tracer.start_as_current_span("compute route", attributes=attributes) as span:
        delay.sleep(calc_delay)
        distance = abs(pickup.x - dropoff.x) + abs(pickup.y - dropoff.y)
        traffic = rng.uniform(0.8, 1.5)
        eta_seconds = round(PICKUP_SECONDS + distance * SECONDS_PER_UNIT * traffic)
        span.set_attributes({"route.distance": distance, "route.traffic_factor": round(traffic, 2),
                             "route.eta_seconds": eta_seconds})
    return eta_seconds
