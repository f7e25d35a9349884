"""HTTP handlers of the route service."""

from services.common.app import create_app as create_base_app
from services.common.app import query_arg
from services.common.location import parse_location
from services.route.eta import compute_eta

HINT = " (x,y such as 115,277)"


def create_app(settings):
    app = create_base_app(__name__, "route", settings)

    @app.get("/route")
    def find_route():
        pickup = query_arg("pickup", parse_location, HINT)
        dropoff = query_arg("dropoff", parse_location, HINT)
        eta_seconds = compute_eta(pickup, dropoff, settings.route_calc_delay)
        return {"pickup": str(pickup), "dropoff": str(dropoff), "eta_seconds": eta_seconds}

    return app
