"""The agent's tools, as plain functions: nothing to change here.

In the demo's assistant they call the customer, driver and route services;
here they answer from a small table so the quest needs no other service.
"""

import json

CUSTOMERS = {"123": {"id": 123, "name": "Rachel's Floral Designs", "location": "115,277"},
             "392": {"id": 392, "name": "Trom Chocolatier", "location": "577,322"}}


def lookup_customer(customer_id):
    return CUSTOMERS.get(str(customer_id), {"error": f"no customer {customer_id}"})


def find_drivers(location):
    x, y = (int(v) for v in location.split(","))
    return [{"driver_id": f"T7{n:05d}C", "location": f"{x + 20 * n},{y - 10 * n}"} for n in (1, 2, 3)]


def route_eta(pickup, dropoff):
    (a, b), (c, d) = ((int(v) for v in p.split(",")) for p in (pickup, dropoff))
    return {"pickup": pickup, "dropoff": dropoff, "eta_seconds": 60 + round(1.5 * (abs(a - c) + abs(b - d)))}


FUNCTIONS = {"lookup_customer": lookup_customer, "find_drivers": find_drivers, "route_eta": route_eta}


def run(name, arguments_json):
    """Run one tool call; the result is JSON text for the model."""
    return json.dumps(FUNCTIONS[name](**json.loads(arguments_json)))
