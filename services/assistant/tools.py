"""The assistant's tools: each one is a real HTTP call to another demo service.

Each call runs inside an ``execute_tool <name>`` span (GenAI conventions), and
the requests instrumentation carries the trace context on, so the customer,
driver and route spans a tool causes land in the assistant's trace.
"""

import json
import logging

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from services.common.http import DownstreamError
from services.customer.client import CustomerClient
from services.driver.client import DriverClient
from services.route.client import RouteClient

logger = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)


class Toolbox:
    """The tools by name, bound to where the services run."""

    def __init__(self, customer_url, driver_url, route_url, capture_content=False):
        customers, drivers, routes = (CustomerClient(customer_url), DriverClient(driver_url),
                                      RouteClient(route_url))
        self.capture_content = capture_content
        self.functions = {
            "lookup_customer": lambda customer_id: _customer_view(customers.get(customer_id)),
            "find_drivers": lambda location: drivers.find_nearest(location),
            "route_eta": lambda pickup, dropoff: routes.find_route(pickup, dropoff),
        }

    def execute(self, call_id, name, arguments_json):
        """Run one tool call; the result is JSON text for the model, an error included."""
        attributes = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": name,
                      "gen_ai.tool.call.id": call_id, "gen_ai.tool.type": "function"}
        if self.capture_content:
            attributes["gen_ai.tool.call.arguments"] = arguments_json
        with tracer.start_as_current_span(f"execute_tool {name}", kind=SpanKind.INTERNAL,
                                          attributes=attributes) as span:
            result = self._run(span, name, arguments_json)
            text = json.dumps(result)
            if self.capture_content:
                span.set_attribute("gen_ai.tool.call.result", text)
            return text

    def _run(self, span, name, arguments_json):
        function = self.functions.get(name)
        try:
            arguments = json.loads(arguments_json or "{}")
            if function is None:
                raise LookupError(f"there is no tool called {name!r}")
            return function(**arguments)
        except (DownstreamError, LookupError, TypeError, ValueError) as error:
            # The model gets to read the failure; the span shows it.
            logger.warning("tool %s failed: %s", name, error)
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, str(error)))
            span.set_attribute("error.type", type(error).__name__)
            return {"error": str(error)}


def _customer_view(customer):
    """What the model needs of a customer: no e-mail address, which is personal data."""
    return {"id": customer["id"], "name": customer["name"], "location": customer["location"]}
